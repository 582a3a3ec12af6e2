"""Run every benchmark script in one go and write the combined output to bench-out/bench.txt.

    .venv/bin/python scripts/bench_all.py [--only raster,brain,...]

Each script compares phantombench with its peer (MetPy, SciPy, pyEIT, scikit-fem) side by side in one
process run; README.md quotes this file. Timings depend on machine load: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["raster", "brain", "elasticity", "labelmesh", "eit", "mre", "mre_factor", "eit_solvers", "mre_solvers",
           "evaluate", "learned"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(SCRIPTS))
    a = ap.parse_args()
    chosen = [s for s in (a.only.split(",") if a.only else SCRIPTS) if (HERE / f"bench_{s}.py").exists()]
    out_dir = HERE.parent / "bench-out"
    out_dir.mkdir(exist_ok=True)
    log = out_dir / "bench.txt"
    with log.open("w") as fh:
        import os

        load = os.getloadavg()[0]
        head = (f"# phantombench benchmarks, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
                f"load average {load:.1f} at start\n")
        fh.write(head)
        print(head, end="")
        for name in chosen:
            t = time.perf_counter()
            r = subprocess.run([sys.executable, str(HERE / f"bench_{name}.py")], capture_output=True, text=True)
            block = f"\n## bench_{name}.py ({time.perf_counter() - t:.0f} s, exit {r.returncode})\n{r.stdout}"
            if r.returncode:
                block += r.stderr[-2000:]
            fh.write(block)
            fh.flush()
            print(block, end="", flush=True)
    print(f"\nwrote {log}")


if __name__ == "__main__":
    main()
