"""Compressible neo-Hookean plane strain on a triangle mesh: the physics of the FEM registration pairs.

Model (finite strain, reference configuration X, displacement u, F = I + grad u, J = det F):

    psi = mu / 2 (tr C + 1 - 3) - mu ln J + lam / 2 (ln J)^2        (plane strain: F33 = 1)
    P   = mu (F - F^-T) + lam ln(J) F^-T                             (first Piola-Kirchhoff stress)

with cellwise (DG0) Lame parameters ``mu``, ``lam`` [Pa]. For small strains P -> 2 mu eps + lam tr(eps) I:
the model reduces to plane-strain linear elasticity with the same Lame pair (tests/test_deform.py checks it
against the plane-stress solver of :mod:`phantombench.generators.elasticity` with the equivalent constants).

Equilibrium ``Div P + f = 0`` in the reference configuration, with

* ``dirichlet``: a list of :class:`Dirichlet` conditions (on boundary facets or vertices selected by a marker, or
  on all nodes of given cells, e.g. a bone held fixed), each with the displacement at full load;
* ``body_force``: a per-cell (M, 2) dead load [N/m^3] (e.g. a diaphragm-like push of the organs);
* ``traction``: a dead traction vector [Pa] on the boundary facets selected by ``traction_where``.

Solution: DOLFINx's :class:`dolfinx.fem.petsc.NonlinearProblem` (PETSc SNES Newton with the critical-point
line search, which suits a residual that is the gradient of an energy, MUMPS LU for each linearised step; a
backtracking search crawled through dozens of damped steps when near-rigid bone rotates) under load stepping:
every load (Dirichlet values, body force, traction) is scaled by ``k / steps``, k = 1..steps, each step starting
from the previous solution; a step that does not converge (or inverts an element) is retried with half the
increment, and :class:`RuntimeError` is raised after ``max_cuts`` such cuts. The residual and Jacobian forms are
compiled once per process and element order (``compile_form``) and bound to each mesh with ``create_form``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import mpi4py.MPI as MPI  # noqa: F401  (must precede dolfinx)

import basix.ufl
import dolfinx.fem as fem
import dolfinx.fem.petsc as fem_petsc
import dolfinx.mesh as dmesh
import numpy as np
import ufl
from petsc4py import PETSc

__all__ = ["Dirichlet", "NeoHookeanSolution", "solve_neo_hookean", "first_piola", "lame_from_E_nu"]

_TRACTION = 1  # subdomain id of the loaded facets in the compiled forms
_PREFIX = itertools.count()


def lame_from_E_nu(E, nu):
    """Plane-strain (3-D) Lame pair ``(mu, lam)`` of Young's modulus ``E`` [Pa] and Poisson ratio ``nu``."""
    return E / (2 * (1 + nu)), E * nu / ((1 + nu) * (1 - 2 * nu))


def first_piola(F, mu, lam):
    """First Piola-Kirchhoff stress of the compressible neo-Hookean model (UFL ``F``, 2x2 plane strain)."""
    Finv_T = ufl.inv(F).T
    return mu * (F - Finv_T) + lam * ufl.ln(ufl.det(F)) * Finv_T


@dataclass
class Dirichlet:
    """Prescribed displacement on part of the mesh.

    value: ``x`` (3, N) -> (2, N) displacement [m] at full load (scaled by the load step).
    where: marker ``x (3, N) -> bool (N,)`` of boundary entities of dimension ``dim`` (1 facets, 0 vertices).
    cells: alternatively, dolfinx cell indices whose every node is constrained (e.g. a bone held fixed).
    component: 0 or 1 to constrain one component only; None for both.
    """

    value: Callable[[np.ndarray], np.ndarray]
    where: Callable[[np.ndarray], np.ndarray] | None = None
    cells: np.ndarray | None = None
    component: int | None = None
    dim: int = 1


@dataclass
class NeoHookeanSolution:
    """The displacement (vector Lagrange ``fem.Function`` [m]) with its Lame fields and solver statistics."""

    u: fem.Function
    mu: fem.Function
    lam: fem.Function
    order: int
    newton_iterations: list[int] = field(default_factory=list)
    load_factors: list[float] = field(default_factory=list)

    @property
    def mesh(self) -> dmesh.Mesh:
        return self.u.function_space.mesh

    def linear_map(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The FE map as a piecewise-affine one: (points (N, 2), triangles (M', 3), u at points (N, 2), parent
        dolfinx cell of each triangle (M',)). P1: the mesh itself. P2: all Lagrange nodes, each cell split into
        four by its edge midpoints (the P2 field's piecewise-linear interpolant, O(h^2) away from it)."""
        V = self.u.function_space
        dofs = np.asarray(V.dofmap.list, dtype=np.int64)
        pts = V.tabulate_dof_coordinates()[:, :2].copy()
        U = self.u.x.array.reshape(-1, 2).copy()
        if self.order == 1:
            tri, parent = dofs, np.arange(len(dofs))
        elif self.order == 2:  # basix P2: vertices 0, 1, 2; midpoints of edges (1,2), (0,2), (0,1)
            sub = np.array([[0, 5, 4], [1, 3, 5], [2, 4, 3], [3, 4, 5]])
            tri, parent = dofs[:, sub].reshape(-1, 3), np.repeat(np.arange(len(dofs)), 4)
        else:
            raise NotImplementedError("linear_map is defined for orders 1 and 2")
        a, b = pts[tri[:, 1]] - pts[tri[:, 0]], pts[tri[:, 2]] - pts[tri[:, 0]]
        cw = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0] < 0
        tri = tri.copy()
        tri[cw] = tri[cw][:, [0, 2, 1]]
        return pts, tri, U, parent

    def cell_values(self, f: fem.Function) -> np.ndarray:
        """DG0 values per dolfinx cell."""
        return f.x.array[f.function_space.dofmap.list[:, 0]].copy()


# --------------------------------------------------------------------------------------------------- forms
@dataclass
class _Compiled:
    R: fem.CompiledForm
    J: fem.CompiledForm
    mu: ufl.Coefficient
    lam: ufl.Coefficient
    f: ufl.Coefficient
    uh: ufl.Coefficient
    t: ufl.Constant


_COMPILED: dict[tuple, _Compiled] = {}


def _residual(uh, v, mu, lam, f, t, ds):
    F = ufl.Identity(2) + ufl.grad(uh)
    return ufl.inner(first_piola(F, mu, lam), ufl.grad(v)) * ufl.dx - ufl.dot(f, v) * ufl.dx \
        - ufl.dot(t, v) * ds(_TRACTION)


def _compiled(order: int, coord_element) -> _Compiled:
    """Residual R(uh; v) and Jacobian dR/du compiled once per (order, coordinate element) and process."""
    key = (order, coord_element.basix_hash())
    if key in _COMPILED:
        return _COMPILED[key]
    domain = ufl.Mesh(coord_element)
    V = ufl.FunctionSpace(domain, basix.ufl.element("Lagrange", "triangle", order, shape=(2,)))
    Q = ufl.FunctionSpace(domain, basix.ufl.element("DG", "triangle", 0))
    Qv = ufl.FunctionSpace(domain, basix.ufl.element("DG", "triangle", 0, shape=(2,)))
    mu, lam, f, uh = ufl.Coefficient(Q), ufl.Coefficient(Q), ufl.Coefficient(Qv), ufl.Coefficient(V)
    t = ufl.Constant(domain, shape=(2,))
    v = ufl.TestFunction(V)
    R = _residual(uh, v, mu, lam, f, t, ufl.Measure("ds", domain=domain))
    J = ufl.derivative(R, uh, ufl.TrialFunction(V))
    opts = {"scalar_type": PETSc.ScalarType}
    cf = _Compiled(fem.compile_form(MPI.COMM_SELF, R, form_compiler_options=dict(opts)),
                   fem.compile_form(MPI.COMM_SELF, J, form_compiler_options=dict(opts)), mu, lam, f, uh, t)
    _COMPILED[key] = cf
    return cf


def _dg0(Q, values: np.ndarray, name: str) -> fem.Function:
    g = fem.Function(Q, name=name)
    bs = Q.dofmap.index_map_bs
    g.x.array.reshape(-1, bs)[Q.dofmap.list[:, 0]] = np.asarray(values, dtype=np.float64).reshape(-1, bs)
    return g


# --------------------------------------------------------------------------------------------------- BCs
def _make_bc(V, mesh, d: Dirichlet):
    """(DirichletBC, full-load value array, Function holding the scaled value) of one condition."""
    if d.cells is not None:
        ents, edim = np.asarray(d.cells, dtype=np.int32), mesh.topology.dim
    else:
        edim = d.dim
        mesh.topology.create_connectivity(edim, mesh.topology.dim)
        ents = dmesh.locate_entities_boundary(mesh, edim, d.where)
    if d.component is None:
        g = fem.Function(V)
        g.interpolate(d.value)
        dofs = fem.locate_dofs_topological(V, edim, ents)
        bc = fem.dirichletbc(g, dofs)
    else:
        Vc, _ = V.sub(d.component).collapse()
        g = fem.Function(Vc)
        g.interpolate(lambda x: np.asarray(d.value(x))[d.component])
        dofs = fem.locate_dofs_topological((V.sub(d.component), Vc), edim, ents)
        bc = fem.dirichletbc(g, dofs, V.sub(d.component))
    return bc, g.x.array.copy(), g


def _traction_facets(mesh, where) -> np.ndarray:
    mesh.topology.create_connectivity(1, 2)
    if where is None:
        return np.zeros(0, dtype=np.int32)
    return np.asarray(dmesh.locate_entities_boundary(mesh, 1, where), dtype=np.int32)


# --------------------------------------------------------------------------------------------------- solve
def solve_neo_hookean(mesh: dmesh.Mesh, cell_mu, cell_lam, dirichlet: list[Dirichlet], *, order: int = 1,
                      body_force: np.ndarray | None = None, traction: tuple[float, float] | None = None,
                      traction_where: Callable | None = None, steps: int = 1, rtol: float = 1e-9,
                      atol: float = 1e-12, max_it: int = 30, max_cuts: int = 8,
                      ufl_body_force: Callable | None = None) -> NeoHookeanSolution:
    """Solve the neo-Hookean problem of the module docstring on a serial affine triangle mesh.

    cell_mu, cell_lam: (M,) Lame parameters [Pa] in dolfinx cell order (or scalars). body_force: (M, 2) [N/m^3].
    ``ufl_body_force`` (TEST-ONLY hook, a callable of ``ufl.SpatialCoordinate``): adds a UFL body force; the
    forms are then compiled for this call (manufactured solutions); it is scaled by the load step too.
    """
    n = mesh.topology.index_map(2).size_local
    V = fem.functionspace(mesh, ("Lagrange", order, (2,)))
    Q, Qv = fem.functionspace(mesh, ("DG", 0)), fem.functionspace(mesh, ("DG", 0, (2,)))
    mu = _dg0(Q, np.broadcast_to(np.asarray(cell_mu, float), (n,)), "mu")
    lam = _dg0(Q, np.broadcast_to(np.asarray(cell_lam, float), (n,)), "lam")
    f_full = np.zeros((n, 2)) if body_force is None else np.asarray(body_force, float).reshape(n, 2)
    f = _dg0(Qv, f_full, "f")
    f_full = f.x.array.copy()
    t_full = np.zeros(2) if traction is None else np.asarray(traction, dtype=np.float64)
    t = fem.Constant(mesh, PETSc.ScalarType((0.0, 0.0)))
    uh = fem.Function(V, name="u")
    load = fem.Constant(mesh, PETSc.ScalarType(0.0))  # the load factor of the test hook's body force
    R, J = _forms(mesh, V, mu, lam, f, uh, t, load, _traction_facets(mesh, traction_where), order,
                  ufl_body_force)
    bcs = [_make_bc(V, mesh, d) for d in dirichlet]
    problem = fem_petsc.NonlinearProblem(
        R, uh, J=J, bcs=[b[0] for b in bcs], petsc_options_prefix=f"pb_neohooke_{next(_PREFIX)}_",
        petsc_options={"snes_type": "newtonls", "snes_linesearch_type": "cp", "snes_rtol": rtol,
                       "snes_atol": atol, "snes_stol": 0.0, "snes_max_it": max_it, "ksp_type": "preonly",
                       "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"})
    sol = NeoHookeanSolution(uh, mu, lam, order)

    def set_load(s: float) -> None:
        for _, full, g in bcs:
            g.x.array[:] = s * full
        f.x.array[:] = s * f_full
        t.value[:] = s * t_full
        load.value = s

    _load_steps(problem, sol, set_load, steps, max_cuts)
    uh.x.scatter_forward()
    return sol


def _load_steps(problem, sol: NeoHookeanSolution, set_load: Callable[[float], None], steps: int,
                max_cuts: int) -> None:
    """Newton solves at load factors k / steps; a failed step (no convergence, or a non-finite iterate when an
    element inverts) restarts from the last converged state with half the increment, at most ``max_cuts``
    times in all. Converged factors and Newton iterations are recorded on ``sol``."""
    uh = sol.u
    done, ds, cuts = 0.0, 1.0 / steps, 0
    last = uh.x.array.copy()
    while done < 1.0 - 1e-12:
        s = min(1.0, done + ds)
        set_load(s)
        problem.solve()
        reason = problem.solver.getConvergedReason()
        if reason > 0 and np.isfinite(uh.x.array).all():
            done, last = s, uh.x.array.copy()
            sol.newton_iterations.append(int(problem.solver.getIterationNumber()))
            sol.load_factors.append(round(s, 12))
            continue
        cuts += 1
        if cuts > max_cuts:
            raise RuntimeError(f"neo-Hookean Newton did not converge at load factor {s:.4g} after {max_cuts} "
                               f"step cuts (SNES {reason})")
        uh.x.array[:] = last
        ds *= 0.5


def _forms(mesh, V, mu, lam, f, uh, t, load, facets, order, ufl_body_force):
    """(R, J) bound to this mesh: the cached compiled forms, or per-call forms with the test hook."""
    doms = fem.compute_integration_domains(fem.IntegralType.exterior_facet, mesh.topology, facets)
    sub = {fem.IntegralType.exterior_facet: [(_TRACTION, np.asarray(doms))]}
    if ufl_body_force is None:
        cf = _compiled(order, mesh.ufl_domain().ufl_coordinate_element())
        cmap = {cf.mu: mu, cf.lam: lam, cf.f: f, cf.uh: uh}
        return (fem.create_form(cf.R, [V], mesh, sub, cmap, {cf.t: t}),
                fem.create_form(cf.J, [V, V], mesh, sub, cmap, {cf.t: t}))
    mt = dmesh.meshtags(mesh, 1, np.sort(facets), np.full(len(facets), _TRACTION, dtype=np.int32))
    v = ufl.TestFunction(V)
    R = _residual(uh, v, mu, lam, f, t, ufl.Measure("ds", domain=mesh, subdomain_data=mt))
    R = R - load * ufl.dot(ufl_body_force(ufl.SpatialCoordinate(mesh)), v) * ufl.dx(metadata={"quadrature_degree": 8})
    return fem.form(R), fem.form(ufl.derivative(R, uh, ufl.TrialFunction(V)))
