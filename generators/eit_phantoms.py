"""Conductivity phantoms on a disk for the EIT generator.

A :class:`Phantom` is a background (constant, or smooth: ``b0 * exp(g(x, y))`` with ``g`` a sum of
Gaussian bumps) plus non-overlapping objects (:class:`Shape`: circle, ellipse, polygon) of constant
conductivity. It evaluates exactly at any point (``phantom(x, y)``), gives exact polygons of its
objects for conforming meshes, and cell averages for non-conforming ones.

Families
--------
* ``one-circle``, ``two-circles``, ``circle-triangle``: the three cases of Yang et al. (P3).
  Background ``background`` (1 S/m), each object's conductivity uniform in ``object_sigma``
  (2-6 S/m), circle radius uniform in ``object_radius`` (fraction of the disk radius), the
  triangle equilateral with circumradius in the same range and a uniform random rotation; centres
  uniform over the positions that keep every object at least ``margin`` from the boundary and
  from the other object (rejection sampling).
* ``random``: 1-4 objects, each an ellipse (semi-axes in ``object_radius``, aspect <= 3, random
  rotation) or a random star-shaped polygon (3-8 vertices), conductivity ``background * c`` with
  ``c`` log-uniform in ``random_contrast`` (conductive and resistive), on a smooth background
  with relative amplitude up to ``smooth_amplitude`` (half the samples) or a constant one.
* ``homogeneous``: the background alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from phantombench.meshes.geometry import signed_area

__all__ = ["Shape", "Phantom", "sample_phantom", "FAMILIES"]

FAMILIES = ("one-circle", "two-circles", "circle-triangle", "random", "homogeneous")


@dataclass
class Shape:
    """An object of constant conductivity ``sigma`` (S/m).

    kinds: ``circle`` (centre, radius), ``ellipse`` (centre, semi-axes (a, b), angle of the
    a-axis, rad), ``polygon`` (vertices (K, 2), simple, any orientation).
    """

    kind: str
    sigma: float
    centre: tuple[float, float] = (0.0, 0.0)
    radius: float = 0.0
    axes: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0
    vertices: np.ndarray | None = None

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        cx, cy = self.centre
        if self.kind == "circle":
            return (x - cx) ** 2 + (y - cy) ** 2 < self.radius ** 2
        if self.kind == "ellipse":
            c, s = np.cos(self.angle), np.sin(self.angle)
            u = (x - cx) * c + (y - cy) * s
            v = -(x - cx) * s + (y - cy) * c
            return (u / self.axes[0]) ** 2 + (v / self.axes[1]) ** 2 < 1.0
        if self.kind == "polygon":
            return _in_polygon(x, y, np.asarray(self.vertices))
        raise ValueError(f"unknown shape kind {self.kind!r}")

    def bounding_radius(self) -> float:
        """Radius of a circle about ``centre`` that contains the shape."""
        if self.kind == "circle":
            return self.radius
        if self.kind == "ellipse":
            return max(self.axes)
        v = np.asarray(self.vertices)
        return float(np.hypot(v[:, 0] - self.centre[0], v[:, 1] - self.centre[1]).max())

    def polygon(self, spacing: float) -> np.ndarray:
        """Boundary as a counter-clockwise polygon for conforming meshes: edge length about
        ``spacing``, at least 24 vertices for curves, whose vertices sit on the curve scaled by
        ``sqrt(2 pi / (n sin(2 pi / n)))`` about the centre, so that the polygon has exactly the
        area (and centroid) of the circle or ellipse it stands for."""
        if self.kind == "polygon":
            v = np.asarray(self.vertices, dtype=np.float64)
            return v if signed_area(v) > 0 else v[::-1]
        if self.kind == "circle":
            a = b = self.radius
        else:
            a, b = self.axes
        perim = np.pi * (3 * (a + b) - np.sqrt((3 * a + b) * (a + 3 * b)))  # Ramanujan
        n = max(24, int(np.ceil(perim / spacing)))
        t = 2 * np.pi * np.arange(n) / n
        k = np.sqrt(2 * np.pi / (n * np.sin(2 * np.pi / n)))
        u, v = k * a * np.cos(t), k * b * np.sin(t)
        c, s = np.cos(self.angle), np.sin(self.angle)
        return np.column_stack([self.centre[0] + u * c - v * s, self.centre[1] + u * s + v * c])

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "sigma": float(self.sigma),
                             "centre": [float(self.centre[0]), float(self.centre[1])]}
        if self.kind == "circle":
            d["radius"] = float(self.radius)
        elif self.kind == "ellipse":
            d["axes"] = [float(self.axes[0]), float(self.axes[1])]
            d["angle"] = float(self.angle)
        else:
            d["vertices"] = np.asarray(self.vertices).tolist()
        return d


@dataclass
class Phantom:
    """Background plus objects; ``phantom(x, y)`` -> conductivity (S/m). Later objects win
    where objects overlap (the samplers never make them overlap)."""

    background: float = 1.0
    shapes: list[Shape] = field(default_factory=list)
    bumps: np.ndarray | None = None  # (k, 4): cx, cy, width, amplitude of g = sum amp exp(-r^2 / 2 w^2)

    def background_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        out = np.full(x.shape, float(self.background))
        if self.bumps is not None and len(self.bumps):
            g = np.zeros(x.shape)
            for cx, cy, w, a in self.bumps:
                g += a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * w * w))
            out *= np.exp(g)
        return out

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = self.background_at(x, y)
        for s in self.shapes:
            out = np.where(s.contains(x, y), s.sigma, out)
        return out

    def region(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """0 for the background, k for object k (1-based)."""
        out = np.zeros(np.shape(x), dtype=np.int32)
        for k, s in enumerate(self.shapes, 1):
            out[s.contains(x, y)] = k
        return out

    def cell_average(self, points: np.ndarray, cells: np.ndarray, subdivisions: int = 4,
                     mean: str = "geometric") -> np.ndarray:
        """Conductivity per triangle of a mesh that does not follow the objects: a mean over the
        centroids of the triangle's ``subdivisions^2`` congruent sub-triangles (area fractions to
        O(1/subdivisions) on cells cut by an object boundary).

        ``mean``: ``geometric`` (default), ``arithmetic`` or ``harmonic``. A cut cell conducts like
        the arithmetic mean along the interface and the harmonic mean across it; the geometric
        mean sits between and gave the smallest dV errors against conforming meshes in our
        checks (tests/test_eit.py compares the fixed and conforming meshes)."""
        bary = _subtriangle_centroids(subdivisions)  # (k, 3)
        p = points[cells]  # (M, 3, 2)
        q = np.einsum("kv,mvd->mkd", bary, p)  # (M, k, 2)
        v = self(q[..., 0], q[..., 1])
        if mean == "geometric":
            return np.exp(np.log(v).mean(axis=1))
        if mean == "arithmetic":
            return v.mean(axis=1)
        if mean == "harmonic":
            return 1.0 / (1.0 / v).mean(axis=1)
        raise ValueError("mean must be 'geometric', 'arithmetic' or 'harmonic'")

    def cell_values(self, points: np.ndarray, cells: np.ndarray, cell_region: np.ndarray) -> np.ndarray:
        """Conductivity per cell of a mesh conforming to the objects (``cell_region`` as from
        :func:`~phantombench.meshes.disk.disk_mesh` with ``inclusions=self.polygons(...)``):
        objects take their value, background cells the background at their centroid."""
        c = points[cells].mean(axis=1)
        out = self.background_at(c[:, 0], c[:, 1])
        for k, s in enumerate(self.shapes, 1):
            out[cell_region == k] = s.sigma
        return out

    def polygons(self, spacing: float) -> list[np.ndarray]:
        return [s.polygon(spacing) for s in self.shapes]

    def as_dict(self) -> dict[str, Any]:
        return {"background": float(self.background),
                "smooth_background_bumps": None if self.bumps is None else np.asarray(self.bumps).tolist(),
                "objects": [s.as_dict() for s in self.shapes]}


def _in_polygon(x: np.ndarray, y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points."""
    inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
    xj, yj = v[-1]
    for xi, yi in v:
        crosses = ((yi > y) != (yj > y))
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = (xj - xi) * (y - yi) / (yj - yi) + xi
        inside ^= crosses & (x < xint)
        xj, yj = xi, yi
    return inside


def _subtriangle_centroids(n: int) -> np.ndarray:
    """Barycentric centroids of the n^2 sub-triangles of a uniform subdivision."""
    out = []
    for i in range(n):
        for j in range(n - i):
            # upward triangle (i, j), (i+1, j), (i, j+1)
            out.append([(3 * i + 1) / (3 * n), (3 * j + 1) / (3 * n)])
            if i + j < n - 1:  # downward triangle (i+1, j), (i, j+1), (i+1, j+1)
                out.append([(3 * i + 2) / (3 * n), (3 * j + 2) / (3 * n)])
    a = np.array(out)
    return np.column_stack([1.0 - a.sum(axis=1), a[:, 0], a[:, 1]])


# --------------------------------------------------------------------------------------------
# Samplers
# --------------------------------------------------------------------------------------------
def _place(rng: np.random.Generator, rho: float, R: float, margin: float, placed: list[tuple[float, float, float]],
           tries: int = 1000) -> tuple[float, float] | None:
    """A centre, uniform over the disk of radius R - rho - margin, keeping ``margin`` from the
    bounding circles already placed; None if no position is found."""
    rmax = R - rho - margin
    if rmax <= 0:
        return None
    for _ in range(tries):
        r = rmax * np.sqrt(rng.uniform())
        t = rng.uniform(0, 2 * np.pi)
        x, y = r * np.cos(t), r * np.sin(t)
        if all(np.hypot(x - px, y - py) >= rho + pr + margin for px, py, pr in placed):
            return x, y
    return None


def _triangle(centre: tuple[float, float], rho: float, rot: float) -> np.ndarray:
    t = rot + 2 * np.pi * np.arange(3) / 3
    return np.column_stack([centre[0] + rho * np.cos(t), centre[1] + rho * np.sin(t)])


def _star_polygon(rng: np.random.Generator, centre: tuple[float, float], rho: float) -> np.ndarray:
    k = int(rng.integers(3, 9))
    t = np.sort(rng.uniform(0, 2 * np.pi, k))
    # keep angular gaps below pi so the polygon stays star-shaped around its centre
    while np.max(np.diff(np.concatenate([t, [t[0] + 2 * np.pi]]))) >= 0.9 * np.pi:
        t = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = rho * rng.uniform(0.5, 1.0, k)
    r[np.argmax(r)] = rho
    return np.column_stack([centre[0] + r * np.cos(t), centre[1] + r * np.sin(t)])


def sample_phantom(family: str, rng: np.random.Generator, *, radius: float = 1.0, background: float = 1.0,
                   object_sigma: tuple[float, float] = (2.0, 6.0),
                   object_radius: tuple[float, float] = (0.1, 0.3), margin: float = 0.05,
                   n_objects: tuple[int, int] = (1, 4), random_contrast: tuple[float, float] = (0.1, 10.0),
                   smooth_amplitude: float = 0.3) -> Phantom:
    """Draw a phantom of ``family`` (see the module doc). Sizes are fractions of ``radius``."""
    R = float(radius)
    m = margin * R
    rlo, rhi = object_radius[0] * R, object_radius[1] * R
    for _attempt in range(100):
        placed: list[tuple[float, float, float]] = []
        shapes: list[Shape] = []
        ok = True
        if family == "homogeneous":
            return Phantom(background)
        if family in ("one-circle", "two-circles", "circle-triangle"):
            kinds = {"one-circle": ["circle"], "two-circles": ["circle", "circle"],
                     "circle-triangle": ["circle", "triangle"]}[family]
            for kind in kinds:
                rho = rng.uniform(rlo, rhi)
                rot = rng.uniform(0, 2 * np.pi) if kind == "triangle" else 0.0
                sig = rng.uniform(*object_sigma)
                c = _place(rng, rho, R, m, placed)
                if c is None:
                    ok = False
                    break
                placed.append((c[0], c[1], rho))
                if kind == "circle":
                    shapes.append(Shape("circle", sig, centre=c, radius=rho))
                else:
                    shapes.append(Shape("polygon", sig, centre=c, vertices=_triangle(c, rho, rot)))
            if ok:
                return Phantom(background, shapes)
            continue
        if family == "random":
            k = int(rng.integers(n_objects[0], n_objects[1] + 1))
            for _ in range(k):
                kind = "ellipse" if rng.uniform() < 0.5 else "polygon"
                sig = background * float(np.exp(rng.uniform(np.log(random_contrast[0]), np.log(random_contrast[1]))))
                if kind == "ellipse":
                    a = rng.uniform(rlo, rhi)
                    b = a / rng.uniform(1.0, 3.0)
                    b = max(b, 0.5 * rlo)
                    rho = max(a, b)
                else:
                    rho = rng.uniform(rlo, rhi)
                c = _place(rng, rho, R, m, placed)
                if c is None:
                    break  # fewer objects than drawn: the disk is full
                placed.append((c[0], c[1], rho))
                if kind == "ellipse":
                    shapes.append(Shape("ellipse", sig, centre=c, axes=(a, b), angle=rng.uniform(0, np.pi)))
                else:
                    shapes.append(Shape("polygon", sig, centre=c, vertices=_star_polygon(rng, c, rho)))
            bumps = None
            if smooth_amplitude > 0 and rng.uniform() < 0.5:
                nb = int(rng.integers(1, 4))
                bumps = np.column_stack([
                    rng.uniform(-0.7, 0.7, nb) * R, rng.uniform(-0.7, 0.7, nb) * R,
                    rng.uniform(0.25, 0.6, nb) * R,
                    rng.uniform(-1, 1, nb) * np.log1p(smooth_amplitude) / nb])
            return Phantom(background, shapes, bumps)
        raise ValueError(f"unknown phantom family {family!r}; choose one of {', '.join(FAMILIES)}")
    raise RuntimeError(f"could not place the objects of {family!r}; reduce object_radius or margin")
