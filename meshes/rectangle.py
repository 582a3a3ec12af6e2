"""A structured triangle mesh of the rectangle [0, width] x [0, height] (metres).

For tests and for solvers that need their own (coarser, label-free) forward mesh, so
the data mesh is never reused (no inverse crime).
"""

from __future__ import annotations

import math

import numpy as np


def rectangle_points_cells(width: float, height: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Plain arrays: points (N, 2) and counter-clockwise triangles (M, 3) of a structured
    mesh with ceil(width / h) x ceil(height / h) squares, each cut along its
    lower-left to upper-right diagonal."""
    nx = max(1, math.ceil(width / h - 1e-9))
    ny = max(1, math.ceil(height / h - 1e-9))
    x = np.linspace(0.0, width, nx + 1)
    y = np.linspace(0.0, height, ny + 1)
    X, Y = np.meshgrid(x, y)
    pts = np.stack([X.ravel(), Y.ravel()], 1)
    n = np.arange((nx + 1) * (ny + 1)).reshape(ny + 1, nx + 1)
    a, b, c, d = n[:-1, :-1].ravel(), n[:-1, 1:].ravel(), n[1:, 1:].ravel(), n[1:, :-1].ravel()
    cells = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]).astype(np.int64)
    return pts, cells


def rectangle_mesh(width: float, height: float, h: float, comm=None):
    """dolfinx triangle mesh of [0, width] x [0, height] with element size about h
    (structured, ``dolfinx.mesh.create_rectangle``, 'right' diagonals). comm defaults to
    MPI.COMM_SELF."""
    import mpi4py.MPI as MPI
    import dolfinx.mesh

    comm = MPI.COMM_SELF if comm is None else comm
    nx = max(1, math.ceil(width / h - 1e-9))
    ny = max(1, math.ceil(height / h - 1e-9))
    return dolfinx.mesh.create_rectangle(
        comm,
        [np.array([0.0, 0.0]), np.array([width, height])],
        [nx, ny],
        dolfinx.mesh.CellType.triangle,
    )


__all__ = ["rectangle_mesh", "rectangle_points_cells"]
