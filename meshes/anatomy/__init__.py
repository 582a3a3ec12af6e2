"""Anatomy assets shipped with phantombench (small, with their licence notices).

``mni152_coronal_labels.npz``: 12 coronal label slices (0 background, 1 gray matter,
2 white matter) of the posterior half of the MNI ICBM152 2009a nonlinear symmetric
template, made by ``scripts/make_brain_slices.py``. Notice and citation:
``LICENSE-MNI152.txt`` in this folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BRAIN_SLICES_FILE = HERE / "mni152_coronal_labels.npz"

BACKGROUND, GRAY, WHITE = 0, 1, 2


@dataclass(frozen=True)
class BrainSlices:
    """A stack of coronal label slices.

    labels: (n, H, W) uint8, 0 background / 1 gray / 2 white; row 0 is superior (largest
        MNI z), column 0 the smallest MNI x.
    y_mm: (n,) MNI y coordinate of each slice (mm, negative = posterior).
    voxel_size_mm: (dx, dz) pixel size in mm (columns, rows).
    x0_mm, z_top_mm: MNI x of column 0 and MNI z of row 0 (pixel centres).
    """

    labels: np.ndarray
    y_mm: np.ndarray
    voxel_size_mm: np.ndarray
    x0_mm: float
    z_top_mm: float
    threshold: float
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def slice(self, i: int) -> np.ndarray:
        return self.labels[i]


def load_brain_slices(path: str | Path | None = None) -> BrainSlices:
    """Load the committed MNI152 coronal label slices (no nilearn, no network)."""
    with np.load(BRAIN_SLICES_FILE if path is None else Path(path), allow_pickle=False) as z:
        labels = z["labels"].astype(np.uint8, copy=False)
        return BrainSlices(
            labels=labels,
            y_mm=z["y_mm"].astype(np.float64),
            voxel_size_mm=z["voxel_size_mm"].astype(np.float64),
            x0_mm=float(z["x0_mm"]),
            z_top_mm=float(z["z_top_mm"]),
            threshold=float(z["threshold"]),
            source=str(z["source"]),
        )


__all__ = ["BrainSlices", "load_brain_slices", "BRAIN_SLICES_FILE", "BACKGROUND", "GRAY", "WHITE"]
