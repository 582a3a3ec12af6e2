"""Figures of evaluated cases: truth, prediction and error per prediction field; leaderboard thumbnails."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

PNG_META = {"Software": None}  # no version string in the PNG: same input, same bytes


def _masked(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    a = np.real(np.asarray(a, dtype=np.complex128 if np.iscomplexobj(a) else np.float64))
    return np.where(mask, a, np.nan)


def _limits(truth: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    v = truth[mask & np.isfinite(truth)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    return lo, hi


def case_figure(task, examples: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """One row per (case, prediction field): truth | prediction (same colour scale) | error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(ex, p) for ex in examples for p in task.predictions]
    h, w = examples[0]["truth"][task.predictions[0].name].shape
    cell = 2.6
    fig, axes = plt.subplots(len(rows), 3, figsize=(3 * cell * max(w / h, 0.6) + 1.5, cell * len(rows) + 0.6),
                             squeeze=False, constrained_layout=True)
    for r, (ex, p) in enumerate(rows):
        mask = ex["truth"]["_mask"]
        g = _masked(ex["truth"][p.name], mask)
        q = _masked(ex["prediction"][p.name], mask)
        lo, hi = _limits(g, mask)
        unit = f" [{p.unit}]" if p.unit not in ("", "1") else ""
        im = axes[r, 0].imshow(g, vmin=lo, vmax=hi, cmap="viridis")
        axes[r, 0].set_title(f"{ex['case']} truth {p.name}{unit}", fontsize=8)
        fig.colorbar(im, ax=axes[r, 0], shrink=0.8)
        im = axes[r, 1].imshow(q, vmin=lo, vmax=hi, cmap="viridis")
        axes[r, 1].set_title(f"prediction {p.name}", fontsize=8)
        fig.colorbar(im, ax=axes[r, 1], shrink=0.8)
        if p.scale_check:
            with np.errstate(divide="ignore", invalid="ignore"):
                e = 100 * (q - g) / np.abs(g)
            label = "relative error [%]"
        else:
            e = q - g
            label = f"error{unit}"
        fin = e[np.isfinite(e)]
        lim = float(np.percentile(np.abs(fin), 99)) if fin.size else 1.0
        im = axes[r, 2].imshow(e, vmin=-lim or -1, vmax=lim or 1, cmap="RdBu_r")
        axes[r, 2].set_title(label, fontsize=8)
        fig.colorbar(im, ax=axes[r, 2], shrink=0.8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=90, metadata=PNG_META)
    plt.close(fig)


def thumbnail_png(task, example: dict[str, Any], height: int = 96) -> bytes:
    """Truth and prediction of the main prediction field side by side (same colour scale), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from matplotlib.image import imsave

    p = task.predictions[0]
    mask = example["truth"]["_mask"]
    g = _masked(example["truth"][p.name], mask)
    q = _masked(example["prediction"][p.name], mask)
    lo, hi = _limits(g, mask)

    def rgb(a):
        z = np.clip((a - lo) / (hi - lo), 0, 1)
        img = colormaps["viridis"](np.nan_to_num(z))[..., :3]
        img[~np.isfinite(a)] = 1.0
        return img

    h, w = g.shape
    step = max(1, int(np.ceil(h / height)))
    a, b = rgb(g)[::step, ::step], rgb(q)[::step, ::step]
    gap = np.ones((a.shape[0], max(2, a.shape[1] // 20), 3))
    img = np.concatenate([a, gap, b], axis=1)
    buf = io.BytesIO()
    imsave(buf, img, format="png", metadata=PNG_META)
    return buf.getvalue()


def thumbnail(task, example: dict[str, Any], path: Path) -> None:
    Path(path).write_bytes(thumbnail_png(task, example))
