"""``phantombench reproduce <paper>``: rerun a paper's table under its protocol, scaled by a budget.

Each paper is a function registered in :data:`PAPERS` (``name -> "module:function"``, imported lazily) with the
signature ``run(budget, repeats, data_root, out_dir, **options) -> Path`` that makes or reuses the paper's
datasets, runs every model of its table and writes ``<out_dir>/<paper>.md`` with its figures beside it.

``elunet`` (P1, Kamali et al. 2023): El-UNet P, PS, PS-W1, PS-W2 and the dense PINN on the soft, noisy and stiff
brain-slice phantoms, each model trained per case for the same wall time, repeated with seeds 0..N-1, scored
by MARE(E) and MARE(nu) (mean +- std over repeats), plus the classical direct inversion as a reference row.

Budgets (``--budget``):

* ``smoke``: 15 s of training per model per case, 1 repeat, El-UNet width 8 (a few minutes on 2 CPU cores; CI).
* ``paper``: the paper's protocol -- 1800 s per model per case, 10 repeats, the paper's width 64. That is
  5 models x 3 cases x 10 repeats x 30 min = 75 h of training on any hardware (the budget is wall time).
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from phantombench.cli import CliError, app, err, handle_errors, out

PAPERS: dict[str, str] = {
    "elunet": "phantombench.reproduce:run_elunet",
    "dime": "phantombench.reproduce_dime:run_dime",
    "cnn-pinn-eit": "phantombench.reproduce_eit:run_cnn_pinn_eit",
}
BUDGET_NAMES = ("smoke", "paper")   # every paper offers these two; a paper's module may add more in its BUDGETS


def register_paper(name: str, target: str) -> None:
    """Add a paper to ``phantombench reproduce`` (``target`` = "module:function")."""
    PAPERS[name] = target


def _load(name: str):
    if name not in PAPERS:
        raise CliError(f"unknown paper {name!r}; reproducible: {', '.join(sorted(PAPERS))}")
    mod, _, fn = PAPERS[name].partition(":")
    return getattr(importlib.import_module(mod), fn)


@app.command("reproduce")
@handle_errors
def reproduce_cmd(
    paper: Annotated[str, typer.Argument(help="Paper to reproduce: elunet (P1), dime (P2), cnn-pinn-eit (P3).")],
    budget: Annotated[str, typer.Option("--budget", help="smoke (minutes, CI) or paper (the paper's protocol); "
                                        "cnn-pinn-eit also has medium (10x the smoke training data).")] = "smoke",
    repeats: Annotated[int | None, typer.Option("--repeats", help="Runs per model and case (seeds 0..N-1); "
                                                                  "default: the budget's.")] = None,
    data_root: Annotated[Path, typer.Option("--data", help="Root of the datasets (made if missing).")
                         ] = Path("data"),
    out_dir: Annotated[Path, typer.Option("--out", help="Where the report and figures go.")
                       ] = Path("leaderboard/papers"),
    seconds: Annotated[float | None, typer.Option("--seconds", help="Override the training seconds per model "
                                                                    "per case.")] = None,
    width: Annotated[int | None, typer.Option("--width", help="Override the El-UNet base width.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto (default), cpu or cuda.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="torch CPU threads (0: torch's default); "
                                                                  "default: the budget's.")] = None,
    clock: Annotated[str | None, typer.Option("--clock", help="wall or cpu (process CPU seconds); default: the "
                                                              "budget's.")] = None,
) -> None:
    """Reproduce a paper's table: make the datasets, run its models under its protocol, write the report."""
    fn = _load(paper)
    names = tuple(getattr(importlib.import_module(fn.__module__), "BUDGETS", None) or BUDGET_NAMES)
    if budget not in names:
        raise CliError(f"--budget must be one of {', '.join(names)} (got {budget!r})")
    if repeats is not None and repeats < 1:
        raise CliError("--repeats must be at least 1")
    if clock not in (None, "wall", "cpu"):
        raise CliError(f"--clock must be wall or cpu (got {clock!r})")
    path = fn(budget=budget, repeats=repeats, data_root=data_root, out_dir=out_dir, seconds=seconds, width=width,
              device=device, threads=threads, clock=clock, log=lambda msg: err.print(msg, highlight=False))
    out.print(f"wrote {path}")


# ============================================================================================= El-UNet (P1)
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

ELUNET_CASES = (("soft", "elunet-soft"), ("noisy", "elunet-noisy"), ("stiff", "elunet-stiff"))
# (label, solver spec, short key, the paper's finding for this row)
ELUNET_MODELS = (
    ("P El-UNet", "phantombench.solvers.elunet:ElUNetP", "P", "behind PS on nu"),
    ("PS El-UNet", "phantombench.solvers.elunet:ElUNetPS", "PS", "beats P on nu"),
    ("PS-W1 El-UNet", "phantombench.solvers.elunet:ElUNetPSW1", "W1", "best and most stable in every case"),
    ("PS-W2 El-UNet", "phantombench.solvers.elunet:ElUNetPSW2", "W2", "nu error turns back up late (noisy, stiff)"),
    ("dense PINN", "phantombench.solvers.elunet:DensePINN", "PINN", "behind every El-UNet"),
)
REFERENCE = ("direct inversion (reference)", "phantombench.solvers.direct_elasticity:DirectElasticity", "direct",
             "not in the paper (classical baseline)")
TIE_POINTS = 0.5     # percentage points: differences this small are reported as ties, never counted as wins
PALETTE = {"P": "#1f77b4", "PS": "#ff7f0e", "W1": "#2ca02c", "W2": "#d62728", "PINN": "#9467bd", "direct": "#444444"}


def _ensure(preset: str, data_root: Path, log):
    from phantombench.official import ensure, official

    od = official("brain-elasticity", [preset])[0]
    log(f"dataset {od.key} under {data_root}")
    return ensure(od, data_root, workers=0)


def _stats(v: list[float]) -> dict[str, Any]:
    a = np.asarray([x for x in v if x is not None and np.isfinite(x)], dtype=float)
    if a.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else None, "n": int(a.size)}


def _thin(x: list, n: int = 400) -> list:
    if len(x) <= n:
        return list(x)
    idx = np.unique(np.geomspace(1, len(x), n).astype(int) - 1)
    return [x[i] for i in idx]


def run_elunet(budget: str = "smoke", repeats: int | None = None, data_root: Path = Path("data"),
               out_dir: Path = Path("leaderboard/papers"), seconds: float | None = None, width: int | None = None,
               device: str | None = None, threads: int | None = None, clock: str | None = None,
               cases: tuple[str, ...] | None = None, log=print) -> Path:
    import torch

    from phantombench.metrics import mare
    from phantombench.provenance import provenance
    from phantombench.solvers.base import load_solver_class, resolve_device
    from phantombench.tasks import get_task

    b = BUDGETS[budget]
    repeats = int(repeats or b.repeats)
    train_s = float(seconds if seconds is not None else b.train_time_s)
    width = int(width or b.width)
    clock = clock or b.clock
    threads = b.threads if threads is None else int(threads)
    if threads > 0:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    task = get_task("brain-elasticity")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    results: dict[str, Any] = {
        "paper": "elunet", "budget": budget, "budget_note": b.note, "train_time_s": train_s, "repeats": repeats,
        "width": width, "clock": clock, "device": dev, "threads": torch.get_num_threads(), "cases": {},
        "models": [],
    }
    examples: dict[str, dict[str, Any]] = {}
    for label, spec, key, finding in (*ELUNET_MODELS, REFERENCE):
        results["models"].append({"label": label, "key": key, "spec": spec, "paper": finding})
    wanted = [c for c in ELUNET_CASES if cases is None or c[0] in cases]
    for case, preset in wanted:
        ds = _ensure(preset, Path(data_root), log)
        idx = ds.split("test")[0] if "test" in ds.manifest.get("splits", {}) else 0
        obs = task.observation(ds, idx)
        truth = task.truth(ds, idx)
        mask = truth["_mask"]
        cres: dict[str, Any] = {"dataset": f"brain-slice/{preset}", "content_hash": ds.manifest.get("content_hash"),
                                "models": {}}
        ex = {"truth": {k: truth[k] for k in ("E", "nu", "_mask")}, "pred": {}}
        for label, spec, key, _ in (*ELUNET_MODELS, REFERENCE):
            cls = load_solver_class(spec)
            learned = key != "direct"
            runs = []
            for r in range(repeats if learned else 1):
                params: dict[str, Any] = {}
                if learned:
                    params = {"train_time_s": train_s, "n_snapshots": b.n_snapshots, "clock": clock}
                    if "width" in cls.defaults:
                        params["width"] = width
                solver = cls(task, params=params, device=dev, seed=r)
                if learned:       # in-process: allow the whole training time plus setup
                    solver.time_budget_s = train_s + solver.setup_margin_s + 60.0
                log(f"  {case:5s} {label:30s} run {r + 1}/{repeats if learned else 1} ...")
                t0 = time.perf_counter()
                pred = solver.solve(obs)
                wall = time.perf_counter() - t0
                clean, reason = task.validate(pred, truth)
                run: dict[str, Any] = {"seed": r, "wall_s": wall, "failed": reason}
                if reason is None:
                    sc = task.score(clean, truth)
                    run["metrics"] = {k: v for k, v in sc.items() if k.startswith("MARE")}
                    if r == 0:
                        ex["pred"][key] = {"E": clean["E"], "nu": clean["nu"]}
                if learned:
                    h = solver.last_history
                    run["epochs"] = h["epochs"]
                    run["train_s"] = h["train_s"]
                    run["wall_train_s"] = h["wall_train_s"]
                    run["curve"] = {
                        "epoch": [s["epoch"] for s in h["snapshots"]],
                        "time_s": [s["time_s"] for s in h["snapshots"]],
                        "MARE_E": [mare(s["E"], truth["E"], mask) for s in h["snapshots"]],
                        "MARE_nu": [mare(s["nu"], truth["nu"], mask) for s in h["snapshots"]],
                    }
                    run["loss"] = {"epoch": _thin(h["epoch"]), "loss": _thin(h["loss_plain"])}
                    run["final_terms"] = h["terms"]
                runs.append(run)
                m = run.get("metrics", {})
                log(f"        MARE_E {m.get('MARE_E', float('nan')):6.2f} %  MARE_nu "
                    f"{m.get('MARE_nu', float('nan')):6.2f} %  ({run.get('epochs', '-')} epochs, {wall:.1f} s)")
            agg = {k: _stats([ru.get("metrics", {}).get(k) for ru in runs])
                   for k in ("MARE_E", "MARE_nu", "MARE_E_background", "MARE_E_gray", "MARE_E_white",
                             "MARE_nu_background", "MARE_nu_gray", "MARE_nu_white")}
            agg["epochs"] = _stats([ru.get("epochs") for ru in runs]) if learned else None
            agg["wall_s"] = _stats([ru["wall_s"] for ru in runs])
            agg["failed"] = [ru["failed"] for ru in runs if ru["failed"]]
            cres["models"][key] = {"summary": agg, "runs": runs}
        cres["p_loss"] = p_form_losses(obs, truth, ex["pred"])
        results["cases"][case] = cres
        examples[case] = ex
    results["wall_s"] = time.perf_counter() - t_all
    prov = provenance()
    prov["torch"] = torch.__version__
    if dev.startswith("cuda"):
        prov["hardware"]["gpu"] = torch.cuda.get_device_name(torch.device(dev))
    results["provenance"] = prov
    results["findings"] = elunet_findings(results)
    _elunet_figures(results, examples, out_dir)
    from phantombench.store import json_default

    (out_dir / "elunet.json").write_text(json.dumps(results, indent=1, default=json_default) + "\n")
    md = out_dir / "elunet.md"
    md.write_text(render_elunet(results))
    return md


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


# ------------------------------------------------------------------------------------------- findings
def _mean(results, case, key, metric="MARE_E"):
    try:
        return results["cases"][case]["models"][key]["summary"][metric]["mean"]
    except KeyError:
        return None


def _verdict(ok: int, n: int) -> str:
    if n == 0:
        return "not testable"
    if ok == n:
        return "supported"
    if ok == 0:
        return "not supported"
    return f"partly ({ok} of {n})"


def elunet_findings(results: dict[str, Any]) -> list[dict[str, str]]:
    """The paper's qualitative findings checked against our numbers: (finding, paper, ours, verdict)."""
    cases = list(results["cases"])
    learned = [m["key"] for m in results["models"] if m["key"] != "direct"]
    elunets = [k for k in learned if k != "PINN"]
    f: list[dict[str, str]] = []

    def fmt(v):
        return "n/a" if v is None else f"{v:.1f}"

    # 1 every El-UNet beats the dense PINN (E and nu)
    ok = n = 0
    losers = []
    for c in cases:
        for k in elunets:
            for met in ("MARE_E", "MARE_nu"):
                a, p = _mean(results, c, k, met), _mean(results, c, "PINN", met)
                if a is None or p is None:
                    continue
                n += 1
                if a < p:
                    ok += 1
                else:
                    losers.append(f"{k} {met.split('_')[1]} {c}")
    f.append({"finding": "Every El-UNet beats the dense PINN", "paper": "yes, on E and nu in all three cases",
              "ours": f"{ok} of {n} (model, metric, case) comparisons won" + (
                  f"; lost: {', '.join(losers)}" if losers else ""), "verdict": _verdict(ok, n)})
    # 2 PS beats P on nu
    parts, ok, n = [], 0, 0
    for c in cases:
        a, p = _mean(results, c, "PS", "MARE_nu"), _mean(results, c, "P", "MARE_nu")
        if a is None or p is None:
            continue
        n += 1
        ok += a < p
        parts.append(f"{c}: PS {fmt(a)} vs P {fmt(p)} %")
    f.append({"finding": "PS beats P on nu", "paper": "yes", "ours": "; ".join(parts), "verdict": _verdict(ok, n)})
    # 3 W1 best (lowest MARE_E and MARE_nu among learned) and most stable (smallest std)
    parts, ok, n, ties = [], 0, 0, 0
    for c in cases:
        for met in ("MARE_E", "MARE_nu"):
            vals = {k: _mean(results, c, k, met) for k in learned}
            vals = {k: v for k, v in vals.items() if v is not None}
            if "W1" not in vals:
                continue
            best = min(vals, key=vals.get)
            n += 1
            ok += best == "W1"
            ties += best != "W1" and vals["W1"] - vals[best] <= TIE_POINTS
            parts.append(f"{c} {met.split('_')[1]}: best {best} ({fmt(vals[best])} %, W1 {fmt(vals['W1'])} %)")
    if ties:
        parts.append(f"W1 within {TIE_POINTS:g} points of the best in {ties} more (not counted)")
    stab = []
    for c in cases:
        sds = {k: results["cases"][c]["models"][k]["summary"]["MARE_E"]["std"] for k in learned}
        if all(v is not None for v in sds.values()):
            stab.append(f"{c}: smallest std(E) {min(sds, key=sds.get)}")
    f.append({"finding": "PS-W1 is best and most stable across soft, noisy and stiff", "paper": "yes",
              "ours": "; ".join(parts) + ("; " + "; ".join(stab) if stab else
                                           "; stability needs >= 2 repeats"),
              "verdict": _verdict(ok, n)})
    # 4 stiff hardest: per learned model, stiff MARE_E >= soft and noisy
    parts, ok, n = [], 0, 0
    if {"soft", "noisy", "stiff"} <= set(cases):
        for k in learned:
            s, o, st = (_mean(results, c, k) for c in ("soft", "noisy", "stiff"))
            if None in (s, o, st):
                continue
            n += 1
            ok += st >= max(s, o)
            parts.append(f"{k}: {fmt(s)} / {fmt(o)} / {fmt(st)}")
    f.append({"finding": "The stiff background is the hardest case", "paper": "yes",
              "ours": "MARE(E) soft / noisy / stiff: " + "; ".join(parts), "verdict": _verdict(ok, n)})
    # 5 W2's nu error turns back up late in noisy and stiff runs
    parts, ok, n = [], 0, 0
    for c in ("noisy", "stiff"):
        if c not in cases or "W2" not in results["cases"][c]["models"]:
            continue
        for run in results["cases"][c]["models"]["W2"]["runs"]:
            cv = run.get("curve", {}).get("MARE_nu", [])
            if len(cv) < 3:
                continue
            i = int(np.nanargmin(cv))
            n += 1
            up = i < len(cv) - 1 and cv[-1] > 1.1 * cv[i]
            ok += up
            parts.append(f"{c} seed {run['seed']}: min {fmt(cv[i])} % at epoch {run['curve']['epoch'][i]}, "
                         f"final {fmt(cv[-1])} %")
    others = []
    for k in ("PS", "W1"):
        ups = tot = 0
        for c in ("noisy", "stiff"):
            if c not in cases or k not in results["cases"][c]["models"]:
                continue
            for run in results["cases"][c]["models"][k]["runs"]:
                cv = run.get("curve", {}).get("MARE_nu", [])
                if len(cv) >= 3:
                    i = int(np.nanargmin(cv))
                    tot += 1
                    ups += bool(i < len(cv) - 1 and cv[-1] > 1.1 * cv[i])
        if tot:
            others.append(f"{k} {ups} of {tot}")
    f.append({"finding": "PS-W2's nu error turns back up late in noisy and stiff runs", "paper": "yes",
              "ours": "; ".join(parts) + " (up = final > 1.1 x minimum)" + (
                  f"; the same test on the other PS models: {', '.join(others)} turn up" if others else ""),
              "verdict": _verdict(ok, n)})
    return f


# ------------------------------------------------------------------------------------------- figures
def _save_png(fig, path: Path, dpi: int) -> None:
    """Save a figure as a 256-colour palette PNG (a third of the RGBA size; the same input gives the same bytes)."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    buf.seek(0)
    img = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    img.save(path, format="PNG", optimize=True)


def _elunet_figures(results, examples, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {m["key"]: m["label"].replace(" (reference)", "") for m in results["models"]}
    for case, ex in examples.items():
        keys = [k for k in labels if k in ex["pred"]]
        mask = ex["truth"]["_mask"]
        fig, axes = plt.subplots(4, len(keys) + 1, figsize=(1.9 * (len(keys) + 1) + 1, 10.2), squeeze=False,
                                 constrained_layout=True)
        for r, (field, unit) in enumerate((("E", "Pa"), ("nu", ""))):
            g = np.where(mask, ex["truth"][field], np.nan)
            lo, hi = float(np.nanmin(g)), float(np.nanmax(g))
            pad = 0.25 * (hi - lo) or 0.1 * abs(hi)
            im = axes[2 * r, 0].imshow(g, vmin=lo - pad, vmax=hi + pad, cmap="viridis")
            axes[2 * r, 0].set_title(f"truth {field}" + (f" [{unit}]" if unit else ""), fontsize=8)
            fig.colorbar(im, ax=axes[2 * r, 0], shrink=0.7)
            axes[2 * r + 1, 0].axis("off")
            for j, k in enumerate(keys, start=1):
                q = np.where(mask, ex["pred"][k][field], np.nan)
                im = axes[2 * r, j].imshow(q, vmin=lo - pad, vmax=hi + pad, cmap="viridis")
                axes[2 * r, j].set_title(f"{labels[k]}: {field}", fontsize=7)
                with np.errstate(divide="ignore", invalid="ignore"):
                    e = 100 * np.abs(q - g) / np.abs(g)
                im2 = axes[2 * r + 1, j].imshow(e, vmin=0, vmax=50 if field == "E" else 30, cmap="magma")
                axes[2 * r + 1, j].set_title(f"|error| {field} [%], MARE {np.nanmean(e[mask]):.1f}", fontsize=7)
                if j == len(keys):
                    fig.colorbar(im, ax=axes[2 * r, j], shrink=0.7)
                    fig.colorbar(im2, ax=axes[2 * r + 1, j], shrink=0.7)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"El-UNet reproduction, {case} case ({results['budget']} budget, seed 0)", fontsize=10)
        _save_png(fig, out_dir / f"elunet_maps_{case}.png", dpi=60)

        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
        for m in results["models"]:
            k = m["key"]
            if k == "direct" or k not in results["cases"][case]["models"]:
                continue
            for i, run in enumerate(results["cases"][case]["models"][k]["runs"]):
                lab = labels[k] if i == 0 else None
                ep = np.maximum(np.asarray(run["loss"]["epoch"]), 1)
                axes[0].loglog(ep, run["loss"]["loss"], color=PALETTE[k], lw=1, alpha=0.8, label=lab)
                cep = np.maximum(np.asarray(run["curve"]["epoch"]), 1)
                axes[1].semilogx(cep, run["curve"]["MARE_E"], color=PALETTE[k], lw=1, marker=".", ms=3, label=lab)
                axes[2].semilogx(cep, run["curve"]["MARE_nu"], color=PALETTE[k], lw=1, marker=".", ms=3, label=lab)
        ref = results["cases"][case]["models"].get("direct", {}).get("summary", {})
        for ax, met in ((axes[1], "MARE_E"), (axes[2], "MARE_nu")):
            v = ref.get(met, {}).get("mean")
            if v is not None:
                ax.axhline(v, color=PALETTE["direct"], ls="--", lw=1, label="direct inversion")
        axes[0].set_ylabel("loss (unweighted)")
        axes[1].set_ylabel("MARE(E) [%]")
        axes[2].set_ylabel("MARE(nu) [%]")
        for ax in axes:
            ax.set_xlabel("epoch (epoch 0 plotted at 1)")
            ax.grid(alpha=0.3, which="both")
        axes[1].legend(fontsize=7)
        fig.suptitle(f"{case} case: loss and error versus epoch ({results['train_time_s']:g} s per model)",
                     fontsize=10)
        _save_png(fig, out_dir / f"elunet_curves_{case}.png", dpi=80)


# ------------------------------------------------------------------------------------------- report
def _pm(st: dict[str, Any] | None) -> str:
    if not st or st.get("mean") is None:
        return "failed"
    s = f"{st['mean']:.1f}"
    return s + (f" ± {st['std']:.1f}" if st.get("std") is not None else "")


def _clock_words(results: dict[str, Any]) -> str:
    if results.get("clock") == "cpu":
        return ("s of process CPU time on one thread -- equal compute per model on a shared machine, where equal "
                "wall time would hand each model whatever the other jobs left")
    return "s of wall time"


def _elunet_command(results: dict[str, Any]) -> str:
    """The command line that reproduces this report (budget plus any override of it)."""
    b = BUDGETS[results["budget"]]
    cmd = f"phantombench reproduce elunet --budget {results['budget']}"
    if results["train_time_s"] != b.train_time_s:
        cmd += f" --seconds {results['train_time_s']:g}"
    if results["repeats"] != b.repeats:
        cmd += f" --repeats {results['repeats']}"
    if results["width"] != b.width:
        cmd += f" --width {results['width']}"
    if results.get("clock", b.clock) != b.clock:
        cmd += f" --clock {results['clock']}"
    return cmd


def render_elunet(results: dict[str, Any]) -> str:
    """The report (Markdown) from the results dict (also stored as elunet.json)."""
    prov = results["provenance"]
    hw = prov["hardware"]
    hw_line = f"{hw.get('cpu')} ({hw.get('cores')} cores)" + (f", GPU {hw['gpu']}" if hw.get("gpu") else "")
    cases = list(results["cases"])
    L = [
        "# P1 El-UNet (Kamali, Laksari et al. 2023): reproduction",
        "",
        f"Generated by `{_elunet_command(results)}` -- do not edit by hand. Raw numbers: `elunet.json`.",
        "",
        f"- **Budget**: {results['budget']} ({results['budget_note']}); this run: {results['train_time_s']:g} s "
        f"({results.get('clock', 'wall')} clock) of training per model per case, {results['repeats']} repeat(s) (seeds 0..{results['repeats'] - 1}), "
        f"El-UNet width {results['width']} ({'paper width' if results['width'] == 64 else 'paper: 64'}).",
        f"- **Hardware**: {hw_line}; device `{results['device']}`, {results['threads']} torch thread(s), "
        f"torch {prov.get('torch')}; total wall time {results['wall_s'] / 60:.1f} min.",
        f"- **Code**: git {prov.get('git_commit')}, {prov.get('created')}.",
        "- **Data**: " + ", ".join(f"`{c['dataset']}` ({(c.get('content_hash') or '')[:12]})"
                                   for c in results["cases"].values()) + ".",
        "",
        "Protocol (paper -> here): Adam lr 1e-3 (same); equal wall time per model, 30 min on a P100 "
        f"(-> {results['train_time_s']:g} {_clock_words(results)} on the hardware above); 10 runs per model "
        f"(-> {results['repeats']}); "
        "metric MARE (%) of E and nu over the domain (same; MARE = 100 mean |p - g| / |g|). Not in the paper: "
        "the output layer starts at the homogeneous uniaxial fit (`init=homogeneous`, all models alike) and the "
        "Lame outputs are scaled by traction / mean|eyy| (`lame_scale=strain`); see `solvers/elunet.py`.",
        "",
        "## MARE (%) per case: mean ± std over repeats",
        "",
    ]
    head = "| model | paper's finding for this row | " + " | ".join(
        f"{c} E | {c} nu" for c in cases) + " | epochs (" + " / ".join(cases) + ") |"
    L += [head, "|" + "---|" * (2 + 2 * len(cases) + 1)]
    for m in results["models"]:
        k = m["key"]
        cells = []
        eps = []
        for c in cases:
            s = results["cases"][c]["models"][k]["summary"]
            cells += [_pm(s["MARE_E"]), _pm(s["MARE_nu"])]
            eps.append("-" if s.get("epochs") is None else f"{s['epochs']['mean']:.0f}")
        L.append(f"| {m['label']} | {m['paper']} | " + " | ".join(cells) + f" | {' / '.join(eps)} |")
    L += ["", "Per region (MARE of E, %, background / gray / white matter, seed-mean):", ""]
    L += ["| model | " + " | ".join(cases) + " |", "|" + "---|" * (1 + len(cases))]
    for m in results["models"]:
        row = []
        for c in cases:
            s = results["cases"][c]["models"][m["key"]]["summary"]
            row.append(" / ".join("-" if s[f"MARE_E_{r}"]["mean"] is None else f"{s[f'MARE_E_{r}']['mean']:.1f}"
                                  for r in ("background", "gray", "white")))
        L.append(f"| {m['label']} | " + " | ".join(row) + " |")
    if all("p_loss" in results["cases"][c] for c in cases):
        L += ["", "## Is the loss's minimiser the truth?", "",
              "The P loss (finite-difference equilibrium of the stresses that (E, nu) give with the observed strains, "
              "plus traction terms; unweighted, as in training) evaluated at the ground truth and at each model's "
              "prediction (repeat 0). A prediction with a *lower* loss than the truth means the truth is not the "
              "loss's minimiser on this pixel data: its residual sits at the material jumps, which finite "
              "differences across a pixel cannot resolve. Read the rows against the direct inversion's: a smooth "
              "field close to the truth also reaches a low loss, while a field far from it (P El-UNet) can reach a "
              "lower one, so a low loss alone does not single out the right E -- the error left is not a matter of "
              "the training budget only.", "",
              "| | " + " | ".join(cases) + " |", "|" + "---|" * (1 + len(cases))]
        L.append("| ground truth | " + " | ".join(f"{results['cases'][c]['p_loss']['truth']:.3g}" for c in cases)
                 + " |")
        L.append("| share of the truth's equilibrium residual^2 on pixels next to a material jump | " + " | ".join(
            f"{100 * results['cases'][c]['p_loss']['truth_interface_share']:.0f} % (of "
            f"{100 * results['cases'][c]['p_loss']['interface_pixels']:.0f} % of pixels)" for c in cases) + " |")
        for m in results["models"]:
            vals = [results["cases"][c]["p_loss"]["models"].get(m["key"]) for c in cases]
            L.append(f"| {m['label']} | " + " | ".join("-" if v is None else f"{v:.3g}" for v in vals) + " |")
    L += ["", "## The paper's findings beside ours", "",
          "| finding | paper | ours | verdict |", "|---|---|---|---|"]
    for f in results["findings"]:
        L.append(f"| {f['finding']} | {f['paper']} | {f['ours']} | **{f['verdict']}** |")
    L += ["", "The paper's findings are directions, not numbers (PAPERS.md lists no table values); a verdict here "
          "holds for this budget only. At CPU budgets the networks see hundreds to a few thousand epochs (the "
          "table's last column) instead of the "
          "paper's tens of thousands, so a finding that needs long training cannot show.", ""]
    pb = BUDGETS["paper"]
    n_learned = sum(m["key"] != "direct" for m in results["models"])
    hours = n_learned * len(ELUNET_CASES) * pb.repeats * pb.train_time_s / 3600
    L += [f"The paper's protocol is `phantombench reproduce elunet --budget paper`: {n_learned} models x "
          f"{len(ELUNET_CASES)} cases x {pb.repeats} repeats x {pb.train_time_s / 60:g} min = {hours:g} h of training "
          "on any hardware (the budget is wall time), plus about a minute per run for setup and snapshots. "
          "`scripts/bench_learned.py` measures the epochs per second that buys on a given machine (figures in the "
          "README's Performance section).", ""]
    L += ["## Figures", ""]
    for c in cases:
        L += [f"### {c}", "", f"![error maps, {c}](elunet_maps_{c}.png)", "",
              f"![loss and error versus epoch, {c}](elunet_curves_{c}.png)", ""]
    return "\n".join(L)


