"""P3 (Yang et al. 2025), Table II: the two-stage CNN-PINN against NOSER and TV on three phantom families with
20 dB noise, scored by SSIM, CC and RIE (``phantombench reproduce cnn-pinn-eit``).

Protocol (P3, scaled by the budget):

1. make or reuse the datasets under ``<data>/eit/``: a training set of P3-style phantoms -- equal parts one
   circle, two circles and circle + triangle (presets ``cnn-pinn-case1..3``, seeds 101-103), noisy dV at 20 dB
   as in the test sets -- whose ``train`` + ``test`` splits train (90 %) and ``val`` split validates (10 %, as
   P3's 10 % validation); and one held-out test set per case (seeds 201-203, every sample scored);
2. train stage 1 of the CNN-PINN once per repeat (seed = repeat index) on the training set; stage 2 runs per
   test case inside ``solve``;
3. score NOSER (both prior exponents), Tikhonov, TV and the CNN-PINN with the ``eit`` task's own observation,
   validation and metrics (SSIM, CC, RIE of the conductivity change over the disk);
4. write ``<out>/cnn-pinn-eit.md`` (Table II's numbers beside ours: mean +- std over repeats of the test-set
   means), ``cnn-pinn-eit.json`` (every number) and ``cnn-pinn-eit.png`` (truth and reconstructions).

Hyperparameters: at the ``paper`` budget NOSER's and Tikhonov's lambda, TV's alpha and the CNN-PINN's PDE weight
scale are selected on the validation split of the training set (lowest mean RIE for the linear methods; for the
CNN-PINN the highest mean of SSIM and CC, the two metrics of the quality goal -- its RIE saturates at 1 when it
returns a homogeneous image, which SSIM rewards and CC does not); at ``smoke`` the solvers'
defaults are used (chosen once the same way). Never on the test sets.

What goes through the evaluation harness: NOSER, Tikhonov, TV and the zero image on every test set. What does
not: stage 1 of the CNN-PINN trains on three datasets at once (the harness fits from one dataset's splits) and
one trained stage 1 serves the PDE-weight selection and both variants, so it is trained and scored in this
process (:func:`~phantombench.papers.scoring.solve_in_process`). Report: :mod:`.cnn_pinn_eit_report`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phantombench.papers.common import Paper, dataset_name, ensure_dataset, stats, write_json
from phantombench.papers.scoring import harness, require_ok, rows, solve_in_process

PAPER_TABLE2 = {  # case -> method -> (SSIM, CC, RIE)
    1: {"NOSER": (0.3645, 0.6534, 0.9465), "TV": (0.3829, 0.6347, 1.1034), "CNN-PINN": (0.4066, 0.7043, 0.9365)},
    2: {"NOSER": (0.1943, 0.3347, 3.0641), "TV": (0.2161, 0.2803, 3.4514), "CNN-PINN": (0.3671, 0.4030, 2.4903)},
    3: {"NOSER": (0.3841, 0.7071, 0.6107), "TV": (0.2873, 0.6148, 0.9701), "CNN-PINN": (0.4036, 0.7146, 0.4954)},
}
CASE_NAMES = {1: "one circle", 2: "two circles", 3: "circle + triangle"}
METRICS = ("SSIM", "CC", "RIE")
CASES = (1, 2, 3)


@dataclass(frozen=True)
class EITBudget:
    n_train_per_case: int     # training phantoms per family (3 families)
    n_test: int               # test phantoms per case
    train_mesh_mode: str      # generator mesh mode of the training set ("fixed" is ~5x faster)
    image_size: int
    width: int
    depth: int
    stage1_epochs: int
    pinn_epochs: int
    repeats: int
    tune: bool
    literal_variant: bool     # also run the CNN-PINN with Table I's weights exactly as printed
    note: str


BUDGETS: dict[str, EITBudget] = {
    "smoke": EITBudget(48, 3, "fixed", 64, 8, 4, 20, 400, 1, False, False,
                       "3 x 48 training phantoms (fixed mesh), 3 test phantoms per case, stage 1 width 8 for 20 "
                       "epochs, 400 PINN epochs, 1 repeat, solver defaults (minutes on 2 CPU cores; checks the "
                       "pipeline end to end, far from the paper's budget)"),
    "medium": EITBudget(500, 10, "fixed", 64, 16, 4, 30, 1000, 1, False, False,
                        "3 x 500 training phantoms (fixed mesh), 10 test phantoms per case, stage 1 width 16 for 30 "
                        "epochs, 1000 PINN epochs, 1 repeat, solver defaults (about 40 min on 2 CPU cores): the smoke "
                        "protocol with 10x the training data"),
    "paper": EITBudget(3334, 30, "conforming", 64, 16, 4, 60, 2000, 3, True, True,
                       "3 x 3334 = 10,002 training phantoms (P3: 10,000, 10 % validation), 30 test phantoms per "
                       "case, stage 1 width 16 for 60 epochs, 2000 PINN epochs per case, 3 repeats, hyperparameters "
                       "selected on the validation split. Not run here; estimated from measured unit costs on 2 "
                       "shared CPU cores: ~1.5 h data, ~3 h stage 1 per repeat (~50 samples/s), ~70 s per PINN "
                       "case (35 ms/epoch) x 90 cases x 2 variants per repeat, ~0.5 h selection: ~21 h; a GPU "
                       "cuts the network parts"),
}

METHODS = ("NOSER (p=0.5)", "NOSER (p=1)", "Tikhonov", "TV", "CNN-PINN")
LITERAL = "CNN-PINN (Table I as printed)"
ZERO = "zero image (reference)"
PAPER_ROW = {"NOSER (p=0.5)": "NOSER", "NOSER (p=1)": "NOSER", "TV": "TV", "CNN-PINN": "CNN-PINN", LITERAL: "CNN-PINN"}
CLASSICAL = {"NOSER (p=0.5)": "noser", "NOSER (p=1)": "noser", "Tikhonov": "tikhonov", "TV": "tv", ZERO: "constant"}


class TrainingCases(Sequence):
    """Samples of several datasets as one split for ``fit``: ``(observation, target)`` pairs read on access,
    ``sources`` (alias ``dataset_ids``: the datasets' ``name@version-hash``, the checkpoint's provenance) and
    ``potential(k)`` (the stage-1 target of case k)."""

    def __init__(self, task, parts: list[tuple[Any, list[int]]]):
        self.task = task
        self.parts = parts
        self.index = [(ds, i) for ds, idx in parts for i in idx]
        self.sources: list[str] = []
        for ds, _ in parts:
            m = ds.manifest
            did = f"{m['name']}@{m['version']}-{m['content_hash'][:12]}"
            if did not in self.sources:
                self.sources.append(did)
        self.dataset_ids = self.sources

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int):
        ds, i = self.index[k]
        g = ds.group(i)
        return self.task.observation(ds, i, g), self.task.target(ds, i, g)

    def potential(self, k: int) -> np.ndarray:
        ds, i = self.index[k]
        return np.asarray(ds.group(i)["potential"][...])

    def with_truth(self) -> list[tuple[dict, dict]]:
        """(observation, truth) of every case: what a selection on this split scores against."""
        return [(self.task.observation(ds, i), self.task.truth(ds, i)) for ds, i in self.index]


def _ds_info(ds) -> dict[str, Any]:
    m = ds.manifest
    return {"name": m["name"], "version": m["version"], "content_hash": m["content_hash"][:12],
            "n": m["n"], "seed": m["seed"], "path": str(ds.path),
            "mesh_mode": m["config"].get("mesh_mode"), "snr_db": m["config"].get("snr_db")}


def _datasets(B: EITBudget, data_root: Path, log) -> tuple[list, dict[int, Any]]:
    def make(c, n, seed, role, overrides):
        return ensure_dataset("eit", f"cnn-pinn-case{c}", n, seed, dataset_name("p3", role, n, seed), data_root, log,
                              overrides=overrides, workers=0 if n <= 100 else None)

    train_over = {"mesh_mode": B.train_mesh_mode, "store_mesh": False}
    train = [make(c, B.n_train_per_case, 100 + c, f"train-{B.train_mesh_mode}", train_over) for c in CASES]
    test = {c: make(c, B.n_test, 200 + c, "test", {"store_mesh": False}) for c in CASES}
    return train, test


@dataclass
class _State:
    """What the steps of one reproduction fill in."""
    task: Any
    B: EITBudget
    R: int
    device: str | None
    log: Any
    chosen: dict[str, dict[str, Any]]
    cnn_params: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
    examples: dict[int, dict[str, np.ndarray]] = field(default_factory=lambda: {c: {} for c in CASES})
    solve_time: dict[str, float] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _default_hyperparameters() -> dict[str, dict[str, Any]]:
    from phantombench.solvers.eit_classical import NOSER, Tikhonov, TotalVariation

    return {"NOSER (p=0.5)": {"p": 0.5, "lam": NOSER.defaults["lam"]},
            "NOSER (p=1)": {"p": 1.0, "lam": 1e-2},   # selected for p = 1 (see eit_classical's docstring)
            "Tikhonov": {"lam": Tikhonov.defaults["lam"]},
            "TV": {"alpha": TotalVariation.defaults["alpha"]}}


def _select_linear(s: _State, val_cases: list) -> None:
    """Lambda of NOSER and Tikhonov, alpha of TV: lowest mean RIE on the validation split."""
    from phantombench.solvers.eit_classical import NOSER, Tikhonov, TotalVariation, select_hyperparameter

    t0 = time.perf_counter()
    lam_grid = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    for name, cls, extra in (("NOSER (p=0.5)", NOSER, {"p": 0.5}), ("NOSER (p=1)", NOSER, {"p": 1.0}),
                             ("Tikhonov", Tikhonov, {})):
        best, scores = select_hyperparameter(cls, s.task, val_cases, "lam", lam_grid, "RIE", extra)
        s.chosen[name] = {**extra, "lam": best}
        s.selection[name] = {"parameter": "lam", "criterion": "mean RIE on val", "scores": scores}
    sub = val_cases[:: max(1, len(val_cases) // 30)]
    best, scores = select_hyperparameter(TotalVariation, s.task, sub, "alpha", [1e-3, 1e-2, 1e-1, 1.0], "RIE")
    s.chosen["TV"] = {"alpha": best}
    s.selection["TV"] = {"parameter": "alpha", "criterion": f"mean RIE on {len(sub)} val cases", "scores": scores}
    s.timings["selection_linear_s"] = time.perf_counter() - t0


def _classical(s: _State, test_ds: dict[int, Any]) -> None:
    """NOSER (both exponents), Tikhonov, TV and the zero image on every test set, through the harness.
    Deterministic: every repeat gives the same numbers."""
    for name in ("NOSER (p=0.5)", "NOSER (p=1)", "Tikhonov", "TV", ZERO):
        ts = []
        for c in CASES:
            cs = rows(harness(CLASSICAL[name], s.task, test_ds[c], params=s.chosen.get(name)), s.task)
            vals = {k: [r["metrics"][k] for r in cs] for k in METRICS}
            ts.append(float(np.mean([r["solve_s"] for r in cs])))
            s.results[name][c] = {"per_case": vals,
                                  "per_repeat": {k: [float(np.mean(vals[k]))] * s.R for k in METRICS}}
            if name != ZERO:
                s.examples[c][name] = cs[0]["pred"]["dsigma"]
        if name != ZERO:
            s.solve_time[name] = float(np.mean(ts))
            s.log(f"{name}: done")


def _cnn_pinn(s: _State, params: dict[str, Any], rep: int, stage1=None):
    """A CNN-PINN with ``params`` over the run's; ``stage1`` (a fitted CNN-PINN) lends its trained stage 1."""
    from phantombench.solvers.cnn_pinn import CNNPINN

    solver = CNNPINN(s.task, params={**s.cnn_params, **params}, device=s.device, seed=rep)
    if stage1 is not None:
        solver.norm, solver.stage1, solver.trained_on = stage1.norm, stage1.stage1, stage1.trained_on
    return solver


def _mean_scores(s: _State, solver, cases) -> dict[str, list[float]]:
    rs = require_ok(solver.name, solve_in_process(s.task, solver, cases))
    return {k: [float(r["metrics"][k]) for r in rs] for k in METRICS}


def _select_kappa(s: _State, base, rep: int, val_cases: list) -> None:
    """The PDE weight scale: highest mean of (SSIM, CC) on a subset of the validation split."""
    t0 = time.perf_counter()
    sub = val_cases[:: max(1, len(val_cases) // 9)]
    scores = {}
    for kappa in (30.0, 100.0, 300.0):
        vals = _mean_scores(s, _cnn_pinn(s, {"pde_weight_scale": kappa}, rep, base), sub)
        scores[kappa] = float(np.mean(vals["CC"]) + np.mean(vals["SSIM"])) / 2
    s.cnn_params["pde_weight_scale"] = max(scores, key=scores.get)
    s.selection["CNN-PINN"] = {"parameter": "pde_weight_scale", "criterion": f"mean of (SSIM, CC) on "
                               f"{len(sub)} val cases", "scores": scores}
    s.timings["selection_cnn_pinn_s"] = time.perf_counter() - t0


def _stage1(s: _State, rep: int, train: TrainingCases, val: TrainingCases) -> tuple[Any, dict[str, Any]]:
    """Train stage 1 with seed ``rep`` (or load its finished checkpoint): (the solver, its fit record)."""
    base = _cnn_pinn(s, {}, rep)
    t0 = time.perf_counter()
    base.fit(train, val)
    fit_s = time.perf_counter() - t0
    h = base.fit_history
    s.log(f"CNN-PINN repeat {rep}: stage 1 trained in {fit_s:.0f} s")
    return base, {"seed": rep, "fit_s": round(fit_s, 1), "dataset_ids": train.dataset_ids,
                  "epochs_run": len(h.get("train_loss", [])), "final_train_loss": (h.get("train_loss") or [None])[-1],
                  "best_val_loss": min(h.get("val_loss") or [float("nan")]), "history": h}


def _score_cnn_pinn(s: _State, base, rep: int, test_cases: dict[int, list]) -> None:
    """Both variants (ours; Table I as printed, at the paper budget) on every test set, in this process."""
    variants = [("CNN-PINN", {})]
    if s.B.literal_variant:
        variants.append((LITERAL, {"residual_form": "divergence", "pde_weight_scale": 1.0}))
    for vname, over in variants:
        solver = _cnn_pinn(s, over, rep, base)
        ts = []
        for c in CASES:
            rs = require_ok(vname, solve_in_process(s.task, solver, test_cases[c]))
            vals = {k: [float(r["metrics"][k]) for r in rs] for k in METRICS}
            ts.append(float(np.mean([r["solve_s"] for r in rs])))
            for k in METRICS:
                s.results[vname][c]["per_repeat"][k].append(float(np.mean(vals[k])))
            if rep == 0:
                s.examples[c][vname] = rs[0]["pred"]["dsigma"]
                s.results[vname][c]["per_case"] = vals
        s.solve_time[vname] = float(np.mean(ts))
        s.log(f"{vname} repeat {rep}: scored")


def run(budget: str = "smoke", repeats: int | None = None, data_root: Path = Path("data"),
        out_dir: Path = Path("leaderboard/papers"), log=print, **options) -> Path:
    """Run the P3 protocol at ``budget`` and write ``<out_dir>/cnn-pinn-eit.md``; returns its path.

    ``options``: ``device`` (auto/cpu/cuda), ``threads`` (torch CPU threads), ``width`` (stage-1 UNet width);
    others accepted by ``phantombench reproduce`` are ignored.
    """
    from phantombench.tasks import get_task

    PAPER.check_budget(budget)
    B = BUDGETS[budget]
    width = int(options.get("width") or B.width)
    threads = int(options.get("threads") or 0)   # the CNN-PINN's torch threads (default 1, see its docstring)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cnn_params = {"image_size": B.image_size, "width": width, "depth": B.depth, "stage1_epochs": B.stage1_epochs,
                  "epochs": B.pinn_epochs, "checkpoint_dir": str(Path(data_root) / "checkpoints" / "cnn-pinn"),
                  "threads": threads if threads > 0 else 1}
    s = _State(get_task("eit"), B, int(repeats or B.repeats), options.get("device"), log,
               _default_hyperparameters(), cnn_params)
    methods = list(METHODS) + ([LITERAL] if B.literal_variant else [])
    s.results = {m: {c: {"per_repeat": {k: [] for k in METRICS}} for c in CASES} for m in methods}
    s.results[ZERO] = {c: {"per_repeat": {}} for c in CASES}
    t_all = time.perf_counter()
    train_ds, test_ds = _datasets(B, Path(data_root), log)
    s.timings["datasets_s"] = time.perf_counter() - t_all
    train = TrainingCases(s.task, [(d, d.split("train") + d.split("test")) for d in train_ds])
    val = TrainingCases(s.task, [(d, d.split("val")) for d in train_ds])
    val_cases = val.with_truth()
    test_cases = {c: [(s.task.observation(ds, i), s.task.truth(ds, i)) for i in range(len(ds))]
                  for c, ds in test_ds.items()}
    if B.tune:
        _select_linear(s, val_cases)
    _classical(s, test_ds)
    fit_info = []
    for rep in range(s.R):
        base, info = _stage1(s, rep, train, val)
        fit_info.append(info)
        if B.tune and rep == 0:
            _select_kappa(s, base, rep, val_cases)
        _score_cnn_pinn(s, base, rep, test_cases)
    s.timings["total_s"] = time.perf_counter() - t_all
    report = _report(s, budget, width, train_ds, test_ds, train, val, fit_info)
    write_json(out_dir / "cnn-pinn-eit.json", report)
    from phantombench.papers import cnn_pinn_eit_report as rep_mod

    rep_mod.figure(test_cases, s.examples, out_dir / "cnn-pinn-eit.png")
    path = out_dir / "cnn-pinn-eit.md"
    path.write_text(rep_mod.render(report))
    return path


def _report(s: _State, budget: str, width: int, train_ds, test_ds, train, val, fit_info) -> dict[str, Any]:
    """The results dict stored as cnn-pinn-eit.json (what the report renders from)."""
    import torch

    from phantombench.provenance import provenance
    from phantombench.solvers.cnn_pinn import CNNPINN

    s.chosen["CNN-PINN"] = {k: s.cnn_params.get(k, CNNPINN.defaults[k]) for k in
                            ("image_size", "width", "depth", "stage1_epochs", "epochs", "residual_form",
                             "pde_weight_scale", "tv_form")}
    return {
        "paper": "P3: Yang, Zhang, Chen, Ma, Wang, IEEE Signal Processing Letters 2025 (10.1109/LSP.2025.3545306)",
        "budget": budget, "budget_spec": asdict(s.B), "repeats": s.R, "width": width,
        "datasets": {"train": [_ds_info(d) for d in train_ds], "test": {c: _ds_info(d) for c, d in test_ds.items()},
                     "n_train": len(train), "n_val": len(val)},
        "hyperparameters": s.chosen, "selection": s.selection, "stage1": fit_info,
        "results": {m: {c: {"stats": {k: stats(r[c]["per_repeat"][k]) for k in METRICS},
                            "per_repeat": r[c]["per_repeat"]} for c in CASES} for m, r in s.results.items()},
        "solve_time_s": s.solve_time, "timings": {k: round(v, 1) for k, v in s.timings.items()},
        "paper_table2": PAPER_TABLE2, "provenance": provenance(),
        "device": s.device or ("cuda" if torch.cuda.is_available() else "cpu"),
    }


def _render(results: dict[str, Any]) -> str:
    from phantombench.papers.cnn_pinn_eit_report import render

    return render(results)


PAPER = Paper(name="cnn-pinn-eit", title="P3: two-stage CNN-PINN for EIT (Yang et al., IEEE SPL 2025)",
              budgets=BUDGETS, run=run, render=_render)
