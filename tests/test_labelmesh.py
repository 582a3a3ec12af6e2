"""Brain label slices and the label image -> conforming gmsh mesh pipeline."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy import ndimage

from phantombench.meshes.anatomy import BRAIN_SLICES_FILE, load_brain_slices
from phantombench.meshes.labelmesh import (
    ELUNET_HEIGHT,
    ELUNET_WIDTH,
    LabelMesh,
    mesh_label_image,
    triangle_quality,
)
from phantombench.meshes.rectangle import rectangle_points_cells

SLICES = (0, 6, 11)  # most posterior (two occipital lobes), mid (cerebellum), anterior-most (ventricles)


@pytest.fixture(scope="module")
def brain():
    return load_brain_slices()


@pytest.fixture(scope="module")
def meshes(brain):
    return {i: mesh_label_image(brain.labels[i]) for i in SLICES}


def _edges(cells):
    e = np.sort(np.concatenate([cells[:, [0, 1]], cells[:, [1, 2]], cells[:, [2, 0]]]), axis=1)
    return np.unique(e, axis=0, return_counts=True)


def assert_valid_rectangle_mesh(m: LabelMesh):
    p, c = m.points, m.cells
    assert p.dtype == np.float64 and p.shape[1] == 2
    assert c.dtype == np.int64 and c.shape[1] == 3
    assert m.cell_labels.shape == (len(c),)
    a = m.cell_areas()
    # counter-clockwise, no degenerate cell
    assert a.min() > 1e-6 * (m.width * m.height) / len(c)
    assert abs(a.sum() / (m.width * m.height) - 1.0) < 1e-9
    assert p[:, 0].min() >= 0 and p[:, 0].max() <= m.width
    assert p[:, 1].min() >= 0 and p[:, 1].max() <= m.height
    # every node used; conforming: an edge belongs to one cell (on the rectangle) or two
    assert len(np.unique(c)) == len(p)
    edges, count = _edges(c)
    assert count.max() == 2
    b = p[edges[count == 1]]  # (nb, 2 ends, 2)
    tol = 1e-12
    on_side = (
        (np.abs(b[..., 0]) < tol).all(1)
        | (np.abs(b[..., 0] - m.width) < tol).all(1)
        | (np.abs(b[..., 1]) < tol).all(1)
        | (np.abs(b[..., 1] - m.height) < tol).all(1)
    )
    assert on_side.all()
    perimeter = np.linalg.norm(b[:, 1] - b[:, 0], axis=1).sum()
    assert perimeter == pytest.approx(2 * (m.width + m.height), rel=1e-12)


# ------------------------------------------------------------------------ anatomy


def test_brain_slices_are_small_real_coronal_slices(brain):
    assert BRAIN_SLICES_FILE.stat().st_size < 200_000
    lab = brain.labels
    assert lab.dtype == np.uint8 and lab.ndim == 3 and len(brain) >= 10
    assert set(np.unique(lab)) == {0, 1, 2}
    # posterior half of the brain (which spans MNI y = -106 .. 73 mm), ordered
    assert np.all(np.diff(brain.y_mm) > 0)
    assert brain.y_mm.min() < -90 and brain.y_mm.max() < -10
    np.testing.assert_allclose(brain.voxel_size_mm, [1.0, 1.0])
    outer_gray, ventricle_slices = [], 0
    for s in lab:
        assert (s == 1).sum() > 500 and (s == 2).sum() > 300
        # cropped with a small margin: background border all round
        assert not s[0].any() and not s[-1].any() and not s[:, 0].any() and not s[:, -1].any()
        # cortex: the brain's outer rim is gray matter, not white
        bg, _ = ndimage.label(s == 0)
        outside = bg == bg[0, 0]
        rim = (s > 0) & ndimage.binary_dilation(outside)
        outer_gray.append(np.mean(s[rim] == 1))
        # ventricles: background holes inside the brain
        holes = np.bincount(bg[(bg > 0) & ~outside])
        ventricle_slices += int((holes > 20).any())
    assert min(outer_gray) > 0.9
    assert ventricle_slices >= 3


# ------------------------------------------------------------------------ meshing


@pytest.mark.parametrize("i", SLICES)
def test_brain_mesh_is_conforming_and_valid(meshes, i):
    m = meshes[i]
    assert m.width == ELUNET_WIDTH and m.height == ELUNET_HEIGHT
    assert_valid_rectangle_mesh(m)
    assert set(np.unique(m.cell_labels)) == {0, 1, 2}
    assert 4_000 < m.quality["n_nodes"] < 20_000


@pytest.mark.parametrize("i", SLICES)
def test_region_areas_match_label_image(brain, meshes, i):
    m = meshes[i]
    s = m.pixel_to_xy[0]
    areas = m.region_areas()
    for k in (1, 2):
        image_area = np.sum(brain.labels[i] == k) * s * s
        assert areas[k] == pytest.approx(image_area, rel=0.03), k
    # the brain is scaled to 80 % of the width
    xy = m.points[np.unique(m.cells[m.cell_labels > 0])]
    assert np.ptp(xy[:, 0]) == pytest.approx(0.8 * m.width, rel=0.03)
    assert np.mean(xy[:, 0]) == pytest.approx(0.5 * m.width, rel=0.05)


@pytest.mark.parametrize("i", SLICES)
def test_mesh_quality_bounds(meshes, i):
    q = meshes[i].quality
    again = triangle_quality(meshes[i].points, meshes[i].cells)
    assert q["min_angle_deg"] == pytest.approx(again["min_angle_deg"])
    assert q["min_angle_deg"] > 15.0  # observed 21-32 degrees over all 12 slices
    assert q["angle_p01_deg"] > 30.0
    assert q["q05_quality"] > 0.75


@pytest.mark.parametrize("i", SLICES)
def test_cell_labels_agree_with_label_image(brain, meshes, i):
    m = meshes[i]
    centroids = m.points[m.cells].mean(axis=1)
    agree = m.labels_from_image(brain.labels[i], centroids) == m.cell_labels
    assert agree.mean() > 0.95


def test_meshing_is_deterministic(brain):
    lab = brain.labels[4]
    a = mesh_label_image(lab)
    b = mesh_label_image(lab)
    for x, y in ((a.points, b.points), (a.cells, b.cells), (a.cell_labels, b.cell_labels)):
        np.testing.assert_array_equal(x, y)
    c = mesh_label_image(lab, perturb=np.random.default_rng(7))
    d = mesh_label_image(lab, perturb=np.random.default_rng(7))
    np.testing.assert_array_equal(c.points, d.points)
    np.testing.assert_array_equal(c.cells, d.cells)
    np.testing.assert_array_equal(c.cell_labels, d.cell_labels)


def test_perturbation_changes_shape_but_keeps_areas(brain):
    lab = brain.labels[8]
    base = mesh_label_image(lab)
    ra = base.region_areas()
    amp = 2.0e-3
    seen = []
    for seed in (1, 2):
        m = mesh_label_image(lab, perturb=np.random.default_rng(seed), perturb_amplitude=amp)
        assert_valid_rectangle_mesh(m)
        d = m.quality["perturb_max_displacement_m"]
        assert 0.5 * amp < d <= amp * (1 + 1e-9)
        r = m.region_areas()
        for k in (1, 2):
            assert 0.85 < r[k] / ra[k] < 1.15
            assert abs(r[k] / ra[k] - 1.0) > 1e-4  # the shape did change
        assert m.quality["min_angle_deg"] > 15.0
        seen.append(m.points)
    assert len(seen[0]) != len(seen[1]) or not np.array_equal(seen[0], seen[1])


def test_nested_regions_and_holes_on_a_synthetic_image():
    """Gray ring around a white disk with a background hole holding a gray island:
    areas must match the exact disk areas."""
    n, s = 200, 0.25e-3  # 50 mm image
    yy, xx = np.mgrid[0:n, 0:n]
    r = np.hypot(xx - 99.5, yy - 99.5)
    lab = np.zeros((n, n), np.uint8)
    lab[r < 80] = 1
    lab[r < 50] = 2
    lab[r < 20] = 0
    lab[r < 8] = 1
    m = mesh_label_image(lab, width=60e-3, height=60e-3, pixel_size=s, h_fine=0.4e-3, h_coarse=3e-3)
    assert_valid_rectangle_mesh(m)
    a = m.region_areas()
    exact_gray = np.pi * (80**2 - 50**2 + 8**2) * s * s
    exact_white = np.pi * (50**2 - 20**2) * s * s
    assert a[1] == pytest.approx(exact_gray, rel=0.01)
    assert a[2] == pytest.approx(exact_white, rel=0.01)
    assert a[0] == pytest.approx(60e-3**2 - exact_gray - exact_white, rel=0.01)
    # the hole is background and the island inside it gray
    centre = np.array([[30e-3, 30e-3], [30e-3 + 14 * s, 30e-3]])
    cen = m.points[m.cells].mean(1)
    near = [np.argmin(np.linalg.norm(cen - c, axis=1)) for c in centre]
    assert m.cell_labels[near].tolist() == [1, 0]


def test_extra_classes_such_as_painted_inclusions(brain):
    lab = brain.labels[6].copy()
    yy, xx = np.mgrid[0 : lab.shape[0], 0 : lab.shape[1]]
    lab[np.hypot(yy - 60, xx - 50) <= 6] = 3  # a disc inside the brain, crossing gray/white
    m = mesh_label_image(lab)
    assert_valid_rectangle_mesh(m)
    assert m.n_classes == 4 and set(np.unique(m.cell_labels)) == {0, 1, 2, 3}
    s = m.pixel_to_xy[0]
    assert m.region_areas()[3] == pytest.approx(np.sum(lab == 3) * s * s, rel=0.03)


def test_tiny_islands_are_dropped():
    lab = np.zeros((120, 120), np.uint8)
    lab[20:100, 20:100] = 1
    lab[50:53, 50:53] = 2  # 9-pixel white speck inside gray
    lab[30:33, 85:88] = 0  # 9-pixel hole in gray
    kw = dict(width=50e-3, height=50e-3, pixel_size=0.4e-3)
    kept = mesh_label_image(lab, min_region_px=2, **kw)  # small enough to survive
    assert set(np.unique(kept.cell_labels)) == {0, 1, 2}
    assert kept.region_areas()[1] < (80 * 0.4e-3) ** 2 - 10 * 0.4e-3**2
    m = mesh_label_image(lab, min_region_px=12, **kw)
    assert set(np.unique(m.cell_labels)) == {0, 1}
    assert m.region_areas()[1] == pytest.approx((80 * 0.4e-3) ** 2, rel=0.01)


def test_to_dolfinx_tags_and_areas(meshes):
    import mpi4py.MPI as MPI  # noqa: F401
    import dolfinx.fem as fem
    import ufl

    m = meshes[SLICES[1]]
    mesh, cell_tags = m.to_dolfinx(MPI.COMM_SELF)
    facet_tags = m.facet_tags(mesh)
    assert mesh.topology.index_map(2).size_local == len(m.cells)
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=cell_tags)
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=facet_tags)
    one = fem.Constant(mesh, 1.0)
    areas = m.region_areas()
    for label in (0, 1, 2):
        a = fem.assemble_scalar(fem.form(one * dx(label + 1)))
        assert a == pytest.approx(areas[label], rel=1e-12)
    for tag, length in ((1, m.width), (2, m.height), (3, m.width), (4, m.height)):
        assert fem.assemble_scalar(fem.form(one * ds(tag))) == pytest.approx(length, rel=1e-12)


def test_safe_with_a_caller_owned_gmsh_session_and_threads(brain):
    import gmsh

    lab = brain.labels[1]
    ref = mesh_label_image(lab)
    gmsh.initialize(readConfigFiles=False, interruptible=False)
    try:
        gmsh.model.add("callers_model")
        m = mesh_label_image(lab)
        assert gmsh.isInitialized() and gmsh.model.getCurrent() == "callers_model"
    finally:
        gmsh.finalize()
    np.testing.assert_array_equal(m.cells, ref.cells)
    out = [None, None]

    def work(k):
        out[k] = mesh_label_image(lab)

    th = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    for o in out:
        np.testing.assert_array_equal(o.points, ref.points)


def test_rectangle_points_cells():
    p, c = rectangle_points_cells(0.3, 0.2, 0.04)
    u, v = p[c[:, 1]] - p[c[:, 0]], p[c[:, 2]] - p[c[:, 0]]
    a = 0.5 * (u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])
    assert a.min() > 0
    assert a.sum() == pytest.approx(0.06, rel=1e-12)
    assert len(c) == 2 * 8 * 5


def test_coarse_random_slice_with_a_near_degenerate_loop_still_meshes():
    """A regression of the mesher's refactor: with this coarse mesh (brain 'random', seed 0) an interface loop of
    nearly zero area flipped from outer boundary to hole when its signed area was summed another way."""
    from phantombench.generators.base import sample_rng
    from phantombench.registry import get_generator

    gen = get_generator("brain-slice")
    cfg = gen.config("random", {"h_fine": 0.0025, "h_coarse": 0.006, "grid_h": 36, "grid_w": 26, "order": 1})
    s = gen.sample(cfg, sample_rng(0, 0), 0)
    assert s.fields["E"].shape == (36, 26) and np.isfinite(s.fields["E"][s.fields["mask"]]).all()
