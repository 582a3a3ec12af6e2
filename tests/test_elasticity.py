"""Verification of the plane-stress solver behind ``brain-slice`` (generators/elasticity.py).

Exact solutions (homogeneous block, two bi-material arrangements that stay piecewise uniform), a
manufactured solution with observed convergence rates, global equilibrium, the nodal-averaging rule,
the compiled-form cache, and the element-order study that fixes ``DEFAULT_ORDER``.
"""

from __future__ import annotations

import mpi4py.MPI as MPI

import dolfinx.fem as fem
import dolfinx.mesh as dmesh
import numpy as np
import pytest
import ufl

from phantombench.generators import elasticity
from phantombench.generators.elasticity import DEFAULT_ORDER, FIELD_NAMES, solve_plane_stress
from tests.oracles.elasticity_verify import (discretisation_errors, inclusion_block_mesh,
                                                       refine_uniform)

W, H = 0.0766, 0.1088  # brain-slice rectangle [m]


def perturbed_rectangle(nx, ny, Lx=W, Ly=H, *, seed=0, amp=0.25, fixed_y=(), fixed_x=()):
    """create_rectangle with interior nodes moved randomly by up to ``amp`` x the spacing.

    Nodes on the boundary keep their normal coordinate; nodes on the lines ``y = c`` (c in fixed_y)
    keep y and nodes on ``x = c`` keep x, so material interfaces along those lines stay straight.
    """
    m = dmesh.create_rectangle(MPI.COMM_SELF, [[0.0, 0.0], [Lx, Ly]], [nx, ny], dmesh.CellType.triangle,
                               diagonal=dmesh.DiagonalType.right_left)
    x = m.geometry.x
    hx, hy = Lx / nx, Ly / ny
    rng = np.random.default_rng(seed)
    dx = rng.uniform(-amp, amp, len(x)) * hx
    dy = rng.uniform(-amp, amp, len(x)) * hy
    tol = 1e-9 * max(Lx, Ly)
    keep_x = (np.abs(x[:, 0]) < tol) | (np.abs(x[:, 0] - Lx) < tol)
    keep_y = (np.abs(x[:, 1]) < tol) | (np.abs(x[:, 1] - Ly) < tol)
    for c in fixed_x:
        keep_x |= np.abs(x[:, 0] - c) < tol
    for c in fixed_y:
        keep_y |= np.abs(x[:, 1] - c) < tol
    x[~keep_x, 0] += dx[~keep_x]
    x[~keep_y, 1] += dy[~keep_y]
    return m


def cell_centroids(sol):
    return sol.points[sol.cells].mean(axis=1)


def max_rel(a, b, scale):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / scale)


# ------------------------------------------------------------------------------------------------
# Exact piecewise-uniform solutions


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("s", [40.0, -25.0])  # compression, tension
def test_homogeneous_block_exact(order, s):
    """Uniform traction s on a homogeneous block on a distorted mesh: the exact uniaxial state.

    s > 0 compresses: syy = -s, eyy = -s/E, exx = +nu s/E, no shear; u = (nu s/E x, -s/E y)
    (pin at the bottom-left corner x = 0, y = 0).
    """
    E, nu = 3000.0, 0.42
    m = perturbed_rectangle(14, 20, seed=1)
    sol = solve_plane_stress(m, E, nu, s, order=order)
    exx, eyy = nu * s / E, -s / E
    exact = {"exx": exx, "eyy": eyy, "exy": 0.0, "sxx": 0.0, "syy": -s, "sxy": 0.0}
    scale = {"exx": abs(eyy), "eyy": abs(eyy), "exy": abs(eyy), "sxx": abs(s), "syy": abs(s), "sxy": abs(s)}
    for at in ("vertices", "dofs"):
        nod = sol.nodal_fields(at=at)
        P = sol.points if at == "vertices" else sol.node_points
        for k, v in exact.items():
            assert max_rel(nod[k], v, scale[k]) < 1e-8, (at, k)
        assert max_rel(nod["ux"], exx * P[:, 0], abs(eyy) * H) < 1e-8
        assert max_rel(nod["uy"], eyy * P[:, 1], abs(eyy) * H) < 1e-8
    cf = sol.cell_fields()
    for k, v in exact.items():
        assert max_rel(cf[k], v, scale[k]) < 1e-8, k
    # exact FE evaluation at random points
    rng = np.random.default_rng(5)
    pts = rng.uniform([0, 0], [W, H], (500, 2))
    ev = sol.evaluate(pts)
    for k, v in exact.items():
        assert max_rel(ev[k], v, scale[k]) < 1e-8, k
    assert max_rel(ev["uy"], eyy * pts[:, 1], abs(eyy) * H) < 1e-8
    # sign convention: compression moves the top down
    assert np.sign(nod["uy"][np.argmax(sol.node_points[:, 1])]) == -np.sign(s)


def test_homogeneous_block_on_grid():
    """Same state rasterised on the brain-slice grid: Sibson of nodal values, exact FE, fe_evaluate_expr."""
    from phantombench.generators import raster

    E, nu, s = 1500.0, 0.40, 33.0
    m = perturbed_rectangle(12, 17, seed=3)
    sol = solve_plane_stress(m, E, nu, s, order=2)
    grid = raster.Grid.fit(0.0, W, 0.0, H, 142, 100, include_edges=True)
    exact = {"exx": nu * s / E, "eyy": -s / E, "exy": 0.0, "sxx": 0.0, "syy": -s, "sxy": 0.0}
    eps0 = s / E
    scale = {"exx": eps0, "eyy": eps0, "exy": eps0, "sxx": s, "syy": s, "sxy": s}
    nod = sol.nodal_fields()
    sib = raster.Sibson(sol.points, grid)
    fe = sol.fe_grid(grid)
    for k, v in exact.items():
        g = sib(nod[k])
        assert np.isfinite(g).all()
        assert max_rel(g, v, scale[k]) < 1e-8, k
        assert max_rel(fe[k], v, scale[k]) < 1e-8, k
    X, Y = grid.centres()
    assert max_rel(fe["uy"], -eps0 * Y, eps0 * H) < 1e-8
    assert max_rel(sib(nod["ux"]), nu * eps0 * X, eps0 * H) < 1e-8
    ex = sol.ufl_fields()
    for k in ("eyy", "sxx"):
        g = raster.fe_evaluate_expr(ex[k], sol.mesh, grid)
        assert max_rel(g, exact[k], scale[k]) < 1e-8, k


@pytest.mark.parametrize("order", [1, 2])
def test_bimaterial_series_equal_lateral_compliance(order):
    """Two horizontal layers (interface y = H/2) loaded in series.

    The uniform stress syy = -s (sxx = sxy = 0) satisfies equilibrium, traction continuity across the
    interface and the free sides; it is compatible (u_x continuous along the interface) iff both layers
    contract laterally alike: exx = nu_i s / E_i equal, i.e. nu_1/E_1 = nu_2/E_2.  Then the exact
    solution is piecewise uniform: ux = nu s/E x, uy piecewise linear with slopes -s/E_i.
    (Equal nu with different E does NOT give this state: see the next test.)
    """
    s, E1, nu1, E2, nu2 = 30.0, 1000.0, 0.2, 2000.0, 0.4
    yi = H / 2
    m = perturbed_rectangle(10, 16, seed=2, fixed_y=(yi,))
    c = m.geometry.x[m.geometry.dofmaps[0]].mean(axis=1)
    lower = c[:, 1] < yi
    sol = solve_plane_stress(m, np.where(lower, E1, E2), np.where(lower, nu1, nu2), s, order=order)
    P = sol.node_points
    nod = sol.nodal_fields(at="dofs")
    uy = np.where(P[:, 1] < yi, -s / E1 * P[:, 1], -s / E1 * yi - s / E2 * (P[:, 1] - yi))
    ux = nu1 * s / E1 * P[:, 0]
    u_scale = s / E1 * H
    assert max_rel(nod["uy"], uy, u_scale) < 1e-8
    assert max_rel(nod["ux"], ux, u_scale) < 1e-8
    for k, v in {"sxx": 0.0, "syy": -s, "sxy": 0.0}.items():
        assert max_rel(nod[k], v, s) < 1e-8, k
    cf = sol.cell_fields()
    assert max_rel(cf["eyy"], np.where(lower, -s / E1, -s / E2), s / E1) < 1e-8
    assert max_rel(cf["exx"], nu1 * s / E1, s / E1) < 1e-8


def test_bimaterial_series_equal_nu_is_not_uniform():
    """Equal nu, different E in series: lateral strains nu s/E_i differ, so the interface constrains
    the layers and a non-uniform state with sxx != 0 and shear appears (> 5 % and > 2 % of s here)."""
    s = 30.0
    yi = H / 2
    m = perturbed_rectangle(10, 16, seed=2, fixed_y=(yi,))
    c = m.geometry.x[m.geometry.dofmaps[0]].mean(axis=1)
    sol = solve_plane_stress(m, np.where(c[:, 1] < yi, 1000.0, 2000.0), 0.4, s, order=2)
    cf = sol.cell_fields()
    assert np.max(np.abs(cf["sxx"])) > 0.05 * s
    assert np.max(np.abs(cf["sxy"])) > 0.02 * s


@pytest.mark.parametrize("order", [1, 2])
def test_bimaterial_parallel_equal_E(order):
    """Two vertical columns (interface x = W/2), equal E, different nu, loaded in parallel.

    syy = -s everywhere gives eyy = -s/E in both (uy continuous), exx_i = nu_i s/E: ux is piecewise
    linear in x alone, continuous across the vertical interface, and the interface traction (sxx, sxy)
    vanishes on both sides.  Exact: ux = nu_1 s/E x (x < W/2), continuing with slope nu_2 s/E.
    """
    s, E, nu1, nu2 = 20.0, 1500.0, 0.30, 0.45
    xi = W / 2
    m = perturbed_rectangle(10, 14, seed=4, fixed_x=(xi,))
    c = m.geometry.x[m.geometry.dofmaps[0]].mean(axis=1)
    left = c[:, 0] < xi
    sol = solve_plane_stress(m, E, np.where(left, nu1, nu2), s, order=order)
    P = sol.node_points
    nod = sol.nodal_fields(at="dofs")
    e0 = s / E
    ux = np.where(P[:, 0] < xi, nu1 * e0 * P[:, 0], nu1 * e0 * xi + nu2 * e0 * (P[:, 0] - xi))
    assert max_rel(nod["ux"], ux, e0 * H) < 1e-8
    assert max_rel(nod["uy"], -e0 * P[:, 1], e0 * H) < 1e-8
    cf = sol.cell_fields()
    assert max_rel(cf["exx"], np.where(left, nu1, nu2) * e0, e0) < 1e-8
    for k, v in {"sxx": 0.0, "syy": -s, "sxy": 0.0}.items():
        assert max_rel(cf[k], v, s) < 1e-8, k


# ------------------------------------------------------------------------------------------------
# Manufactured solution


def _mms_errors(order, n, E=2.0, nu=0.3):
    """L2 and H1-seminorm errors for a smooth manufactured displacement on the unit square.

    u = A (sin(2x) cos(y) + x y^2,  sin(1.5 y) (1 + x^2/2)) satisfies u_y = 0 on y = 0 and
    u_x(0, 0) = 0 (the pin).  Body force f = -div S and boundary traction S n are derived by UFL
    from S = plane-stress stress written independently here in Voigt form
    D = E/(1-nu^2) [[1, nu, 0], [nu, 1, 0], [0, 0, (1-nu)/2]] acting on (exx, eyy, 2 exy).
    """
    A = 0.01

    def u_exact(x):
        return ufl.as_vector([A * (ufl.sin(2 * x[0]) * ufl.cos(x[1]) + x[0] * x[1] ** 2),
                              A * ufl.sin(1.5 * x[1]) * (1 + x[0] ** 2 / 2)])

    def S_exact(x):
        g = ufl.grad(u_exact(x))
        exx, eyy, gxy = g[0, 0], g[1, 1], g[0, 1] + g[1, 0]
        c = E / (1 - nu**2)
        sxx = c * (exx + nu * eyy)
        syy = c * (nu * exx + eyy)
        sxy = c * (1 - nu) / 2 * gxy
        return ufl.as_matrix([[sxx, sxy], [sxy, syy]])

    m = dmesh.create_rectangle(MPI.COMM_SELF, [[0.0, 0.0], [1.0, 1.0]], [n, n], dmesh.CellType.triangle)
    sol = solve_plane_stress(m, E, nu, 0.0, order=order,
                             body_force=lambda x: -ufl.div(S_exact(x)), boundary_stress=S_exact)
    x = ufl.SpatialCoordinate(m)
    e = sol.u - u_exact(x)
    dx = ufl.dx(metadata={"quadrature_degree": 2 * order + 6})
    l2 = np.sqrt(fem.assemble_scalar(fem.form(ufl.inner(e, e) * dx)))
    h1 = np.sqrt(fem.assemble_scalar(fem.form(ufl.inner(ufl.grad(e), ufl.grad(e)) * dx)))
    return l2, h1, sol


@pytest.mark.parametrize("order,ns", [(1, (8, 16, 32, 64)), (2, (4, 8, 16, 32))])
def test_manufactured_convergence(order, ns):
    errs = [_mms_errors(order, n)[:2] for n in ns]
    l2 = np.array([e[0] for e in errs])
    h1 = np.array([e[1] for e in errs])
    r_l2 = np.log2(l2[:-1] / l2[1:])
    r_h1 = np.log2(h1[:-1] / h1[1:])
    assert abs(r_l2[-1] - (order + 1)) < 0.2, r_l2
    assert abs(r_h1[-1] - order) < 0.2, r_h1
    assert np.all(np.diff(l2) < 0) and np.all(np.diff(h1) < 0)


# ------------------------------------------------------------------------------------------------
# Equilibrium, nodal averaging, API details


@pytest.fixture(scope="module")
def inclusion():
    mesh, lab = inclusion_block_mesh(h_fine=0.0016, h_coarse=0.006)
    E = np.where(lab == 1, 20e3, 1e3)
    nu = np.where(lab == 1, 0.30, 0.35)
    return mesh, lab, E, nu


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("s", [33.0, -10.0])
def test_global_equilibrium_and_pin(inclusion, order, s):
    mesh, _, E, nu = inclusion
    sol = solve_plane_stress(mesh, E, nu, s, order=order)
    F = np.asarray(sol.traction_top_integral())
    R = np.asarray(sol.reaction_bottom())
    assert np.allclose(F, [0.0, -s * W], rtol=1e-12, atol=1e-14 * abs(s) * W)
    assert abs(R[1] + F[1]) < 1e-8 * abs(F[1])
    assert abs(sol.pin_reaction()) < 1e-10 * abs(F[1])
    # the top moves down under compression, up under tension; strain energy = 0.5 L(u) > 0
    uy_top = sol.nodal_fields()["uy"][np.abs(sol.points[:, 1] - H) < 1e-12]
    assert np.all(np.sign(uy_top) == -np.sign(s))
    assert sol.strain_energy() > 0


def test_nodal_average_rule(inclusion):
    """P1: each vertex value = area-weighted mean of its cells' (constant) strains and stresses."""
    mesh, _, E, nu = inclusion
    sol = solve_plane_stress(mesh, E, nu, 33.0, order=1)
    cf = sol.cell_fields()
    X = sol.points
    c = sol.cells
    a, b = X[c[:, 1]] - X[c[:, 0]], X[c[:, 2]] - X[c[:, 0]]
    area = 0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    nod = sol.nodal_fields()
    for k in ("exx", "eyy", "exy", "sxx", "syy", "sxy"):
        num = np.zeros(len(X))
        den = np.zeros(len(X))
        for j in range(3):
            np.add.at(num, c[:, j], area * cf[k])
            np.add.at(den, c[:, j], area)
        ref = num / den
        assert np.allclose(nod[k], ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max()), k
    # on interface vertices the stress average differs from C(average strain): stresses come from
    # each cell's own law.  Check one stiff/soft vertex explicitly.
    lab = (E > 5e3)
    mixed = np.zeros(len(X), dtype=int)
    for j in range(3):
        np.add.at(mixed, c[:, j], lab.astype(int))
    counts = np.zeros(len(X), dtype=int)
    for j in range(3):
        np.add.at(counts, c[:, j], 1)
    v = np.flatnonzero((mixed > 0) & (mixed < counts))[0]
    mu_s, lam_s = elasticity.plane_stress_lame(20e3, 0.30)
    sxx_from_mean_strain = 2 * mu_s * nod["exx"][v] + lam_s * (nod["exx"][v] + nod["eyy"][v])
    assert abs(sxx_from_mean_strain - nod["sxx"][v]) > 1e-3 * abs(nod["syy"][v])


def test_evaluate_matches_dolfinx_eval(inclusion):
    """Exact evaluation (numpy pull-back + basix tabulation) equals dolfinx Function.eval / Expression."""
    mesh, _, E, nu = inclusion
    sol = solve_plane_stress(mesh, E, nu, 33.0, order=2)
    rng = np.random.default_rng(0)
    pts = rng.uniform([0, 0], [W, H], (300, 2))
    cells = sol.locate(pts)
    assert np.all(cells >= 0)
    ev = sol.evaluate(pts, cells)
    p3 = np.column_stack([pts, np.zeros(len(pts))])
    u = sol.u.eval(p3, cells.astype(np.int32))
    assert np.allclose(ev["ux"], u[:, 0], rtol=0, atol=1e-12 * np.abs(u).max())
    assert np.allclose(ev["uy"], u[:, 1], rtol=0, atol=1e-12 * np.abs(u).max())
    # strain / stress through a DG1 interpolation of the UFL expressions (exact for P2 on affine cells)
    ex = sol.ufl_fields()
    for k in ("exx", "exy", "syy"):
        Vd = fem.functionspace(mesh, ("DG", 1))
        f = fem.Function(Vd)
        f.interpolate(fem.Expression(ex[k], Vd.element.interpolation_points))
        ref = f.eval(p3, cells.astype(np.int32))[:, 0]
        assert np.allclose(ev[k], ref, rtol=0, atol=1e-10 * np.abs(ref).max()), k
    assert set(ev) == set(FIELD_NAMES)


def test_locate_is_exact(inclusion):
    """Located cells really hold their points (dolfinx's GJK tolerance alone is too loose in metres)."""
    mesh, _, E, nu = inclusion
    sol = solve_plane_stress(mesh, E, nu, 33.0, order=1)
    rng = np.random.default_rng(7)
    pts = np.vstack([rng.uniform([0, 0], [W, H], (3000, 2)), [[-1e-4, 0.05], [W + 1e-6, 0.02], [0.03, H + 1e-6]]])
    c = sol.locate(pts)
    assert np.all(c[:-3] >= 0) and np.all(c[-3:] == -1)
    X, T = sol.points, sol.cells[c[:-3]]
    p0, p1, p2 = X[T[:, 0]], X[T[:, 1]], X[T[:, 2]]
    J = np.stack([p1 - p0, p2 - p0], axis=2)
    lam = np.linalg.solve(J, (pts[:-3] - p0)[:, :, None])[:, :, 0]
    assert np.column_stack([1 - lam.sum(axis=1), lam]).min() >= -1e-10


def test_labelmesh_input_keeps_its_order():
    """A LabelMesh (arrays + to_dolfinx) goes in with cell values in its order; every output comes
    back in its node / cell order.  Homogeneous material -> the exact uniform state at its points."""
    from phantombench.meshes.anatomy import load_brain_slices
    from phantombench.meshes.labelmesh import mesh_label_image

    lm = mesh_label_image(load_brain_slices().labels[6], h_fine=0.0015, h_coarse=0.005)
    E_lab = np.array([1000.0, 1500.0, 2000.0])[lm.cell_labels]
    sol = solve_plane_stress(lm, E_lab, 0.4, 33.0, order=2)
    assert np.array_equal(sol.points, lm.points)
    assert np.array_equal(np.sort(sol.cells, axis=1), np.sort(lm.cells, axis=1))
    assert np.array_equal(sol.cell_E, E_lab)
    cen = lm.points[lm.cells].mean(axis=1)
    assert np.array_equal(sol.locate(cen), np.arange(len(lm.cells)))
    F, R = np.asarray(sol.traction_top_integral()), np.asarray(sol.reaction_bottom())
    assert abs(F[1] + 33.0 * lm.width) < 1e-12 * 33.0 * lm.width
    assert abs(R[1] + F[1]) < 1e-8 * abs(F[1]) and abs(R[0]) < 1e-10 * abs(F[1])
    # homogeneous: exact state, checked in the LabelMesh's own node order
    E0 = 1500.0
    hom = solve_plane_stress(lm, E0, 0.4, 33.0, order=2)
    nod = hom.nodal_fields()
    e0 = 33.0 / E0
    assert max_rel(nod["uy"], -e0 * lm.points[:, 1], e0 * H) < 1e-8
    assert max_rel(nod["ux"], 0.4 * e0 * lm.points[:, 0], e0 * H) < 1e-8
    assert max_rel(hom.cell_fields()["syy"], -33.0, 33.0) < 1e-8


def test_forms_compiled_once(inclusion, monkeypatch):
    """After the first solve of an order, new meshes reuse the compiled forms (no JIT call at all)."""
    import dolfinx.jit

    mesh, _, E, nu = inclusion
    solve_plane_stress(mesh, E, nu, 33.0, order=1)

    def boom(*a, **k):
        raise AssertionError("form compiler called again")

    monkeypatch.setattr(dolfinx.jit, "ffcx_jit", boom)
    monkeypatch.setattr(fem.forms.jit, "ffcx_jit", boom)
    m2, lab2 = inclusion_block_mesh(h_fine=0.003, h_coarse=0.008)
    sol = solve_plane_stress(m2, np.where(lab2 == 1, 5e3, 1e3), 0.4, 20.0, order=1)
    assert abs(sol.reaction_bottom()[1] - 20.0 * W) < 1e-8 * 20.0 * W


def test_refine_uniform_keeps_materials(inclusion):
    """Children inherit their parent's value (dolfinx reorders refined cells: checked by centroids)."""
    mesh, lab, _, _ = inclusion
    fine, flab = refine_uniform(mesh, lab, 2)
    X = fine.geometry.x[:, :2]
    cen = X[fine.geometry.dofmaps[0]].mean(axis=1)
    inside = np.hypot(cen[:, 0] - W / 2, cen[:, 1] - H / 2) < 0.015
    assert len(flab) == 16 * len(lab)
    assert np.array_equal(inside, flab == 1)


def test_input_validation():
    m = dmesh.create_rectangle(MPI.COMM_SELF, [[0, 0], [1, 1]], [2, 2], dmesh.CellType.triangle)
    with pytest.raises(ValueError, match="shape"):
        solve_plane_stress(m, np.ones(3), 0.3, 1.0)
    with pytest.raises(ValueError, match="nu"):
        solve_plane_stress(m, 1.0, 0.5, 1.0)


# ------------------------------------------------------------------------------------------------
# Element order


def test_order_choice_inclusion(inclusion):
    """P1 vs P2 against P2 on the same mesh refined twice (stiff disc, 20:1 contrast).

    Coarse version of scripts/study_elasticity_order.py (h 1.6 mm at the interface, 6 mm away; the
    script runs the default 0.8 / 3 mm).  At equal dofs (P1 on the mesh refined once) and at about
    equal solve time P2 must be the more accurate by a wide margin in energy norm and in the exactly
    evaluated strain on the 142 x 100 grid, which is why DEFAULT_ORDER is 2.
    """
    from phantombench.generators import raster

    mesh, _, E, nu = inclusion
    grid = raster.Grid.fit(0.0, W, 0.0, H, 142, 100)
    X, Y = grid.centres()
    res = discretisation_errors(mesh, E, nu, 33.0, points=np.column_stack([X.ravel(), Y.ravel()]),
                                ref_levels=2, extra_levels={1: [1]}, repeats=1)
    case = {(c["order"], c["level"]): c for c in res["cases"]}
    p1, p2, p1r = case[(1, 0)], case[(2, 0)], case[(1, 1)]
    assert p2["dofs"] == p1r["dofs"]
    # all errors are real and ordered as the theory says
    assert 0 < p2["energy_err"] < p1r["energy_err"] < p1["energy_err"] < 0.1
    assert p2["energy_err"] < p1r["energy_err"] / 3
    assert p2["strain_err_fe"] < p1r["strain_err_fe"] / 3
    # the P2 nodal data at all Lagrange nodes are worth as much as P1 refined once (same node count)
    assert p2["strain_err_nodal_dofs"] < 1.1 * p1r["strain_err_nodal"]
    best = min((p1r, p2), key=lambda c: c["energy_err"])
    assert best["order"] == DEFAULT_ORDER
