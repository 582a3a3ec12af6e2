"""Disk meshes with boundary electrodes for electrical impedance tomography (gmsh, built-in kernel).

Geometry
--------
A disk of radius ``R`` centred at the origin. Electrode ``l`` (0-based in arrays; "electrode 1"
in prose is index 0) is the boundary arc of angular width ``widths[l]`` centred at angle
``centres[l]`` (radians, measured counter-clockwise from the +x axis). Electrode ends are gmsh
points, so mesh nodes sit exactly on both ends of every electrode and every boundary edge lies
either on one electrode or in one gap.

Evenly spaced layouts (:meth:`Electrodes.evenly_spaced`) put electrode 0 at ``first_angle`` and
number the others counter-clockwise (``direction="ccw"``, the default) or clockwise (``"cw"``).
pyEIT's layout, for instance, is ``first_angle=pi, direction="cw"`` (electrode 0 at (-R, 0)).

Mesh size
---------
``mesh_size`` (``h``) is the target edge length in the bulk and ``electrode_mesh_size``
(``h_e``) the one at electrode ends, where the current density of the complete electrode model
varies fastest; both are given relative to the radius. The size grows linearly with the
distance ``d`` to the nearest electrode end, ``h_e + (h - h_e) d / (grading R)``, capped at ``h``
(gmsh ``Distance`` + ``Threshold`` background field; point sizes and size extension from the
boundary are off, so the interior really coarsens). Meshing uses gmsh's 2-D Delaunay algorithm
without Laplacian smoothing: the fastest choice here (smoothing buys slightly larger minimum angles
for a sizeable share of the meshing time).

Inclusions
----------
Closed polygons strictly inside the disk (``inclusions=[(K, 2) arrays]``) become embedded
plane surfaces: the mesh conforms to them and ``cell_region`` says which polygon (1-based) holds
each cell, 0 for the background. Polygons must not touch each other or the boundary.

Only gmsh and numpy are needed here; the FEM lives in :mod:`phantombench.generators.eit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from phantombench.meshes.geometry import TriangleMesh, signed_area, triangle_signed_areas
from phantombench.meshes.gmsh_session import gmsh_session

__all__ = ["Electrodes", "DiskMesh", "disk_mesh"]

TWO_PI = 2.0 * np.pi


def _wrap(a: np.ndarray | float) -> np.ndarray:
    """Angle(s) in [0, 2 pi)."""
    return np.mod(np.asarray(a, dtype=np.float64), TWO_PI)


@dataclass(frozen=True)
class Electrodes:
    """Electrode layout on a disk: centre angles and angular widths (radians), radius (m).

    Arrays are in electrode order (index 0 = electrode 1). Electrodes must not overlap; a gap
    of at least ``1e-9`` rad is required between neighbours.
    """

    centres: tuple[float, ...]
    widths: tuple[float, ...]
    radius: float = 1.0

    def __post_init__(self) -> None:
        c = np.asarray(self.centres, dtype=np.float64)
        w = np.asarray(self.widths, dtype=np.float64)
        if c.ndim != 1 or c.shape != w.shape or len(c) < 2:
            raise ValueError("centres and widths must be 1-D of the same length >= 2")
        if np.any(w <= 0) or np.any(~np.isfinite(w)) or np.any(~np.isfinite(c)):
            raise ValueError("electrode widths must be positive and finite")
        if not self.radius > 0:
            raise ValueError("radius must be positive")
        start = _wrap(c - w / 2)
        order = np.argsort(start)
        start = start[order]
        end = start + w[order]
        nxt = np.roll(start, -1)
        nxt[-1] += TWO_PI
        if np.any(end + 1e-9 > nxt) or w.sum() >= TWO_PI:
            raise ValueError("electrodes overlap or touch; leave a gap between neighbours")

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def evenly_spaced(cls, n_electrodes: int = 16, coverage: float = 0.5, first_angle: float = 0.0,
                      direction: str = "ccw", radius: float = 1.0) -> Electrodes:
        """``n_electrodes`` equal electrodes covering the fraction ``coverage`` of the perimeter.

        Electrode 0 is centred at ``first_angle``; the others follow counter-clockwise
        (``direction="ccw"``) or clockwise (``"cw"``) at steps of ``2 pi / n_electrodes``.
        """
        L = int(n_electrodes)
        if L < 2:
            raise ValueError("need at least two electrodes")
        if not 0.0 < coverage < 1.0:
            raise ValueError("coverage must lie in (0, 1)")
        sign = _direction_sign(direction)
        centres = first_angle + sign * TWO_PI * np.arange(L) / L
        widths = np.full(L, coverage * TWO_PI / L)
        return cls(tuple(float(a) for a in centres), tuple(float(a) for a in widths), float(radius))

    # -- derived quantities ------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.centres)

    @property
    def centre_angles(self) -> np.ndarray:
        return np.asarray(self.centres, dtype=np.float64)

    @property
    def angular_widths(self) -> np.ndarray:
        return np.asarray(self.widths, dtype=np.float64)

    @property
    def lengths(self) -> np.ndarray:
        """Arc lengths (m)."""
        return self.angular_widths * self.radius

    @property
    def coverage(self) -> float:
        """Fraction of the perimeter covered by electrodes."""
        return float(self.angular_widths.sum() / TWO_PI)

    def positions(self) -> np.ndarray:
        """Electrode centres as (L, 2) coordinates (m)."""
        c = self.centre_angles
        return self.radius * np.column_stack([np.cos(c), np.sin(c)])

    def intervals(self) -> np.ndarray:
        """(L, 2) start and end angles of each electrode, counter-clockwise, start in [0, 2 pi)."""
        s = _wrap(self.centre_angles - self.angular_widths / 2)
        return np.column_stack([s, s + self.angular_widths])

    def electrode_at(self, theta: np.ndarray) -> np.ndarray:
        """Index of the electrode covering each boundary angle (strictly inside), -1 in gaps."""
        th = _wrap(theta)
        out = np.full(th.shape, -1, dtype=np.int64)
        for k, (a, b) in enumerate(self.intervals()):
            rel = np.mod(th - a, TWO_PI)
            out[rel < b - a] = k
        return out


def _direction_sign(direction: str) -> float:
    if direction in ("ccw", "counterclockwise", "counter-clockwise"):
        return 1.0
    if direction in ("cw", "clockwise"):
        return -1.0
    raise ValueError(f"direction must be 'ccw' or 'cw', got {direction!r}")


@dataclass
class DiskMesh(TriangleMesh):
    """A triangle mesh of a disk with electrodes.

    ``points`` (N, 2) m; ``cells`` (M, 3) int64, counter-clockwise; ``cell_region`` (M,) int32
    (0 background, k = inclusion k); ``boundary_edges`` (F, 2) node pairs in counter-clockwise
    order along the boundary; ``edge_electrode`` (F,) electrode index of each boundary edge (-1
    in gaps); ``node_electrode`` (N,) electrode holding each node (-1 if none; every electrode
    end belongs to its electrode).
    """

    cell_region: np.ndarray
    electrodes: Electrodes
    boundary_edges: np.ndarray
    edge_electrode: np.ndarray
    node_electrode: np.ndarray
    mesh_size: float
    electrode_mesh_size: float
    info: dict = field(default_factory=dict)

    def electrode_edge_lengths(self) -> np.ndarray:
        """Meshed length of each electrode (sum of chord lengths, m)."""
        e = self.boundary_edges
        ln = np.linalg.norm(self.points[e[:, 1]] - self.points[e[:, 0]], axis=1)
        on = self.edge_electrode >= 0
        return np.bincount(self.edge_electrode[on], weights=ln[on], minlength=self.electrodes.n)


def _boundary_edges(cells: np.ndarray) -> np.ndarray:
    """Edges used by exactly one triangle, oriented as in their (counter-clockwise) triangle."""
    e = np.concatenate([cells[:, [0, 1]], cells[:, [1, 2]], cells[:, [2, 0]]])
    key = np.sort(e, axis=1)
    _, inv, cnt = np.unique(key[:, 0] * (cells.max() + 1) + key[:, 1], return_inverse=True,
                            return_counts=True)
    return e[cnt[inv] == 1]


def disk_mesh(electrodes: Electrodes, mesh_size: float = 0.04, electrode_mesh_size: float | None = None,
              *, grading: float = 0.3, inclusions: list[np.ndarray] | tuple = ()) -> DiskMesh:
    """Mesh the disk with gmsh; nodes on electrode ends, finer near electrode ends.

    Parameters
    ----------
    electrodes: the layout (radius included).
    mesh_size: bulk edge length relative to the radius.
    electrode_mesh_size: edge length at electrode ends relative to the radius (default
        ``mesh_size / 4``).
    grading: distance (relative to the radius) over which the size grows from
        ``electrode_mesh_size`` to ``mesh_size``.
    inclusions: closed polygons (K, 2) in metres, strictly inside, not touching each other;
        the mesh conforms to them (their vertices are mesh nodes; their edges are split to the
        local mesh size).
    """
    R = float(electrodes.radius)
    h = float(mesh_size) * R
    he = float(electrode_mesh_size if electrode_mesh_size is not None else mesh_size / 4) * R
    if not (h > 0 and he > 0):
        raise ValueError("mesh sizes must be positive")
    he = min(he, h)
    bpts = _boundary_points(electrodes)
    polys = _check_inclusions(inclusions, R)
    node_tags, xyz, cells_l, regions_l = _gmsh_disk(R, h, he, grading, bpts, polys)
    points, cells, cell_region = _compact(node_tags, xyz, cells_l, regions_l)
    bedges, edge_el, node_el = _boundary_electrodes(points, cells, electrodes)
    return DiskMesh(points=points, cells=cells, cell_region=cell_region, electrodes=electrodes,
                    boundary_edges=bedges, edge_electrode=edge_el, node_electrode=node_el,
                    mesh_size=float(mesh_size), electrode_mesh_size=he / R,
                    info={"n_points": int(len(points)), "n_cells": int(len(cells)),
                          "n_inclusions": len(polys)})


def _boundary_points(electrodes: Electrodes) -> list[tuple[float, int, int]]:
    """Boundary points (angle, electrode, kind: 0 start, 1 end, 2 gap, 3 split): electrode ends (fine) and
    the middle of each gap (coarse), so that arcs are never longer than pi (gmsh circle arcs need < pi)."""
    ivals = electrodes.intervals()
    L = electrodes.n
    order = np.argsort(ivals[:, 0])
    bpts: list[tuple[float, int, int]] = []
    for i, k in enumerate(order):
        a, b = ivals[k]
        a_next = ivals[order[(i + 1) % L], 0] + (TWO_PI if i == L - 1 else 0.0)
        bpts.append((a, k, 0))
        # split long electrodes into arcs shorter than pi
        n_split = int(np.ceil((b - a) / (0.9 * np.pi)))
        for j in range(1, n_split):
            bpts.append((a + (b - a) * j / n_split, k, 3))
        bpts.append((b, k, 1))
        gap = a_next - b
        n_gap = max(1, int(np.ceil(gap / (0.9 * np.pi))))
        for j in range(n_gap):
            bpts.append((b + gap * (j + 0.5) / n_gap, -1, 2))
    return bpts


def _check_inclusions(inclusions, R: float) -> list[np.ndarray]:
    polys = [np.asarray(p, dtype=np.float64)[:, :2] for p in inclusions]
    for p in polys:
        if len(p) < 3:
            raise ValueError("an inclusion polygon needs at least 3 vertices")
        if np.any(np.hypot(p[:, 0], p[:, 1]) >= R):
            raise ValueError("inclusion polygons must lie strictly inside the disk")
    return polys


# 2-D Delaunay, sizes from the background field only, no optimisation or smoothing pass
_DISK_OPTIONS = {"Mesh.Algorithm": 5, "Mesh.MeshSizeExtendFromBoundary": 0, "Mesh.MeshSizeFromPoints": 0,
                 "Mesh.MeshSizeFromCurvature": 0, "Mesh.Optimize": 0, "Mesh.Smoothing": 0, "Mesh.RandomSeed": 1}


def _gmsh_disk(R, h, he, grading, bpts, polys):
    """gmsh geometry (circle arcs between the boundary points, inclusion loops) and mesh: node tags,
    coordinates, and per surface (background first, then each inclusion) its triangles."""
    with gmsh_session("phantombench_disk", _DISK_OPTIONS) as gmsh:
        geo = gmsh.model.geo
        c0 = geo.addPoint(0.0, 0.0, 0.0, h)
        ptags = [geo.addPoint(R * np.cos(t), R * np.sin(t), 0.0, h) for t, _, _ in bpts]
        arcs = [geo.addCircleArc(ptags[i], c0, ptags[(i + 1) % len(ptags)]) for i in range(len(ptags))]
        outer = geo.addCurveLoop(arcs)
        loops = []
        for p in polys:
            q = p if signed_area(p) > 0 else p[::-1]
            vt = [geo.addPoint(x, y, 0.0, h) for x, y in q]
            lines = [geo.addLine(vt[i], vt[(i + 1) % len(vt)]) for i in range(len(vt))]
            loops.append(geo.addCurveLoop(lines))
        s_bg = geo.addPlaneSurface([outer] + loops)
        s_inc = [geo.addPlaneSurface([lp]) for lp in loops]
        geo.synchronize()
        _electrode_size_field(gmsh, [ptags[i] for i, (_, _, kind) in enumerate(bpts) if kind in (0, 1)],
                              he, h, grading * R)
        gmsh.model.mesh.generate(2)
        node_tags, xyz, _ = gmsh.model.mesh.getNodes()
        cells_l, regions_l = [], []
        for region, s in enumerate([s_bg] + s_inc):
            _, tri_nodes = gmsh.model.mesh.getElementsByType(2, s)
            cells_l.append(np.asarray(tri_nodes, dtype=np.int64).reshape(-1, 3))
            regions_l.append(np.full(len(cells_l[-1]), region, dtype=np.int32))
    return node_tags, xyz, cells_l, regions_l


def _electrode_size_field(gmsh, end_tags, he, h, dist_max):
    """Size ``he`` at the electrode ends, growing linearly to ``h`` at distance ``dist_max``."""
    fld = gmsh.model.mesh.field
    fd = fld.add("Distance")
    fld.setNumbers(fd, "PointsList", end_tags)
    ft = fld.add("Threshold")
    fld.setNumber(ft, "InField", fd)
    fld.setNumber(ft, "SizeMin", he)
    fld.setNumber(ft, "SizeMax", h)
    fld.setNumber(ft, "DistMin", 0.0)
    fld.setNumber(ft, "DistMax", dist_max)
    fld.setAsBackgroundMesh(ft)


def _compact(node_tags, xyz, cells_l, regions_l):
    """Points used by the triangles (in node-tag order), cells renumbered and counter-clockwise, regions."""
    node_tags = np.asarray(node_tags, dtype=np.int64)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)[:, :2]
    cells_tag = np.concatenate(cells_l)
    cell_region = np.concatenate(regions_l)
    used = np.unique(cells_tag)
    lookup = np.full(int(node_tags.max()) + 1, -1, dtype=np.int64)
    lookup[node_tags] = np.arange(len(node_tags))
    points = xyz[lookup[used]]
    renum = np.full(int(node_tags.max()) + 1, -1, dtype=np.int64)
    renum[used] = np.arange(len(used))
    cells = renum[cells_tag]
    flip = triangle_signed_areas(points, cells) < 0
    cells[flip] = cells[flip][:, [0, 2, 1]]
    return points, cells, cell_region


def _boundary_electrodes(points, cells, electrodes: Electrodes):
    """Boundary nodes projected exactly onto the circle (in place; gmsh puts them there to ~1e-16 already);
    boundary edges in counter-clockwise order, the electrode of each edge and of each node (-1: none)."""
    R = float(electrodes.radius)
    bedges = _boundary_edges(cells)
    bnodes = np.unique(bedges)
    r = np.hypot(points[bnodes, 0], points[bnodes, 1])
    points[bnodes] *= (R / r)[:, None]
    mid = 0.5 * (points[bedges[:, 0]] + points[bedges[:, 1]])
    edge_el = electrodes.electrode_at(np.arctan2(mid[:, 1], mid[:, 0]))
    node_el = np.full(len(points), -1, dtype=np.int64)
    on = edge_el >= 0
    node_el[bedges[on, 0]] = edge_el[on]
    node_el[bedges[on, 1]] = edge_el[on]
    o = np.argsort(np.mod(np.arctan2(mid[:, 1], mid[:, 0]), TWO_PI))  # counter-clockwise by midpoint angle
    missing = [k for k in range(electrodes.n) if not np.any(edge_el == k)]
    if missing:
        raise RuntimeError(f"electrodes {missing} got no mesh edge; refine electrode_mesh_size")
    return bedges[o], edge_el[o], node_el
