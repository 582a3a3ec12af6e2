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
    .venv/bin/python scripts/dime_scaling.py --report                       # dime_scaling.{md,json,png}

Each run writes ``<work>/n<phantoms>_steps<N>_seed<s>.json`` when it ends and is skipped when that file exists; a
stopped run resumes from its checkpoint. The report fits r = a + b log2(steps) over the 200-phantom series, gives
the gain of its last doubling, and says at how many steps each would reach the goal (0.95) and the measured
resolution ceiling (r of the truth blurred by lambda/8): extrapolations, stated as such.
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


def _figure(runs: list[dict], trend: dict, ceiling: dict, path: Path, others: list[dict] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = np.array([r["steps"] for r in runs], float)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.plot(s, [r["r"] for r in runs], "o", color="C0", label=f"CNN, {N_TRAIN} phantoms (r per phantom, liver)")
    for k, o in enumerate(others):
        ax.plot([o["steps"]], [o["r"]], "s", color="C2", label=f"CNN, {o['n_train']} phantoms" if k == 0 else None)
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
    runs = [json.loads(p.read_text()) for p in work.glob("n*_steps*_seed*.json")]
    return sorted(runs, key=lambda r: (r["n_train"], r["steps"]))


def analyse(runs: list[dict[str, Any]], ceiling: dict[str, float]) -> dict[str, Any]:
    """The trend over the step series on :data:`N_TRAIN` phantoms, the gain of its last doubling, the steps at
    which each reaches the goal (and the lambda/8 ceiling), and the other training-set sizes at equal steps."""
    series = [r for r in runs if r["n_train"] == N_TRAIN]
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
            for r in runs if r["n_train"] != N_TRAIN and r["steps"] in by_steps]
    return {"trend": trend, "last_doubling": last, "steps_to_reach": reach, "data": data}


def report(work: Path, out: Path) -> Path:
    runs, ceiling = _load(work), _ceiling()
    res = {"runs": runs, **analyse(runs, ceiling), "ceiling": ceiling, "goal_r": GOAL_R, "n_train": N_TRAIN,
           "seed_spread": _seed_spread()}
    (out / "dime_scaling.json").write_text(json.dumps(res, indent=1) + "\n")
    _figure([r for r in runs if r["n_train"] == N_TRAIN], res["trend"], ceiling, out / "dime_scaling.png",
            [r for r in runs if r["n_train"] != N_TRAIN])
    md = out / "dime_scaling.md"
    md.write_text(render(res))
    return md


def _fmt_steps(x: float) -> str:
    return "never (no growth)" if not math.isfinite(x) else f"{x:,.0f}"


def _table(runs: list[dict[str, Any]]) -> list[str]:
    out = ["| training phantoms (train / val) | steps | training s (1 CPU core) | r per phantom (liver) | r pooled | "
           "MARE % | r per phantom (whole body, context) | final train / val loss |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        loss = (f"{r['final_train_loss']:.3f} / {r['final_val_loss']:.3f}"
                if r.get("final_train_loss") is not None else "n/a")
        out.append(f"| {r['n_train']} ({r['n_train_split']} / {r['n_val']}) | {r['steps']} | {r['fit_s']:.0f} "
                   f"| {r['r']:.3f} | {r['r_pooled']:.3f} | {r['MARE']:.1f} | {r['r_body']:.3f} | {loss} |")
    return out


def render(res: dict[str, Any]) -> str:
    t, last, reach, c = res["trend"], res["last_doubling"], res["steps_to_reach"], res["ceiling"]
    lines = ["# DIME-style CNN: r against training steps and data", "",
             "`scripts/dime_scaling.py` (generated; do not edit by hand). Same network (width 16, depth 4, batch 8 of "
             "96-pixel patches), seed 0; each run its own one-cycle schedule. Step series on the paper budget's "
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
    sp = res.get("seed_spread") or {}
    if sp:
        lines += ["", f"Seed noise: the reproduction's {len(sp['r'])} repeats at {sp['steps']} steps (same data, seeds "
                  f"0..{len(sp['r']) - 1}) give r {' / '.join(f'{x:.3f}' for x in sp['r'])} (std {sp['std']:.3f}); "
                  "one seed per run here, so differences of that size between two runs are noise."]
    lines += ["", "![r against steps](dime_scaling.png)", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="", help="comma-separated step counts to train (skipped when done)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=N_TRAIN, help="generated training phantoms (80 %% train)")
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--out", type=Path, default=OUT)
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
    if a.report:
        try:
            print(report(a.work, a.out))
        except ValueError as e:   # fewer than two step counts finished: nothing is written
            ap.error(f"no report from {a.work}: {e}")


if __name__ == "__main__":
    main()
