"""Benchmark: FEM registration pairs (brain-deform, abdomen-breathing): one pair end to end, and dataset throughput.

    .venv/bin/python scripts/bench_deform.py [--generators brain-deform abdomen-breathing] [--n 50] [--repeats 5]

Goals: one 2-D pair (mesh + FE solve + rendering) <= 2 s on one core; 1,000 pairs <= 30 min on 2 cores with
dask, estimated from a measured ``--n`` pair run through the runner with 2 workers (the same path as
``phantombench generate ... --workers 2``). ``--n 0`` skips the throughput run. Wall times depend on what else
the machine runs; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from phantombench import runner
from phantombench.generators.base import sample_rng
from phantombench.registry import get_generator


def one_pair(name: str, preset: str, repeats: int) -> tuple[float, float, dict]:
    """(best wall s, its process CPU s, stage seconds and mesh size) over ``repeats`` pairs (indices 0..)."""
    gen = get_generator(name)
    cfg = gen.config(preset)
    gen.sample(cfg, sample_rng(0, 0), 0)  # warm: form compilation, imports, anatomy
    best, cpu, parts = float("inf"), 0.0, {}
    for r in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        s = runner.make_sample(name, cfg.model_dump(mode="json"), 0, r)
        dt = time.perf_counter() - t
        if dt < best:
            best, cpu = dt, time.process_time() - c
            parts = s.attrs["seconds"] | {"nodes": s.attrs["mesh"]["n_nodes"],
                                          "newton": s.attrs["newton_iterations"]}
    return best, cpu, parts


def throughput(name: str, preset: str, n: int, workers: int, tmp: Path) -> float:
    """Seconds per pair of a whole ``n``-pair dataset run (LocalCluster start-up included)."""
    out = tmp / f"{name}-w{workers}"
    t = time.perf_counter()
    runner.generate(name, preset, n, out, seed=7, workers=workers)
    dt = time.perf_counter() - t
    shutil.rmtree(out)
    return dt / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generators", nargs="+", default=["brain-deform", "abdomen-breathing"])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--n", type=int, default=50, help="pairs per throughput run (0: skip)")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    for name in a.generators:
        best, cpu, p = one_pair(name, a.preset, a.repeats)
        print(f"== {name} ({a.preset}): one pair, warm process, one thread, best of {a.repeats} ==")
        print(f"  {best:6.3f} s wall ({cpu:.3f} s CPU; mesh {p['mesh']:.3f}, solve {p['solve']:.3f}, render "
              f"{p['render']:.3f}; {p['nodes']} nodes, Newton iterations {p['newton']})   goal <= 2 s: "
              f"{'met' if best <= 2 else 'NOT met'}   load average {os.getloadavg()[0]:.1f}")
        if a.n:
            with tempfile.TemporaryDirectory() as d:
                per = throughput(name, a.preset, a.n, 2, Path(d))
            est = per * 1000 / 60
            print(f"  {a.n} pairs with 2 workers: {per:.3f} s per pair -> 1,000 pairs ~ {est:.1f} min   goal <= 30 "
                  f"min: {'met' if est <= 30 else 'NOT met'}   load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
