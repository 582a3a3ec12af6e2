"""Benchmark: one elunet-soft sample end to end, and dataset throughput with 1 and 2 dask workers.

    .venv/bin/python scripts/bench_brain.py [--n 8]

Goals (issue 2): one sample (mesh, solve, raster) <= 1 s on one core; 2 workers >= 1.7x the throughput of 1.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from phantombench import runner
from phantombench.generators.base import sample_rng
from phantombench.registry import get_generator


def one_sample(preset: str, repeats: int) -> tuple[float, dict]:
    gen = get_generator("brain-slice")
    cfg = gen.config(preset)
    gen.sample(cfg, sample_rng(0, 0), 0)  # warm: JIT cache, imports
    best, parts = float("inf"), {}
    for r in range(repeats):
        t = time.perf_counter()
        s = runner.make_sample("brain-slice", cfg.model_dump(mode="json"), 0, 0)
        dt = time.perf_counter() - t
        if dt < best:
            best, parts = dt, s.attrs["seconds"] | {"nodes": s.attrs["mesh_quality"]["n_nodes"]}
    return best, parts


def throughput(n: int, workers: int, tmp: Path) -> float:
    out = tmp / f"w{workers}"
    t = time.perf_counter()
    runner.generate("brain-slice", "random", n, out, seed=3, workers=workers)
    dt = time.perf_counter() - t
    shutil.rmtree(out)
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12, help="samples per throughput run")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    print("== brain-slice: one sample end to end (warm process, best of %d) ==" % a.repeats)
    for preset in ("elunet-soft", "random"):
        best, parts = one_sample(preset, a.repeats)
        print(f"{preset:12s} {best:6.3f} s   (mesh {parts['mesh']:.3f}, solve {parts['solve']:.3f}, "
              f"raster {parts['raster']:.3f}; {parts['nodes']} nodes)   goal <= 1 s: "
              f"{'met' if best <= 1 else 'NOT met'}")
    print(f"== dataset throughput, preset random, n={a.n} (LocalCluster incl. start-up) ==")
    with tempfile.TemporaryDirectory() as d:
        tp1 = throughput(a.n, 1, Path(d))
        tp2 = throughput(a.n, 2, Path(d))
    print(f"1 worker  {tp1:6.2f} samples/s")
    print(f"2 workers {tp2:6.2f} samples/s   speed-up {tp2 / tp1:.2f}x   goal >= 1.7x: "
          f"{'met' if tp2 / tp1 >= 1.7 else 'NOT met'}")


if __name__ == "__main__":
    main()
