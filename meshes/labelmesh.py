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

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from phantombench.meshes.anatomy import BACKGROUND, GRAY, WHITE
from phantombench.meshes.geometry import TriangleMesh, triangle_signed_areas
from phantombench.meshes.gmsh_session import gmsh_session
from phantombench.meshes.label_contours import (STRUCT6, Displacement, MeshingError, chains, clean_labels,
                                                marching_triangles, relax_corners, resample)

# cell tags in dolfinx meshtags and gmsh physical groups: label + 1 (gmsh needs tags > 0)
TAG_BACKGROUND, TAG_GRAY, TAG_WHITE = BACKGROUND + 1, GRAY + 1, WHITE + 1
# facet tags of the rectangle sides (see LabelMesh.facet_tags)
FACET_BOTTOM, FACET_RIGHT, FACET_TOP, FACET_LEFT = 1, 2, 3, 4

ELUNET_WIDTH = 76.6e-3  # m
ELUNET_HEIGHT = 108.8e-3  # m (load direction, y)

@dataclass
class LabelMesh(TriangleMesh):
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


def triangle_quality(points: np.ndarray, cells: np.ndarray) -> dict:
    """Min angle (degrees) and radius-ratio statistics (2 r_in / r_circ)."""
    a, b, c = points[cells[:, 0]], points[cells[:, 1]], points[cells[:, 2]]
    la = np.linalg.norm(b - c, axis=1)
    lb = np.linalg.norm(c - a, axis=1)
    lc = np.linalg.norm(a - b, axis=1)
    area = np.abs(triangle_signed_areas(points, cells))
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
        slightly better shaped triangles at some extra cost; scripts/bench_labelmesh.py measures both).

    Same inputs and same Generator state give identical arrays.
    """
    t0 = time.perf_counter()
    labels, ncls = _check_labels(labels)
    W_mm, H_mm = 1e3 * width, 1e3 * height
    hf, hc = 1e3 * h_fine, 1e3 * h_coarse
    if not (0 < hf <= hc):
        raise ValueError("need 0 < h_fine <= h_coarse")
    ds = hf if contour_spacing is None else 1e3 * contour_spacing
    fh = brain_width_fraction if brain_height_fraction is None else brain_height_fraction
    net = _interface_network(labels, smooth, min_region_px, ncls)
    s, x_off, y_off = _placement(labels, W_mm, H_mm, brain_width_fraction, fh, pixel_size)
    t_contour = time.perf_counter()
    vmm = np.empty_like(net.verts)  # pixel units (x = col_p, y = -row_p) of the padded image -> mm
    vmm[:, 0] = x_off + s * (net.verts[:, 0] - net.pad)
    vmm[:, 1] = y_off + s * (net.verts[:, 1] + net.pad)
    chain_list = chains(len(net.verts), net.segs, net.n_edge_vertices)
    max_disp = None
    if perturb is not None:
        rng = perturb if isinstance(perturb, np.random.Generator) else np.random.default_rng(perturb)
        disp = Displacement(rng, 1e3 * perturb_amplitude, 1e3 * perturb_length)
        vmm, max_disp = _perturb(vmm, net.segs, disp, 2.0 * hf, W_mm, H_mm)
    chain_pts, chain_lr = _chain_polylines(net, chain_list, vmm, ds, min_corner_angle, W_mm, H_mm)
    t_geo0 = time.perf_counter()
    pts_mm, cells, clab, t_gen = _mesh_with_gmsh(W_mm, H_mm, chain_pts, _loops_by_component(chain_lr), net,
                                                 hf, hc, grading, ncls, algorithm)
    times = dict(time_contour_s=t_contour - t0, time_geometry_s=t_geo0 - t_contour,
                 time_gmsh_s=time.perf_counter() - t_geo0, time_gmsh_generate_s=t_gen)
    params = dict(brain_width_fraction=brain_width_fraction, pixel_size=s * 1e-3, h_fine=h_fine, h_coarse=h_coarse,
                  grading=grading, smooth=smooth, min_region_px=min_region_px, contour_spacing=ds * 1e-3,
                  min_corner_angle=min_corner_angle, algorithm=algorithm, perturbed=perturb is not None,
                  perturb_amplitude=perturb_amplitude if perturb is not None else 0.0, perturb_length=perturb_length)
    return _result(pts_mm, cells, clab, width, height, (s * 1e-3, x_off * 1e-3, y_off * 1e-3), ncls, params,
                   times, len(chain_pts), max_disp, t0)


# ----------------------------------------------------------------------------- stages


@dataclass
class _Network:
    """The interface network of the cleaned, padded label image (pixel units, see marching_triangles)."""

    verts: np.ndarray        # (V, 2) interface vertices, x = col, y = -row of the padded image
    segs: np.ndarray         # (S, 2) vertex ids
    n_edge_vertices: int     # vertices [0, n) sit on grid edges, the rest are junctions
    seg_left: np.ndarray     # (S,) component of the cleaned partition left of each segment
    seg_right: np.ndarray
    comp_label: list[int]    # class of each component
    outer_bg: int            # the component of the padded border (background)
    pad: int                 # padding added around the input image [px]


def _check_labels(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """The label image as an array, and the number of classes (at least 3)."""
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
    return labels, ncls


def _placement(labels: np.ndarray, W_mm: float, H_mm: float, fw: float, fh: float,
               pixel_size: float | None) -> tuple[float, float, float]:
    """(mm per pixel, x_off, y_off): pixel (row, col) of the input sits at (x_off + s col, y_off - s row) mm,
    the brain's bounding box centred in the rectangle."""
    rows = np.nonzero((labels > 0).any(axis=1))[0]
    cols = np.nonzero((labels > 0).any(axis=0))[0]
    bw = cols[-1] - cols[0] + 1
    bh = rows[-1] - rows[0] + 1
    s = min(fw * W_mm / bw, fh * H_mm / bh) if pixel_size is None else 1e3 * pixel_size
    cx = 0.5 * (cols[0] + cols[-1])
    cy = 0.5 * (rows[0] + rows[-1])
    return s, 0.5 * W_mm - s * cx, 0.5 * H_mm + s * cy


def _interface_network(labels: np.ndarray, smooth: float, min_region_px: int, ncls: int) -> _Network:
    """Pad, smooth and clean the classes, contour them, and find which component lies on each side."""
    pad = int(np.ceil(3 * smooth)) + 2
    soft, hard = clean_labels(np.pad(labels.astype(np.int64), pad), smooth, min_region_px, ncls)
    if not (hard > 0).any():
        raise MeshingError("no brain left after smoothing/cleaning")
    verts, segs, lnode, rnode, n_ev = marching_triangles(soft, hard)
    comp = np.full(hard.shape, -1, np.int64)  # components of the cleaned partition (faces of the graph)
    comp_label: list[int] = []
    ncomp = 0
    for k in range(ncls):
        c, n = ndimage.label(hard == k, structure=STRUCT6)
        comp[c > 0] = c[c > 0] - 1 + ncomp
        comp_label += [k] * n
        ncomp += n
    comp = comp.ravel()
    return _Network(verts, segs, n_ev, comp[lnode], comp[rnode], comp_label, int(comp[0]), pad)


def _perturb(vmm: np.ndarray, segs: np.ndarray, disp: Displacement, margin: float, W_mm: float,
             H_mm: float) -> tuple[np.ndarray, float]:
    """Move the dense marching vertices (junctions move with every chain they end) by ``disp``, shrunk until the
    brain keeps ``margin`` from the rectangle (zero after 20 tries); returns them and the largest move [mm]."""
    used_v = np.unique(segs)
    disp.fit(vmm[used_v])
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
    return vmm + dv, float(np.linalg.norm(dv[used_v], axis=1).max())


def _chain_polylines(net: _Network, chain_list, vmm: np.ndarray, ds: float, min_corner_angle: float,
                     W_mm: float, H_mm: float):
    """Each chain resampled at ``ds`` with rounded corners: [(points, closed, v0, v1)], and the
    (left, right) components of each chain in its direction."""
    chain_pts, chain_lr = [], []
    for path, s_first, fwd in chain_list:
        closed = path[0] == path[-1]
        rp = resample(vmm[path], ds, closed)
        if min_corner_angle > 0:
            # alternate corner rounding and arc-length resampling (rounding alone leaves
            # short segments at former cusps)
            for _ in range(4):
                rp = resample(relax_corners(rp, closed and path[0] < net.n_edge_vertices, min_corner_angle, 10),
                              ds, closed)
        chain_pts.append((rp, closed, path[0], path[-1]))
        l_, r_ = net.seg_left[s_first], net.seg_right[s_first]
        chain_lr.append((l_, r_) if fwd else (r_, l_))
    allp = np.concatenate([c[0] for c in chain_pts])
    if allp[:, 0].min() <= 0 or allp[:, 1].min() <= 0 or allp[:, 0].max() >= W_mm or allp[:, 1].max() >= H_mm:
        raise MeshingError("brain does not fit inside the rectangle")
    return chain_pts, chain_lr


def _loops_by_component(chain_lr) -> dict[int, list[tuple[int, int]]]:
    """Component -> its chains, oriented (+1 / -1) so that the component lies on their left."""
    by_comp: dict[int, list[tuple[int, int]]] = {}
    for ci, (l_, r_) in enumerate(chain_lr):
        by_comp.setdefault(int(l_), []).append((ci, +1))
        by_comp.setdefault(int(r_), []).append((ci, -1))
    return by_comp


def _result(pts_mm, cells, clab, width, height, pixel_to_xy, ncls, params, times, n_curves, max_disp,
            t0) -> LabelMesh:
    """The LabelMesh in metres, every triangle counter-clockwise, with its quality and timings."""
    pts = pts_mm * 1e-3
    flip = triangle_signed_areas(pts, cells) < 0
    cells[flip] = cells[flip][:, [0, 2, 1]]
    quality = triangle_quality(pts, cells)
    quality.update(n_nodes=int(len(pts)), n_cells=int(len(cells)), n_interface_curves=int(n_curves), **times,
                   time_total_s=time.perf_counter() - t0)
    if max_disp is not None:
        quality["perturb_max_displacement_m"] = 1e-3 * max_disp
    return LabelMesh(points=pts, cells=cells, cell_labels=clab, width=float(width), height=float(height),
                     quality=quality, pixel_to_xy=pixel_to_xy, n_classes=ncls, params=params)


# ----------------------------------------------------------------------------- gmsh


def _mesh_with_gmsh(W, H, chain_pts, by_comp, net: _Network, hf, hc, grading, ncls, algorithm):
    """Build the geometry (rectangle, interface polylines, one plane surface per component) and mesh it."""
    options = {"General.NumThreads": 1, "Mesh.MaxNumThreads2D": 1, "Mesh.Algorithm": algorithm,
               "Mesh.MeshSizeExtendFromBoundary": 0, "Mesh.MeshSizeFromPoints": 0,
               "Mesh.MeshSizeFromCurvature": 0, "Mesh.RandomSeed": 1}
    with gmsh_session("phantombench_labelmesh", options) as gmsh:
        geo = gmsh.model.geo
        # rectangle (counter-clockwise), size at corners irrelevant (size field only)
        c = [geo.addPoint(0, 0, 0), geo.addPoint(W, 0, 0), geo.addPoint(W, H, 0), geo.addPoint(0, H, 0)]
        rect_loop = geo.addCurveLoop([geo.addLine(c[i], c[(i + 1) % 4]) for i in range(4)])
        ctags, dist_points, ends = _add_chains(geo, chain_pts, hf)
        surf_by_label = _add_surfaces(geo, by_comp, chain_pts, ctags, ends, rect_loop, net, ncls)
        geo.synchronize()
        names = {BACKGROUND: "background", GRAY: "gray", WHITE: "white"}
        for lab, ss in surf_by_label.items():
            if ss:
                gmsh.model.addPhysicalGroup(2, ss, lab + 1, name=names.get(lab, f"class{lab}"))
        _size_field(gmsh, dist_points, hf, hc, grading)
        tg = time.perf_counter()
        gmsh.model.mesh.generate(2)
        t_gen = time.perf_counter() - tg
        return (*_triangles(gmsh, surf_by_label), t_gen)


def _add_chains(geo, chain_pts, hf):
    """One polyline per chain, end points shared between chains; returns the line tags per chain, the
    interface point tags (for the size field) and the (v0, v1) end vertices per chain."""
    end_tag: dict[int, int] = {}
    ctags, dist_points, ends = [], [], []
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
    return ctags, dist_points, ends


def _close_loops(items, ends, chain_pts):
    """The closed loops of one component from its oriented chains: [(loop, signed area)]."""
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
        poly = np.concatenate([chain_pts[i][0] if g > 0 else chain_pts[i][0][::-1] for i, g in loop])
        loops.append((loop, _loop_area(poly)))
    return loops


def _loop_area(p: np.ndarray) -> float:
    """Signed area of an interface loop in the dot-product form this mesher has always used. Not
    geometry.signed_area: the two forms round differently, and a near-degenerate loop of a coarse mesh (brain
    'random', seed 0, h_fine 0.0025) then flips from outer boundary to hole and the region cannot be meshed."""
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _signed(loop, ctags):
    out = []
    for i, g in loop:
        out += ctags[i] if g > 0 else [-t for t in reversed(ctags[i])]
    return out


def _add_surfaces(geo, by_comp, chain_pts, ctags, ends, rect_loop, net: _Network, ncls):
    """One plane surface per component (its outer loop, or the rectangle, plus its holes); label -> tags."""
    surf_by_label: dict[int, list[int]] = {k: [] for k in range(ncls)}
    for comp_id, items in sorted(by_comp.items()):
        loops = _close_loops(items, ends, chain_pts)
        outer = [lp for lp in loops if lp[1] > 0]
        holes = [lp for lp in loops if lp[1] <= 0]
        if comp_id == net.outer_bg:
            if outer:
                raise MeshingError("outer background has a counter-clockwise interface loop")
            loop_tags = [rect_loop]
        else:
            if len(outer) != 1:
                raise MeshingError(f"region {comp_id} has {len(outer)} outer loops")
            loop_tags = [geo.addCurveLoop(_signed(outer[0][0], ctags))]
        loop_tags += [geo.addCurveLoop(_signed(lp, ctags)) for lp, _ in holes]
        surf_by_label[net.comp_label[comp_id]].append(geo.addPlaneSurface(loop_tags))
    if not by_comp:
        surf_by_label[0].append(geo.addPlaneSurface([rect_loop]))
    return surf_by_label


def _size_field(gmsh, dist_points, hf, hc, grading):
    """Background size: h_fine at the interfaces, growing linearly (slope ``grading``) to h_coarse."""
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


def _triangles(gmsh, surf_by_label):
    """(points mm, cells, labels) of the meshed surfaces, nodes numbered compactly in node-tag order."""
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
    used = np.unique(tri)
    pos = np.searchsorted(np.sort(node_tags), used)
    order = np.argsort(node_tags)
    xy = coords[order][pos]
    cells = np.searchsorted(used, tri).astype(np.int64)
    return np.ascontiguousarray(xy, dtype=np.float64), cells, labs


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
