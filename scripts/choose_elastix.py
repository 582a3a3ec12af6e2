"""Choose the elastix baseline's defaults on the validation split (maintainers run this; solvers never see truth).

Rule: over a small grid, register the first ``--n-val`` validation pairs of each official 2-D Kheil preset
(the official n and seed, so these are the very pairs of the official datasets' val split) and pick the setting
with the lowest mean EPE (each preset's mean EPE weighted equally); ties go to the faster setting; a setting
on which elastix stops with an error on any pair is not eligible. Two grids: ``stages`` (linear pre-stage x
B-spline control-point spacing; bending weight 0.1, 3 pyramid levels of 200 iterations) and ``iterations`` (the
chosen stages; iterations per level of the pre-stage and of the B-spline). The table is
printed as Markdown, to be pasted into ``solvers/registration/elastix.py`` with the chosen defaults.

    .venv/bin/python scripts/choose_elastix.py [--n-val 8] [--grid stages|iterations]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from phantombench.generators.base import sample_rng
from phantombench.generators.kheil import Kheil
from phantombench.registration import REGISTRATION_OFFICIAL, registration_metrics
from phantombench.solvers.registration.elastix import Elastix, register

# the second grid (``--grid iterations``) keeps the chosen stages and varies the iterations per pyramid level
# (pre-stage, B-spline): on 64 x 64 pairs the time is almost all per-iteration overhead
GRIDS = {"stages": {"prestage": ("translation", "affine"), "grid_spacing_px": (8.0, 16.0), "bending_weight": (0.1,),
                    "pyramid": ((3, 200, 200),)},
         "iterations": {"prestage": ("translation",), "grid_spacing_px": (16.0,), "bending_weight": (0.1,),
                        "pyramid": ((3, 200, 200), (3, 50, 200), (3, 50, 100), (3, 50, 50))}}


def val_pairs(n_val: int) -> dict[str, list]:
    """preset -> [(sample fields, attrs)] of the first n_val validation pairs of each official dataset."""
    gen, out = Kheil(), {}
    for od in REGISTRATION_OFFICIAL:
        cfg = gen.config(od.preset, od.overrides)
        val = gen.splits(cfg, od.n)["val"][:n_val]
        out[od.preset] = [gen.sample(cfg, sample_rng(od.seed, i), i) for i in val]
    return out


def truth_of(s) -> dict[str, np.ndarray]:
    f = s.fields
    return {"disp": f["disp"], "_mask": f["body"], "_spacing": np.asarray(s.attrs["spacing_mm"]),
            "_region_mask": f["mask"], "_fixed": f["fixed"], "_moving": f["moving"],
            "_fixed_labels": f["fixed_labels"], "_moving_labels": f["moving_labels"],
            "_landmarks_fixed": f["landmarks_fixed"], "_landmarks_moving": f["landmarks_moving"]}


def run(pairs: dict[str, list], grid: dict) -> list[dict]:
    rows = []
    for pre, gs, bw, (res, pre_its, its) in itertools.product(*grid.values()):
        row = {"prestage": pre, "grid_spacing_px": gs, "bending_weight": bw, "resolutions": res,
               "prestage_iterations": pre_its, "iterations": its}
        params = {**Elastix.defaults, **row}
        t0, n = time.perf_counter(), 0
        row["failed"] = 0
        for preset, samples in pairs.items():
            epe = []
            for s in samples:
                try:
                    d = register(s.fields["fixed"], s.fields["moving"], s.attrs["spacing_mm"], params)
                    epe.append(registration_metrics({"disp": d}, truth_of(s))["EPE_mean"])
                except RuntimeError:           # elastix stopped (both stages): the setting is not eligible
                    row["failed"] += 1
                n += 1
            row[preset] = float(np.mean(epe)) if epe else float("nan")
        row["EPE"] = float(np.mean([row[p] for p in pairs])) if not row["failed"] else float("inf")
        row["s_per_pair"] = (time.perf_counter() - t0) / n
        rows.append(row)
        print(row, flush=True)
    return rows


def table(rows: list[dict], presets: list[str]) -> str:
    head = "| pre-stage | grid px | bending | levels x its (pre-stage, B-spline) | " + \
        " | ".join(f"EPE {p} (mm)" for p in presets) + " | mean EPE (mm) | failed pairs | s/pair |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in sorted(rows, key=lambda r: (r["EPE"], r["s_per_pair"])):
        lines.append(f"| {r['prestage']} | {r['grid_spacing_px']:g} | {r['bending_weight']:g} | "
                     f"{r['resolutions']} x ({r['prestage_iterations']}, {r['iterations']}) | " +
                     " | ".join(f"{r[p]:.3f}" for p in presets) +
                     f" | {r['EPE']:.3f} | {r['failed']} | {r['s_per_pair']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-val", type=int, default=8, help="validation pairs per preset")
    ap.add_argument("--grid", choices=sorted(GRIDS), default="iterations", help="which grid of settings")
    args = ap.parse_args()
    pairs = val_pairs(args.n_val)
    rows = run(pairs, GRIDS[args.grid])
    identity = {p: float(np.mean([registration_metrics({"disp": np.zeros_like(s.fields["disp"])},
                                                       truth_of(s))["EPE_mean"] for s in v]))
                for p, v in pairs.items()}
    print(f"\nidentity (zero displacement) EPE: {identity}\n")
    print(table(rows, list(pairs)))
    best = min(rows, key=lambda r: (r["EPE"], r["s_per_pair"]))
    print(f"\nchosen: prestage={best['prestage']} grid_spacing_px={best['grid_spacing_px']:g} "
          f"bending_weight={best['bending_weight']:g} resolutions={best['resolutions']} "
          f"prestage_iterations={best['prestage_iterations']} iterations={best['iterations']}")


if __name__ == "__main__":
    main()
