"""Interfaces of a label image, as polylines: the contouring half of :mod:`phantombench.meshes.labelmesh`.

* :func:`clean_labels` -- smooth the class indicators, take the argmax, merge tiny pieces;
* :func:`marching_triangles` -- multi-material marching triangles on the pixel-centre grid (interface
  points where two smoothed indicators are equal, a junction vertex where three classes meet);
* :func:`chains` -- the interface graph cut into junction-to-junction chains and closed loops;
* :func:`resample`, :func:`relax_corners` -- arc-length resampling and rounding of sharp corners;
* :class:`Displacement` -- a smooth random displacement field for perturbed shapes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# node connectivity matching the triangulation below (squares split along the
# (i, j)-(i+1, j+1) diagonal): 4-neighbours plus that diagonal
STRUCT6 = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], bool)


class MeshingError(RuntimeError):
    """The label image cannot be turned into a valid set of interface loops."""


def smooth_argmax(lab: np.ndarray, sigma: float, ncls: int):
    soft = np.stack([ndimage.gaussian_filter((lab == k).astype(np.float64), sigma, mode="constant",
                                             cval=1.0 if k == 0 else 0.0) if sigma > 0
                     else (lab == k).astype(np.float64) for k in range(ncls)])
    return soft, np.argmax(soft, axis=0).astype(np.int64)


def clean_labels(lab: np.ndarray, sigma: float, min_px: int, ncls: int, max_rounds: int = 6):
    """Smooth, take the argmax, merge pieces < min_px into their surroundings; repeat
    (at most max_rounds times; what is left after that is meshed as it is)."""
    lab = lab.astype(np.int64)
    for rnd in range(max_rounds + 1):
        soft, hard = smooth_argmax(lab, sigma, ncls)
        if rnd == max_rounds:
            break
        changed = False
        for k in range(ncls):
            comp, n = ndimage.label(hard == k, structure=STRUCT6)
            if n == 0:
                continue
            sizes = np.bincount(comp.ravel())
            for c in np.nonzero(sizes[1:] < min_px)[0] + 1:
                piece = comp == c
                rim = ndimage.binary_dilation(piece, structure=STRUCT6) & ~piece
                counts = np.bincount(hard[rim], minlength=ncls)
                counts[k] = -1
                new = int(np.argmax(counts))
                # relabel the input around the piece so that the smoothed argmax follows
                grow = ndimage.binary_dilation(piece, iterations=max(1, int(np.ceil(sigma))))
                lab[grow & (lab == k)] = new
                changed = True
        if not changed:
            break
    return soft, hard


def marching_triangles(soft: np.ndarray, hard: np.ndarray):
    """Multi-material marching triangles on the node grid (nodes = pixel centres).

    Returns vertex coordinates (V, 2) in (x = col, y = -row) pixel units, segments
    (S, 2) vertex ids, and for each segment the grid node on its left and on its right.
    """
    H, W = hard.shape
    L = hard.ravel()
    nid = np.arange(H * W).reshape(H, W)
    # triangles (counter-clockwise in x = col, y = -row)
    a = nid[:-1, :-1].ravel()
    b = nid[1:, :-1].ravel()
    c = nid[1:, 1:].ravel()
    d = nid[:-1, 1:].ravel()
    tri = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    lt = L[tri]
    mixed = ~((lt[:, 0] == lt[:, 1]) & (lt[:, 1] == lt[:, 2]))
    tri, lt = tri[mixed], lt[mixed]
    nt = len(tri)

    ii, jj = np.divmod(np.arange(H * W), W)
    xy_node = np.stack([jj, -ii], 1).astype(np.float64)
    S = soft.reshape(len(soft), -1)

    # edge points: for each triangle edge k (v_k -> v_{k+1}) that crosses
    p = tri
    q = np.roll(tri, -1, axis=1)
    cross = L[p] != L[q]
    pe, qe = p[cross], q[cross]
    la, lb = L[pe], L[qe]
    dp = S[la, pe] - S[lb, pe]
    dq = S[la, qe] - S[lb, qe]
    den = dp - dq
    t = np.where(den > 0, dp / np.where(den > 0, den, 1.0), 0.5)
    t = np.clip(t, 0.05, 0.95)
    # unique key per undirected grid edge
    lo, hi = np.minimum(pe, qe), np.maximum(pe, qe)
    key = lo * 4 + (hi - lo == 1) * 0 + (hi - lo == W) * 1 + (hi - lo == W + 1) * 2
    ukey, inv = np.unique(key, return_inverse=True)
    # positions (take one occurrence per key; both occurrences agree up to orientation)
    t_lo = np.where(pe == lo, t, 1.0 - t)  # parameter measured from lo
    first = np.zeros(len(ukey), np.int64)
    first[inv[::-1]] = np.arange(len(inv))[::-1]
    lo_u = lo[first]
    hi_u = hi[first]
    tu = t_lo[first]
    v_edge = xy_node[lo_u] + tu[:, None] * (xy_node[hi_u] - xy_node[lo_u])
    n_ev = len(ukey)
    evid = np.full(cross.shape, -1, np.int64)
    evid[cross] = inv

    ncross = cross.sum(1)
    segs, left, right = [], [], []
    # two classes: exactly two crossing edges; lone vertex k has edges k-1 and k crossing
    two = np.nonzero(ncross == 2)[0]
    if len(two):
        cr = cross[two]
        # lone vertex k: both edge k (k->k+1) and edge k-1 (k-1 -> k) cross
        k = np.argmax(cr & np.roll(cr, 1, axis=1), axis=1)
        e1 = evid[two, k]  # on edge (k, k+1)
        e2 = evid[two, (k - 1) % 3]  # on edge (k-1, k)
        segs.append(np.stack([e1, e2], 1))
        left.append(tri[two, k])
        right.append(tri[two, (k + 1) % 3])
    # three classes: junction vertex at the mean of the three edge points
    three = np.nonzero(ncross == 3)[0]
    v_junc = np.empty((0, 2))
    if len(three):
        ev = evid[three]  # (n3, 3)
        v_junc = v_edge[ev].mean(axis=1)
        jid = n_ev + np.arange(len(three))
        for kk in range(3):
            segs.append(np.stack([jid, ev[:, kk]], 1))
            left.append(tri[three, (kk + 1) % 3])
            right.append(tri[three, kk])
    if not segs:
        return np.empty((0, 2)), np.empty((0, 2), np.int64), np.empty(0, np.int64), np.empty(0, np.int64), nt
    verts = np.concatenate([v_edge, v_junc])
    return verts, np.concatenate(segs), np.concatenate(left), np.concatenate(right), n_ev


def chains(nv: int, segs: np.ndarray, n_edge_vertices: int):
    """Split the segment graph into chains: lists of vertex ids (junction to junction, or
    closed with first == last), each with the index of its first segment and whether that
    segment is traversed forwards."""
    ns = len(segs)
    # incidence: vertex -> segments (edge vertices have exactly 2, junctions 3)
    order = np.argsort(np.concatenate([segs[:, 0], segs[:, 1]]), kind="stable")
    ends = np.concatenate([segs[:, 0], segs[:, 1]])[order]
    seg_of = np.concatenate([np.arange(ns), np.arange(ns)])[order]
    start = np.searchsorted(ends, np.arange(nv + 1))
    deg = np.diff(start)
    if np.any(deg[:n_edge_vertices] != 2) or np.any(deg[n_edge_vertices:] != 3):
        raise MeshingError("interface graph is not a valid partition (unexpected vertex degree)")
    s0 = segs[:, 0].tolist()
    s1 = segs[:, 1].tolist()
    st = start.tolist()
    so = seg_of.tolist()
    used = bytearray(ns)
    is_junc = [False] * n_edge_vertices + [True] * (nv - n_edge_vertices)
    chains = []

    def walk(v, s):
        fwd0 = s0[s] == v
        path = [v]
        first_seg = s
        while True:
            used[s] = 1
            w = s1[s] if s0[s] == v else s0[s]
            path.append(w)
            if is_junc[w] or w == path[0]:
                break
            # the other segment at the degree-2 vertex w
            a_, b_ = so[st[w]], so[st[w] + 1]
            s = b_ if a_ == s else a_
            v = w
            if used[s]:
                break
        return path, first_seg, fwd0

    for v in range(n_edge_vertices, nv):
        for k in range(st[v], st[v + 1]):
            s = so[k]
            if not used[s]:
                chains.append(walk(v, s))
    for s in range(ns):
        if not used[s]:
            chains.append(walk(s0[s], s))
    return chains


def resample(poly: np.ndarray, ds: float, closed: bool) -> np.ndarray:
    """Resample a polyline (first/last kept) at spacing <= ds by arc length."""
    seg = np.linalg.norm(np.diff(poly, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = s[-1]
    n = max(int(np.ceil(total / ds)), 6 if closed else 1)
    if n == 1:
        return poly[[0, -1]]
    si = np.linspace(0.0, total, n + 1)
    x = np.interp(si, s, poly[:, 0])
    y = np.interp(si, s, poly[:, 1])
    out = np.stack([x, y], 1)
    out[0], out[-1] = poly[0], poly[-1]
    return out


def relax_corners(p: np.ndarray, closed_free: bool, min_angle_deg: float, iters: int = 60) -> np.ndarray:
    """Round sharp corners of a polyline: while the angle between the two segments at an
    interior vertex is below min_angle_deg, move that vertex halfway towards the midpoint of
    its neighbours. End points stay fixed unless the chain is a closed loop without a
    junction (closed_free), where the start/end vertex is treated like the others."""
    p = p.copy()
    if len(p) < 3:
        return p
    cmin = np.cos(np.radians(min_angle_deg))
    for _ in range(iters):
        if closed_free:
            q = p[:-1]
            prev, nxt = np.roll(q, 1, axis=0), np.roll(q, -1, axis=0)
        else:
            q = p[1:-1]
            prev, nxt = p[:-2], p[2:]
        u, v = prev - q, nxt - q
        cosang = np.einsum("ij,ij->i", u, v) / np.maximum(
            np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-300
        )
        bad = cosang > cmin
        if not bad.any():
            break
        q[bad] = 0.5 * q[bad] + 0.25 * (prev[bad] + nxt[bad])
        if closed_free:
            p[-1] = p[0]
    return p


class Displacement:
    """Smooth random displacement field d(x) = sum_k a_k cos(w_k . x + phi_k)
    (random Fourier features of a Gaussian kernel with correlation length ``length``)."""

    def __init__(self, rng: np.random.Generator, amplitude: float, length: float, n_modes: int = 24):
        self.w = rng.normal(0.0, 1.0 / length, size=(n_modes, 2))
        self.phi = rng.uniform(0.0, 2 * np.pi, size=n_modes)
        self.a = rng.normal(0.0, 1.0, size=(n_modes, 2)) * np.sqrt(2.0 / n_modes)
        self.amplitude = amplitude
        self.scale = 1.0

    def raw(self, x):
        arg = x @ self.w.T + self.phi  # (N, K)
        return np.cos(arg) @ self.a

    def jacobian_norm(self, x):
        arg = x @ self.w.T + self.phi
        s = -np.sin(arg)  # (N, K)
        # J[n, i, j] = sum_k a_ki * s_nk * w_kj
        J = np.einsum("ki,nk,kj->nij", self.a, s, self.w)
        return np.linalg.norm(J, ord=2, axis=(1, 2))

    def fit(self, x, max_strain=0.3):
        """Scale so max |d| over x equals the amplitude, and |grad d| <= max_strain."""
        d = self.raw(x)
        m = np.linalg.norm(d, axis=1).max()
        self.scale = self.amplitude / m if m > 0 else 0.0
        g = self.jacobian_norm(x).max() * self.scale
        if g > max_strain:
            self.scale *= max_strain / g

    def __call__(self, x):
        return self.scale * self.raw(x)
