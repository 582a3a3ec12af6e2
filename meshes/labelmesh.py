"""Label image -> conforming, tagged triangle mesh of a rectangle (gmsh).

Pipeline (``mesh_label_image``):

1. The label image (0 background, 1 gray, 2 white; further classes 3, 4, ... such as
   painted inclusions are handled alike; row 0 at the top) is padded with background,
   each class indicator is Gaussian-smoothed (``smooth`` pixels) and every pixel takes
   the class with the largest smoothed indicator. Connected pieces smaller than
   ``min_region_px`` pixels are merged into their surroundings (and the smoothing is
   redone), so tiny islands and holes never reach the mesher.
2. Interfaces are extracted by multi-material marching triangles on the pixel-centre
   grid: an interface point sits where the two competing smoothed indicators are equal,
   and triangles where three classes meet get a junction vertex. Every interface is
   extracted once and shared by the two regions it separates, so the regions tile the
   plane exactly: no slivers, no gaps, nested regions and holes (ventricles) included.
3. The interface network is cut into chains (junction to junction, or closed loops),
   mapped to millimetres (uniform scale, brain centred in the rectangle), resampled by
   arc length (spacing ``contour_spacing``, default h_fine) with sharp corners rounded
   (no polygon angle below ``min_corner_angle``), optionally deformed by a smooth random
   displacement field (``perturb``), and handed to gmsh's built-in kernel as polylines
   whose vertices become interface nodes. Each connected region becomes one plane
   surface (outer loop plus hole loops), tagged by class.
4. gmsh meshes it (2-D Delaunay by default, one thread) with the size ``h_fine`` at the
   interfaces, growing linearly (slope ``grading``) to ``h_coarse`` away from them.

The result carries plain arrays (points in metres, cells, labels) and builds a dolfinx
mesh on demand; gmsh is started and stopped inside each call (cheap), under a lock, so
the function is safe to call repeatedly and from several threads of one process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

# cell tags in dolfinx meshtags and gmsh physical groups: label + 1 (gmsh needs tags > 0)
TAG_BACKGROUND, TAG_GRAY, TAG_WHITE = 1, 2, 3
# facet tags of the rectangle sides (see LabelMesh.facet_tags)
FACET_BOTTOM, FACET_RIGHT, FACET_TOP, FACET_LEFT = 1, 2, 3, 4

ELUNET_WIDTH = 76.6e-3  # m
ELUNET_HEIGHT = 108.8e-3  # m (load direction, y)

_GMSH_LOCK = threading.Lock()

# node connectivity matching the triangulation below (squares split along the
# (i, j)-(i+1, j+1) diagonal): 4-neighbours plus that diagonal
_STRUCT6 = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], bool)


class MeshingError(RuntimeError):
    pass


@dataclass
class LabelMesh:
    """A conforming triangle mesh of [0, width] x [0, height] (metres).

    points: (N, 2) float64 node coordinates [m].
    cells: (M, 3) int64 triangles, counter-clockwise.
    cell_labels: (M,) int64 class of each triangle (0 background, 1 gray, 2 white, and any
        further class of the input image).
    n_classes: number of classes (max input label + 1, at least 3).
    quality: min_angle_deg, mean_quality, q05_quality (radius ratio 2 r_in / r_circ,
        1 = equilateral), min_quality, n_nodes, n_cells, timings (seconds).
    pixel_to_xy: (scale, x_offset, y_offset) in metres: label pixel (row i, col j) of the
        *input* image has its centre at (x_offset + j * scale, y_offset - i * scale)
        (before any perturbation).
    """

    points: np.ndarray
    cells: np.ndarray
    cell_labels: np.ndarray
    width: float
    height: float
    quality: dict
    pixel_to_xy: tuple[float, float, float]
    n_classes: int = 3
    params: dict = field(default_factory=dict)

    @property
    def cell_tags_array(self) -> np.ndarray:
        return self.cell_labels + 1

    def cell_areas(self) -> np.ndarray:
        return _signed_areas(self.points, self.cells)

    def region_areas(self) -> dict[int, float]:
        a = self.cell_areas()
        return {k: float(a[self.cell_labels == k].sum()) for k in range(self.n_classes)}

    def labels_from_image(self, labels: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Nearest-pixel lookup of the (unsmoothed) input label image at points xy [m];
        background outside the image."""
        s, x0, y0 = self.pixel_to_xy
        j = np.rint((xy[:, 0] - x0) / s).astype(np.int64)
        i = np.rint((y0 - xy[:, 1]) / s).astype(np.int64)
        ok = (i >= 0) & (i < labels.shape[0]) & (j >= 0) & (j < labels.shape[1])
        out = np.zeros(len(xy), np.int64)
        out[ok] = labels[i[ok], j[ok]]
        return out

    def to_dolfinx(self, comm=None):
        """Build (mesh, cell_tags): a dolfinx P1 triangle mesh and its cell meshtags with
        tag = label + 1 (TAG_BACKGROUND 1, TAG_GRAY 2, TAG_WHITE 3). The whole mesh is
        given on rank 0 of ``comm`` (default MPI.COMM_SELF) and distributed by dolfinx."""
        import mpi4py.MPI as MPI  # noqa: F401  (must precede dolfinx)
        import basix.ufl
        import dolfinx.mesh
        import ufl

        comm = MPI.COMM_SELF if comm is None else comm
        element = basix.ufl.element("Lagrange", "triangle", 1, shape=(2,))
        domain = ufl.Mesh(element)
        if comm.rank == 0:
            cells, x = self.cells, self.points
        else:
            cells, x = np.empty((0, 3), np.int64), np.empty((0, 2), np.float64)
        mesh = dolfinx.mesh.create_mesh(comm, cells, domain, x)
        tdim = mesh.topology.dim
        orig = np.asarray(mesh.topology.original_cell_index, dtype=np.int64)
        n_local = mesh.topology.index_map(tdim).size_local
        tags = self.cell_tags_array
        if comm.size > 1:
            tags = comm.bcast(tags if comm.rank == 0 else None, root=0)
        local = np.arange(n_local, dtype=np.int32)
        values = tags[orig[:n_local]].astype(np.int32)
        cell_tags = dolfinx.mesh.meshtags(mesh, tdim, local, values)
        cell_tags.name = "tissue"
        return mesh, cell_tags

    def facet_tags(self, mesh):
        """meshtags of the rectangle sides: FACET_BOTTOM 1, FACET_RIGHT 2, FACET_TOP 3,
        FACET_LEFT 4 (corners go to bottom/top)."""
        import dolfinx.mesh

        w, h = self.width, self.height
        tol = 1e-9 * max(w, h)
        fdim = mesh.topology.dim - 1
        mesh.topology.create_connectivity(fdim, mesh.topology.dim)
        sides = [
            (FACET_BOTTOM, lambda x: np.isclose(x[1], 0.0, atol=tol)),
            (FACET_RIGHT, lambda x: np.isclose(x[0], w, atol=tol)),
            (FACET_TOP, lambda x: np.isclose(x[1], h, atol=tol)),
            (FACET_LEFT, lambda x: np.isclose(x[0], 0.0, atol=tol)),
        ]
        idx, val = [], []
        seen: set[int] = set()
        for tag, pred in sides:
            f = dolfinx.mesh.locate_entities_boundary(mesh, fdim, pred)
            f = np.array([e for e in f if e not in seen], dtype=np.int32)
            seen.update(f.tolist())
            idx.append(f)
            val.append(np.full(len(f), tag, np.int32))
        idx = np.concatenate(idx)
        order = np.argsort(idx)
        ft = dolfinx.mesh.meshtags(mesh, fdim, idx[order], np.concatenate(val)[order])
        ft.name = "sides"
        return ft


# ----------------------------------------------------------------------------- helpers


def _signed_areas(p, c):
    a, b, d = p[c[:, 0]], p[c[:, 1]], p[c[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (d[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (d[:, 0] - a[:, 0]))


def triangle_quality(points: np.ndarray, cells: np.ndarray) -> dict:
    """Min angle (degrees) and radius-ratio statistics (2 r_in / r_circ)."""
    a, b, c = points[cells[:, 0]], points[cells[:, 1]], points[cells[:, 2]]
    la = np.linalg.norm(b - c, axis=1)
    lb = np.linalg.norm(c - a, axis=1)
    lc = np.linalg.norm(a - b, axis=1)
    area = np.abs(_signed_areas(points, cells))
    s = 0.5 * (la + lb + lc)
    q = np.where(area > 0, 8.0 * area**2 / np.maximum(s * la * lb * lc, 1e-300), 0.0)  # = 2 r/R
    # angles via the law of cosines
    def ang(x, y, z):  # angle opposite to side x
        cosv = (y**2 + z**2 - x**2) / np.maximum(2 * y * z, 1e-300)
        return np.degrees(np.arccos(np.clip(cosv, -1.0, 1.0)))

    amin = np.minimum(np.minimum(ang(la, lb, lc), ang(lb, lc, la)), ang(lc, la, lb))
    return {
        "min_angle_deg": float(amin.min()),
        "angle_p01_deg": float(np.percentile(amin, 1)),
        "mean_quality": float(q.mean()),
        "q05_quality": float(np.percentile(q, 5)),
        "min_quality": float(q.min()),
    }


def _smooth_argmax(lab: np.ndarray, sigma: float, ncls: int):
    soft = np.stack([ndimage.gaussian_filter((lab == k).astype(np.float64), sigma, mode="constant",
                                             cval=1.0 if k == 0 else 0.0) if sigma > 0
                     else (lab == k).astype(np.float64) for k in range(ncls)])
    return soft, np.argmax(soft, axis=0).astype(np.int64)


def _clean_labels(lab: np.ndarray, sigma: float, min_px: int, ncls: int, max_rounds: int = 6):
    """Smooth, take the argmax, merge pieces < min_px into their surroundings; repeat
    (at most max_rounds times; what is left after that is meshed as it is)."""
    lab = lab.astype(np.int64)
    for rnd in range(max_rounds + 1):
        soft, hard = _smooth_argmax(lab, sigma, ncls)
        if rnd == max_rounds:
            break
        changed = False
        for k in range(ncls):
            comp, n = ndimage.label(hard == k, structure=_STRUCT6)
            if n == 0:
                continue
            sizes = np.bincount(comp.ravel())
            for c in np.nonzero(sizes[1:] < min_px)[0] + 1:
                piece = comp == c
                rim = ndimage.binary_dilation(piece, structure=_STRUCT6) & ~piece
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


def _marching_triangles(soft: np.ndarray, hard: np.ndarray):
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


def _chains(nv: int, segs: np.ndarray, n_edge_vertices: int):
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


def _resample(poly: np.ndarray, ds: float, closed: bool) -> np.ndarray:
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


def _relax_corners(p: np.ndarray, closed_free: bool, min_angle_deg: float, iters: int = 60) -> np.ndarray:
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


def _polygon_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


class _Displacement:
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


# ----------------------------------------------------------------------------- main


def mesh_label_image(
    labels: np.ndarray,
    width: float = ELUNET_WIDTH,
    height: float = ELUNET_HEIGHT,
    brain_width_fraction: float = 0.8,
    brain_height_fraction: float | None = None,
    pixel_size: float | None = None,
    h_fine: float = 0.5e-3,
    h_coarse: float = 4.0e-3,
    grading: float = 0.3,
    smooth: float = 0.7,
    min_region_px: int = 12,
    contour_spacing: float | None = None,
    perturb: np.random.Generator | int | None = None,
    perturb_amplitude: float = 2.0e-3,
    perturb_length: float = 15.0e-3,
    min_corner_angle: float = 60.0,
    algorithm: int = 5,
) -> LabelMesh:
    """Mesh the rectangle [0, width] x [0, height] (metres) with a label image embedded.

    labels: (H, W) integer image, 0 background, 1 gray, 2 white (further classes 3, 4, ...
        are meshed the same way, e.g. painted inclusions), row 0 at the top.
    width, height: the rectangle [m] (default El-UNet: 76.6 mm x 108.8 mm; y is the load
        direction).
    brain_width_fraction: the brain's bounding box (nonzero labels) is scaled uniformly so
        that it spans this fraction of ``width``, or ``brain_height_fraction`` (default:
        the same) of ``height`` if that is smaller, and centred in the rectangle.
    pixel_size: if given [m], use this scale instead (the brain is still centred); it
        must fit inside the rectangle.
    h_fine: element size at the interfaces [m]; it grows with slope ``grading`` to
        ``h_coarse`` [m] away from them (inside the brain too).
    smooth: Gaussian sigma (in label pixels) applied to the class indicators before the
        interfaces are contoured. min_region_px: connected pieces smaller than this (in
        pixels) are merged into their surroundings.
    contour_spacing: vertex spacing on the interfaces [m] (default h_fine).
    min_corner_angle: interface corners sharper than this (degrees) are rounded.
    perturb: None, or a numpy Generator (or int seed) for a smooth random displacement of
        the interfaces (random Fourier field, correlation length ``perturb_length`` [m],
        maximum ``perturb_amplitude`` [m], its gradient limited to 0.3 so shapes stay
        valid; shrunk if the brain would leave the rectangle). The rectangle is fixed.
    algorithm: gmsh Mesh.Algorithm (5 Delaunay, the fastest here; 6 Frontal-Delaunay gives
        slightly better shaped triangles for ~20 % more time).

    Same inputs and same Generator state give identical arrays.
    """
    import gmsh

    t0 = time.perf_counter()
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError("labels must be a 2-D image")
    if not np.issubdtype(labels.dtype, np.integer) and not np.all(labels == np.round(labels)):
        raise ValueError("labels must be integers")
    if labels.min() < 0:
        raise ValueError("labels must be >= 0 (0 = background)")
    ncls = max(3, int(labels.max()) + 1)
    if not (labels > 0).any():
        raise ValueError("label image has no brain pixels")
    W_mm, H_mm = 1e3 * width, 1e3 * height
    hf, hc = 1e3 * h_fine, 1e3 * h_coarse
    if not (0 < hf <= hc):
        raise ValueError("need 0 < h_fine <= h_coarse")
    ds = hf if contour_spacing is None else 1e3 * contour_spacing
    fh = brain_width_fraction if brain_height_fraction is None else brain_height_fraction

    # --- 1. pad, smooth, clean
    pad = int(np.ceil(3 * smooth)) + 2
    lab = np.pad(labels.astype(np.int64), pad)
    soft, hard = _clean_labels(lab, smooth, min_region_px, ncls)
    if not (hard > 0).any():
        raise MeshingError("no brain left after smoothing/cleaning")

    # --- scale: bounding box of the input's brain pixels
    rows = np.nonzero((labels > 0).any(axis=1))[0]
    cols = np.nonzero((labels > 0).any(axis=0))[0]
    bw = cols[-1] - cols[0] + 1
    bh = rows[-1] - rows[0] + 1
    if pixel_size is None:
        s = min(brain_width_fraction * W_mm / bw, fh * H_mm / bh)  # mm per pixel
    else:
        s = 1e3 * pixel_size
    cx = 0.5 * (cols[0] + cols[-1])
    cy = 0.5 * (rows[0] + rows[-1])
    x_off = 0.5 * W_mm - s * cx  # x = x_off + s * col
    y_off = 0.5 * H_mm + s * cy  # y = y_off - s * row

    # --- 2. marching triangles
    verts, segs, lnode, rnode, n_ev = _marching_triangles(soft, hard)
    t_contour = time.perf_counter()
    # pixel units (x = col_p, y = -row_p) of the padded image -> mm
    vmm = np.empty_like(verts)
    vmm[:, 0] = x_off + s * (verts[:, 0] - pad)
    vmm[:, 1] = y_off + s * (verts[:, 1] + pad)

    # components of the cleaned partition (faces of the interface graph)
    comp = np.full(hard.shape, -1, np.int64)
    comp_label = []
    ncomp = 0
    for k in range(ncls):
        c, n = ndimage.label(hard == k, structure=_STRUCT6)
        comp[c > 0] = c[c > 0] - 1 + ncomp
        comp_label += [k] * n
        ncomp += n
    comp = comp.ravel()
    outer_bg = int(comp[0])  # the padded border is background and connected
    seg_left = comp[lnode]
    seg_right = comp[rnode]

    # --- 3. chains
    chains = _chains(len(verts), segs, n_ev)

    disp = None
    if perturb is not None:
        rng = perturb if isinstance(perturb, np.random.Generator) else np.random.default_rng(perturb)
        disp = _Displacement(rng, 1e3 * perturb_amplitude, 1e3 * perturb_length)

    # the random displacement acts on the dense marching vertices (junctions move with
    # every chain they end), before the chains are resampled
    max_disp = 0.0
    if disp is not None:
        used_v = np.unique(segs)
        disp.fit(vmm[used_v])
        margin = 2.0 * hf
        for _ in range(20):
            moved = vmm[used_v] + disp(vmm[used_v])
            if (moved.min(0) >= margin).all() and (moved[:, 0].max() <= W_mm - margin) and (
                moved[:, 1].max() <= H_mm - margin
            ):
                break
            disp.scale *= 0.7
        else:
            disp.scale = 0.0
        dv = disp(vmm)
        max_disp = float(np.linalg.norm(dv[used_v], axis=1).max())
        vmm = vmm + dv

    chain_pts = []
    chain_lr = []
    for path, s_first, fwd in chains:
        p = vmm[path]
        closed = path[0] == path[-1]
        rp = _resample(p, ds, closed)
        if min_corner_angle > 0:
            # alternate corner rounding and arc-length resampling (rounding alone leaves
            # short segments at former cusps)
            for _ in range(4):
                rp = _resample(_relax_corners(rp, closed and path[0] < n_ev, min_corner_angle, 10), ds, closed)
        chain_pts.append((rp, closed, path[0], path[-1]))
        l_, r_ = seg_left[s_first], seg_right[s_first]
        chain_lr.append((l_, r_) if fwd else (r_, l_))
    allp = np.concatenate([c[0] for c in chain_pts])
    if allp[:, 0].min() <= 0 or allp[:, 1].min() <= 0 or allp[:, 0].max() >= W_mm or allp[:, 1].max() >= H_mm:
        raise MeshingError("brain does not fit inside the rectangle")

    # loops per component: chains oriented with the component on the left
    by_comp: dict[int, list[tuple[int, int]]] = {}
    for ci, (l_, r_) in enumerate(chain_lr):
        by_comp.setdefault(int(l_), []).append((ci, +1))
        by_comp.setdefault(int(r_), []).append((ci, -1))

    t_geo0 = time.perf_counter()
    with _GMSH_LOCK:
        own = not gmsh.isInitialized()
        if own:
            gmsh.initialize(readConfigFiles=False, interruptible=False)
        prev_model = None
        try:
            if not own:
                prev_model = gmsh.model.getCurrent()
            # options are process-global in gmsh: another mesher (or the caller) may have changed them,
            # so start from the defaults every time -- the mesh must not depend on what ran before
            gmsh.option.restoreDefaults()
            gmsh.model.add("phantombench_labelmesh")
            opt = gmsh.option.setNumber
            opt("General.Terminal", 0)
            opt("General.Verbosity", 0)
            opt("General.NumThreads", 1)
            opt("Mesh.MaxNumThreads2D", 1)
            opt("Mesh.Algorithm", algorithm)
            opt("Mesh.MeshSizeExtendFromBoundary", 0)
            opt("Mesh.MeshSizeFromPoints", 0)
            opt("Mesh.MeshSizeFromCurvature", 0)
            opt("Mesh.RandomSeed", 1)
            result = _build_and_mesh(
                gmsh, W_mm, H_mm, chain_pts, by_comp, comp_label, outer_bg, hf, hc, grading, ncls
            )
        finally:
            try:
                gmsh.model.remove()
            except Exception:
                pass
            if own:
                gmsh.finalize()
            elif prev_model:
                gmsh.model.setCurrent(prev_model)
    t_mesh = time.perf_counter()
    pts_mm, cells, clab, t_gen = result

    pts = pts_mm * 1e-3
    area = _signed_areas(pts, cells)
    flip = area < 0
    cells[flip] = cells[flip][:, [0, 2, 1]]
    quality = triangle_quality(pts, cells)
    quality.update(
        n_nodes=int(len(pts)),
        n_cells=int(len(cells)),
        n_interface_curves=int(len(chain_pts)),
        time_contour_s=t_contour - t0,
        time_geometry_s=t_geo0 - t_contour,
        time_gmsh_s=t_mesh - t_geo0,
        time_gmsh_generate_s=t_gen,
        time_total_s=time.perf_counter() - t0,
    )
    if disp is not None:
        quality["perturb_max_displacement_m"] = 1e-3 * max_disp
    return LabelMesh(
        points=pts,
        cells=cells,
        cell_labels=clab,
        width=float(width),
        height=float(height),
        quality=quality,
        pixel_to_xy=(s * 1e-3, x_off * 1e-3, y_off * 1e-3),
        n_classes=ncls,
        params=dict(
            brain_width_fraction=brain_width_fraction,
            pixel_size=s * 1e-3,
            h_fine=h_fine,
            h_coarse=h_coarse,
            grading=grading,
            smooth=smooth,
            min_region_px=min_region_px,
            contour_spacing=ds * 1e-3,
            min_corner_angle=min_corner_angle,
            algorithm=algorithm,
            perturbed=perturb is not None,
            perturb_amplitude=perturb_amplitude if perturb is not None else 0.0,
            perturb_length=perturb_length,
        ),
    )


def _signed(loop, ctags):
    out = []
    for i, g in loop:
        out += ctags[i] if g > 0 else [-t for t in reversed(ctags[i])]
    return out


def _build_and_mesh(gmsh, W, H, chain_pts, by_comp, comp_label, outer_bg, hf, hc, grading, ncls):
    geo = gmsh.model.geo
    # rectangle (counter-clockwise), size at corners irrelevant (size field only)
    c = [geo.addPoint(0, 0, 0), geo.addPoint(W, 0, 0), geo.addPoint(W, H, 0), geo.addPoint(0, H, 0)]
    rect = [geo.addLine(c[i], c[(i + 1) % 4]) for i in range(4)]
    rect_loop = geo.addCurveLoop(rect)

    # shared end points (junctions / loop starts)
    end_tag: dict[int, int] = {}
    ctags = []
    dist_points = []
    ends = []
    for pts, closed, v0, v1 in chain_pts:
        for v, p in ((v0, pts[0]), (v1, pts[-1])):
            if v not in end_tag:
                end_tag[v] = geo.addPoint(float(p[0]), float(p[1]), 0.0)
                dist_points.append(end_tag[v])
        inner = [geo.addPoint(float(x), float(y), 0.0) for x, y in pts[1:-1]]
        dist_points += inner
        tags = [end_tag[v0]] + inner + [end_tag[v1]]
        # a polyline: one straight curve per segment, split into ceil(length / h_fine)
        # elements (one when contour_spacing <= h_fine); fixing the counts skips gmsh's
        # (slow, per-curve) 1-D size evaluation
        nel = np.maximum(np.ceil(np.linalg.norm(np.diff(pts, axis=0), axis=1) / hf - 1e-9), 1).astype(int)
        lines = [geo.addLine(tags[k], tags[k + 1]) for k in range(len(tags) - 1)]
        for t_, n_ in zip(lines, nel.tolist()):
            geo.mesh.setTransfiniteCurve(t_, n_ + 1)
        ctags.append(lines)
        ends.append((v0, v1))

    surf_by_label: dict[int, list[int]] = {k: [] for k in range(ncls)}
    for comp_id, items in sorted(by_comp.items()):
        # assemble closed loops by following end points
        nxt: dict[int, list[tuple[int, int]]] = {}
        for ci, sg in items:
            a, b = ends[ci] if sg > 0 else ends[ci][::-1]
            nxt.setdefault(a, []).append((ci, sg))
        used = set()
        loops = []
        for ci, sg in items:
            if (ci, sg) in used:
                continue
            loop = []
            cur = (ci, sg)
            start_v = ends[ci][0] if sg > 0 else ends[ci][1]
            while cur not in used:
                used.add(cur)
                loop.append(cur)
                end_v = ends[cur[0]][1] if cur[1] > 0 else ends[cur[0]][0]
                if end_v == start_v:
                    break
                cand = [x for x in nxt.get(end_v, []) if x not in used]
                if len(cand) != 1:
                    raise MeshingError("could not close an interface loop")
                cur = cand[0]
            # signed area of the loop polyline
            poly = np.concatenate([chain_pts[i][0] if g > 0 else chain_pts[i][0][::-1] for i, g in loop])
            loops.append((loop, _polygon_area(poly)))
        outer = [lp for lp in loops if lp[1] > 0]
        holes = [lp for lp in loops if lp[1] <= 0]
        loop_tags = []
        if comp_id == outer_bg:
            if outer:
                raise MeshingError("outer background has a counter-clockwise interface loop")
            loop_tags.append(rect_loop)
        else:
            if len(outer) != 1:
                raise MeshingError(f"region {comp_id} has {len(outer)} outer loops")
            loop_tags.append(geo.addCurveLoop(_signed(outer[0][0], ctags)))
        for lp, _ in holes:
            loop_tags.append(geo.addCurveLoop(_signed(lp, ctags)))
        st = geo.addPlaneSurface(loop_tags)
        lab = comp_label[comp_id]
        surf_by_label[lab].append(st)
    if not by_comp:
        st = geo.addPlaneSurface([rect_loop])
        surf_by_label[0].append(st)
    geo.synchronize()
    names = {0: "background", 1: "gray", 2: "white"}
    for lab, ss in surf_by_label.items():
        if ss:
            gmsh.model.addPhysicalGroup(2, ss, lab + 1, name=names.get(lab, f"class{lab}"))

    # size field: h_fine at the interfaces, linear growth to h_coarse
    fld = gmsh.model.mesh.field
    fd = fld.add("Distance")
    fld.setNumbers(fd, "PointsList", dist_points)
    ft = fld.add("Threshold")
    fld.setNumber(ft, "InField", fd)
    fld.setNumber(ft, "SizeMin", hf)
    fld.setNumber(ft, "SizeMax", hc)
    fld.setNumber(ft, "DistMin", 0.5 * hf)
    fld.setNumber(ft, "DistMax", 0.5 * hf + (hc - hf) / grading)
    fld.setAsBackgroundMesh(ft)

    tg = time.perf_counter()
    gmsh.model.mesh.generate(2)
    t_gen = time.perf_counter() - tg

    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    coords = coords.reshape(-1, 3)[:, :2]
    cells_l, labs_l = [], []
    for lab, ss in surf_by_label.items():
        for st in ss:
            et, _, en = gmsh.model.mesh.getElements(2, st)
            for t_, nodes in zip(et, en):
                if t_ != 2:
                    raise MeshingError(f"unexpected element type {t_}")
                tri = nodes.reshape(-1, 3)
                cells_l.append(tri)
                labs_l.append(np.full(len(tri), lab, np.int64))
    tri = np.concatenate(cells_l).astype(np.int64)
    labs = np.concatenate(labs_l)
    # compact numbering: nodes used by triangles, in node-tag order
    used = np.unique(tri)
    pos = np.searchsorted(np.sort(node_tags), used)
    order = np.argsort(node_tags)
    xy = coords[order][pos]
    cells = np.searchsorted(used, tri).astype(np.int64)
    return np.ascontiguousarray(xy, dtype=np.float64), cells, labs, t_gen


__all__ = [
    "LabelMesh",
    "MeshingError",
    "mesh_label_image",
    "triangle_quality",
    "TAG_BACKGROUND",
    "TAG_GRAY",
    "TAG_WHITE",
    "FACET_BOTTOM",
    "FACET_RIGHT",
    "FACET_TOP",
    "FACET_LEFT",
    "ELUNET_WIDTH",
    "ELUNET_HEIGHT",
]
