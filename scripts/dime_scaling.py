"""How the DIME-style CNN's per-phantom r grows with training steps and training phantoms (maintainers run this;
it is hours of CPU).

The paper-budget reproduction (``reproduce dime --budget paper``) trains 4000 steps and its training and
validation losses stay together to the end (``dime_training.png``): the network is not yet over-fitting its 160
training phantoms, so the first question is what more optimisation buys, the second what more phantoms buy once
it does over-fit. This study trains the same network (the paper budget's: width 16, batch 8 of 96-pixel patches)
with the same seed, each run with its own full one-cycle schedule, on the paper budget's 200 dime-liver training
phantoms (seed 1001; ``--n-train`` another number from the same seed) and scores each on the paper budget's 16
held-out dime-liver phantoms (seed 2002) exactly as the reproduction does (|G*| over the liver, Pearson r per
phantom then the mean). It also reports, as context only, r over the whole body (every tissue), where the contrast
between fat, muscle, liver and bone dominates.

    .venv/bin/python scripts/dime_scaling.py --steps 1000,2000,4000,8000    # one lane (runs are independent)
    .venv/bin/python scripts/dime_scaling.py --steps 16000                  # another lane, another core
    .venv/bin/python scripts/dime_scaling.py --n-train 400 --steps 16000    # more phantoms at equal steps
    .venv/bin/python scripts/dime_scaling.py --n-train 400 --steps 16000 --seed 1   # a repeat with another seed
    .venv/bin/python scripts/dime_scaling.py --attribute                    # where the best run loses its r
    .venv/bin/python scripts/dime_scaling.py --report                       # dime_scaling.{md,json,png}

Each run writes ``<work>/n<phantoms>_steps<N>_seed<s>.json`` when it ends and is skipped when that file exists; a
stopped run resumes from its checkpoint. The report fits r = a + b log2(steps) over the 200-phantom series, gives
the gain of its last doubling, and says at how many steps each would reach the goal (0.95) and the measured
resolution ceiling (r of the truth blurred by lambda/8): extrapolations, stated as such. Runs with other seeds
are repeats (their spread is the seed noise at that set-up); the series and the comparisons use seed 0.
``--attribute`` asks where the best run's r goes: r again with its values replaced by the truth in the lesions,
the vessels or the liver's boundary band, and each lesion's contrast recovery against its diameter in its own
shear wavelength (``<work>/<run>_attribution.json``; the report adds it and ``dime_lesions.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

GOAL_R = 0.95
N_TRAIN = 200   # the paper budget's training phantoms (the step series runs on these)
WORK = Path("results/dime-scaling")
OUT = Path("leaderboard/papers")


def log_trend(steps: list[float], r: list[float]) -> dict[str, float]:
    """Least-squares r = a + b log2(steps): a, b (r gained per doubling of the steps) and the residual std."""
    x, y = np.log2(np.asarray(steps, float)), np.asarray(r, float)
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("a trend needs runs at two or more step counts")
    b, a = np.polyfit(x, y, 1)
    res = y - (a + b * x)
    return {"a": float(a), "b": float(b), "resid_std": float(res.std(ddof=2)) if len(x) > 2 else float("nan")}


def steps_to_reach(trend: dict[str, float], r: float) -> float:
    """Steps at which the fitted line reaches ``r`` (inf when it does not grow)."""
    if trend["b"] <= 0:
        return math.inf
    return float(2 ** ((r - trend["a"]) / trend["b"]))


def _budget(n_train: int):
    """The paper budget with ``n_train`` training phantoms (its own dataset; the test sets are the same)."""
    from dataclasses import replace

    from phantombench.papers.dime import BUDGETS

    return replace(BUDGETS["paper"], n_train=int(n_train))


def _sets(n_train: int, log):
    from phantombench.papers.dime import _datasets

    return _datasets(_budget(n_train), Path("data"), 2, log)


def _test_set(log):
    """The reproduction's dime-liver test set alone (the attribution needs no training data)."""
    from phantombench.papers.common import dataset_name, ensure_dataset
    from phantombench.papers.dime import SEEDS

    n, seed = _budget(N_TRAIN).n_test, SEEDS["test"]
    return ensure_dataset("liver-mre", "dime-liver", n, seed, dataset_name("dime", "test", n, seed), Path("data"), log,
                          workers=2)


def _body_r(task, ds, cases) -> list[float]:
    """Per-phantom r of |G*| over the whole body mask (every tissue), context for whole-image evaluations."""
    from phantombench import metrics as M

    out = []
    for c in cases:
        body = np.asarray(task.observation(ds, c["index"])["mask"], bool)
        out.append(M.pearson(c["pred"]["abs_G"], c["truth"]["abs_G"], body))
    return out


def run_name(n_train: int, steps: int, seed: int) -> str:
    return f"n{n_train}_steps{steps}_seed{seed}"


def run_one(steps: int, seed: int, work: Path, n_train: int = N_TRAIN, log=print) -> dict[str, Any]:
    """Train the paper budget's network for ``steps`` steps (seed ``seed``) on ``n_train`` generated phantoms and
    score it on the dime-liver test."""
    import torch

    from phantombench.papers.dime import Settings, _repeat
    from phantombench.provenance import git_commit, hardware
    from phantombench.tasks import get_task

    torch.set_num_threads(1)
    b, task, sets = _budget(n_train), get_task("mre"), _sets(n_train, log)
    st = Settings("paper", 1, b.width, steps, 1, "cpu", None, work / run_name(n_train, steps, seed))
    st.work.mkdir(parents=True, exist_ok=True)
    run_, cases, history = _repeat(task, sets, seed, b, st, log)
    d = run_["test_dime"]
    last = history[-1] if history else {}
    return {"steps": steps, "seed": seed, "n_train": n_train, "n_train_split": len(sets["train"].split("train")),
            "n_val": len(sets["train"].split("val")),
            "fit_s": run_["fit_s"], "r": d["CC"], "r_pooled": d["pooled_CC"],
            "MARE": d["MARE"], "r_per_case": d["per_case"]["CC"],
            "r_body": float(np.mean(_body_r(task, sets["test_dime"], cases["test_dime"]))),
            "r_mdev": run_["test_mdev"]["CC"], "best_val_loss": run_["best_val_loss"],
            "final_train_loss": last.get("train_loss"), "final_val_loss": last.get("val_loss"),
            "train_dataset": sets["train"].manifest["content_hash"], "git_commit": git_commit(),
            "hardware": hardware(), "created": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


RIM_PX = 3                                   # the liver's boundary band for the attribution, in pixels
D_LAMBDA_BINS = (0.0, 0.25, 0.5, math.inf)   # lesion size bins, equivalent diameter in its own shear wavelengths


def where_r_is_lost(pred: np.ndarray, truth: np.ndarray, labels: np.ndarray, liver: np.ndarray,
                    lam_px: np.ndarray, rim_px: int = RIM_PX) -> dict[str, Any]:
    """Where one phantom's per-phantom r (over ``liver``) is lost: r again with the prediction replaced by the
    truth in the lesions, in the hepatic vessels, and in a band ``rim_px`` wide inside the liver's boundary (the
    closer one gets to 1, the more of 1 - r that region holds); and per lesion (connected component) its
    equivalent-circle diameter over its own shear wavelength ``lam_px`` (median over the lesion) and its
    contrast recovery (pred lesion - pred parenchyma) / (true lesion - true parenchyma), medians."""
    from scipy import ndimage

    from phantombench import metrics as M
    from phantombench.meshes.abdomen import HEPATIC_VESSEL, LESION

    les, ves = liver & (labels == LESION), liver & (labels == HEPATIC_VESSEL)
    par = liver & ~les & ~ves
    rim = liver & ~ndimage.binary_erosion(liver, iterations=rim_px)

    def r_with_truth(region):
        return M.pearson(np.where(region, truth, pred), truth, liver)

    out: dict[str, Any] = {"r": M.pearson(pred, truth, liver), "r_true_lesions": r_with_truth(les),
                           "r_true_vessels": r_with_truth(ves), "r_true_rim": r_with_truth(rim),
                           "r_true_lesions_vessels": r_with_truth(les | ves), "lesions": []}
    if not par.any():
        return out
    p0, t0 = float(np.median(pred[par])), float(np.median(truth[par]))
    comp, n = ndimage.label(les)
    for k in range(1, n + 1):
        c = comp == k
        tl, pl = float(np.median(truth[c])), float(np.median(pred[c]))
        d = 2.0 * math.sqrt(c.sum() / math.pi)
        out["lesions"].append({"area_px": int(c.sum()), "d_over_lambda": d / float(np.median(lam_px[c])),
                               "g_true": tl, "g_pred": pl,
                               "recovery": (pl - p0) / (tl - t0) if abs(tl - t0) > 1e-9 else float("nan")})
    return out


def recovery_by_size(lesions: list[dict[str, Any]], bins=D_LAMBDA_BINS) -> list[dict[str, Any]]:
    """Lesions grouped by diameter / wavelength: count, median and lowest contrast recovery per bin."""
    out = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        rec = [x["recovery"] for x in lesions if lo <= x["d_over_lambda"] < hi and math.isfinite(x["recovery"])]
        out.append({"lo": lo, "hi": hi, "n": len(rec), "median_recovery": float(np.median(rec)) if rec else None,
                    "min_recovery": float(np.min(rec)) if rec else None})
    return out


def attribute(work: Path, run: dict[str, Any], log=print) -> Path:
    """:func:`where_r_is_lost` for a finished run's saved weights on the 16 test phantoms; writes
    ``<work>/<run>_attribution.json`` (atomically) and returns its path."""
    from phantombench.papers.dime import true_moduli
    from phantombench.solvers.dime import DIME
    from phantombench.tasks import get_task

    name = run_name(run["n_train"], run["steps"], run["seed"])
    weights = work / name / f"weights_seed{run['seed']}.pt"
    if not weights.exists():
        raise ValueError(f"no weights for {name} ({weights})")
    task, ds = get_task("mre"), _test_set(log)
    cnn = DIME(task, params={"weights": str(weights), "threads": 1})
    cfg = ds.manifest["config"]
    per = []
    for i in range(len(ds)):
        s = ds[i]
        t = true_moduli(s, float(cfg["rho"]), float(cfg["pixel_size"]))
        pred = cnn.solve(task.observation(ds, i))["abs_G"]
        per.append({"phantom": i, **where_r_is_lost(pred, t["g"], np.asarray(s["labels"]), t["liver"], t["lam_px"])})
    keys = ("r", "r_true_lesions", "r_true_vessels", "r_true_rim", "r_true_lesions_vessels")
    lesions = [{"phantom": p["phantom"], **x} for p in per for x in p["lesions"]]
    res = {"run": name, "r_step": run["steps"], "n_train": run["n_train"], "rim_px": RIM_PX,
           "mean": {k: float(np.mean([p[k] for p in per])) for k in keys},
           "with_lesions": sum(bool(p["lesions"]) for p in per), "n": len(per),
           "by_size": recovery_by_size(lesions), "lesions": lesions,
           "per_phantom": [{k: p[k] for k in ("phantom", *keys)} for p in per]}
    path = work / f"{name}_attribution.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    tmp.replace(path)
    return path


def _figure(runs: list[dict], trend: dict, ceiling: dict, path: Path, others: list[dict] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = np.array([r["steps"] for r in runs], float)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.plot(s, [r["r"] for r in runs], "o", color="C0", label=f"CNN, {N_TRAIN} phantoms (r per phantom, liver)")
    sizes = sorted({o["n_train"] for o in others})
    for k, n in enumerate(sizes):   # one colour and marker per training-set size, every seed shown
        pts = [o for o in others if o["n_train"] == n]
        ax.plot([o["steps"] for o in pts], [o["r"] for o in pts], "s^Dv"[k % 4], color=f"C{2 + k}", ls="none",
                label=f"CNN, {n} phantoms")
    reach = steps_to_reach(trend, GOAL_R)   # the line is drawn to the goal, at most two doublings further
    xs = np.geomspace(s.min(), min(max(reach, s.max()), 4 * s.max()), 50)
    ax.plot(xs, trend["a"] + trend["b"] * np.log2(xs), ":", color="C0", label="log-linear fit (extrapolated)")
    for f, ls in ((0.125, "--"), (0.25, "-.")):
        v = ceiling.get(f"r_sigma_{f:g}")
        if v is not None:
            ax.axhline(v, color="grey", ls=ls, lw=1, label=f"truth blurred by lambda/{1 / f:g}")
    ax.axhline(GOAL_R, color="C3", lw=1, label="goal 0.95")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training steps (batch 8, 96-px patches)")
    ax.set_ylabel("Pearson r of |G*| over the liver")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ceiling() -> dict[str, float]:
    """The paper reproduction's measured resolution ceiling (mean over the same 16 test phantoms), if present."""
    p = OUT / "dime.json"
    if not p.exists():
        return {}
    c = json.loads(p.read_text()).get("ceiling", {}).get("mean", {})
    return {k: float(v) for k, v in c.items() if k.startswith("r_sigma_")}


def _seed_spread() -> dict[str, Any]:
    """The reproduction's repeats (same data, same steps, seeds 0..2): how far one seed's r lies from another's."""
    p = OUT / "dime.json"
    if not p.exists():
        return {}
    res = json.loads(p.read_text())
    r = [run["test_dime"]["CC"] for run in res.get("runs", [])]
    return {"steps": res.get("steps"), "r": r, "std": float(np.std(r, ddof=1))} if len(r) > 1 else {}


def _load(work: Path) -> list[dict[str, Any]]:
    runs = [json.loads(p.read_text()) for p in work.glob("n*_steps*_seed*.json")
            if not p.stem.endswith("_attribution")]
    return sorted(runs, key=lambda r: (r["n_train"], r["steps"], r.get("seed", 0)))


def analyse(runs: list[dict[str, Any]], ceiling: dict[str, float]) -> dict[str, Any]:
    """The trend over the step series on :data:`N_TRAIN` phantoms, the gain of its last doubling, the steps at
    which each reaches the goal (and the lambda/8 ceiling), and the other training-set sizes at equal steps."""
    first = [r for r in runs if r.get("seed", 0) == 0]   # the series and comparisons use seed 0; repeats below
    series = [r for r in first if r["n_train"] == N_TRAIN]
    trend = log_trend([r["steps"] for r in series], [r["r"] for r in series])
    last = {"a": 0.0, "b": 0.0}
    if len(series) >= 2 and series[-1]["steps"] == 2 * series[-2]["steps"]:
        b = series[-1]["r"] - series[-2]["r"]
        last = {"b": b, "a": series[-1]["r"] - b * math.log2(series[-1]["steps"])}
    reach = {"goal_fit": steps_to_reach(trend, GOAL_R), "goal_last": steps_to_reach(last, GOAL_R)}
    if "r_sigma_0.125" in ceiling:
        reach["ceiling_fit"] = steps_to_reach(trend, ceiling["r_sigma_0.125"])
    by_steps = {r["steps"]: r for r in series}
    data = [{"n_train": r["n_train"], "steps": r["steps"], "r": r["r"], "r_base": by_steps[r["steps"]]["r"]}
            for r in first if r["n_train"] != N_TRAIN and r["steps"] in by_steps]
    return {"trend": trend, "last_doubling": last, "steps_to_reach": reach, "data": data, "repeats": repeats(runs)}


def repeats(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set-ups (training phantoms, steps) run with more than one seed: the seeds, their r, mean and spread."""
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["n_train"], r["steps"]), []).append(r)
    out = []
    for (n, st), rs in sorted(groups.items()):
        if len(rs) > 1:
            v = [x["r"] for x in rs]
            out.append({"n_train": n, "steps": st, "seeds": [x.get("seed", 0) for x in rs], "r": v,
                        "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1))})
    return out


def _best_attribution(work: Path) -> dict[str, Any] | None:
    """The attribution of the best-scoring run that has one (``--attribute`` writes them)."""
    found = [json.loads(p.read_text()) for p in work.glob("n*_steps*_seed*_attribution.json")]
    return max(found, key=lambda a: a["mean"]["r"]) if found else None


def _lesion_figure(att: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    les = [x for x in att["lesions"] if math.isfinite(x["recovery"])]
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    sc = ax.scatter([x["d_over_lambda"] for x in les], [x["recovery"] for x in les],
                    c=[x["g_true"] / 1e3 for x in les], cmap="viridis", s=22)
    fig.colorbar(sc, ax=ax, label="true lesion |G*| [kPa]")
    ax.axhline(1.0, color="grey", lw=1)
    for b in D_LAMBDA_BINS[1:-1]:
        ax.axvline(b, color="grey", ls=":", lw=1)
    ax.set_xlabel("lesion diameter / its shear wavelength at 60 Hz")
    ax.set_ylabel("contrast recovery (1 = exact)")
    ax.set_title(f"{att['run']}: {len(les)} lesions, {att['n']} test phantoms", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(work: Path, out: Path) -> Path:
    runs, ceiling = _load(work), _ceiling()
    res = {"runs": runs, **analyse(runs, ceiling), "ceiling": ceiling, "goal_r": GOAL_R, "n_train": N_TRAIN,
           "seed_spread": _seed_spread(), "attribution": _best_attribution(work)}
    if res["attribution"]:
        _lesion_figure(res["attribution"], out / "dime_lesions.png")
    (out / "dime_scaling.json").write_text(json.dumps(res, indent=1) + "\n")
    _figure([r for r in runs if r["n_train"] == N_TRAIN], res["trend"], ceiling, out / "dime_scaling.png",
            [r for r in runs if r["n_train"] != N_TRAIN])
    md = out / "dime_scaling.md"
    md.write_text(render(res))
    return md


def _fmt_steps(x: float) -> str:
    return "never (no growth)" if not math.isfinite(x) else f"{x:,.0f}"


def _table(runs: list[dict[str, Any]]) -> list[str]:
    out = ["| training phantoms (train / val) | steps | seed | training s (1 CPU core) | r per phantom (liver) | "
           "r pooled | MARE % | r per phantom (whole body, context) | final train / val loss |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        loss = (f"{r['final_train_loss']:.3f} / {r['final_val_loss']:.3f}"
                if r.get("final_train_loss") is not None else "n/a")
        out.append(f"| {r['n_train']} ({r['n_train_split']} / {r['n_val']}) | {r['steps']} | {r.get('seed', 0)} "
                   f"| {r['fit_s']:.0f} "
                   f"| {r['r']:.3f} | {r['r_pooled']:.3f} | {r['MARE']:.1f} | {r['r_body']:.3f} | {loss} |")
    return out


def render(res: dict[str, Any]) -> str:
    t, last, reach, c = res["trend"], res["last_doubling"], res["steps_to_reach"], res["ceiling"]
    lines = ["# DIME-style CNN: r against training steps and data", "",
             "`scripts/dime_scaling.py` (generated; do not edit by hand). Same network (width 16, depth 4, batch 8 of "
             "96-pixel patches), seed 0 unless the table says otherwise; each run its own one-cycle schedule. "
             "Step series on the paper budget's "
             f"{res['n_train']} dime-liver training phantoms (seed 1001); scored on the 16 held-out dime-liver "
             "phantoms of `reproduce dime --budget paper` (|G*| over the liver, r per phantom then the mean, as there).",
             "", *_table(res["runs"]), "",
             f"Fit over the step series: r = {t['a']:.3f} + {t['b']:.3f} log2(steps) (residual std "
             f"{t['resid_std']:.3f}). If that line held, r would reach the goal {res['goal_r']} at "
             f"{_fmt_steps(reach['goal_fit'])} steps"]
    if "ceiling_fit" in reach:
        lines[-1] += (f" and the truth blurred by lambda/8 (r {c['r_sigma_0.125']:.3f}, measured in `dime.md`) at "
                      f"{_fmt_steps(reach['ceiling_fit'])} steps")
    lines[-1] += "."
    if last["b"]:
        lines += ["", f"The last doubling gained {last['b']:.3f} of r (the fit's slope: {t['b']:.3f}); at that rate the "
                  f"goal is {_fmt_steps(reach['goal_last'])} steps away. Both are extrapolations, not measurements: "
                  "a learning curve bends down as it nears what its data carry; where the final validation loss "
                  "pulls away from the training loss, the network is fitting its training phantoms rather than the "
                  "physics, and more phantoms, not more steps, is the lever."]
    for d in res["data"]:
        lines += ["", f"Data at equal steps ({d['steps']}): {d['n_train']} training phantoms give r {d['r']:.3f} "
                  f"against {d['r_base']:.3f} with {res['n_train']}."]
    for g in res.get("repeats", []):
        lines += ["", f"Seeds at equal set-up ({g['n_train']} phantoms, {g['steps']} steps): seeds "
                  f"{', '.join(map(str, g['seeds']))} give r {' / '.join(f'{x:.3f}' for x in g['r'])} (mean "
                  f"{g['mean']:.3f}, std {g['std']:.3f})."]
    sp = res.get("seed_spread") or {}
    if sp:
        lines += ["", f"Seed noise: the reproduction's {len(sp['r'])} repeats at {sp['steps']} steps (same data, seeds "
                  f"0..{len(sp['r']) - 1}) give r {' / '.join(f'{x:.3f}' for x in sp['r'])} (std {sp['std']:.3f}); "
                  "most set-ups here ran one seed, so differences of that size between two of them can be noise."]
    lines += ["", "![r against steps](dime_scaling.png)", ""]
    if res.get("attribution"):
        lines += _attribution_lines(res["attribution"])
    return "\n".join(lines)


def _attribution_lines(a: dict[str, Any]) -> list[str]:
    m = a["mean"]
    lines = [f"## Where the r is lost ({a['run']}, the best run)", "",
             f"The CNN's |G*| replaced by the truth in one region at a time; r per phantom over the liver, mean over "
             f"the {a['n']} test phantoms ({a['with_lesions']} of them have lesions). The closer a row gets to 1, the "
             "more of the missing r that region holds.", "",
             "| CNN's values replaced by the truth in | r per phantom |", "|---|---|",
             f"| nothing (the run) | {m['r']:.3f} |", f"| the lesions | {m['r_true_lesions']:.3f} |",
             f"| the hepatic vessels | {m['r_true_vessels']:.3f} |",
             f"| lesions and vessels | {m['r_true_lesions_vessels']:.3f} |",
             f"| a {a['rim_px']}-pixel band inside the liver's boundary | {m['r_true_rim']:.3f} |", "",
             "Contrast recovery of each lesion, (CNN lesion - CNN parenchyma) / (true lesion - true parenchyma), "
             "medians over the lesion and the parenchyma, by the lesion's equivalent-circle diameter d over its own "
             "shear wavelength lambda at 60 Hz:", "",
             "| d / lambda | lesions | median contrast recovery | lowest |", "|---|---|---|---|"]
    for b in a["by_size"]:
        rng = f"< {b['hi']:g}" if b["lo"] == 0 else (f">= {b['lo']:g}" if not math.isfinite(b["hi"])
                                                     else f"{b['lo']:g} - {b['hi']:g}")
        rec = (f"{b['median_recovery']:.2f} | {b['min_recovery']:.2f}" if b["median_recovery"] is not None
               else "n/a | n/a")
        lines.append(f"| {rng} | {b['n']} | {rec} |")
    return lines + ["", "![contrast recovery against lesion size](dime_lesions.png)", ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="", help="comma-separated step counts to train (skipped when done)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=N_TRAIN, help="generated training phantoms (80 %% train)")
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--attribute", action="store_true",
                    help="where the best finished run (highest r, weights kept) loses its r: lesions, vessels, "
                         "boundary, and contrast recovery by lesion size (a minute of CPU)")
    ap.add_argument("--report", action="store_true", help="aggregate the finished runs into dime_scaling.md")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    try:
        steps = [int(x) for x in a.steps.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--steps takes whole numbers separated by commas, not {a.steps!r}")
    if any(x < 1 for x in steps):
        ap.error("--steps must be positive")
    for s in steps:
        path = a.work / f"{run_name(a.n_train, s, a.seed)}.json"
        if path.exists():
            print(f"done already: {path}")
            continue
        res = run_one(s, a.seed, a.work, a.n_train)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=1) + "\n")
        tmp.replace(path)
        print(f"steps {s}: r {res['r']:.3f} (liver, per phantom), fit {res['fit_s']:.0f} s -> {path}")
    if a.attribute:
        runs = [r for r in _load(a.work) if (a.work / run_name(r["n_train"], r["steps"], r["seed"])
                                              / f"weights_seed{r['seed']}.pt").exists()]
        if not runs:
            ap.error(f"--attribute: no finished run with its weights in {a.work}")
        print(f"attribution -> {attribute(a.work, max(runs, key=lambda r: r['r']))}")
    if a.report:
        try:
            print(report(a.work, a.out))
        except ValueError as e:   # fewer than two step counts finished: nothing is written
            ap.error(f"no report from {a.work}: {e}")


if __name__ == "__main__":
    main()
