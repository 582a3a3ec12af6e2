"""Benchmark the Sibson rasteriser against MetPy (exact, slow) and SciPy's linear interpolant.

15,000 random nodes in the brain-slice box (0.1 m x 0.142 m) -> the default 142 x 100 grid.
Timings are the minimum over repeats (the machine is shared); MetPy runs once.

    python scripts/bench_raster.py [--nodes 15000] [--skip-metpy]

BLAS is pinned to one thread before numpy is imported: SciPy's ``find_simplex`` (used by
``LinearNDInterpolator``) computes a per-simplex LAPACK transform which, with multi-threaded
OpenBLAS on a busy 2-core machine, takes seconds instead of ~30 ms; pinning keeps the peer fair.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from scipy.interpolate import LinearNDInterpolator  # noqa: E402

from phantombench.generators.raster import Grid, Sibson  # noqa: E402


def best(fn, repeats: int):
    """(min wall time, min CPU time of this process, result) over repeats."""
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=15_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--fields", type=int, default=20, help="extra fields for the apply-only timing")
    ap.add_argument("--skip-metpy", action="store_true")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    lo, hi = np.array([-0.05, 0.0]), np.array([0.05, 0.142])
    pts = lo + rng.random((args.nodes, 2)) * (hi - lo)
    vals = np.sin(60 * pts[:, 0]) * np.cos(40 * pts[:, 1]) + 0.1 * rng.standard_normal(args.nodes)
    grid = Grid.fit(-0.05, 0.05, 0.0, 0.142, 142, 100)
    X, Y = grid.centres()
    print(f"{args.nodes} random nodes -> {grid.H} x {grid.W} grid "
          f"(BLAS threads: OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']})")

    t_sib, c_sib, out = best(lambda: Sibson(pts, grid)(vals), args.repeats)
    sib = Sibson(pts, grid)
    many = rng.standard_normal((args.nodes, args.fields))
    t_apply, c_apply, _ = best(lambda: sib(many), args.repeats)
    t_lin, c_lin, lin = best(lambda: LinearNDInterpolator(pts, vals)(X, Y), args.repeats)

    print(f"{'method':40s} {'wall':>11s} {'CPU':>11s}")
    print(f"{'Sibson (this): weights + 1 field':40s} {t_sib * 1e3:8.1f} ms {c_sib * 1e3:8.1f} ms")
    print(f"{'Sibson (this): apply only, per field':40s} {t_apply / args.fields * 1e3:8.3f} ms"
          f" {c_apply / args.fields * 1e3:8.3f} ms   ({args.fields} fields in one call)")
    print(f"{'SciPy LinearNDInterpolator (+Delaunay)':40s} {t_lin * 1e3:8.1f} ms {c_lin * 1e3:8.1f} ms"
          f"   -> Sibson / linear: wall {t_sib / t_lin:.2f}, CPU {c_sib / c_lin:.2f} (goal <= 2)")
    both = np.isfinite(out) & np.isfinite(lin)
    print(f"   pixels inside the hull: Sibson {np.isfinite(out).sum()}, linear {np.isfinite(lin).sum()};"
          f" max |Sibson - linear| = {np.abs(out - lin)[both].max():.3g} (different interpolants)")

    if not args.skip_metpy:
        from metpy.interpolate import natural_neighbor_to_grid

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_metpy, c_metpy, ref = best(
                lambda: natural_neighbor_to_grid(pts[:, 0], pts[:, 1], vals, X, Y), 1)
        fin = np.isfinite(ref)
        same_mask = np.array_equal(fin, np.isfinite(out))
        print(f"{'MetPy natural_neighbor_to_grid (1 run)':40s} {t_metpy * 1e3:8.0f} ms"
              f" {c_metpy * 1e3:8.0f} ms"
              f"   -> speed-up: wall {t_metpy / t_sib:.0f}x, CPU {c_metpy / c_sib:.0f}x (goal >= 500x)")
        print(f"   max |Sibson - MetPy| = {np.abs(out - ref)[fin].max():.3g} over {fin.sum()} pixels;"
              f" NaN masks identical: {same_mask}")


if __name__ == "__main__":
    main()
