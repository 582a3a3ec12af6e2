"""Evaluation overhead per case (harness minus solver time) against the baselines' own solve times.

    .venv/bin/python scripts/bench_evaluate.py [--cases 8] [--repeat 2]

For every task, the classical baselines (fit-free solvers that declare the task, budget <= 300 s per case) run
through the real harness (solver in a child process, validation, every metric) on the train split of a small
dataset (the official one under data/ when present, else generated into bench-out/). Per case the harness
records the solver's own solve time (measured inside the child) and the time the solver sat idle between two
predictions (reading, sending, receiving, validating and scoring not hidden behind the next solve). Reported
per solver: medians over cases (the first case, which pays one-off imports, is dropped; min over repeats),
the harness CPU time per case in this process, and the one-off start cost (child process + imports).

Goal (issue 5): harness overhead per case < 5 % of the cheapest non-trivial baseline's solve time per task.
The constant baseline takes ~0.2 ms per case; no harness that reads and scores a case can be 5 % of that,
so it is listed for reference only. Timings depend on machine load (the harness overlaps reading and scoring
with the solve, which needs a free core).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench-out" / "evaluate"

DATASETS = {   # task -> (generator, preset, n, overrides); the official folder under data/ is used if present
    "brain-elasticity": ("brain-slice", "random", 20, {}),
    "mre": ("liver-mre", "dime-liver", 10, {}),
    "eit": ("eit", "cnn-pinn-case1", 10, {}),
}


def dataset_for(task: str):
    from phantombench import open_dataset, runner

    gen, preset, n, over = DATASETS[task]
    official = ROOT / "data" / gen / preset / "v1"
    if (official / "manifest.json").exists():
        return open_dataset(official)
    out = BENCH / f"{gen}-{preset}-{n}"
    if not (out / "manifest.json").exists():
        print(f"generating {gen}/{preset} n={n} into {out} ...", flush=True)
        runner.generate(gen, preset, n, out, 0, over, workers=None)
    return open_dataset(out)


def baselines(task: str) -> list[str]:
    from phantombench.solvers.base import load_solver_class, solver_names

    out = []
    for name in solver_names():
        try:
            cls = load_solver_class(name)
        except Exception:  # noqa: BLE001 - a solver that does not load is not benchmarked
            continue
        if (not cls.tasks or task in cls.tasks) and not cls.has_fit() and cls.time_budget_s <= 300:
            out.append(name)
    return out


def run(solver: str, task: str, ds, n_cases: int) -> dict:
    from phantombench.evaluate import evaluate

    cpu0, t0 = time.process_time(), time.perf_counter()
    ev = evaluate(solver, task, ds, split="train", limit=n_cases, figure_cases=0)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    c = ev.cases[ev.cases.status == "ok"]
    steady = c.iloc[1:] if len(c) > 2 else c
    loop = float(np.nansum(ev.cases.solve_s) + np.nansum(ev.cases.harness_s))
    return {"n": len(c), "failed": int((ev.cases.status != "ok").sum()),
            "solve": float(steady.solve_s.median()), "harness": float(steady.harness_s.median()),
            "cpu": cpu / max(len(ev.cases), 1), "start": wall - loop}


def ipc_round_trip(n: int = 50) -> float:
    """Median time to send an mre-sized observation to an echo thread and get a prediction back."""
    import socket
    import threading
    from multiprocessing.connection import Connection

    a, b = socket.socketpair()
    ca, cb = Connection(a.detach()), Connection(b.detach())
    obs = {"u": np.zeros((1, 1, 256, 256), np.complex64), "mask": np.ones((256, 256), bool),
           "liver_mask": np.ones((256, 256), bool), "frequencies": np.array([60.0])}
    pred = {"abs_G": np.zeros((256, 256)), "phi": np.zeros((256, 256))}

    def echo():
        while cb.recv() is not None:
            cb.send(pred)

    t = threading.Thread(target=echo)
    t.start()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        ca.send(obs)
        ca.recv()
        ts.append(time.perf_counter() - t0)
    ca.send(None)
    t.join()
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=8, help="cases per solver (train split)")
    ap.add_argument("--repeat", type=int, default=2, help="repeats per solver (min taken)")
    a = ap.parse_args()
    import os

    from phantombench.provenance import cpu_model

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print(f"{'task':17s} {'solver':18s} {'cases':>5s} {'solve ms':>9s} {'harness ms':>10s} {'ratio':>7s} "
          f"{'harness CPU ms':>14s} {'start s':>7s}")
    verdicts = []
    for task in DATASETS:
        ds = dataset_for(task)
        res = {}
        for solver in baselines(task):
            runs = [run(solver, task, ds, a.cases) for _ in range(a.repeat)]
            r = {k: min(x[k] for x in runs) if k not in ("n", "failed") else runs[0][k] for k in runs[0]}
            res[solver] = r
            print(f"{task:17s} {solver:18s} {r['n']:5d} {r['solve'] * 1e3:9.2f} {r['harness'] * 1e3:10.2f} "
                  f"{r['harness'] / r['solve'] * 100 if r['solve'] > 0 else float('inf'):6.1f}% "
                  f"{r['cpu'] * 1e3:14.1f} {r['start']:7.2f}" + (f"  ({r['failed']} failed)" if r["failed"]
                                                                  else ""), flush=True)
        real = {s: r for s, r in res.items() if s != "constant" and r["n"]}
        if real:
            cheapest = min(real, key=lambda s: real[s]["solve"])
            r = real[cheapest]
            pct = 100 * r["harness"] / r["solve"]
            verdicts.append(f"{task}: cheapest baseline {cheapest} solves in {r['solve'] * 1e3:.1f} ms; harness "
                            f"overhead with it {r['harness'] * 1e3:.1f} ms = {pct:.1f} % "
                            f"-> goal < 5 % {'met' if pct < 5 else 'NOT met'}")
        else:
            verdicts.append(f"{task}: no non-trivial baseline registered yet")
    print()
    print(f"floor: pickling one mre case through a socket pair and back (obs 0.5 MB, prediction 1 MB): "
          f"{ipc_round_trip() * 1e3:.2f} ms")
    for v in verdicts:
        print(v)


if __name__ == "__main__":
    main()
