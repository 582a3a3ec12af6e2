"""P1 El-UNet (Kamali et al. 2023): El-UNet P, PS, PS-W1, PS-W2 and the dense PINN on the soft, noisy and stiff
brain-slice phantoms, each model trained per case for the same time, repeated with seeds 0..N-1, scored by
MARE(E) and MARE(nu) (mean +- std over repeats), plus the classical direct inversion as a reference row.

Budgets (``--budget``):

* ``smoke``: 15 s of training per model per case, 1 repeat, El-UNet width 8 (a few minutes on 2 CPU cores; CI).
* ``paper``: the paper's protocol -- 1800 s per model per case, 10 repeats, the paper's width 64. That is
  5 models x 3 cases x 10 repeats x 30 min = 75 h of training on any hardware (the budget is wall time).

What goes through the evaluation harness: the direct inversion (reference row). What does not: the learned
models train per case inside ``solve``, and the report needs their training history (loss and error of every
snapshot versus epoch, epochs run) which lives in the solver object, so they run in this process through
:func:`~phantombench.papers.scoring.solve_in_process` (the same validation and scoring as the harness).
Report: :mod:`.elunet_report`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phantombench.papers.common import Paper, ensure_official, stats, write_json
from phantombench.papers.scoring import harness, solve_in_process


@dataclass(frozen=True)
class Budget:
    train_time_s: float
    repeats: int
    width: int
    n_snapshots: int
    clock: str       # "cpu": process CPU seconds with 1 torch thread (equal compute on a shared machine); "wall"
    threads: int     # torch threads (0: torch's default)
    note: str


BUDGETS: dict[str, Budget] = {
    "smoke": Budget(15.0, 1, 8, 20, "cpu", 1, "15 CPU seconds of training per model per case on one thread, "
                                             "1 repeat, El-UNet width 8"),
    "paper": Budget(1800.0, 10, 64, 60, "wall", 0, "the paper's protocol: 30 min of wall time per model per case, "
                                                  "10 repeats, width 64"),
}

CASES = (("soft", "elunet-soft"), ("noisy", "elunet-noisy"), ("stiff", "elunet-stiff"))
# (label, solver spec, short key, the paper's finding for this row)
MODELS = (
    ("P El-UNet", "phantombench.solvers.elunet:ElUNetP", "P", "behind PS on nu"),
    ("PS El-UNet", "phantombench.solvers.elunet:ElUNetPS", "PS", "beats P on nu"),
    ("PS-W1 El-UNet", "phantombench.solvers.elunet:ElUNetPSW1", "W1", "best and most stable in every case"),
    ("PS-W2 El-UNet", "phantombench.solvers.elunet:ElUNetPSW2", "W2", "nu error turns back up late (noisy, stiff)"),
    ("dense PINN", "phantombench.solvers.elunet:DensePINN", "PINN", "behind every El-UNet"),
)
REFERENCE = ("direct inversion (reference)", "phantombench.solvers.direct_elasticity:DirectElasticity", "direct",
             "not in the paper (classical baseline)")
SUMMARY_METRICS = ("MARE_E", "MARE_nu", "MARE_E_background", "MARE_E_gray", "MARE_E_white",
                   "MARE_nu_background", "MARE_nu_gray", "MARE_nu_white")


@dataclass(frozen=True)
class Settings:
    """One run's settings: the budget with the command line's overrides applied."""
    budget: str
    train_s: float
    repeats: int
    width: int
    clock: str
    threads: int
    n_snapshots: int
    device: str


def _settings(budget, repeats, seconds, width, clock, threads, device) -> Settings:
    from phantombench.solvers.base import resolve_device

    b = BUDGETS[budget]
    return Settings(budget, float(seconds if seconds is not None else b.train_time_s), int(repeats or b.repeats),
                    int(width or b.width), clock or b.clock, b.threads if threads is None else int(threads),
                    b.n_snapshots, resolve_device(device))


def run(budget: str = "smoke", repeats: int | None = None, data_root: Path = Path("data"),
        out_dir: Path = Path("leaderboard/papers"), seconds: float | None = None, width: int | None = None,
        device: str | None = None, threads: int | None = None, clock: str | None = None,
        cases: tuple[str, ...] | None = None, log=print, **_: Any) -> Path:
    """Run the El-UNet table at ``budget``; write ``elunet.md``, ``elunet.json`` and the figures; return the .md."""
    import torch

    from phantombench.papers import elunet_report as report
    from phantombench.tasks import get_task

    PAPER.check_budget(budget)
    st = _settings(budget, repeats, seconds, width, clock, threads, device)
    if st.threads > 0:
        torch.set_num_threads(st.threads)
    task = get_task("brain-elasticity")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    results: dict[str, Any] = {
        "paper": "elunet", "budget": budget, "budget_note": BUDGETS[budget].note, "train_time_s": st.train_s,
        "repeats": st.repeats, "width": st.width, "clock": st.clock, "device": st.device,
        "threads": torch.get_num_threads(), "cases": {},
        "models": [{"label": label, "key": key, "spec": spec, "paper": finding}
                   for label, spec, key, finding in (*MODELS, REFERENCE)],
    }
    examples: dict[str, dict[str, Any]] = {}
    for case, preset in CASES:
        if cases is None or case in cases:
            results["cases"][case], examples[case] = _run_case(task, case, preset, st, Path(data_root), log)
    results["wall_s"] = time.perf_counter() - t_all
    results["provenance"] = _provenance(st.device)
    results["findings"] = report.findings(results)
    report.figures(results, examples, out_dir)
    write_json(out_dir / "elunet.json", results)
    md = out_dir / "elunet.md"
    md.write_text(report.render(results))
    return md


def _provenance(device: str) -> dict[str, Any]:
    import torch

    from phantombench.provenance import provenance

    prov = provenance()
    prov["torch"] = torch.__version__
    if device.startswith("cuda"):
        prov["hardware"]["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return prov


def _run_case(task, case: str, preset: str, st: Settings, data_root: Path, log) -> tuple[dict, dict]:
    """Every model of the table on one case: (the case's results, the truth and repeat-0 predictions)."""
    from phantombench.solvers.base import load_solver_class

    ds = ensure_official("brain-elasticity", preset, data_root, log)
    split = "test" if "test" in ds.manifest.get("splits", {}) else None
    idx = ds.split(split)[0] if split else 0
    obs, truth = task.observation(ds, idx), task.truth(ds, idx)
    cres: dict[str, Any] = {"dataset": f"brain-slice/{preset}", "content_hash": ds.manifest.get("content_hash"),
                            "models": {}}
    ex: dict[str, Any] = {"truth": {k: truth[k] for k in ("E", "nu", "_mask")}, "pred": {}}
    for label, spec, key, _ in MODELS:
        cls = load_solver_class(spec)
        runs = []
        for r in range(st.repeats):
            log(f"  {case:5s} {label:30s} run {r + 1}/{st.repeats} ...")
            run_, pred = _learned_run(task, cls, obs, truth, st, r)
            if r == 0 and pred is not None:
                ex["pred"][key] = {"E": pred["E"], "nu": pred["nu"]}
            _log_run(log, run_)
            runs.append(run_)
        cres["models"][key] = {"summary": _summary(runs, learned=True), "runs": runs}
    log(f"  {case:5s} {REFERENCE[0]:30s} run 1/1 (evaluation harness) ...")
    ref, pred = _reference(task, ds, split)
    if pred is not None:
        ex["pred"]["direct"] = {"E": pred["E"], "nu": pred["nu"]}
    _log_run(log, ref)
    cres["models"]["direct"] = {"summary": _summary([ref], learned=False), "runs": [ref]}
    cres["p_loss"] = p_form_losses(obs, truth, ex["pred"])
    return cres, ex


def _log_run(log, run_: dict[str, Any]) -> None:
    m = run_.get("metrics", {})
    log(f"        MARE_E {m.get('MARE_E', float('nan')):6.2f} %  MARE_nu "
        f"{m.get('MARE_nu', float('nan')):6.2f} %  ({run_.get('epochs', '-')} epochs, {run_['wall_s']:.1f} s)")


def _learned_run(task, cls, obs, truth, st: Settings, seed: int) -> tuple[dict[str, Any], dict | None]:
    """Train and score one learned model on one case in this process: (the run's record, its prediction)."""
    params: dict[str, Any] = {"train_time_s": st.train_s, "n_snapshots": st.n_snapshots, "clock": st.clock}
    if "width" in cls.defaults:
        params["width"] = st.width
    solver = cls(task, params=params, device=st.device, seed=seed)
    solver.time_budget_s = st.train_s + solver.setup_margin_s + 60.0   # the whole training time plus setup
    row = solve_in_process(task, solver, [(obs, truth)])[0]
    run_: dict[str, Any] = {"seed": seed, "wall_s": row["solve_s"], "failed": row["reason"]}
    if row["reason"] is None:
        run_["metrics"] = {k: v for k, v in row["metrics"].items() if k.startswith("MARE")}
    run_.update(_history(solver.last_history, truth))
    return run_, row["pred"]


def _thin(x: list, n: int = 400) -> list:
    if len(x) <= n:
        return list(x)
    idx = np.unique(np.geomspace(1, len(x), n).astype(int) - 1)
    return [x[i] for i in idx]


def _history(h: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """Epochs, training time, error of every snapshot and the (thinned) loss curve of a training history."""
    from phantombench.metrics import mare

    mask = truth["_mask"]
    return {
        "epochs": h["epochs"], "train_s": h["train_s"], "wall_train_s": h["wall_train_s"],
        "curve": {"epoch": [s["epoch"] for s in h["snapshots"]], "time_s": [s["time_s"] for s in h["snapshots"]],
                  "MARE_E": [mare(s["E"], truth["E"], mask) for s in h["snapshots"]],
                  "MARE_nu": [mare(s["nu"], truth["nu"], mask) for s in h["snapshots"]]},
        "loss": {"epoch": _thin(h["epoch"]), "loss": _thin(h["loss_plain"])},
        "final_terms": h["terms"],
    }


def _reference(task, ds, split: str | None) -> tuple[dict[str, Any], dict | None]:
    """The direct inversion on the case through the evaluation harness: (the run's record, its prediction)."""
    from phantombench.papers.common import ALL

    ev = harness(REFERENCE[1], task, ds, split=split or ALL, limit=1, strict=False)
    row = ev.cases.iloc[0]
    ok = row["status"] == "ok"
    run_: dict[str, Any] = {"seed": 0, "wall_s": float(row["solve_s"]), "failed": None if ok else str(row["reason"])}
    if not ok:
        return run_, None
    run_["metrics"] = {k: float(row[k]) for k in ev.cases.columns if k.startswith("MARE")}
    return run_, ev.examples[0]["prediction"]


def _summary(runs: list[dict[str, Any]], learned: bool) -> dict[str, Any]:
    agg: dict[str, Any] = {k: stats([ru.get("metrics", {}).get(k) for ru in runs]) for k in SUMMARY_METRICS}
    agg["epochs"] = stats([ru.get("epochs") for ru in runs]) if learned else None
    agg["wall_s"] = stats([ru["wall_s"] for ru in runs])
    agg["failed"] = [ru["failed"] for ru in runs if ru["failed"]]
    return agg


def p_form_losses(obs: dict[str, Any], truth: dict[str, Any], preds: dict[str, dict[str, np.ndarray]]
                  ) -> dict[str, Any]:
    """The El-UNet P loss (finite-difference equilibrium of the stresses that (E, nu) and the observed strains give,
    plus the traction terms; unweighted, non-dimensional as in training) at the ground truth and at each model's
    prediction, with the share of the truth's equilibrium residual on pixels next to a material jump.

    If the truth scores a *higher* loss than a prediction, the loss's minimiser is not the truth on this pixel
    data, and more training cannot close the gap (it is a discretisation bias, not a budget shortfall)."""
    import torch
    from scipy import ndimage

    from phantombench.solvers.elunet import prepare_case, residual_terms, total_loss

    case = prepare_case(obs, "cpu", torch.float64, "strain")
    s = case.modulus_scale

    def loss(E, nu):
        E, nu = np.asarray(E, float), np.asarray(nu, float)
        lam, mu = torch.as_tensor(E * nu / (1 - nu ** 2) / s), torch.as_tensor(E / (2 * (1 + nu)) / s)
        return residual_terms(case, lam, mu)

    t = loss(truth["E"], truth["nu"])
    r2 = sum(r.numpy() ** 2 for n, r, _ in t if n in ("E_x", "E_y"))
    E = np.asarray(truth["E"])
    jump = ndimage.maximum_filter(E, 3) != ndimage.minimum_filter(E, 3)
    out = {"truth": float(total_loss(t, weighted=False)),
           "truth_interface_share": float(r2[jump].sum() / max(r2.sum(), 1e-300)),
           "interface_pixels": float(jump.mean()), "models": {}}
    for key, p in preds.items():
        out["models"][key] = float(total_loss(loss(p["E"], p["nu"]), weighted=False))
    return out


def _render(results: dict[str, Any]) -> str:
    from phantombench.papers.elunet_report import render

    return render(results)


PAPER = Paper(name="elunet", title="P1 El-UNet (Kamali, Laksari et al. 2023)", budgets=BUDGETS, run=run,
              render=_render)
