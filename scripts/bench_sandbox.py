"""What the solver sandbox costs: the same evaluations with the bubblewrap jail and without, side by side.

    .venv/bin/python scripts/bench_sandbox.py [--cases 8] [--repeat 3]

Per task, the constant baseline and one real classical baseline run through the harness on the same cases,
alternating sandbox off / on so that machine load hits both alike. Reported (median over cases, min over
repeats): the solver's own solve time, the harness time per case (the solver's idle time between two
predictions), and the start cost (child process, jail, imports, before the first case).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench_evaluate import dataset_for

SOLVERS = {"brain-elasticity": ("constant", "direct-elasticity"), "mre": ("constant", "ahi"),
           "eit": ("constant", "noser")}


def run(solver: str, task: str, ds, n: int, sandbox: bool) -> dict:
    from phantombench.evaluate import evaluate

    t0 = time.perf_counter()
    ev = evaluate(solver, task, ds, split="train", limit=n, figure_cases=0, sandbox=sandbox)
    wall = time.perf_counter() - t0
    c = ev.cases[ev.cases.status == "ok"]
    steady = c.iloc[1:] if len(c) > 2 else c
    loop = float(np.nansum(ev.cases.solve_s) + np.nansum(ev.cases.harness_s))
    return {"sandbox": ev.record["solver"]["sandbox"], "ok": len(c), "solve": float(steady.solve_s.median()),
            "harness": float(steady.harness_s.median()), "start": wall - loop}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    from phantombench.provenance import cpu_model
    from phantombench.sandbox import probe

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; "
          f"sandbox: {probe()}")
    print(f"{'task':17s} {'solver':18s} {'sandbox':12s} {'cases':>5s} {'solve ms':>9s} {'harness ms':>10s} "
          f"{'start s':>7s}")
    for task, solvers in SOLVERS.items():
        ds = dataset_for(task)
        for solver in solvers:
            runs = {False: [], True: []}
            for _ in range(a.repeat):
                for sb in (False, True):
                    runs[sb].append(run(solver, task, ds, a.cases, sb))
            best = {sb: {k: (min(r[k] for r in rs) if k in ("solve", "harness", "start") else rs[0][k])
                         for k in rs[0]} for sb, rs in runs.items()}
            for sb in (False, True):
                r = best[sb]
                print(f"{task:17s} {solver:18s} {r['sandbox']:12s} {r['ok']:5d} {r['solve'] * 1e3:9.2f} "
                      f"{r['harness'] * 1e3:10.2f} {r['start']:7.2f}", flush=True)
            d_h = (best[True]["harness"] - best[False]["harness"]) * 1e3
            d_s = best[True]["start"] - best[False]["start"]
            print(f"{'':17s} {solver:18s} sandbox adds {d_h:+.2f} ms per case (harness) and {d_s:+.2f} s at start")


if __name__ == "__main__":
    main()
