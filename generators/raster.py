"""Rasterise FE fields onto pixel grids: exact natural-neighbour (Sibson) interpolation of nodal
values, exact cell lookup for cellwise fields, and exact FE evaluation of dolfinx functions.

Why hand-written
----------------
No library offers a fast *exact* Sibson interpolant. MetPy's ``natural_neighbor_to_grid`` is
exact but loops over grid points in Python (slow: scripts/bench_raster.py times both);
SciPy only has nearest / linear / Clough-Tocher. Every modality rasterises several fields per
sample, so the weights are built once, vectorised, as a sparse (pixels x nodes) matrix, and
applied to any number of fields with one sparse product.

Algorithm (``sibson_weights``)
------------------------------
1. Delaunay triangulation of the nodes (``scipy.spatial.Delaunay``), triangles re-oriented
   counter-clockwise, circumcentres ``C_T`` and squared radii precomputed.
2. Each query ``p`` is located with ``find_simplex``; its Bowyer-Watson cavity (the triangles
   whose circumcircle strictly contains ``p``; a connected set containing the located triangle)
   is grown breadth-first through triangle neighbours, for all queries at once on arrays of
   (query, triangle) pairs.
3. Sibson coordinate of node ``v`` = area that the new Voronoi cell of ``p`` steals from the old
   cell of ``v``, normalised. The stolen region is the convex polygon
   ``X_first -> C_T1 -> ... -> C_Tk -> X_last`` closed along the bisector ``L`` of ``p v``, where
   ``X`` is ``g(p, v, w)`` (circumcentre of ``p, v, w``) on the cavity's boundary edges. With the
   shoelace reference point ``r = (p + v) / 2`` on ``L`` the closing edge contributes nothing, and
   an interior cavity edge ``(v, w)`` can be split at the edge midpoint (it lies on the line
   through both circumcentres), so the area decomposes exactly into independent per
   (query, cavity triangle, vertex) terms::

       A_v += 1/2 [ (X_va - r) x (C_T - r) + (C_T - r) x (X_vb - r) ]   for T = (v, a, b) ccw,

   with ``X_vw`` = midpoint of ``v w`` on interior cavity edges and ``g(p, v, w)`` on boundary
   edges. ``g`` is computed as ``midpoint + s * perp(w - v)`` with ``s = (v.w) / (2 v x w)`` in
   coordinates centred on ``p``: it stays exactly on the bisector of ``v w`` and is well
   conditioned when ``p`` approaches a node. No point at infinity ever enters: a query lying on
   an interior Delaunay edge (pixel centres on the lines of a structured mesh) uses midpoints only.
4. Cocircular (structured) node sets: any triangle whose circumcircle passes *through* ``p``
   contributes zero area whether it is in the cavity or not (its circumcentre then coincides with
   the ``g`` points of its edges), so the strict in-circle test is a consistent choice and the
   result is continuous.
5. Hull and nodes: a query within ``snap_tol`` (1e-14 of the node set's diameter, plus a few ulps)
   of a node or of a convex-hull edge gets the barycentric weights of its triangle, which equal
   Sibson's limits there (the node's value; linear interpolation between the hull edge's two
   nodes) and reproduce linear fields exactly; one outside the hull by no more than that is
   projected onto it (pixel centres put on a domain edge by ``Grid.fit``). Queries further
   outside are NaN. Just inside the hull the formula above is used as is and stays accurate to
   round-off (tests/test_raster.py, hull test), because ``g`` never leaves the bisector.

Queries are processed in blocks of a few thousand (temporaries stay in cache and in the
allocator's heap). Point location is a vectorised visibility walk from a bucket grid, not
``Delaunay.find_simplex`` (whose per-simplex LAPACK transform costs as much as everything else).

MetPy as reference: ``natural_neighbor_to_grid`` computes the same Sibson coordinates (stolen
areas as convex hulls of circumcentres) and matches this module to round-off for queries strictly
inside the hull, including cocircular structured node sets (tests/test_raster.py, metpy tests). At the hull it is not usable: a query
exactly on a hull edge yields NaN or raises ``ZeroDivisionError`` (circumcentre of three collinear
points), a query exactly on a node yields NaN (zero total area), outside the hull NaN. Here such
queries get the limits above.

Cellwise fields use :func:`locate_cells` (bounding-box bucketing of triangles over the structured
pixel grid, then barycentric tests), FE functions :func:`fe_evaluate` (dolfinx bounding-box tree,
``Function.eval``), UFL expressions :func:`fe_evaluate_expr` (interpolation into a DG space of the
expression's polynomial degree, exact on affine meshes, then :func:`fe_evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from scipy.spatial import Delaunay

if TYPE_CHECKING:  # dolfinx is imported lazily: the Sibson/cell parts need only numpy/scipy
    import dolfinx

__all__ = [
    "Grid",
    "Sibson",
    "sibson_weights",
    "locate_cells",
    "cell_to_grid",
    "nearest_index",
    "fill_nearest",
    "fe_locate",
    "fe_evaluate",
    "fe_evaluate_expr",
]


# --------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """A pixel grid: values at pixel centres, row 0 at the top (largest y), x to the right.

    Centre of pixel ``[i, j]``: ``(x0 + j * dx, y_top - i * dy)``.
    """

    x0: float
    y_top: float
    dx: float
    dy: float
    H: int
    W: int

    @classmethod
    def fit(cls, xmin: float, xmax: float, ymin: float, ymax: float, H: int, W: int,
            include_edges: bool = True) -> Grid:
        """Spread ``H x W`` pixel centres over the box ``[xmin, xmax] x [ymin, ymax]``.

        ``include_edges=True``: the outer centres lie on the box edges (``dx = (xmax-xmin)/(W-1)``);
        ``False``: the pixels tile the box, centres half a pixel inside (``dx = (xmax-xmin)/W``).
        """
        H, W = int(H), int(W)
        if H < 1 or W < 1:
            raise ValueError(f"grid needs H, W >= 1, got {H} x {W}")
        if not (xmax > xmin and ymax > ymin):
            raise ValueError("empty box")
        if include_edges:
            dx = (xmax - xmin) / (W - 1) if W > 1 else float(xmax - xmin)
            dy = (ymax - ymin) / (H - 1) if H > 1 else float(ymax - ymin)
            x0 = float(xmin) if W > 1 else 0.5 * (xmin + xmax)
            yt = float(ymax) if H > 1 else 0.5 * (ymin + ymax)
        else:
            dx, dy = (xmax - xmin) / W, (ymax - ymin) / H
            x0, yt = xmin + 0.5 * dx, ymax - 0.5 * dy
        return cls(float(x0), float(yt), float(dx), float(dy), H, W)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.H, self.W)

    @property
    def x(self) -> np.ndarray:
        """Column centre coordinates, (W,)."""
        return self.x0 + np.arange(self.W) * self.dx

    @property
    def y(self) -> np.ndarray:
        """Row centre coordinates, (H,), decreasing."""
        return self.y_top - np.arange(self.H) * self.dy

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X, Y)``, each (H, W): ``X[i, j] = x0 + j dx``, ``Y[i, j] = y_top - i dy``."""
        X, Y = np.meshgrid(self.x, self.y)
        return X, Y

    def points(self) -> np.ndarray:
        """Pixel centres as (H*W, 2), row-major (the order of ``array.reshape(-1)``)."""
        X, Y = self.centres()
        return np.column_stack([X.ravel(), Y.ravel()])

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """matplotlib ``imshow`` extent (left, right, bottom, top) of the pixel edges."""
        return (self.x0 - 0.5 * self.dx, self.x0 + (self.W - 0.5) * self.dx,
                self.y_top - (self.H - 0.5) * self.dy, self.y_top + 0.5 * self.dy)


# --------------------------------------------------------------------------------------------
# Sibson weights
# --------------------------------------------------------------------------------------------
def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


class _Triangulation:
    """Delaunay of the nodes (ccw triangles, circumcircles, a bucket grid of start triangles for
    point location), in coordinates shifted to the nodes' bounding-box centre."""

    def __init__(self, points: np.ndarray):
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"points must be (N, 2), got {pts.shape}")
        if not np.isfinite(pts).all():
            raise ValueError("points must be finite")
        lo, hi = pts.min(0), pts.max(0)
        self.shift = 0.5 * (lo + hi)
        self.diam = float(np.hypot(*(hi - lo)))
        self.absmax = float(np.abs(pts).max())
        P = pts - self.shift
        self.tri = Delaunay(P)
        if len(self.tri.coplanar):
            raise ValueError(f"{len(self.tri.coplanar)} duplicate (or numerically coincident) "
                             "nodes: Sibson weights need distinct nodes")
        self.pts = P
        px, py = P[:, 0].copy(), P[:, 1].copy()
        simp = self.tri.simplices.astype(np.int64)
        nbr = self.tri.neighbors.astype(np.int64)
        ax, ay = px[simp[:, 0]], py[simp[:, 0]]
        bx, by = px[simp[:, 1]] - ax, py[simp[:, 1]] - ay
        cx, cy = px[simp[:, 2]] - ax, py[simp[:, 2]] - ay
        cw = bx * cy - by * cx < 0
        simp[cw] = simp[cw][:, [0, 2, 1]]
        nbr[cw] = nbr[cw][:, [0, 2, 1]]          # neighbour k is opposite vertex k
        bx[cw], cx[cw] = cx[cw], bx[cw]
        by[cw], cy[cw] = cy[cw], by[cw]
        D = 2.0 * (bx * cy - by * cx)
        b2, c2 = bx * bx + by * by, cx * cx + cy * cy
        ux, uy = (cy * b2 - by * c2) / D, (bx * c2 - cx * b2) / D
        self.px, self.py, self.simp, self.nbr = px, py, simp, nbr
        self.cx, self.cy, self.r2 = ax + ux, ay + uy, ux * ux + uy * uy
        hull = self.tri.convex_hull.astype(np.int64)
        self.hull, self.hull_a, self.hull_b = hull, P[hull[:, 0]], P[hull[:, 1]]
        # bucket grid (about 2 triangles per bucket) -> a start triangle for the walk
        ntri = len(simp)
        ext = np.maximum(hi - lo, 1e-300)
        nbx = int(np.clip(np.sqrt(0.5 * ntri * ext[0] / ext[1]), 1, 4096))
        nby = int(np.clip(0.5 * ntri / nbx, 1, 4096))
        self.blo, self.bn = P.min(0), (nbx, nby)
        self.bscale = np.array([nbx, nby]) / ext
        gx = (px[simp].sum(1) / 3.0 - self.blo[0]) * self.bscale[0]
        gy = (py[simp].sum(1) / 3.0 - self.blo[1]) * self.bscale[1]
        start = np.full((nby, nbx), -1, np.int64)
        start[np.clip(gy.astype(np.int64), 0, nby - 1),
              np.clip(gx.astype(np.int64), 0, nbx - 1)] = np.arange(ntri)
        empty = start < 0
        if empty.any():  # empty bucket -> triangle of the nearest non-empty bucket
            from scipy.ndimage import distance_transform_edt
            iy, ix = distance_transform_edt(empty, return_distances=False, return_indices=True)
            start = start[iy, ix]
        self.bstart = start.ravel()

    def start_triangles(self, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
        nbx, nby = self.bn
        ix = np.clip(np.floor((qx - self.blo[0]) * self.bscale[0]), 0, nbx - 1).astype(np.int64)
        iy = np.clip(np.floor((qy - self.blo[1]) * self.bscale[1]), 0, nby - 1).astype(np.int64)
        return self.bstart[iy * nbx + ix]


def _locate(T: _Triangulation, qx: np.ndarray, qy: np.ndarray, max_steps: int = 100_000) -> np.ndarray:
    """Triangle containing each query (-1 outside the hull): a vectorised visibility walk.

    Starts from a triangle in the query's bucket and crosses, at each step, the edge with the most
    negative (unnormalised) barycentric coordinate. Orientation signs are computed in query-centred
    coordinates and are exactly antisymmetric between the two triangles sharing an edge, so a
    query on an edge is claimed by one side (or by both, when exactly zero): no ping-pong. Leaving
    through a hull edge means outside (the hull is convex). ``Delaunay.find_simplex`` is avoided:
    its per-simplex LAPACK transform costs as much as the whole interpolation, and far more with
    multi-threaded OpenBLAS on a busy machine (scripts/bench_raster.py).
    """
    px, py, simp, nbr = T.px, T.py, T.simp, T.nbr
    out = np.full(len(qx), -1, np.int64)
    act = np.arange(len(qx))
    cur = T.start_triangles(qx, qy)
    for _ in range(max_steps):
        if not len(act):
            break
        V = simp[cur]
        x, y = qx[act], qy[act]
        ax, ay = px[V[:, 0]] - x, py[V[:, 0]] - y
        bx, by = px[V[:, 1]] - x, py[V[:, 1]] - y
        cx, cy = px[V[:, 2]] - x, py[V[:, 2]] - y
        l0, l1, l2 = bx * cy - by * cx, cx * ay - cy * ax, ax * by - ay * bx
        k = np.where(l0 <= l1, np.where(l0 <= l2, 0, 2), np.where(l1 <= l2, 1, 2))
        done = np.minimum(np.minimum(l0, l1), l2) >= 0
        out[act[done]] = cur[done]
        nxt = nbr[cur, k]
        go = ~done & (nxt >= 0)                   # nxt < 0: outside the hull, stays -1
        act, cur = act[go], nxt[go]
    if len(act):  # not expected for a Delaunay triangulation; exact fallback
        out[act] = T.tri.find_simplex(np.column_stack([qx[act], qy[act]]))
    return out


def _project_on_segments(q: np.ndarray, a: np.ndarray, b: np.ndarray):
    """Distance from each q (M,2) to segment a-b (M,2); returns (dist, t) with t in [0, 1]."""
    d = b - a
    t = np.clip(((q - a) * d).sum(1) / (d * d).sum(1), 0.0, 1.0)
    return np.hypot(*(a + t[:, None] * d - q).T), t


def _snap_outside(T: _Triangulation, q: np.ndarray, tol: float, chunk: int = 2_000_000):
    """For queries outside the hull: nearest hull edge if within tol -> (ok, ia, ib, t)."""
    M, E = len(q), len(T.hull)
    ok = np.zeros(M, bool)
    ia = np.zeros(M, np.int64)
    ib = np.zeros(M, np.int64)
    t = np.zeros(M)
    lo, hi = T.pts.min(0) - tol, T.pts.max(0) + tol   # cheap reject outside the bounding box
    cand = np.flatnonzero(((q >= lo) & (q <= hi)).all(1))
    step = max(1, chunk // max(E, 1))
    d_ab = T.hull_b - T.hull_a
    L2 = (d_ab * d_ab).sum(1)
    for s in range(0, len(cand), step):
        idx = cand[s:s + step]
        rel = q[idx, None, :] - T.hull_a[None]                      # (m, E, 2)
        tt = np.clip((rel * d_ab[None]).sum(2) / L2[None], 0.0, 1.0)
        dist2 = ((rel - tt[..., None] * d_ab[None]) ** 2).sum(2)
        e = dist2.argmin(1)
        j = np.arange(len(idx))
        ok[idx] = dist2[j, e] <= tol * tol
        ia[idx], ib[idx], t[idx] = T.hull[e, 0], T.hull[e, 1], tt[j, e]
    return ok, ia, ib, t


def sibson_weights(points: np.ndarray, xy: np.ndarray, *, snap_tol: float = 1e-14,
                   chunk: int = 4096, _tri: _Triangulation | None = None
                   ) -> tuple[sp.csr_array, np.ndarray]:
    """Exact Sibson (natural-neighbour) weights of query points ``xy`` (Q, 2) w.r.t. nodes ``points``.

    Returns ``(W, inside)``: ``W`` a CSR array (Q, N) with non-negative rows summing to 1 (empty rows
    outside the convex hull), so ``W @ values`` interpolates; ``inside`` (Q,) bool.
    ``snap_tol`` (relative to the nodes' bounding-box diagonal, plus a few ulps of the raw
    coordinates): a query this close to a node or to a hull edge gets the barycentric weights of
    its triangle (Sibson's limit there: the node's value, linear interpolation along the hull
    edge); one outside the hull by at most this much is projected onto it. Further outside: NaN.
    ``chunk``: queries per vectorised block (small blocks keep temporaries in cache and in the
    allocator's heap; one block of all queries is markedly slower from page faults).
    """
    T = _tri if _tri is not None else _Triangulation(points)
    q = np.asarray(xy, dtype=np.float64).reshape(-1, 2) - T.shift
    qx, qy = q[:, 0].copy(), q[:, 1].copy()
    Q, N = len(q), len(T.pts)
    # relative to the node set, plus a few ulps of the raw coordinates (a far-off origin)
    tol = snap_tol * T.diam + 8.0 * np.finfo(np.float64).eps * T.absmax
    indptr, indices, data, inside = [np.zeros(1, np.int64)], [], [], []
    for i0 in range(0, Q, max(int(chunk), 1)):
        Wb, ins = _sibson_block(T, qx[i0:i0 + chunk], qy[i0:i0 + chunk], tol)
        indptr.append(Wb.indptr[1:].astype(np.int64) + indptr[-1][-1])
        indices.append(Wb.indices)
        data.append(Wb.data)
        inside.append(ins)
    if not indices:
        return sp.csr_array((Q, N)), np.zeros(Q, bool)
    W = sp.csr_array((np.concatenate(data), np.concatenate(indices), np.concatenate(indptr)),
                     shape=(Q, N))
    return W, np.concatenate(inside)


def _sibson_block(T: _Triangulation, qx: np.ndarray, qy: np.ndarray, tol: float):
    """Sibson weights (CSR (n, N), inside (n,)) of one block of shifted queries."""
    s = _locate(T, qx, qy)
    found = np.flatnonzero(s >= 0)
    rows, cols, vals, snap = _snapped_weights(T, qx, qy, s, found, tol)
    qi = found[~snap]
    pq, pt = np.divmod(_cavities(T, qx, qy, qi, s[qi]), len(T.simp))
    rows.append(np.repeat(pq, 3))
    cols.append(T.simp[pt].ravel())
    vals.append(_stolen_areas(T, qx[pq], qy[pq], pt, s[pq]).ravel())
    Wm = sp.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(len(qx), len(T.pts)))
    return _normalise_rows(Wm)


def _snapped_weights(T: _Triangulation, qx, qy, s, found, tol):
    """Linear weights where Sibson's are not needed: queries at a node or on a hull edge take the barycentric
    weights of their triangle (exact for linear fields), queries outside the hull by rounding only (centres on
    a domain edge) the projection onto the hull. Returns COO lists (rows, cols, vals) and the ``snap`` flags
    of the ``found`` queries."""
    q = np.column_stack([qx, qy])
    px, py, simp, nbr = T.px, T.py, T.simp, T.nbr
    sf = s[found]
    Vf = simp[sf]                                                     # (F, 3)
    X = px[Vf] - qx[found, None]                                      # vertices, query-centred
    Y = py[Vf] - qy[found, None]
    snap = (X * X + Y * Y).min(1) <= tol * tol                        # at a node
    hf = np.flatnonzero((nbr[sf] < 0).any(1))                         # triangles on the hull
    for k in range(3):
        j = hf[nbr[sf[hf], k] < 0]
        a, b = Vf[j, (k + 1) % 3], Vf[j, (k + 2) % 3]
        d, _ = _project_on_segments(q[found[j]], T.pts[a], T.pts[b])
        snap[j] |= d <= tol                                           # on a hull edge
    Xs, Ys = X[snap], Y[snap]
    lam = np.column_stack([Xs[:, 1] * Ys[:, 2] - Ys[:, 1] * Xs[:, 2],
                           Xs[:, 2] * Ys[:, 0] - Ys[:, 2] * Xs[:, 0],
                           Xs[:, 0] * Ys[:, 1] - Ys[:, 0] * Xs[:, 1]])
    lam = np.maximum(lam / lam.sum(1, keepdims=True), 0.0)
    rows, cols, vals = [np.repeat(found[snap], 3)], [Vf[snap].ravel()], [lam.ravel()]
    miss = np.flatnonzero(s < 0)
    if len(miss):
        ok, ia, ib, t = _snap_outside(T, q[miss], tol)
        im = miss[ok]
        rows += [im, im]
        cols += [ia[ok], ib[ok]]
        vals += [1.0 - t[ok], t[ok]]
    return rows, cols, vals, snap


def _cavities(T: _Triangulation, qx, qy, qi, start) -> np.ndarray:
    """Bowyer-Watson cavities of the queries ``qi`` (starting from their located triangles ``start``), grown
    breadth-first for all queries at once: sorted keys ``query * n_triangles + triangle``.

    BFS levels: a neighbour of a level-L triangle is at level L-1, L or L+1, so new keys are checked against
    the previous and current levels only; levels are sorted runs."""
    ntri, nbr = len(T.simp), T.nbr
    cur = qi * ntri + start                                            # sorted (qi ascending)
    levels, prev = [cur], cur[:0]
    fq, ft = qi, start
    while len(fq):
        nb = nbr[ft].ravel()
        cq = np.repeat(fq, 3)
        keep = nb >= 0
        cq, ct = cq[keep], nb[keep]
        dx, dy = qx[cq] - T.cx[ct], qy[cq] - T.cy[ct]
        keep = dx * dx + dy * dy < T.r2[ct]                           # strictly inside
        key = np.sort(cq[keep] * ntri + ct[keep])
        if not len(key):
            break
        new = np.empty(len(key), bool)
        new[0] = True
        np.not_equal(key[1:], key[:-1], out=new[1:])
        for old in (prev, cur):
            if len(old):
                pos = np.minimum(np.searchsorted(old, key), len(old) - 1)
                new &= old[pos] != key
        key = key[new]
        if not len(key):
            break
        levels.append(key)
        prev, cur = cur, key
        fq, ft = np.divmod(key, ntri)
    return np.sort(np.concatenate(levels), kind="stable")             # merges the sorted runs


def _stolen_areas(T: _Triangulation, x, y, pt, t0) -> np.ndarray:
    """Stolen areas (M, 3): per (query at (x, y), cavity triangle pt, vertex) terms; ``t0`` is the query's
    located triangle."""
    px, py, nbr = T.px, T.py, T.nbr
    V = T.simp[pt]                                                    # (M, 3) ccw
    Xk = [px[V[:, k]] - x for k in range(3)]                          # query-centred vertices
    Yk = [py[V[:, k]] - y for k in range(3)]
    Cx, Cy = T.cx[pt] - x, T.cy[pt] - y                               # query-centred circumcentres
    Ex, Ey = [], []
    for e in range(3):  # split point on the edge opposite vertex e: midpoint or g(p, v, w)
        nb = nbr[pt, e]
        nbc = np.maximum(nb, 0)
        dx, dy = x - T.cx[nbc], y - T.cy[nbc]
        inner = (nb >= 0) & ((dx * dx + dy * dy < T.r2[nbc]) | (nb == t0))
        vx, vy, wx, wy = Xk[(e + 1) % 3], Yk[(e + 1) % 3], Xk[(e + 2) % 3], Yk[(e + 2) % 3]
        sc = np.zeros(len(pt))
        np.divide(vx * wx + vy * wy, 2.0 * (vx * wy - vy * wx), out=sc, where=~inner)
        Ex.append(0.5 * (vx + wx) - sc * (wy - vy))
        Ey.append(0.5 * (vy + wy) + sc * (wx - vx))
    area = np.empty((len(pt), 3))
    for k in range(3):
        # 1/2 [(A - r) x (C - r) + (C - r) x (B - r)] = 1/2 (C - r) x (B - A), r = v_k / 2
        a, b = (k + 2) % 3, (k + 1) % 3
        area[:, k] = 0.5 * ((Cx - 0.5 * Xk[k]) * (Ey[b] - Ey[a]) - (Cy - 0.5 * Yk[k]) * (Ex[b] - Ex[a]))
    return area


def _normalise_rows(Wm: sp.csr_array):
    """Rows scaled to sum 1 (stolen areas are >= 0; negatives are rounding noise of cocircular, zero-area
    neighbours and are clipped); returns (weights, inside = row had a positive sum)."""
    Wm.sum_duplicates()
    np.maximum(Wm.data, 0.0, out=Wm.data)
    rs = np.asarray(Wm.sum(axis=1)).ravel()
    inside = rs > 0
    scale = np.zeros(len(rs))
    scale[inside] = 1.0 / rs[inside]
    Wm.data *= np.repeat(scale, np.diff(Wm.indptr))
    Wm.eliminate_zeros()
    return Wm, inside


class Sibson:
    """Exact natural-neighbour (Sibson) interpolation from scattered nodes to a pixel grid.

    ``Sibson(points, grid, mask=None)`` builds the sparse (H*W, N) weight matrix once;
    ``sib(values)`` with values (N,) or (N, k) (real or complex) returns (H, W) or (k, H, W),
    NaN outside the nodes' convex hull or where ``mask`` is False. ``sib.inside`` (H, W) bool.
    """

    def __init__(self, points: np.ndarray, grid: Grid, mask: np.ndarray | None = None, *,
                 snap_tol: float = 1e-14):
        self.grid = grid
        self.n_nodes = len(points)
        xy = grid.points()
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape != grid.shape:
                raise ValueError(f"mask shape {mask.shape} != grid shape {grid.shape}")
            sel = np.flatnonzero(mask.ravel())
            Wsel, ins = sibson_weights(points, xy[sel], snap_tol=snap_tol)
            Wsel = Wsel.tocoo()
            self.weights = sp.csr_array((Wsel.data, (sel[Wsel.row], Wsel.col)),
                                        shape=(grid.H * grid.W, len(points)))
            inside = np.zeros(grid.H * grid.W, bool)
            inside[sel] = ins
        else:
            self.weights, inside = sibson_weights(points, xy, snap_tol=snap_tol)
        self.inside = inside.reshape(grid.shape)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values)
        if v.shape[0] != self.n_nodes:
            raise ValueError(f"values has {v.shape[0]} rows, expected {self.n_nodes} (one per node)")
        out = self.weights @ (v if v.dtype.kind in "fc" else v.astype(np.float64))
        out = np.asarray(out, dtype=np.result_type(out.dtype, np.float64))
        out[~self.inside.ravel()] = np.nan
        H, W = self.grid.shape
        if v.ndim == 1:
            return out.reshape(H, W)
        return np.moveaxis(out.reshape(H, W, *v.shape[1:]), (0, 1), (-2, -1))


# --------------------------------------------------------------------------------------------
# Cellwise fields
# --------------------------------------------------------------------------------------------
def locate_cells(points: np.ndarray, cells: np.ndarray, grid: Grid, *, tol: float = 1e-12) -> np.ndarray:
    """Index of the triangle holding each pixel centre, (H, W) int64, -1 outside the mesh.

    Exact barycentric tests on the triangles' pixel-index bounding boxes. A centre on an edge shared
    by two cells gets the one it is deeper inside (largest minimum barycentric coordinate), ties to
    the lower cell index. ``tol``: barycentric slack so that centres on the mesh boundary (up to
    rounding) count as inside.
    """
    P = np.asarray(points, dtype=np.float64)[:, :2]
    cells = np.asarray(cells, dtype=np.int64)
    if cells.ndim != 2 or cells.shape[1] != 3:
        raise ValueError(f"cells must be (M, 3) triangles, got {cells.shape}")
    H, W = grid.shape
    out = np.full(H * W, -1, np.int64)
    a, b, c = P[cells[:, 0]], P[cells[:, 1]], P[cells[:, 2]]
    det = _cross(b - a, c - a)
    good = np.flatnonzero(det != 0)
    xs = np.stack([a[:, 0], b[:, 0], c[:, 0]], 1)
    ys = np.stack([a[:, 1], b[:, 1], c[:, 1]], 1)
    eps = 1e-9
    j0 = np.maximum(np.ceil((xs.min(1) - grid.x0) / grid.dx - eps), 0).astype(np.int64)
    j1 = np.minimum(np.floor((xs.max(1) - grid.x0) / grid.dx + eps), W - 1).astype(np.int64)
    i0 = np.maximum(np.ceil((grid.y_top - ys.max(1)) / grid.dy - eps), 0).astype(np.int64)
    i1 = np.minimum(np.floor((grid.y_top - ys.min(1)) / grid.dy + eps), H - 1).astype(np.int64)
    nj, ni = j1 - j0 + 1, i1 - i0 + 1
    good = good[(nj[good] > 0) & (ni[good] > 0)]
    cnt = nj[good] * ni[good]
    X0, Y0 = grid.x, grid.y
    best_lam = np.full(H * W, -np.inf)
    chunk = 4_000_000
    start = 0
    csum = np.cumsum(cnt)
    while start < len(good):
        base = csum[start - 1] if start else 0
        stop = int(np.searchsorted(csum, base + chunk, side="right"))
        stop = max(stop, start + 1)
        g = good[start:stop]
        n = cnt[start:stop]
        tri = np.repeat(g, n)
        local = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        njr = np.repeat(nj[g], n)
        ii = np.repeat(i0[g], n) + local // njr
        jj = np.repeat(j0[g], n) + local % njr
        px, py = X0[jj], Y0[ii]
        ax, ay = a[tri, 0], a[tri, 1]
        bx, by = b[tri, 0], b[tri, 1]
        cx, cy = c[tri, 0], c[tri, 1]
        d = det[tri]
        l1 = ((px - ax) * (cy - ay) - (py - ay) * (cx - ax)) / d
        l2 = ((bx - ax) * (py - ay) - (by - ay) * (px - ax)) / d
        lam = np.minimum(np.minimum(l1, l2), 1.0 - l1 - l2)
        ok = lam >= -tol
        pix = ii[ok] * W + jj[ok]
        tri, lam = tri[ok], lam[ok]
        # best candidate per pixel: largest lam, then lowest cell index
        order = np.lexsort((tri, -lam, pix))
        pix, tri, lam = pix[order], tri[order], lam[order]
        first = np.ones(len(pix), bool)
        first[1:] = pix[1:] != pix[:-1]
        pix, tri, lam = pix[first], tri[first], lam[first]
        upd = (lam > best_lam[pix]) | ((lam == best_lam[pix]) & (tri < out[pix]))
        out[pix[upd]], best_lam[pix[upd]] = tri[upd], lam[upd]
        start = stop
    return out.reshape(H, W)


def cell_to_grid(cell_values: np.ndarray, cell_index: np.ndarray, fill: Any = np.nan) -> np.ndarray:
    """Cellwise (DG0) values (M,) or (M, k) -> (H, W) or (k, H, W) through ``locate_cells`` output.

    Pixels with index -1 get ``fill`` (NaN; pass e.g. ``fill=-1`` to keep integer labels integer).
    """
    v = np.asarray(cell_values)
    idx = np.asarray(cell_index)
    outside = idx < 0
    dtype = np.result_type(v.dtype, np.asarray(fill).dtype)
    out = v[np.where(outside, 0, idx)].astype(dtype)
    out[outside] = fill
    if v.ndim == 1:
        return out
    return np.moveaxis(out, (0, 1), (-2, -1))


# --------------------------------------------------------------------------------------------
# Nearest-pixel fill
# --------------------------------------------------------------------------------------------
def nearest_index(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the nearest ``valid`` pixel (Euclidean distance transform) for every pixel of the
    (H, W) mask; valid pixels map to themselves. ValueError if no pixel is valid."""
    from scipy import ndimage

    valid = np.asarray(valid, dtype=bool)
    if not valid.any():
        raise ValueError("no valid pixel to fill from")
    _, (ii, jj) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return ii, jj


def fill_nearest(a: np.ndarray, valid: np.ndarray,
                 index: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Copy of ``a`` (..., H, W) whose pixels outside ``valid`` take the value of the nearest valid pixel
    (``index`` from :func:`nearest_index`, to reuse it across arrays)."""
    ii, jj = nearest_index(valid) if index is None else index
    return a[..., ii, jj]


# --------------------------------------------------------------------------------------------
# dolfinx evaluation
# --------------------------------------------------------------------------------------------
def _grid_points3(grid: Grid) -> np.ndarray:
    xy = grid.points()
    return np.column_stack([xy, np.zeros(len(xy))])


def fe_locate(mesh: dolfinx.mesh.Mesh, grid: Grid, *, use_dolfinx: bool = False) -> np.ndarray:
    """(H, W) int32: local index of a mesh cell containing each pixel centre (-1 outside).

    Affine triangle meshes (the usual case) go through :func:`locate_cells` on the geometry
    (exact barycentric tests, much faster than the tree); other meshes (or ``use_dolfinx=True``)
    through dolfinx's bounding-box tree + GJK point-cell collision, first colliding cell wins.
    Reuse the result for several ``fe_evaluate`` calls on the same mesh.
    """
    import dolfinx.geometry as dg
    from dolfinx.mesh import CellType

    geom = mesh.geometry
    tdim = mesh.topology.dim
    affine_tri = (tdim == 2 and mesh.topology.cell_type == CellType.triangle
                  and len(geom.cmaps) == 1 and geom.cmaps[0].degree == 1)
    if affine_tri and not use_dolfinx:
        ncell = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
        return locate_cells(geom.x[:, :2], geom.dofmaps[0][:ncell], grid).astype(np.int32)
    x = _grid_points3(grid)
    tree = dg.bb_tree(mesh, tdim)
    cand = dg.compute_collisions_points(tree, x)
    coll = dg.compute_colliding_cells(mesh, cand, x)
    off = np.asarray(coll.offsets)
    arr = np.asarray(coll.array)
    has = off[1:] > off[:-1]
    cells = np.full(len(x), -1, np.int32)
    cells[has] = arr[off[:-1][has]]
    return cells.reshape(grid.shape)


def fe_evaluate(u: dolfinx.fem.Function, grid: Grid, cells: np.ndarray | None = None) -> np.ndarray:
    """Exact evaluation of a dolfinx Function at the pixel centres.

    Returns (H, W) for scalars, ``value_shape + (H, W)`` otherwise (e.g. (2, H, W) for a 2D
    vector); NaN outside the mesh. ``cells``: precomputed :func:`fe_locate` output.
    """
    mesh = u.function_space.mesh
    if cells is None:
        cells = fe_locate(mesh, grid)
    c = np.asarray(cells).ravel()
    x = _grid_points3(grid)
    ins = np.flatnonzero(c >= 0)
    vshape = tuple(u.function_space.value_shape)
    vsize = int(np.prod(vshape)) if vshape else 1
    dtype = np.result_type(u.x.array.dtype, np.float64)
    out = np.full((len(c), vsize), np.nan, dtype=dtype)
    if len(ins):
        out[ins] = np.asarray(u.eval(x[ins], c[ins].astype(np.int32))).reshape(len(ins), vsize)
    H, W = grid.shape
    if not vshape:
        return out.reshape(H, W)
    return np.moveaxis(out.reshape(H, W, *vshape), (0, 1), (-2, -1))


def fe_evaluate_expr(expr: Any, mesh: dolfinx.mesh.Mesh, grid: Grid, *, degree: int | None = None,
                     cells: np.ndarray | None = None) -> np.ndarray:
    """Evaluate a UFL expression (e.g. ``ufl.sym(ufl.grad(u))``) at the pixel centres.

    The expression is interpolated cell by cell into a discontinuous Lagrange space of ``degree``
    (default: UFL's estimate of its polynomial degree) and that is evaluated exactly. On affine
    meshes this is exact for polynomial expressions (strain of a P2 displacement is DG1); for
    non-polynomial ones (``exp``, quotients) it is degree-``degree`` interpolation. Shape as
    :func:`fe_evaluate` (``expr.ufl_shape + (H, W)``). On an edge between cells the value of the
    cell chosen by :func:`fe_locate` is returned (DG fields jump there).
    """
    import dolfinx.fem as fem
    from ufl.algorithms import estimate_total_polynomial_degree
    from ufl.algorithms.apply_algebra_lowering import apply_algebra_lowering

    if degree is None:
        degree = max(int(estimate_total_polynomial_degree(apply_algebra_lowering(expr))), 0)
    shape = tuple(expr.ufl_shape)
    V = fem.functionspace(mesh, ("DG", degree, shape) if shape else ("DG", degree))
    f = fem.Function(V)
    f.interpolate(fem.Expression(expr, V.element.interpolation_points))
    return fe_evaluate(f, grid, cells=cells)
