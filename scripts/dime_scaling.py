"""How the DIME-style CNN's per-phantom r grows with training compute (maintainers run this; it is hours of CPU).

The paper-budget reproduction (``reproduce dime --budget paper``) trains 4000 steps and its training and
validation losses stay together to the end (``dime_training.png``): the network is not over-fitting its 160
training phantoms, so the next question is what more optimisation buys. This study trains the same network on
the same data (the paper budget's 200 dime-liver training phantoms, seed 1001) for several step counts, each
with its own full one-cycle schedule and the same seed, and scores each on the paper budget's 16 held-out
dime-liver phantoms (seed 2002) exactly as the reproduction does (|G*| over the liver, Pearson r per phantom
then the mean). It also reports, as context only, r over the whole body (every tissue), where the contrast
between fat, muscle, liver and bone dominates.

    .venv/bin/python scripts/dime_scaling.py --steps 2000,4000,8000     # one lane (runs are independent)
    .venv/bin/python scripts/dime_scaling.py --steps 16000              # another lane, another core
    .venv/bin/python scripts/dime_scaling.py --report                   # dime_scaling.{md,json,png}

Each run writes ``<work>/steps<N>_seed<s>.json`` when it ends and is skipped when that file exists; a stopped
run resumes from its checkpoint. The report fits r = a + b log2(steps) over the runs and says at how many steps
that line would reach the goal (0.95) and the measured resolution ceiling (r of the truth blurred by lambda/8):
an extrapolation, stated as one.
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


def _sets(log):
    from phantombench.papers.dime import BUDGETS, _datasets

    return _datasets(BUDGETS["paper"], Path("data"), 2, log)


def _body_r(task, ds, cases) -> list[float]:
    """Per-phantom r of |G*| over the whole body mask (every tissue), context for whole-image evaluations."""
    from phantombench import metrics as M

    out = []
    for c in cases:
        body = np.asarray(task.observation(ds, c["index"])["mask"], bool)
        out.append(M.pearson(c["pred"]["abs_G"], c["truth"]["abs_G"], body))
    return out


def run_one(steps: int, seed: int, work: Path, log=print) -> dict[str, Any]:
    """Train the paper budget's network for ``steps`` steps (seed ``seed``) and score it on the dime-liver test."""
    import torch

    from phantombench.papers.dime import BUDGETS, Settings, _repeat
    from phantombench.provenance import git_commit, hardware
    from phantombench.tasks import get_task

    torch.set_num_threads(1)
    b, task, sets = BUDGETS["paper"], get_task("mre"), _sets(log)
    st = Settings("paper", 1, b.width, steps, 1, "cpu", None, work / f"steps{steps}")
    st.work.mkdir(parents=True, exist_ok=True)
    run_, cases, history = _repeat(task, sets, seed, b, st, log)
    d = run_["test_dime"]
    last = history[-1] if history else {}
    return {"steps": steps, "seed": seed, "fit_s": run_["fit_s"], "r": d["CC"], "r_pooled": d["pooled_CC"],
            "MARE": d["MARE"], "r_per_case": d["per_case"]["CC"],
            "r_body": float(np.mean(_body_r(task, sets["test_dime"], cases["test_dime"]))),
            "r_mdev": run_["test_mdev"]["CC"], "best_val_loss": run_["best_val_loss"],
            "final_train_loss": last.get("train_loss"), "final_val_loss": last.get("val_loss"),
            "train_dataset": sets["train"].manifest["content_hash"], "git_commit": git_commit(),
            "hardware": hardware(), "created": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def _figure(runs: list[dict], trend: dict, ceiling: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = np.array([r["steps"] for r in runs], float)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.plot(s, [r["r"] for r in runs], "o", color="C0", label="CNN, per phantom (liver)")
    xs = np.geomspace(s.min(), max(s.max(), steps_to_reach(trend, GOAL_R)) if math.isfinite(
        steps_to_reach(trend, GOAL_R)) else s.max() * 4, 50)
    ax.plot(xs, trend["a"] + trend["b"] * np.log2(xs), ":", color="C0", label="log-linear fit (extrapolated)")
    for f, ls in ((0.125, "--"), (0.25, "-.")):
        v = ceiling.get(f"r_sigma_{f:g}")
        if v is not None:
            ax.axhline(v, color="grey", ls=ls, lw=1, label=f"truth blurred by lambda*{f:g}")
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
    c = json.loads(p.read_text()).get("ceiling", {})
    return {k: float(np.mean(v)) for k, v in c.items() if k.startswith("r_sigma_")}


def report(work: Path, out: Path) -> Path:
    runs = sorted((json.loads(p.read_text()) for p in work.glob("steps*_seed*.json")), key=lambda r: r["steps"])
    trend, ceiling = log_trend([r["steps"] for r in runs], [r["r"] for r in runs]), _ceiling()
    reach = {"goal": steps_to_reach(trend, GOAL_R)}
    if "r_sigma_0.125" in ceiling:
        reach["ceiling_lambda_8"] = steps_to_reach(trend, ceiling["r_sigma_0.125"])
    res = {"runs": runs, "trend": trend, "ceiling": ceiling, "steps_to_reach": reach, "goal_r": GOAL_R}
    (out / "dime_scaling.json").write_text(json.dumps(res, indent=1) + "\n")
    _figure(runs, trend, ceiling, out / "dime_scaling.png")
    md = out / "dime_scaling.md"
    md.write_text(render(res))
    return md


def _fmt_steps(x: float) -> str:
    return "never (no growth)" if not math.isfinite(x) else f"{x:,.0f}"


def render(res: dict[str, Any]) -> str:
    runs, t = res["runs"], res["trend"]
    lines = ["# DIME-style CNN: r against training steps", "",
             "`scripts/dime_scaling.py` (generated; do not edit by hand). Same network (width 16, depth 4), same "
             "data (200 dime-liver training phantoms: 160 train, 20 val), seed 0; each step count is its own "
             "one-cycle schedule. Scored on the 16 held-out dime-liver phantoms of `reproduce dime --budget paper`.",
             "", "| steps | training s (1 CPU core) | r per phantom (liver) | r pooled | MARE % | r per phantom "
             "(whole body, context) | final train / val loss |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        loss = (f"{r['final_train_loss']:.3f} / {r['final_val_loss']:.3f}"
                if r.get("final_train_loss") is not None else "n/a")
        lines.append(f"| {r['steps']} | {r['fit_s']:.0f} | {r['r']:.3f} | {r['r_pooled']:.3f} | {r['MARE']:.1f} | "
                     f"{r['r_body']:.3f} | {loss} |")
    c, reach = res["ceiling"], res["steps_to_reach"]
    lines += ["", f"Fit r = {t['a']:.3f} + {t['b']:.3f} log2(steps) (residual std {t['resid_std']:.3f}): "
              f"{t['b']:.3f} of r per doubling of the steps. If that line held, r would reach the goal "
              f"{res['goal_r']} at {_fmt_steps(reach['goal'])} steps"]
    if "ceiling_lambda_8" in reach:
        lines[-1] += (f" and the truth blurred by lambda/8 (r {c['r_sigma_0.125']:.3f}, measured in `dime.md`) at "
                      f"{_fmt_steps(reach['ceiling_lambda_8'])} steps")
    lines[-1] += (". A log-linear line is an extrapolation, not a measurement: learning curves bend down as they "
                  "near what the data can carry.")
    lines += ["", "![r against steps](dime_scaling.png)", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="", help="comma-separated step counts to train (skipped when done)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--report", action="store_true", help="aggregate the finished runs into dime_scaling.md")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    for s in (int(x) for x in a.steps.split(",") if x.strip()):
        path = a.work / f"steps{s}_seed{a.seed}.json"
        if path.exists():
            print(f"done already: {path}")
            continue
        res = run_one(s, a.seed, a.work)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=1) + "\n")
        tmp.replace(path)
        print(f"steps {s}: r {res['r']:.3f} (liver, per phantom), fit {res['fit_s']:.0f} s -> {path}")
    if a.report:
        print(report(a.work, a.out))


if __name__ == "__main__":
    main()
