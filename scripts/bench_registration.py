"""Speed of the registration modality: Kheil pairs per second (2-D and 3-D), elastix seconds per 2-D pair, and
the evaluation harness's overhead per case next to the classical baseline's solve time.

    .venv/bin/python scripts/bench_registration.py [--pairs 20] [--cases 5]

Prints a Markdown table. The harness part runs ``phantombench.evaluate.evaluate`` (isolated solver process) on a
small kheil-rigid-2d dataset with ``identity`` (zero work: the harness alone) and ``elastix``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from phantombench.generators.base import sample_rng
from phantombench.generators.kheil import Kheil


def pairs_per_second(preset: str, n: int) -> float:
    gen = Kheil()
    cfg = gen.config(preset)
    t0 = time.perf_counter()
    for i in range(n):
        gen.sample(cfg, sample_rng(0, i), i)
    return n / (time.perf_counter() - t0)


def elastix_seconds(n: int, preset: str = "kheil-rigid-2d") -> tuple[float, float, float]:
    """(first call incl. importing itk's elastix wrappers, mean wall and mean CPU seconds of the next n calls);
    CPU seconds (this process, elastix on one thread) are the load-independent number on a shared machine."""
    from phantombench.solvers.registration.elastix import Elastix, register

    gen = Kheil()
    cfg = gen.config(preset)
    samples = [gen.sample(cfg, sample_rng(1, i), i) for i in range(n + 1)]
    wall, cpu = [], []
    for s in samples:
        t0, c0 = time.perf_counter(), time.process_time()
        register(s.fields["fixed"], s.fields["moving"], s.attrs["spacing_mm"], dict(Elastix.defaults))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall[0], float(np.mean(wall[1:])), float(np.mean(cpu[1:]))


def harness(cases: int) -> dict[str, dict]:
    """Per solver: solve_s_mean, harness_s_per_case and wall_s of an isolated evaluate on ``cases`` test pairs."""
    from phantombench import runner
    from phantombench.evaluate import evaluate

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ds"
        runner.generate("kheil", "kheil-rigid-2d", 6 * cases, path, seed=3, workers=0)
        for solver in ("identity", "elastix"):
            ev = evaluate(solver, "registration", path, isolate=True, sandbox=False)
            out[solver] = {**ev.record["timing"], "ok": ev.record["cases"]["ok"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20, help="pairs timed per preset (3-D: a quarter)")
    ap.add_argument("--cases", type=int, default=5, help="test pairs of the harness dataset")
    args = ap.parse_args()
    print("| measurement | value |\n|---|---|")
    for preset in ("kheil-rigid-2d", "kheil-sliding-2d", "kheil-rigid", "kheil-sliding"):
        n = args.pairs if preset.endswith("2d") else max(2, args.pairs // 4)
        print(f"| {preset} pairs per second | {pairs_per_second(preset, n):.1f} |", flush=True)
    for preset in ("kheil-rigid-2d", "kheil-sliding-2d"):
        first, wall, cpu = elastix_seconds(max(2, args.pairs // 4), preset)
        if preset.startswith("kheil-rigid"):
            print(f"| elastix first 2-D pair (incl. itk import) [s] | {first:.2f} |")
        print(f"| elastix per {preset} pair (defaults): wall / CPU [s] | {wall:.2f} / {cpu:.2f} |", flush=True)
    for solver, t in harness(args.cases).items():
        print(f"| {solver}: solve per case [s] | {t['solve_s_mean']} |")
        print(f"| {solver}: harness per case [s] | {t['harness_s_per_case']} |")
        print(f"| {solver}: evaluate wall for {t['ok']} cases [s] | {t['wall_s']} |")


if __name__ == "__main__":
    main()
