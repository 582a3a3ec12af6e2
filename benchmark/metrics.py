"""The metrics every task scores with: one implementation, stated conventions.

All functions take the prediction ``p`` first and the ground truth ``g`` second, both real arrays of the
same shape, and an optional boolean ``mask`` (the evaluation region; default everything). Pixels where
either array is not finite inside the mask make the metric NaN: the harness rejects such predictions
before scoring, so a NaN here means a bad ground truth, never a silently skipped pixel.

Definitions (PAPERS.md, "Metric definitions used across tasks"):

* ``mare``    MARE (%) = 100 * mean(|p - g| / |g|) over the mask.
* ``rie``     RIE = ||p - g||_2 / ||g||_2 over the mask (dimensionless).
* ``pearson`` CC = Pearson correlation of p and g over the mask; 0 when the prediction is constant (it carries
              no linear information about g; scoring it 0 keeps trivial baselines comparable), NaN when the
              truth is constant (undefined).
* ``r2``      R^2 = 1 - SS_res / SS_tot, SS_res = sum (g - p)^2, SS_tot = sum (g - mean g)^2 (can be < 0).
* ``ssim``    SSIM of scikit-image (Wang et al. 2004; K1 = 0.01, K2 = 0.03, a uniform 7 x 7 window, sample
              covariance), with ``data_range = max(g) - min(g)`` over the mask (``max |g|`` when g is constant
              there). Pixels outside the mask are set to 0 in both images; the SSIM map is averaged over the
              mask pixels at least 3 pixels from the image border, which is exactly scikit-image's
              ``structural_similarity`` when the mask is everything.
* ``contrast``/``lesion_contrast_error``: contrast C = mean(x over lesion) / mean(x over reference) - 1;
              error (%) = 100 * |C(p) - C(g)| / |C(g)|.
"""

from __future__ import annotations

import numpy as np

SSIM_WIN = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _prep(p: np.ndarray, g: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} != truth shape {g.shape}")
    if mask is None:
        return p.ravel(), g.ravel()
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != g.shape:
        raise ValueError(f"mask shape {mask.shape} != truth shape {g.shape}")
    return p[mask], g[mask]


def mare(p, g, mask=None) -> float:
    """Mean absolute relative error in percent: 100 mean(|p - g| / |g|)."""
    pv, gv = _prep(p, g, mask)
    if pv.size == 0:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(100.0 * np.mean(np.abs(pv - gv) / np.abs(gv)))


def rie(p, g, mask=None) -> float:
    """Relative image error ||p - g||_2 / ||g||_2."""
    pv, gv = _prep(p, g, mask)
    den = np.linalg.norm(gv)
    if pv.size == 0 or den == 0:
        return float("nan")
    return float(np.linalg.norm(pv - gv) / den)


def pearson(p, g, mask=None) -> float:
    """Pearson correlation coefficient; 0 for a constant prediction, NaN for a constant truth."""
    pv, gv = _prep(p, g, mask)
    if pv.size < 2:
        return float("nan")
    if np.all(gv == gv[0]):
        return float("nan")
    if np.all(pv == pv[0]):
        return 0.0
    dp, dg = pv - pv.mean(), gv - gv.mean()
    den = np.sqrt(np.dot(dp, dp) * np.dot(dg, dg))
    return float(np.clip(np.dot(dp, dg) / den, -1.0, 1.0))


def r2(p, g, mask=None) -> float:
    """Coefficient of determination of the prediction against the truth, 1 - SS_res / SS_tot."""
    pv, gv = _prep(p, g, mask)
    if gv.size == 0 or np.all(gv == gv[0]):
        return float("nan")
    ss_tot = float(np.sum((gv - gv.mean()) ** 2))
    if ss_tot == 0:
        return float("nan")
    return float(1.0 - np.sum((gv - pv) ** 2) / ss_tot)


def ssim_data_range(g, mask=None) -> float:
    gv = np.asarray(g, dtype=np.float64)
    gv = gv[np.asarray(mask, bool)] if mask is not None else gv.ravel()
    if gv.size == 0:
        return float("nan")
    rng = float(gv.max() - gv.min())
    return rng if rng > 0 else float(np.abs(gv).max())


def ssim(p, g, mask=None, data_range: float | None = None) -> float:
    """Masked SSIM (see the module docstring for the exact convention)."""
    from skimage.metrics import structural_similarity

    p = np.asarray(p, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} != truth shape {g.shape}")
    if p.ndim != 2 or min(p.shape) < SSIM_WIN:
        raise ValueError(f"SSIM needs a 2D image of at least {SSIM_WIN} x {SSIM_WIN} (got {p.shape})")
    m = np.ones(g.shape, bool) if mask is None else np.asarray(mask, bool)
    if data_range is None:
        data_range = ssim_data_range(g, m)
    if not np.isfinite(data_range) or data_range <= 0:
        return float("nan")
    pad = (SSIM_WIN - 1) // 2
    inner = np.zeros_like(m)
    inner[pad:-pad, pad:-pad] = True
    sel = m & inner
    if not sel.any():
        return float("nan")
    # Only the SSIM map at selected pixels is needed, and each depends on its 7 x 7 neighbourhood: crop to the
    # selection's bounding box grown by the window half-width (same values, fewer pixels to filter).
    rows, cols = np.nonzero(sel.any(axis=1))[0], np.nonzero(sel.any(axis=0))[0]
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, m.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, m.shape[1])
    box = (slice(r0, r1), slice(c0, c1))
    p0 = np.where(m[box], p[box], 0.0)
    g0 = np.where(m[box], g[box], 0.0)
    _, smap = structural_similarity(g0, p0, win_size=SSIM_WIN, data_range=data_range, K1=SSIM_K1, K2=SSIM_K2,
                                    gaussian_weights=False, use_sample_covariance=True, full=True)
    return float(smap[sel[box]].mean())


def contrast(x, lesion, reference) -> float:
    """Contrast of a lesion against its reference tissue: mean(x[lesion]) / mean(x[reference]) - 1."""
    x = np.asarray(x, dtype=np.float64)
    lesion = np.asarray(lesion, bool)
    reference = np.asarray(reference, bool)
    if not lesion.any() or not reference.any():
        return float("nan")
    ref = x[reference].mean()
    if ref == 0:
        return float("nan")
    return float(x[lesion].mean() / ref - 1.0)


def lesion_contrast_error(p, g, lesion, reference) -> float:
    """100 |C(p) - C(g)| / |C(g)| (%), C the lesion contrast; NaN without a lesion or with zero true contrast."""
    cg = contrast(g, lesion, reference)
    cp = contrast(p, lesion, reference)
    if not np.isfinite(cg) or cg == 0:
        return float("nan")
    return float(100.0 * abs(cp - cg) / abs(cg))


__all__ = ["mare", "rie", "pearson", "r2", "ssim", "ssim_data_range", "contrast", "lesion_contrast_error",
           "SSIM_WIN", "SSIM_K1", "SSIM_K2"]
