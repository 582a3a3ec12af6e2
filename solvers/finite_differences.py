"""Finite differences and gap filling on the pixel grid, shared by the solvers.

Convention everywhere: images are (..., H, W) with row 0 at the top (largest y) and x to the right, so
d/dy = -d/d(row).

* :func:`fill_invalid` -- copy the nearest valid pixel into the invalid ones (NumPy);
* :func:`d_dx`, :func:`d_dy` -- central differences inside, second-order one-sided on the edges (torch; exact
  for quadratic fields; El-UNet's equilibrium residual);
* :func:`fd_derivatives` -- central first derivatives and the 5-point Laplacian, NaN on the outer ring (NumPy;
  CNN-PINN's potential derivatives);
* :func:`one_sided_gradient` -- the gradient at every mask pixel, one-sided next to the mask boundary (NumPy);
* :func:`neighbour_differences` -- the sparse (edges x pixels) forward-difference operator between horizontal
  and vertical neighbours (SciPy; the direct inversion's regulariser).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["d_dx", "d_dy", "fd_derivatives", "fill_invalid", "neighbour_differences", "one_sided_gradient"]


def fill_invalid(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Copy the nearest valid pixel into invalid ones (the few edge pixels the rasteriser leaves empty);
    all invalid: zeros."""
    from scipy import ndimage

    if valid.all():
        return a
    if not valid.any():
        return np.zeros_like(a)
    _, (ii, jj) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return a[ii, jj]


def d_dx(f, h: float):
    """d/dx along the last axis of a tensor: central inside, second-order one-sided on the two edge columns."""
    import torch

    inner = (f[..., 2:] - f[..., :-2]) / (2 * h)
    left = (-3 * f[..., :1] + 4 * f[..., 1:2] - f[..., 2:3]) / (2 * h)
    right = (3 * f[..., -1:] - 4 * f[..., -2:-1] + f[..., -3:-2]) / (2 * h)
    return torch.cat([left, inner, right], dim=-1)


def d_dy(f, h: float):
    """d/dy along the row axis (-2). Row 0 is the top (largest y), so d/dy = -d/d(row)."""
    return -d_dx(f.transpose(-1, -2), h).transpose(-1, -2)


def fd_derivatives(U: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central differences of an image U (..., H, W) with spacing h, row 0 at the top (largest y):
    ``(dU/dx, dU/dy, lap U)``; values at the outermost rows/columns (and next to NaN) are NaN."""
    U = np.asarray(U, dtype=np.float64)
    Ux = np.full_like(U, np.nan)
    Uy = np.full_like(U, np.nan)
    lap = np.full_like(U, np.nan)
    c = U[..., 1:-1, 1:-1]
    left, right = U[..., 1:-1, :-2], U[..., 1:-1, 2:]
    up, down = U[..., :-2, 1:-1], U[..., 2:, 1:-1]   # up = previous row = larger y
    Ux[..., 1:-1, 1:-1] = (right - left) / (2 * h)
    Uy[..., 1:-1, 1:-1] = (up - down) / (2 * h)
    lap[..., 1:-1, 1:-1] = (left + right + up + down - 4 * c) / h ** 2
    return Ux, Uy, lap


def one_sided_gradient(U: np.ndarray, mask: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (dU/dx, dU/dy) at every mask pixel: central differences where both neighbours are in the
    mask, first-order one-sided where only one is, 0 where none."""
    U = np.asarray(U, dtype=np.float64)
    m = np.asarray(mask, bool)
    Up = np.pad(np.where(m, U, 0.0), [(0, 0)] * (U.ndim - 2) + [(1, 1), (1, 1)])
    mp = np.pad(m, 1)
    c = Up[..., 1:-1, 1:-1]

    def d(a_val, a_in, b_val, b_in):  # derivative along an axis from the "minus" (a) and "plus" (b) sides
        both = a_in & b_in
        out = np.where(both, (b_val - a_val) / (2 * h), 0.0)
        out = np.where(~both & b_in, (b_val - c) / h, out)
        out = np.where(~both & a_in & ~b_in, (c - a_val) / h, out)
        return out

    gx = d(Up[..., 1:-1, :-2], mp[1:-1, :-2], Up[..., 1:-1, 2:], mp[1:-1, 2:])
    gy = d(Up[..., 2:, 1:-1], mp[2:, 1:-1], Up[..., :-2, 1:-1], mp[:-2, 1:-1])  # minus side = row below
    return gx, gy


def neighbour_differences(H: int, W: int) -> sp.csr_matrix:
    """Forward differences between horizontal and vertical neighbours (edges x nodes) of an H x W grid."""
    idx = np.arange(H * W).reshape(H, W)
    pairs = np.concatenate([np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
                            np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], 1)])
    m = len(pairs)
    r = np.repeat(np.arange(m), 2)
    c = pairs.ravel()
    v = np.tile([-1.0, 1.0], m)
    return sp.csr_matrix((v, (r, c)), shape=(m, H * W))
