"""Rendering of FEM registration pairs: one continuous intensity model, two images, the exact truth.

Convention (the registration contract): the displacement ``disp`` lives on the FIXED image's grid, in pixels,
channel d along array axis d (d = 0 rows, pointing down; d = 1 columns, pointing right), and
``moving(x + disp(x)) = fixed(x)``. Row 0 is at the top (largest y).

* :class:`PiecewiseAffineMap` -- the FE map ``x = X + u(X)`` as a piecewise-affine map on a triangulation of the
  reference (fixed) configuration (P1: the mesh; P2: its nodes split into four triangles per cell), with a region
  label per triangle. Forward evaluation locates pixel centres in the reference triangles; the inverse locates
  them in the DEFORMED triangles (:func:`raster.locate_cells` on the moved nodes) and maps their barycentric
  coordinates back to the reference triangle, which is exact for a piecewise-affine map without folds.
* :class:`IntensityModel` -- an MR-like intensity defined on the reference configuration: a mean per tissue
  class times a smooth multiplicative bias field times (1 + a band-limited texture), both sums of plane waves,
  so they can be evaluated exactly at any point (on a grid separably, in float64; at scattered points in
  float32, which agrees to ~1e-6: tests/test_deform.py).
* :func:`render_pair` -- the fixed image samples the model at the fixed pixels, the moving image pulls it back
  through the inverse FE map; both average ``ss x ss`` sub-pixel samples (anti-aliasing), so both images are
  box-filtered samples of the same scene and the truth carries no image-interpolation error. The true ``disp``
  is the map's displacement evaluated exactly at the fixed pixel centres.
* :func:`jacobian_determinant`, :func:`draw_landmarks` -- derived truth fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phantombench.generators.base import FieldSpec
from phantombench.generators.raster import Grid, locate_cells

__all__ = ["PiecewiseAffineMap", "IntensityModel", "PlaneWaves", "render_pair", "subgrid", "jacobian_determinant",
           "draw_landmarks", "to_pixels", "registration_schema", "contract_fields"]


def subgrid(grid: Grid, ss: int) -> Grid:
    """The ``ss x ss`` sub-pixel centres of every pixel of ``grid`` (a grid ``ss`` times finer)."""
    if ss == 1:
        return grid
    return Grid(grid.x0 - 0.5 * grid.dx + 0.5 * grid.dx / ss, grid.y_top + 0.5 * grid.dy - 0.5 * grid.dy / ss,
                grid.dx / ss, grid.dy / ss, grid.H * ss, grid.W * ss)


def _block_mean(a: np.ndarray, ss: int) -> np.ndarray:
    H, W = a.shape[0] // ss, a.shape[1] // ss
    return a.reshape(H, ss, W, ss).mean(axis=(1, 3))


def _barycentric(P: np.ndarray, tri: np.ndarray, idx: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (n, 3) of points ``q`` (n, 2) in triangles ``idx`` (n,) of ``(P, tri)``."""
    a, b, c = P[tri[idx, 0]], P[tri[idx, 1]], P[tri[idx, 2]]
    v0, v1, v2 = b - a, c - a, q - a
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    l1 = (v2[:, 0] * v1[:, 1] - v2[:, 1] * v1[:, 0]) / det
    l2 = (v0[:, 0] * v2[:, 1] - v0[:, 1] * v2[:, 0]) / det
    return np.column_stack([1.0 - l1 - l2, l1, l2])


@dataclass
class PiecewiseAffineMap:
    """``x = X + u(X)``, affine on each triangle of the reference triangulation ``(points, tris)``.

    points (N, 2) [m], tris (M, 3) counter-clockwise, u (N, 2) [m], labels (M,) region label per triangle.
    """

    points: np.ndarray
    tris: np.ndarray
    u: np.ndarray
    labels: np.ndarray

    @property
    def deformed(self) -> np.ndarray:
        return self.points + self.u

    def min_jacobian(self) -> float:
        """Smallest area ratio deformed / reference over the triangles (<= 0 means a fold)."""
        def area(P):
            a, b, c = P[self.tris[:, 0]], P[self.tris[:, 1]], P[self.tris[:, 2]]
            return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
        return float(np.min(area(self.deformed) / area(self.points)))

    def at_points(self, X: np.ndarray) -> np.ndarray:
        """u at scattered reference points X (n, 2) [m] (NaN outside the mesh)."""
        from matplotlib.tri import Triangulation

        finder = Triangulation(self.points[:, 0], self.points[:, 1], self.tris).get_trifinder()
        idx = np.asarray(finder(X[:, 0], X[:, 1]))
        out = np.full((len(X), 2), np.nan)
        ok = idx >= 0
        lam = _barycentric(self.points, self.tris, idx[ok], X[ok])
        out[ok] = np.einsum("nk,nkd->nd", lam, self.u[self.tris[idx[ok]]])
        return out

    def locate(self, grid: Grid, deformed: bool = False) -> np.ndarray:
        """Triangle holding each centre of ``grid`` (H*W,), -1 outside: in the reference mesh, or in the deformed
        one (``deformed=True``)."""
        return locate_cells(self.deformed if deformed else self.points, self.tris, grid).reshape(-1)

    def u_at(self, idx: np.ndarray, X: np.ndarray) -> np.ndarray:
        """u (n, 2) at reference points X (n, 2) lying in triangles ``idx`` (n,); 0 where idx is -1."""
        u = np.zeros_like(X, dtype=np.float64)
        ok = idx >= 0
        lam = _barycentric(self.points, self.tris, idx[ok], X[ok])
        u[ok] = np.einsum("nk,nkd->nd", lam, self.u[self.tris[idx[ok]]])
        return u

    def to_reference(self, idx: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The reference points X (n, 2) with X + u(X) = x for deformed points x in deformed triangles ``idx``;
        x itself where idx is -1."""
        X = np.array(x, dtype=np.float64)
        ok = idx >= 0
        lam = _barycentric(self.deformed, self.tris, idx[ok], X[ok])
        X[ok] = np.einsum("nk,nkd->nd", lam, self.points[self.tris[idx[ok]]])
        return X


@dataclass
class PlaneWaves:
    """``sum_j a_j cos(k_j . (x - centre) + phi_j)``: k (n, 2) [rad/m], phase (n,), amp (n,), centre (2,) [m]."""

    k: np.ndarray
    phase: np.ndarray
    amp: np.ndarray
    centre: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, wavelength: tuple[float, float], rms: float,
             centre=(0.0, 0.0)) -> PlaneWaves:
        """``n`` waves, random directions, wavelengths uniform in ``wavelength`` [m], total RMS ``rms``."""
        ang = rng.uniform(0.0, 2 * np.pi, n)
        kmag = 2 * np.pi / rng.uniform(*wavelength, n)
        phase = rng.uniform(0.0, 2 * np.pi, n)
        amp = rng.normal(size=n)
        amp *= rms / max(float(np.sqrt(0.5 * np.sum(amp**2))), 1e-300)
        return cls(np.column_stack([np.cos(ang), np.sin(ang)]) * kmag[:, None], phase, amp,
                   np.asarray(centre, dtype=np.float64))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Values at points X (n, 2), evaluated in float32 (an order of magnitude faster than float64; with the
        coordinates centred the phase error is ~1e-5 rad, far below anything the images resolve)."""
        out = np.empty(len(X))
        Xc = (np.asarray(X) - self.centre).astype(np.float32)
        kx, ky = self.k[:, 0].astype(np.float32), self.k[:, 1].astype(np.float32)
        ph, amp = self.phase.astype(np.float32), self.amp.astype(np.float32)
        for s in range(0, len(X), 16384):  # blocks keep the (points x waves) temporary in cache
            b = Xc[s:s + 16384]
            a = b[:, 0:1] * kx
            a += b[:, 1:2] * ky
            a += ph
            np.cos(a, out=a)
            out[s:s + 16384] = a @ amp
        return out

    def on_grid(self, grid: Grid) -> np.ndarray:
        """Values at the centres of ``grid`` (H, W), separably: cos(k.x + phi) = Re[exp(i (kx x + phi)) exp(i ky y)],
        so the sum is one complex (H x n) @ (n x W) product (float64)."""
        A = np.exp(1j * (np.outer(grid.x - self.centre[0], self.k[:, 0]) + self.phase)) * self.amp  # (W, n)
        B = np.exp(1j * np.outer(grid.y - self.centre[1], self.k[:, 1]))                           # (H, n)
        return (B @ A.T).real


@dataclass
class IntensityModel:
    """``I(X) = means[label] * exp(bias(X)) * (1 + texture(X))`` on the reference configuration."""

    means: np.ndarray
    bias: PlaneWaves
    texture: PlaneWaves

    def __call__(self, X: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return self.means[labels] * np.exp(self.bias(X)) * (1.0 + self.texture(X))

    def on_grid(self, grid: Grid, labels: np.ndarray) -> np.ndarray:
        """The model at the centres of ``grid`` (labels (H*W,) or (H, W)), (H, W): the same function as
        ``__call__`` (plane waves summed separably in float64 instead of pointwise in float32)."""
        lab = np.asarray(labels).reshape(grid.shape)
        return self.means[lab] * np.exp(self.bias.on_grid(grid)) * (1.0 + self.texture.on_grid(grid))


def render_pair(fmap: PiecewiseAffineMap, model: IntensityModel, grid: Grid, ss: int = 3,
                outside_label: int = 0) -> dict[str, np.ndarray]:
    """Fixed and moving images (ss x ss sub-pixel averages), their labels (at pixel centres), the true
    displacement [m] at the fixed pixel centres, and where the fixed centres lie in the mesh.

    Points outside the mesh (fixed) or outside the deformed mesh (moving) take ``outside_label`` at their own
    position (the scene around the body does not move)."""
    fine = subgrid(grid, ss)
    x = fine.points()
    idx_f, idx_m = fmap.locate(fine), fmap.locate(fine, deformed=True)

    def labels(idx):
        return np.where(idx >= 0, fmap.labels[np.maximum(idx, 0)], outside_label)

    fixed = _block_mean(model.on_grid(fine, labels(idx_f)), ss)
    moving = _block_mean(model(fmap.to_reference(idx_m, x), labels(idx_m)).reshape(fine.shape), ss)
    if ss % 2:  # the middle sub-pixel centre is the pixel centre: reuse its location
        c = ss // 2
        idx_c = idx_f.reshape(fine.shape)[c::ss, c::ss].reshape(-1)
        idx_cm = idx_m.reshape(fine.shape)[c::ss, c::ss].reshape(-1)
    else:
        idx_c, idx_cm = fmap.locate(grid), fmap.locate(grid, deformed=True)
    u = fmap.u_at(idx_c, grid.points())
    return {"fixed": fixed, "moving": moving, "fixed_labels": labels(idx_c).reshape(grid.shape),
            "moving_labels": labels(idx_cm).reshape(grid.shape), "u": u.reshape(grid.H, grid.W, 2),
            "in_mesh": (idx_c >= 0).reshape(grid.shape), "cell": idx_c.reshape(grid.shape)}


def to_pixels(u: np.ndarray, grid: Grid, inside: np.ndarray | None = None) -> np.ndarray:
    """Displacement (H, W, 2) [m] (x right, y up) -> ``disp`` (2, H, W) [px]: rows = -u_y / dy, cols = u_x / dx.

    ``inside`` (H, W): pixels where ``u`` is defined; the others take the value of the nearest one, so that
    central differences at the body's edge see a continuous field (outside the body ``disp`` carries no meaning)."""
    d = np.stack([-u[..., 1] / grid.dy, u[..., 0] / grid.dx]).astype(np.float64)
    if inside is not None and not inside.all() and inside.any():
        from phantombench.generators.raster import nearest_index

        ii, jj = nearest_index(inside)
        d = d[:, ii, jj]
    return d


def jacobian_determinant(disp: np.ndarray) -> np.ndarray:
    """``det(I + grad disp)`` with central differences in pixel units (one-sided at the border), (H, W)."""
    d00, d01 = np.gradient(disp[0])
    d10, d11 = np.gradient(disp[1])
    return (1.0 + d00) * (1.0 + d11) - d01 * d10


def draw_landmarks(rng: np.random.Generator, body: np.ndarray, disp: np.ndarray, k: int,
                   margin: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``k`` distinct pixel centres of ``body`` at least ``margin`` pixels inside it (row, col) and their true
    positions in the moving image (fixed + disp there); fewer if the body is too small."""
    from scipy import ndimage

    inner = ndimage.binary_erosion(body, iterations=margin) if margin else body
    cand = np.argwhere(inner if inner.any() else body)
    pick = cand[np.sort(rng.choice(len(cand), size=min(k, len(cand)), replace=False))] if len(cand) else cand
    fixed = pick.astype(np.float64).reshape(-1, 2)
    moving = fixed + disp[:, pick[:, 0], pick[:, 1]].T if len(pick) else fixed.copy()
    return fixed, moving


def registration_schema(hw: tuple[int, int], label_doc: str) -> dict[str, FieldSpec]:
    """The contract's fields of a 2-D registration pair."""
    two = (2,) + hw
    return {
        "fixed": FieldSpec(hw, "float32", "1", "fixed image (intensity model at the pixels, anti-aliased)"),
        "moving": FieldSpec(hw, "float32", "1", "moving image (the same model pulled back through the FE map)"),
        "disp": FieldSpec(two, "float64", "px", "true displacement on the fixed grid, channel d along axis d "
                                                 "(0 rows down, 1 columns right): moving(x + disp(x)) = fixed(x)"),
        "fixed_labels": FieldSpec(hw, "uint8", "", f"tissue classes of the fixed image ({label_doc})"),
        "moving_labels": FieldSpec(hw, "uint8", "", "tissue classes of the moving image"),
        "lam": FieldSpec(hw, "float64", "Pa", "plane-strain Lame lambda on the fixed grid (0 outside the body)"),
        "mu": FieldSpec(hw, "float64", "Pa", "shear modulus on the fixed grid (0 outside the body)"),
        "mask": FieldSpec(hw, "uint8", "", "0 free, 1 rigid (bone), 2 sliding interface"),
        "normals": FieldSpec(two, "float32", "1", "unit interface normal (rows, cols) on mask == 2, else 0"),
        "body": FieldSpec(hw, "bool", "", "evaluation region (inside the body)"),
        "jac_det": FieldSpec(hw, "float64", "1", "det(I + grad disp), central differences in pixel units"),
        "landmarks_fixed": FieldSpec(("n_landmarks", 2), "float64", "px", "landmarks (row, col), fixed image"),
        "landmarks_moving": FieldSpec(("n_landmarks", 2), "float64", "px", "their true positions in the moving "
                                                                            "image (fixed + disp)"),
    }


def contract_fields(pair: dict, mask: np.ndarray, normals: np.ndarray, noise: float,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The contract's fields of a rendered pair; independent Gaussian noise of std ``noise`` on each image (fixed
    first, drawn only when ``noise > 0``)."""
    hw = pair["fixed"].shape
    fixed = pair["fixed"] + noise * rng.standard_normal(hw) if noise > 0 else pair["fixed"]
    moving = pair["moving"] + noise * rng.standard_normal(hw) if noise > 0 else pair["moving"]
    return {"fixed": fixed.astype(np.float32), "moving": moving.astype(np.float32), "disp": pair["disp"],
            "fixed_labels": pair["fixed_labels"].astype(np.uint8),
            "moving_labels": pair["moving_labels"].astype(np.uint8),
            "lam": pair["lam"].astype(np.float64), "mu": pair["mu"].astype(np.float64),
            "mask": mask.astype(np.uint8), "normals": normals.astype(np.float32), "body": pair["body"],
            "jac_det": pair["jac_det"], "landmarks_fixed": pair["landmarks_fixed"],
            "landmarks_moving": pair["landmarks_moving"]}
