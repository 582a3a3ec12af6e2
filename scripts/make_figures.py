"""The README's `phantombench show` figures: one small dataset per generator, one PNG each.

    nice -n 10 .venv/bin/python scripts/make_figures.py [--data /tmp/show] [--out docs/figures] [--fresh] [GEN ...]

Each dataset is one sample of a cheap preset (coarser grid or mesh where the preset is the expensive one),
generated in this process (``workers=0``) under ``--data`` unless it is already there, then drawn by
:func:`phantombench.show.plot_sample` with the fields listed below. The PNG is written at the highest
resolution (from 90 dpi down) that keeps it under 200 KB.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 200_000

# generator -> (preset, config overrides, fields to draw (None: all), panel columns)
FIGURES: dict[str, tuple[str, dict, list[str] | None, int]] = {
    "brain-slice": ("elunet-soft", {"grid_h": 71, "grid_w": 50, "h_fine": 0.0016, "h_coarse": 0.006},
                    ["ux", "uy", "exx", "eyy", "exy", "sxy", "E", "nu", "labels", "mask", "mesh"], 4),
    "liver-mre": ("dime-liver", {"grid_h": 128, "grid_w": 128, "pixel_size": 0.003, "n_phase_offsets": 4},
                  ["wave_images", "g_storage", "labels", "mesh"], 4),
    "eit": ("cnn-pinn-case2", {"grid_size": 64}, None, 5),
    "brain-deform": ("tiny", {}, None, 5),
    "abdomen-breathing": ("tiny", {}, None, 5),
    "kheil": ("kheil-sliding-2d", {}, None, 5),
}


def dataset(generator: str, data: Path, fresh: bool = False) -> Path:
    """The one-sample dataset of ``generator`` under ``data`` (generated now if it is not there, or if
    ``fresh``: after a generator change)."""
    from phantombench import runner

    preset, overrides, _, _ = FIGURES[generator]
    out = data / generator
    if fresh and out.exists():
        shutil.rmtree(out)
    if not (out / "manifest.json").is_file():
        t = time.perf_counter()
        runner.generate(generator, preset, 1, out, seed=0, overrides=overrides or None, workers=0)
        print(f"generated {out} in {time.perf_counter() - t:.1f} s", flush=True)
    return out


def figure(generator: str, data: Path, out_dir: Path, fresh: bool = False) -> Path:
    """Draw sample 0 of the generator's dataset into ``<out_dir>/<generator>.png`` (under 200 KB)."""
    from phantombench import open_dataset
    from phantombench.show import plot_sample

    _, _, fields, cols = FIGURES[generator]
    ds = open_dataset(dataset(generator, data, fresh))
    png = out_dir / f"{generator}.png"
    for dpi in range(90, 30, -10):
        plot_sample(ds, 0, png, fields, dpi=dpi, cols=cols)
        if png.stat().st_size <= MAX_BYTES:
            break
    print(f"{png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}: {png.stat().st_size / 1e3:.0f} KB "
          f"at {dpi} dpi", flush=True)
    return png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("generators", nargs="*", default=list(FIGURES), help="default: all six")
    ap.add_argument("--data", type=Path, default=Path("/tmp/show"), help="where the small datasets go")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "figures", help="where the PNGs go")
    ap.add_argument("--fresh", action="store_true", help="regenerate the datasets even if they are there")
    a = ap.parse_args()
    unknown = sorted(set(a.generators) - set(FIGURES))
    if unknown:
        ap.error(f"unknown generator(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    a.out.mkdir(parents=True, exist_ok=True)
    for g in a.generators:
        figure(g, a.data, a.out, a.fresh)


if __name__ == "__main__":
    main()
