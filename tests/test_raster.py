"""Tests of the rasteriser (generators/raster.py): exact Sibson, cell lookup, FE evaluation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from phantombench.generators.raster import (
    Grid,
    Sibson,
    cell_to_grid,
    locate_cells,
    sibson_weights,
)


def _lin(x, y):
    return 0.3 + 17.0 * x - 29.0 * y


def _rect_nodes(nx: int, ny: int, box=(-0.05, 0.05, 0.0, 0.142)) -> np.ndarray:
    X, Y = np.meshgrid(np.linspace(box[0], box[1], nx), np.linspace(box[2], box[3], ny))
    return np.column_stack([X.ravel(), Y.ravel()])


def _check_weights(W, pts, xy, inside):
    """Non-negative, rows summing to 1, reproducing the query coordinates."""
    W = W.tocsr()
    rows = np.asarray(W.sum(axis=1)).ravel()
    assert W.data.min() >= 0.0
    assert np.abs(rows[inside] - 1.0).max() < 1e-14
    assert np.all(rows[~inside] == 0.0)
    assert np.abs((W @ pts)[inside] - xy[inside]).max() < 1e-15 * 10 * np.abs(pts).max() + 1e-17


# ------------------------------------------------------------------------------------ Grid
def test_grid_fit_edges_and_centres():
    g = Grid.fit(-0.05, 0.05, 0.0, 0.142, 142, 100)
    X, Y = g.centres()
    assert X.shape == Y.shape == (142, 100)
    assert X[0, 0] == -0.05 and Y[0, 0] == 0.142            # row 0 at the top
    assert abs(X[0, -1] - 0.05) < 1e-17 and abs(Y[-1, 0]) < 1e-17
    assert np.allclose(np.diff(X[0]), 0.1 / 99) and np.allclose(np.diff(Y[:, 0]), -0.142 / 141)
    g2 = Grid.fit(0.0, 1.0, 0.0, 2.0, 4, 5, include_edges=False)
    X2, Y2 = g2.centres()
    assert np.allclose(X2[0], [0.1, 0.3, 0.5, 0.7, 0.9]) and np.allclose(Y2[:, 0], [1.75, 1.25, 0.75, 0.25])
    assert np.array_equal(g2.points()[7], [X2[1, 2], Y2[1, 2]])


# ------------------------------------------------------------------------------------ Sibson
def test_sibson_matches_metpy_random():
    """Exact Sibson: MetPy's natural_neighbor_to_grid (same definition, pure Python) to 1e-9."""
    from metpy.interpolate import natural_neighbor_to_grid

    rng = np.random.default_rng(42)
    pts = rng.random((300, 2)) * [2.0, 1.0]
    vals = np.sin(3 * pts[:, 0]) * np.cos(5 * pts[:, 1]) + rng.normal(0, 0.1, 300)
    gx, gy = np.meshgrid(np.linspace(0.25, 1.75, 31), np.linspace(0.15, 0.85, 23))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = natural_neighbor_to_grid(pts[:, 0], pts[:, 1], vals, gx, gy)
    W, inside = sibson_weights(pts, np.column_stack([gx.ravel(), gy.ravel()]))
    assert inside.all() and np.isfinite(ref).all()
    diff = np.abs((W @ vals).reshape(gx.shape) - ref)
    assert diff.max() < 1e-9
    # Sibson is not linear interpolation: the two differ by far more than the tolerance
    from scipy.interpolate import LinearNDInterpolator
    assert np.abs(LinearNDInterpolator(pts, vals)(gx, gy) - ref).max() > 1e-3


def test_sibson_matches_metpy_structured_cocircular():
    """Structured nodes: every square's 4 corners are cocircular; queries on mesh lines and at
    square centres (degenerate for the cavity) still match MetPy."""
    from metpy.interpolate import natural_neighbor_to_points

    pts = _rect_nodes(9, 7, (0.0, 1.0, 0.0, 1.0))
    vals = np.exp(pts[:, 0]) * np.sin(4 * pts[:, 1])
    hx, hy = 1 / 8, 1 / 6
    q = np.array([[3.5 * hx, 2.5 * hy], [2 * hx, 3.3 * hy], [4.7 * hx, 1 * hy],      # centre, lines
                  [0.31, 0.47], [5.5 * hx, 4.5 * hy], [6.2 * hx, 2.9 * hy]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = natural_neighbor_to_points(pts, vals, q)
    W, inside = sibson_weights(pts, q)
    assert inside.all() and np.isfinite(ref).all()
    assert np.abs(W @ vals - ref).max() < 1e-9
    _check_weights(W, pts, q, inside)


@pytest.mark.parametrize("nx,ny,H,W", [(11, 7, 142, 100), (11, 7, 7, 11), (11, 7, 13, 21),
                                       (21, 31, 61, 41), (21, 31, 37, 23), (6, 5, 142, 100)])
def test_linear_exact_structured_rectangle(nx, ny, H, W):
    """Linear fields exactly, at every pixel centre including the rectangle's edges and corners
    (hull edges), at nodes (H, W multiples) and at cocircular square centres."""
    pts = _rect_nodes(nx, ny)
    g = Grid.fit(-0.05, 0.05, 0.0, 0.142, H, W)
    sib = Sibson(pts, g)
    X, Y = g.centres()
    assert sib.inside.all()
    assert np.abs(sib(_lin(pts[:, 0], pts[:, 1])) - _lin(X, Y)).max() < 1e-12
    _check_weights(sib.weights, pts, g.points(), sib.inside.ravel())


def test_linear_exact_random_interior_structured_boundary():
    rng = np.random.default_rng(1)
    box = _rect_nodes(23, 31)
    on_edge = (np.isclose(box[:, 0], -0.05) | np.isclose(box[:, 0], 0.05)
               | np.isclose(box[:, 1], 0.0) | np.isclose(box[:, 1], 0.142))
    pts = np.vstack([box[on_edge], rng.random((3000, 2)) * [0.098, 0.140] + [-0.049, 0.001]])
    g = Grid.fit(-0.05, 0.05, 0.0, 0.142, 142, 100)
    sib = Sibson(pts, g)
    X, Y = g.centres()
    assert sib.inside.all()
    assert np.abs(sib(_lin(pts[:, 0], pts[:, 1])) - _lin(X, Y)).max() < 1e-12
    _check_weights(sib.weights, pts, g.points(), sib.inside.ravel())
    # a quadratic is NOT reproduced (Sibson is only linear-exact): guards against a trivial pass
    quad = sib(pts[:, 0] ** 2 + pts[:, 1] ** 2)
    assert np.abs(quad - (X ** 2 + Y ** 2)).max() > 1e-8


def test_weights_random_and_p2_like_nodes():
    """Weights: >= 0, sum 1, reproduce the query point; random nodes and a node set with
    collinear/cocircular triples (vertices + edge midpoints of a structured triangle mesh)."""
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(7)
    X, Y = np.meshgrid(np.linspace(0, 1, 17), np.linspace(0, 1, 21))   # P2 dofs of a 8x10 mesh
    p2 = np.column_stack([X.ravel(), Y.ravel()])
    cent = _rect_nodes(8, 10, (1 / 24, 7 / 8 + 1 / 24, 1 / 30, 9 / 10 + 1 / 30))  # triangle centroids
    for pts in (rng.random((2000, 2)), np.vstack([p2, cent[::3]])):
        xy = rng.random((5000, 2)) * 1.2 - 0.1                        # some outside
        W, inside = sibson_weights(pts, xy)
        assert np.array_equal(inside, Delaunay(pts).find_simplex(xy) >= 0)
        _check_weights(W, pts, xy, inside)


def test_hull_edges_nodes_and_outside():
    rng = np.random.default_rng(3)
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    pts = np.vstack([corners, [[0.4, 0.0]], rng.random((200, 2)) * 0.98 + 0.01])
    f = np.sin(3 * pts[:, 0]) + pts[:, 1] ** 2 + 0.5
    q = np.array([[0.7, 0.0],        # on hull edge (0.4,0)-(1,0): linear between those nodes
                  [0.0, 0.3],        # on hull edge (0,0)-(0,1)
                  [1.0, 1.0],        # corner node
                  [0.4, 0.0],        # hull node
                  pts[10],           # interior node
                  [-1e-17, 0.3],     # outside by rounding only -> on the hull
                  [1.2, 0.5], [0.5, -1e-6], [-1e-12, 0.5]])                   # outside: NaN
    W, inside = sibson_weights(pts, q)
    out = np.where(inside, W @ f, np.nan)
    assert inside.tolist() == [True] * 6 + [False] * 3
    assert abs(out[0] - (0.5 * f[4] + 0.5 * f[1])) < 1e-14
    assert abs(out[1] - (0.7 * f[0] + 0.3 * f[3])) < 1e-14
    assert abs(out[2] - f[2]) < 1e-14 and abs(out[3] - f[4]) < 1e-14 and abs(out[4] - f[10]) < 1e-14
    assert abs(out[5] - out[1]) < 1e-14
    # Sibson is continuous up to the hull: approaching the edge converges to the edge value
    for d in (1e-3, 1e-6, 1e-9, 1e-12, 1e-15):
        Wd, ins = sibson_weights(pts, np.array([[0.7, d], [d, 0.3]]))
        assert ins.all()
        assert np.abs(Wd @ f - out[:2]).max() < 50 * d + 1e-14


def test_cocircular_results_continuous_under_jitter():
    """Structured nodes are exactly cocircular; jittering them by 1e-10 (general position) must
    change the interpolant by O(1e-10) away from the hull (Sibson is continuous in the nodes there;
    on the hull itself a jitter makes collinear hull nodes non-convex, a genuine discontinuity)."""
    rng = np.random.default_rng(5)
    pts = _rect_nodes(26, 36)
    g = Grid.fit(-0.05, 0.05, 0.0, 0.142, 142, 100)
    f = np.sin(40 * pts[:, 0]) * np.cos(30 * pts[:, 1])
    a = Sibson(pts, g)(f)
    b = Sibson(pts + 1e-10 * rng.standard_normal(pts.shape), g)(f)
    assert np.abs(a[1:-1, 1:-1] - b[1:-1, 1:-1]).max() < 1e-7
    # and the interpolant is a genuinely smooth-ish field, not constant
    assert np.nanstd(a) > 0.1


def test_mask_multifield_complex_and_errors():
    rng = np.random.default_rng(11)
    pts = rng.random((500, 2))
    g = Grid.fit(0, 1, 0, 1, 30, 40)
    mask = np.zeros(g.shape, bool)
    mask[5:25, 10:30] = True
    full, masked = Sibson(pts, g), Sibson(pts, g, mask=mask)
    vals = rng.standard_normal((500, 3))
    F, M = full(vals), masked(vals)
    assert F.shape == M.shape == (3, 30, 40)
    assert np.isnan(M[:, ~mask]).all()
    assert np.abs(M[:, mask] - F[:, mask]).max() == 0.0
    assert masked.inside.sum() == (mask & full.inside).sum()
    for k in range(3):
        assert np.array_equal(full(vals[:, k]), F[k], equal_nan=True)
    c = full(vals[:, 0] + 1j * vals[:, 1])
    assert np.iscomplexobj(c)
    assert np.allclose(c[full.inside], (F[0] + 1j * F[1])[full.inside], rtol=0, atol=1e-15)
    assert np.isnan(c[~full.inside]).all() and (~full.inside).any()
    with pytest.raises(ValueError):
        full(vals[:-1])
    with pytest.raises(ValueError):
        Sibson(np.vstack([pts, pts[:1]]), g)           # duplicate node


# ------------------------------------------------------------------------------------ cells
def _brute_containing(P, cells, xy, tol=1e-12):
    a, b, c = P[cells[:, 0]], P[cells[:, 1]], P[cells[:, 2]]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    dx = xy[:, None, 0] - a[None, :, 0]
    dy = xy[:, None, 1] - a[None, :, 1]
    l1 = (dx * (c[:, 1] - a[:, 1]) - dy * (c[:, 0] - a[:, 0])) / det
    l2 = ((b[:, 0] - a[:, 0]) * dy - (b[:, 1] - a[:, 1]) * dx) / det
    return np.minimum(np.minimum(l1, l2), 1 - l1 - l2) >= -tol        # (Q, M)


def test_locate_cells_brute_force_with_holes_and_ties():
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(2)
    pts = np.vstack([rng.random((400, 2)), _rect_nodes(5, 5, (0, 1, 0, 1))])
    cells = Delaunay(pts).simplices
    keep = rng.random(len(cells)) > 0.1                                 # holes
    cells = cells[keep][:, ::-1]                                        # clockwise on purpose
    g = Grid.fit(-0.05, 1.05, -0.05, 1.05, 53, 61)
    idx = locate_cells(pts, cells, g)
    cont = _brute_containing(pts, cells, g.points())
    flat = idx.ravel()
    assert np.array_equal(flat >= 0, cont.any(1))
    assert (flat < 0).sum() > 20 and (flat >= 0).sum() > 1000
    assert cont[np.flatnonzero(flat >= 0), flat[flat >= 0]].all()
    # structured mesh whose pixel centres sit on shared edges and vertices: deterministic, valid
    sq = _rect_nodes(6, 6, (0, 1, 0, 1))
    tri = Delaunay(sq).simplices
    g2 = Grid.fit(0, 1, 0, 1, 11, 11)
    i1, i2 = locate_cells(sq, tri, g2), locate_cells(sq, tri, g2)
    assert np.array_equal(i1, i2) and (i1 >= 0).all()
    assert _brute_containing(sq, tri, g2.points())[np.arange(121), i1.ravel()].all()


def test_cell_to_grid():
    idx = np.array([[0, 2], [-1, 1]])
    v = np.array([10.0, 20.0, 30.0])
    out = cell_to_grid(v, idx)
    assert np.array_equal(out, np.array([[10.0, 30.0], [np.nan, 20.0]]), equal_nan=True)
    vec = cell_to_grid(np.column_stack([v, -v]), idx)
    assert vec.shape == (2, 2, 2) and vec[1, 0, 1] == -30.0 and np.isnan(vec[:, 1, 0]).all()
    lab = cell_to_grid(np.array([3, 4, 5], dtype=np.int32), idx, fill=-1)
    assert lab.dtype.kind == "i" and lab.tolist() == [[3, 5], [-1, 4]]


# ------------------------------------------------------------------------------------ dolfinx
@pytest.fixture(scope="module")
def fe():
    import mpi4py.MPI as MPI  # noqa: F401  (must precede dolfinx)
    import dolfinx.mesh as dm

    msh = dm.create_rectangle(MPI.COMM_SELF, [[-0.05, 0.0], [0.05, 0.142]], [17, 23],
                              dm.CellType.triangle, diagonal=dm.DiagonalType.crossed)
    return msh


def test_fe_locate_and_evaluate_p2(fe):
    import dolfinx.fem as fem

    from phantombench.generators.raster import fe_evaluate, fe_locate

    # the grid overhangs the mesh by 3 pixels on the left/right: NaN there
    g = Grid(x0=-0.05 - 3 * 0.001, y_top=0.142, dx=0.001, dy=0.142 / 141, H=142, W=107)
    X, Y = g.centres()
    inside = (X >= -0.05 - 1e-15) & (X <= 0.05 + 1e-15)
    cells = fe_locate(fe, g)
    cells_tree = fe_locate(fe, g, use_dolfinx=True)
    assert np.array_equal(cells >= 0, inside) and np.array_equal(cells_tree >= 0, inside)
    geo = fe.geometry.x[:, :2]
    dof = fe.geometry.dofmaps[0]
    cont = _brute_containing(geo, dof, g.points())
    sel = np.flatnonzero(cells.ravel() >= 0)
    assert cont[sel, cells.ravel()[sel]].all()

    V = fem.functionspace(fe, ("Lagrange", 2, (2,)))
    u = fem.Function(V)
    u.interpolate(lambda x: np.stack([x[0] ** 2 - 3 * x[0] * x[1] + x[1], 2 * x[1] ** 2 + x[0]]))
    val = fe_evaluate(u, g, cells=cells)
    assert val.shape == (2, 142, 107)
    assert np.isnan(val[:, ~inside]).all()
    ex = np.stack([X ** 2 - 3 * X * Y + Y, 2 * Y ** 2 + X])
    assert np.abs(val[:, inside] - ex[:, inside]).max() < 1e-13
    # scalar P3 and the default (tree-less) locate
    S = fem.functionspace(fe, ("Lagrange", 3))
    s = fem.Function(S)
    s.interpolate(lambda x: x[0] ** 3 - 2 * x[1] ** 3 + x[0] * x[1] ** 2)
    sv = fe_evaluate(s, g)
    assert sv.shape == (142, 107)
    assert np.abs(sv[inside] - (X ** 3 - 2 * Y ** 3 + X * Y ** 2)[inside]).max() < 1e-15


def test_fe_evaluate_expr_strain_of_p2(fe):
    import dolfinx.fem as fem
    import ufl

    from phantombench.generators.raster import fe_evaluate_expr

    g = Grid.fit(-0.05, 0.05, 0.0, 0.142, 71, 50)
    X, Y = g.centres()
    V = fem.functionspace(fe, ("Lagrange", 2, (2,)))
    u = fem.Function(V)
    u.interpolate(lambda x: np.stack([x[0] ** 2 - 3 * x[0] * x[1] + x[1], 2 * x[1] ** 2 + x[0]]))
    eps = fe_evaluate_expr(ufl.sym(ufl.grad(u)), fe, g)
    assert eps.shape == (2, 2, 71, 50)
    exx, eyy, exy = 2 * X - 3 * Y, 4 * Y, 0.5 * ((-3 * X + 1) + 1)
    assert np.abs(eps[0, 0] - exx).max() < 1e-10
    assert np.abs(eps[1, 1] - eyy).max() < 1e-10
    assert np.abs(eps[0, 1] - exy).max() < 1e-10 and np.abs(eps[1, 0] - exy).max() < 1e-10
    div = fe_evaluate_expr(ufl.div(u), fe, g)
    assert div.shape == (71, 50) and np.abs(div - (exx + eyy)).max() < 1e-10
