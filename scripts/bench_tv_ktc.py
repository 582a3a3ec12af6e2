"""TV at KTC2023 size (32 electrodes, 76 patterns x 31 differences = 2,356 measurements): one Newton system by
the sparse bordered route and by the dense route, side by side, and the whole TV reconstruction of one tank.

    .venv/bin/python scripts/bench_tv_ktc.py [--repeat 3]

The tank files are written in the KTC2023 format with the suite's own CEM (tests/test_import.py) and imported
through ``phantombench import``'s Python call, as a user's measured data would be.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def best_of(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import scipy.sparse as sp

    from phantombench import open_dataset
    from phantombench.importers import import_dataset
    from phantombench.provenance import cpu_model
    from phantombench.solvers import eit_classical as ec
    from phantombench.tasks import get_task
    from tests.test_import import write_ktc

    tmp = Path(tempfile.mkdtemp(prefix="bench-tv-ktc-"))
    import_dataset("ktc2023", write_ktc(tmp / "level1", level=1), "eit", tmp / "ds")
    task, ds = get_task("eit"), open_dataset(tmp / "ds")
    obs, truth = task.observation(ds, 0), task.truth(ds, 0)
    tv = ec.TotalVariation(task)
    op = tv._operator(obs)
    J = op.J / np.linalg.norm(op.J, 2)
    D = ec.edge_difference_matrix(op.edges, J.shape[1])
    S = D.T @ sp.diags(np.ones(len(op.edges))) @ D
    rhs = np.random.default_rng(0).normal(size=J.shape[1])
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"Jacobian {J.shape[0]} x {J.shape[1]}, {len(op.edges)} edges")
    dense = ec._newton_solver(J)
    t_b = best_of(lambda: ec._bordered_solve(S, J, rhs), 1)
    t_d = best_of(lambda: dense(S, rhs), a.repeat)
    err = np.linalg.norm(ec._bordered_solve(S, J, rhs) - dense(S, rhs)) / np.linalg.norm(dense(S, rhs))
    print(f"one Newton system: bordered sparse {t_b:.2f} s, dense Cholesky {t_d:.2f} s "
          f"({t_b / t_d:.1f}x), relative difference {err:.1e}")
    t_tv = best_of(lambda: tv.solve(obs), a.repeat)
    pred, _ = task.validate(tv.solve(obs), truth)
    sc = task.score(pred, truth)
    print(f"TV on the tank: {t_tv:.1f} s per image ({tv.last_result.iterations} Newton steps, operator cached); "
          f"CC {sc['CC']:.3f}, SSIM {sc['SSIM']:.3f}; goal <= 10 s")


if __name__ == "__main__":
    main()
