"""Plane geometry every mesher and generator shares: polygon areas, triangle areas, the triangle-mesh arrays.

* :func:`signed_area` -- signed area of a closed polygon (shoelace; > 0 counter-clockwise);
* :func:`triangle_signed_areas` -- signed area of every triangle of a mesh (> 0 counter-clockwise);
* :class:`TriangleMesh` -- the plain-array core of a mesher's result (``points`` (N, 2) [m], ``cells``
  (M, 3) int64, counter-clockwise). The label-image mesher (:class:`~phantombench.meshes.labelmesh.LabelMesh`)
  and the EIT disk mesher (:class:`~phantombench.meshes.disk.DiskMesh`) extend it with what their
  modality needs; the abdomen mesher returns a dolfinx mesh instead (:class:`~phantombench.meshes.abdomen.MeshResult`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TriangleMesh", "signed_area", "triangle_signed_areas"]


def signed_area(polygon: np.ndarray) -> float:
    """Signed area of the closed polygon (K, 2) (first vertex not repeated): > 0 when counter-clockwise."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def triangle_signed_areas(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Signed area of every triangle (M,): > 0 for counter-clockwise vertex order."""
    a, b, d = points[cells[:, 0]], points[cells[:, 1]], points[cells[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (d[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (d[:, 0] - a[:, 0]))


@dataclass
class TriangleMesh:
    """A triangle mesh as plain arrays: ``points`` (N, 2) float64 [m], ``cells`` (M, 3) int64 counter-clockwise."""

    points: np.ndarray
    cells: np.ndarray

    @property
    def n_points(self) -> int:
        return len(self.points)

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    def cell_areas(self) -> np.ndarray:
        """Signed triangle areas (M,) [m^2], positive for the counter-clockwise cells a mesher returns."""
        return triangle_signed_areas(self.points, self.cells)

    def cell_centroids(self) -> np.ndarray:
        return self.points[self.cells].mean(axis=1)
