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


def colour_scale(truth: np.ndarray, mask: np.ndarray) -> tuple[float, float, str]:
    """(vmin, vmax, colormap) of a truth map and its prediction: the 1st and 99th percentiles of the truth
    inside the mask (a few extreme pixels do not wash out the rest), symmetric about zero on a diverging map
    when the truth takes both signs beyond round-off, else viridis; a constant truth is padded by half its
    value either side (never the 2000-2001 artefact of a bare colour bar)."""
    v = truth[mask & np.isfinite(truth)]
    if v.size == 0:
        return 0.0, 1.0, "viridis"
    lo, hi = (float(x) for x in np.percentile(v, [1, 99]))
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        pad = abs(lo) * 0.5 or 1.0
        return lo - pad, hi + pad, "viridis"
    big = max(abs(lo), abs(hi))
    if min(-float(v.min()), float(v.max())) > 1e-3 * big:
        return -big, big, "RdBu_r"
    return lo, hi, "viridis"


def panels(task, example: dict[str, Any]) -> list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, bool]]:
    """(name, unit, truth, prediction, mask, relative error?) of each 2-D map to draw for one case: one per
    prediction field, or what the task's ``figure_fields`` gives for predictions that are not one (H, W) map
    (registration: each displacement channel in mm)."""
    truth, pred = example["truth"], example["prediction"]
    if hasattr(task, "figure_fields"):
        return [(name, "", g, q, m, False) for name, (g, q, m) in task.figure_fields(truth, pred).items()]
    return [(p.name, p.unit, truth[p.name], pred[p.name], truth["_mask"], p.scale_check) for p in task.predictions]


def _error(g: np.ndarray, q: np.ndarray, relative: bool) -> np.ndarray:
    if not relative:
        return q - g
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100 * (q - g) / np.abs(g)


def case_figure(task, examples: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """One row per (case, map): truth | prediction (same colour scale, :func:`colour_scale`) | error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    rows = [(ex, pan) for ex in examples for pan in panels(task, ex)]
    h, w = np.shape(rows[0][1][2])
    cell = 2.6
    fig, axes = plt.subplots(len(rows), 3, figsize=(3 * cell * max(w / h, 0.6) + 1.5, cell * len(rows) + 0.6),
                             squeeze=False, constrained_layout=True)
    for r, (ex, (name, unit, g, q, mask, relative)) in enumerate(rows):
        g, q = _masked(g, mask), _masked(q, mask)
        lo, hi, cmap = colour_scale(g, mask)
        unit = f" [{unit}]" if unit not in ("", "1") else ""
        for c, (img, label) in enumerate(((g, f"{ex['case']} truth {name}{unit}"), (q, f"prediction {name}"))):
            im = axes[r, c].imshow(img, vmin=lo, vmax=hi, cmap=cmap)
            axes[r, c].set_title(label, fontsize=8)
            cb = fig.colorbar(im, ax=axes[r, c], shrink=0.8)
            cb.ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
        e = _error(g, q, relative)
        fin = e[np.isfinite(e)]
        lim = float(np.percentile(np.abs(fin), 99)) if fin.size else 1.0
        im = axes[r, 2].imshow(e, vmin=-lim or -1, vmax=lim or 1, cmap="RdBu_r")
        axes[r, 2].set_title("relative error [%]" if relative else f"error{unit}", fontsize=8)
        fig.colorbar(im, ax=axes[r, 2], shrink=0.8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=90, metadata=PNG_META)
    plt.close(fig)


def thumbnail_png(task, example: dict[str, Any], height: int = 160) -> bytes:
    """Truth and prediction of the first map side by side on one colour scale with its colour bar (the map's
    name and unit), about ``height`` pixels tall, as PNG bytes (same input, same bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, unit, g, q, mask, _ = panels(task, example)[0]
    g, q = _masked(g, mask), _masked(q, mask)
    lo, hi, cmap = colour_scale(g, mask)
    dpi = 80
    aspect = g.shape[1] / max(g.shape[0], 1)
    fig_h = height / dpi
    fig = plt.figure(figsize=(fig_h * 2 * aspect * 0.86 * 1.06 / 0.79, fig_h), dpi=dpi)
    axes = fig.subplots(1, 2, gridspec_kw={"left": 0.01, "right": 0.80, "top": 0.88, "bottom": 0.02,
                                           "wspace": 0.04})
    for ax, a, label in ((axes[0], g, "truth"), (axes[1], q, "prediction")):
        im = ax.imshow(a, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(label, fontsize=7, pad=2)
        ax.set_axis_off()
    cax = fig.add_axes((0.83, 0.08, 0.035, 0.76))
    cb = fig.colorbar(im, cax=cax)
    cb.ax.tick_params(labelsize=6)
    cb.formatter.set_useOffset(False)
    cb.set_label(f"{name} [{unit}]" if unit else name, fontsize=6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata=PNG_META, bbox_inches="tight", pad_inches=0.03)
    plt.close(fig)
    return buf.getvalue()


def thumbnail(task, example: dict[str, Any], path: Path) -> None:
    Path(path).write_bytes(thumbnail_png(task, example))
