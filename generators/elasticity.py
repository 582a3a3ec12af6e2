"""Plane-stress linear elasticity on a triangle mesh: the physics of the ``brain-slice`` generator.

Problem (P1 El-UNet, Kamali et al. 2023): static equilibrium ``div(sigma) = 0`` with no body force on a
2D domain whose bounding box is ``[xmin, xmax] x [ymin, ymax]``; isotropic linear elasticity under plane
stress with cellwise-constant (DG0) Young's modulus ``E`` [Pa] and Poisson's ratio ``nu`` [-]:

    eps   = sym(grad u)                                 (tensor strain, exy = engineering shear / 2)
    sigma = 2 mu eps + lam tr(eps) I,   mu = E / (2 (1 + nu)),   lam = E nu / (1 - nu^2)

(``lam`` is the effective Lame parameter of plane stress, so ``sigma_zz = 0``).

Boundary conditions:
  * top edge (facets on ``y = ymax``): uniform normal traction.  Sign convention: ``traction > 0`` is
    COMPRESSION, i.e. the applied traction vector is ``t = (0, -traction)`` pushing the top down;
    ``traction < 0`` pulls (tension).
  * bottom edge (facets on ``y = ymin``): frictionless support, ``u_y = 0``, ``u_x`` free.
  * the rigid x-translation is removed by pinning ``u_x = 0`` at one vertex: the bottom vertex with the
    smallest x (the bottom-left corner of a rectangular domain).  With a normal top load that pin carries
    no force (check with :meth:`PlaneStressSolution.reaction_bottom`: its x component is round-off;
    tests/test_elasticity.py asserts the pin reaction is negligible against the load).
  * all other boundary facets (the sides) are traction free.

Discretisation: continuous Lagrange Pk vector displacement (``order`` 1 or 2; default
:data:`DEFAULT_ORDER`), direct sparse Cholesky (MUMPS through PETSc).  The Dirichlet conditions are
homogeneous, so they are applied symmetrically (rows and columns zeroed, unit diagonal) and the matrix is
symmetric positive definite.  The forms are compiled once per process and element order
(:func:`dolfinx.fem.compile_form`) and bound to each new mesh with :func:`dolfinx.fem.create_form`,
so a call never re-enters the form compiler.

Fields at the mesh nodes (:meth:`PlaneStressSolution.nodal_fields`): the mesh nodes are the geometry
nodes of the (affine, P1-geometry) mesh, in the order of ``mesh.geometry.x`` (= ``solution.points``);
triangles are ``mesh.geometry.dofmaps[0]`` (= ``solution.cells``).  Displacements are the FE values at the
vertices (continuous, no averaging).  Strains and stresses are discontinuous across cells, so each vertex
gets the AREA-WEIGHTED AVERAGE over its adjacent cells of each cell's own polynomial evaluated AT THAT
VERTEX (exact values of the cell polynomial: constant per cell for P1, linear per cell for P2).  Stresses
are computed per cell from that cell's own ``E, nu`` before averaging, so ``sigma`` at a vertex on a
material interface is the area-weighted mean of the one-sided stresses (not C(mean strain)).
For interior vertices of a homogeneous patch with a smooth solution this is the usual "superconvergent
patch average"; on an interface it mixes the two one-sided limits, which is what nodal data of a
discontinuous field must do.  The exact FE values at arbitrary points are available from
:meth:`PlaneStressSolution.evaluate` (and as UFL expressions from :meth:`PlaneStressSolution.ufl_fields`).

Test-only hooks: ``body_force`` and ``boundary_stress`` (callables of the UFL spatial coordinate) add
``int f . v dx`` and ``int (S n) . v ds`` over the whole boundary, for manufactured-solution tests; they
bypass the compiled-form cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import mpi4py.MPI as MPI  # noqa: F401  (must precede dolfinx)

import basix.ufl
import dolfinx.fem as fem
import dolfinx.fem.petsc as fem_petsc
import dolfinx.geometry as dgeom
import dolfinx.mesh as dmesh
import numpy as np
import ufl
from petsc4py import PETSc

__all__ = [
    "DEFAULT_ORDER",
    "FIELD_NAMES",
    "PlaneStressSolution",
    "solve_plane_stress",
    "plane_stress_lame",
    "strain",
    "stress",
]

# Default element order, chosen with scripts/study_elasticity_order.py at the brain-slice default mesh
# sizes (a stiff disc in a soft block, and the MNI brain slice 6; reference = P2 on the same mesh refined
# uniformly twice, so only FE error is measured): at equal dofs and equal solve time P2 is several times
# more accurate than P1 or than P1 on the refined mesh, in energy norm and in pixel strains -> P2.
# Caveat: through VERTEX-averaged nodal strains (the Sibson path) interface smearing dominates and P1 and
# P2 come out alike; nodal values at all P2 nodes (nodal_fields(at="dofs")) do as well as P1 refined once.
# Run the script for the current numbers.
DEFAULT_ORDER = 2

#: Field names returned by :meth:`PlaneStressSolution.nodal_fields` / ``cell_fields`` / ``evaluate``.
FIELD_NAMES = ("ux", "uy", "exx", "eyy", "exy", "sxx", "syy", "sxy")

_TOP = 1  # subdomain id of the top facets in the compiled forms


def plane_stress_lame(E, nu):
    """Plane-stress Lame pair ``(mu, lam_eff)`` for Young's modulus ``E`` and Poisson ratio ``nu``.

    Works on numbers, numpy arrays and UFL expressions.
    """
    return E / (2 * (1 + nu)), E * nu / (1 - nu * nu)


def strain(u):
    """UFL tensor strain ``sym(grad u)``."""
    return ufl.sym(ufl.grad(u))


def stress(u, E, nu):
    """UFL plane-stress Cauchy stress of displacement ``u`` for (UFL) ``E`` and ``nu``."""
    mu, lam = plane_stress_lame(E, nu)
    e = strain(u)
    return 2 * mu * e + lam * ufl.tr(e) * ufl.Identity(2)


# --------------------------------------------------------------------------------------------------
# Compiled forms, one set per element order and process.


@dataclass
class _CompiledForms:
    a: fem.CompiledForm
    L: fem.CompiledForm
    R: fem.CompiledForm
    E: ufl.Coefficient
    nu: ufl.Coefficient
    uh: ufl.Coefficient
    t: ufl.Constant


_COMPILED: dict[tuple, _CompiledForms] = {}


def _compiled_forms(order: int, coord_element) -> _CompiledForms:
    """Compile a(u, v), L(v) and the residual R(uh; v) once per (order, coordinate element).

    The forms live on an abstract mesh with the given coordinate element (its Lagrange variant must
    match the real mesh's: gmsh meshes use equispaced, ``create_rectangle`` gll_warped).
    """
    key = (order, coord_element.basix_hash())
    cf = _COMPILED.get(key)
    if cf is not None:
        return cf
    dtype = PETSc.ScalarType
    domain = ufl.Mesh(coord_element)
    V = ufl.FunctionSpace(domain, basix.ufl.element("Lagrange", "triangle", order, shape=(2,)))
    Q = ufl.FunctionSpace(domain, basix.ufl.element("DG", "triangle", 0))
    E, nu, uh = ufl.Coefficient(Q), ufl.Coefficient(Q), ufl.Coefficient(V)
    t = ufl.Constant(domain)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    ds = ufl.Measure("ds", domain=domain)
    a = ufl.inner(stress(u, E, nu), strain(v)) * ufl.dx
    L = -t * v[1] * ds(_TOP)
    R = ufl.inner(stress(uh, E, nu), strain(v)) * ufl.dx - L
    opts = {"scalar_type": dtype}
    comm = MPI.COMM_SELF
    cf = _CompiledForms(
        a=fem.compile_form(comm, a, form_compiler_options=dict(opts)),
        L=fem.compile_form(comm, L, form_compiler_options=dict(opts)),
        R=fem.compile_form(comm, R, form_compiler_options=dict(opts)),
        E=E, nu=nu, uh=uh, t=t)
    _COMPILED[key] = cf
    return cf


# --------------------------------------------------------------------------------------------------
# The solution object.


@dataclass
class PlaneStressSolution:
    """Displacement of one plane-stress solve plus everything needed to post-process it.

    Attributes:
        u: displacement, a vector Lagrange ``fem.Function`` [m].
        E, nu: DG0 ``fem.Function`` of Young's modulus [Pa] and Poisson ratio [-].
        traction: applied top traction [Pa] (> 0 compression).
        order: element order.
        bottom_dofs: unrolled dof indices (into ``u.x.array``) of the constrained ``u_y`` on the bottom.
        pin_dofs: unrolled dof index of the constrained ``u_x`` at the pin.
        timings: wall seconds of the stages of the solve.

    Node and cell order of the outputs (``points``, ``cells``, ``nodal_fields()``, ``cell_fields()``,
    ``cell_E``, ``locate``, cell indices given to ``evaluate``): the ORDER OF THE INPUT when the mesh
    was given as arrays (a mesher result with ``points``/``cells``, see :func:`solve_plane_stress`),
    else the dolfinx geometry-node / cell order.  ``node_points`` / ``nodal_fields(at="dofs")`` use
    the dof order of ``u``.
    """

    u: fem.Function
    E: fem.Function
    nu: fem.Function
    traction: float
    order: int
    bottom_dofs: np.ndarray
    pin_dofs: np.ndarray
    load_vector: np.ndarray  # unconstrained load vector (unrolled), i.e. L(phi_i)
    _residual_form: fem.Form
    timings: dict[str, float] = field(default_factory=dict)
    node_out: np.ndarray | None = None  # output index of each dolfinx geometry node (None = identity)
    cell_out: np.ndarray | None = None  # output index of each dolfinx cell (None = identity)
    n_out_nodes: int | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    # ---- mesh views ----
    @property
    def mesh(self) -> dmesh.Mesh:
        return self.u.function_space.mesh

    # internal (dolfinx-order) views
    @property
    def _points(self) -> np.ndarray:
        return self.mesh.geometry.x[:, :2]

    @property
    def _cells(self) -> np.ndarray:
        return self.mesh.geometry.dofmaps[0]

    @property
    def _cell_E(self) -> np.ndarray:
        return self.E.x.array[self.E.function_space.dofmap.list[:, 0]]

    @property
    def _cell_nu(self) -> np.ndarray:
        return self.nu.x.array[self.nu.function_space.dofmap.list[:, 0]]

    def _nodes_out(self, a: np.ndarray) -> np.ndarray:
        """dolfinx-geometry-order node array -> output order (NaN at input nodes no cell uses)."""
        if self.node_out is None:
            return a
        out = np.full((self.n_out_nodes,) + a.shape[1:], np.nan)
        out[self.node_out] = a
        return out

    def _cells_out(self, a: np.ndarray) -> np.ndarray:
        if self.cell_out is None:
            return a
        out = np.empty_like(a)
        out[self.cell_out] = a
        return out

    def _cell_in(self, idx: np.ndarray) -> np.ndarray:
        """output-order cell indices (-1 kept) -> dolfinx cell indices."""
        if self.cell_out is None:
            return idx
        if "cell_in" not in self._cache:
            inv = np.empty_like(self.cell_out)
            inv[self.cell_out] = np.arange(len(self.cell_out))
            self._cache["cell_in"] = inv
        return np.where(idx >= 0, self._cache["cell_in"][np.maximum(idx, 0)], -1)

    # ---- mesh views (output order) ----
    @property
    def points(self) -> np.ndarray:
        """(N, 2) coordinates [m] of the mesh vertices at which ``nodal_fields()`` live."""
        return self._nodes_out(self._points)

    @property
    def vertices(self) -> np.ndarray:
        """Alias of :attr:`points`."""
        return self.points

    @property
    def cells(self) -> np.ndarray:
        """(M, 3) int64 vertex indices (into ``points``) of each triangle, counter-clockwise."""
        c = self._cells
        if self.node_out is not None:
            c = self.node_out[c]
        c = np.asarray(self._cells_out(c), dtype=np.int64)
        X = self.points
        a, b = X[c[:, 1]] - X[c[:, 0]], X[c[:, 2]] - X[c[:, 0]]
        cw = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0] < 0
        c[cw] = c[cw][:, [0, 2, 1]]
        return c

    @property
    def cell_E(self) -> np.ndarray:
        """(M,) Young's modulus per cell [Pa] (output cell order)."""
        return self._cells_out(self._cell_E)

    @property
    def cell_nu(self) -> np.ndarray:
        """(M,) Poisson's ratio per cell (output cell order)."""
        return self._cells_out(self._cell_nu)

    # ---- global balances ----
    def traction_top_integral(self) -> tuple[float, float]:
        """Total applied external load ``(Fx, Fy)`` [N/m]: the integral of the applied top traction.

        Assembled with the same linear form as the solve: sum of the unconstrained load vector over
        each component (= ``L(e_x)``, ``L(e_y)`` by the partition of unity).  For a compressive load
        this is ``(0, -traction * width_of_top)``.  (With the test hooks it also holds their loads.)
        A JSON-able tuple.
        """
        b = self.load_vector.reshape(-1, 2).sum(axis=0)
        return float(b[0]), float(b[1])

    def reaction_bottom(self) -> tuple[float, float]:
        """Force ``(Rx, Ry)`` [N/m] the supports exert on the body (a JSON-able tuple).

        From the residual ``r = K_unconstrained u - f`` of the unconstrained system at the constrained
        dofs: ``Ry`` sums it over the bottom ``u_y`` dofs (the frictionless support), ``Rx`` is the pin
        (the only x support).  Global equilibrium: ``reaction_bottom() + traction_top_integral() = 0``.
        """
        if "reaction" not in self._cache:
            r = fem.assemble_vector(self._residual_form).array
            self._cache["reaction"] = (float(r[self.pin_dofs].sum()), float(r[self.bottom_dofs].sum()))
        return self._cache["reaction"]

    def pin_reaction(self) -> float:
        """x force [N/m] carried by the pin (should vanish for a normal top load)."""
        return float(self.reaction_bottom()[0])

    def strain_energy(self) -> float:
        """Stored strain energy per unit thickness ``0.5 int sigma : eps dx`` [J/m] (= 0.5 L(u_h))."""
        return 0.5 * float(self.load_vector @ self.u.x.array)

    # ---- UFL expressions (exact FE evaluation) ----
    def ufl_fields(self) -> dict[str, ufl.core.expr.Expr]:
        """Scalar UFL expressions of the eight fields, for exact FE evaluation (``fe_evaluate_expr``).

        ``exx, eyy, exy`` are tensor strains, ``sxx, syy, sxy`` plane-stress stresses [Pa] with the
        cell's own ``E, nu``.
        """
        # component-wise, free of Sym/Trace nodes (ufl's degree estimator lacks handlers for those)
        g = ufl.grad(self.u)
        exx, eyy, exy = g[0, 0], g[1, 1], 0.5 * (g[0, 1] + g[1, 0])
        mu, lam = plane_stress_lame(self.E, self.nu)
        return {"ux": self.u[0], "uy": self.u[1], "exx": exx, "eyy": eyy, "exy": exy,
                "sxx": 2 * mu * exx + lam * (exx + eyy), "syy": 2 * mu * eyy + lam * (exx + eyy),
                "sxy": 2 * mu * exy}

    def ufl_strain(self):
        return strain(self.u)

    def ufl_stress(self):
        return stress(self.u, self.E, self.nu)

    # ---- numpy post-processing ----
    def _geometry(self):
        """Per-cell affine maps: x0 (M,2), inverse Jacobian (M,2,2), |det J| (M,)."""
        if "geom" not in self._cache:
            X = self._points
            c = self._cells
            x0 = X[c[:, 0]]
            J = np.stack([X[c[:, 1]] - x0, X[c[:, 2]] - x0], axis=2)  # J[:, i, m] = dx_i/dX_m
            det = J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]
            Jinv = np.empty_like(J)
            Jinv[:, 0, 0] = J[:, 1, 1] / det
            Jinv[:, 1, 1] = J[:, 0, 0] / det
            Jinv[:, 0, 1] = -J[:, 0, 1] / det
            Jinv[:, 1, 0] = -J[:, 1, 0] / det
            self._cache["geom"] = (x0, Jinv, np.abs(det))
        return self._cache["geom"]

    def _cell_coeffs(self) -> np.ndarray:
        """(M, ndofs_cell, 2) displacement coefficients per cell."""
        U = self.u.x.array.reshape(-1, 2)
        return U[self.u.function_space.dofmap.list]

    def _basis(self):
        return self.u.function_space.ufl_element().sub_elements[0].basix_element

    def _fields_from_grads(self, Ucell, phi, dphi_ref, Jinv, E, nu):
        """Fields from per-point basis data.

        Ucell (P, nd, 2) coefficients; phi (P, nd) basis values; dphi_ref (P, nd, 2) reference
        gradients; Jinv (P, 2, 2) inverse Jacobians; E, nu (P,).  Returns dict of (P,) arrays.
        """
        u = np.einsum("pd,pdi->pi", phi, Ucell)
        dphi = np.einsum("pdm,pmj->pdj", dphi_ref, Jinv)  # d phi / d x_j
        G = np.einsum("pdi,pdj->pij", Ucell, dphi)       # G[p, i, j] = d u_i / d x_j
        exx, eyy = G[:, 0, 0], G[:, 1, 1]
        exy = 0.5 * (G[:, 0, 1] + G[:, 1, 0])
        mu, lam = plane_stress_lame(E, nu)
        tr = exx + eyy
        return {"ux": u[:, 0], "uy": u[:, 1], "exx": exx, "eyy": eyy, "exy": exy,
                "sxx": 2 * mu * exx + lam * tr, "syy": 2 * mu * eyy + lam * tr, "sxy": 2 * mu * exy}

    def cell_fields(self) -> dict[str, np.ndarray]:
        """The eight fields at each cell centroid, (M,) arrays in dolfinx cell order (exact FE values)."""
        if "cell" not in self._cache:
            x0, Jinv, _ = self._geometry()
            M = Jinv.shape[0]
            tab = self._basis().tabulate(1, np.array([[1.0 / 3.0, 1.0 / 3.0]]))[:, 0, :, 0]  # (3, nd)
            Uc = self._cell_coeffs()
            nd = tab.shape[1]
            phi = np.broadcast_to(tab[0], (M, nd))
            dref = np.broadcast_to(np.stack([tab[1], tab[2]], axis=1), (M, nd, 2))
            vals = self._fields_from_grads(Uc, phi, dref, Jinv, self._cell_E, self._cell_nu)
            self._cache["cell"] = {k: self._cells_out(v) for k, v in vals.items()}
        return {k: v.copy() for k, v in self._cache["cell"].items()}

    def nodal_fields(self, at: str = "vertices") -> dict[str, np.ndarray]:
        """The eight fields at mesh nodes, (N,) arrays.

        ``at="vertices"``: at the mesh vertices, in ``self.points`` order (triangles ``self.cells``).
        ``at="dofs"``: at every Lagrange node of the displacement space (P2: vertices AND edge
        midpoints), in ``self.node_points`` order; ``self.node_cells`` triangulates them (P2: each
        triangle split into four by its edge midpoints), so the nodal data are a 4x denser linear
        representation of the P2 solution.
        Displacements: FE values at the nodes.  Strains and stresses: area-weighted average over the
        cells holding each node of each cell's own polynomial evaluated at that node (stress with the
        cell's own E, nu before averaging).  See the module docstring.
        """
        if at not in ("vertices", "dofs"):
            raise ValueError("at must be 'vertices' or 'dofs'")
        key = "nodal_" + at
        if key not in self._cache:
            if at == "vertices":
                node = self._cells
                ref = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
                n_nodes = self._points.shape[0]
            else:
                node = self.u.function_space.dofmap.list
                ref = self._basis().points
                n_nodes = self.u.x.array.size // 2
            vals = self._node_average(node, ref, n_nodes)
            if at == "vertices":
                vals = {k: self._nodes_out(v) for k, v in vals.items()}
            self._cache[key] = vals
        return {k: v.copy() for k, v in self._cache[key].items()}

    def _node_average(self, node: np.ndarray, ref: np.ndarray, n_nodes: int) -> dict[str, np.ndarray]:
        """Area-weighted average over cells of the cell fields at local reference points ``ref``.

        ``node`` (M, k): global node index of local point j of each cell; ``ref`` (k, 2).
        """
        _, Jinv, area2 = self._geometry()
        M, k = node.shape
        tab = self._basis().tabulate(1, ref)[:, :, :, 0]  # (3 derivs, k points, nd)
        Uc = self._cell_coeffs()
        nd = tab.shape[2]
        # points p = (cell, local node j), flattened cell-major
        Ucp = np.repeat(Uc, k, axis=0)
        phi = np.tile(tab[0], (M, 1))
        dref = np.tile(np.stack([tab[1], tab[2]], axis=2), (M, 1, 1)).reshape(M * k, nd, 2)
        vals = self._fields_from_grads(Ucp, phi, dref, np.repeat(Jinv, k, axis=0),
                                       np.repeat(self._cell_E, k), np.repeat(self._cell_nu, k))
        flat = node.reshape(-1)
        w = np.repeat(area2, k)
        wsum = np.bincount(flat, weights=w, minlength=n_nodes)
        out = {}
        for name in ("ux", "uy"):
            arr = np.empty(n_nodes)
            arr[flat] = vals[name]  # continuous: every cell gives the same value
            out[name] = arr
        for name in ("exx", "eyy", "exy", "sxx", "syy", "sxy"):
            out[name] = np.bincount(flat, weights=w * vals[name], minlength=n_nodes) / wsum
        return out

    @property
    def node_points(self) -> np.ndarray:
        """(n, 2) coordinates of the Lagrange nodes of the displacement space (``at="dofs"`` order)."""
        V = self.u.function_space
        return V.tabulate_dof_coordinates()[:, :2]

    @property
    def node_cells(self) -> np.ndarray:
        """(m, 3) triangles over ``node_points``: P1 the mesh cells, P2 each cell split into four."""
        dofs = self.u.function_space.dofmap.list
        if self.order == 1:
            return np.asarray(dofs, dtype=np.int64)
        if self.order == 2:
            # basix P2 triangle: 0,1,2 vertices; 3,4,5 midpoints of edges (1,2), (0,2), (0,1)
            sub = np.array([[0, 5, 4], [1, 3, 5], [2, 4, 3], [3, 4, 5]])
            return np.asarray(dofs[:, sub].reshape(-1, 3), dtype=np.int64)
        raise NotImplementedError("node_cells is defined for orders 1 and 2")

    def locate(self, points: np.ndarray) -> np.ndarray:
        """Index (output cell order) of a cell holding each point (N,) int64, -1 outside the mesh."""
        c = self._locate(points)
        if self.cell_out is None:
            return c
        return np.where(c >= 0, self.cell_out[np.maximum(c, 0)], -1)

    def _locate(self, points: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
        """dolfinx cell holding each point (-1 outside).

        Candidates from dolfinx's bounding-box tree, then an exact barycentric test here: dolfinx's
        ``compute_colliding_cells`` accepts points up to an absolute GJK tolerance that is not small
        on millimetre cells in metre units (it returned cells a point lay ~1e-3 h outside of).  The
        candidate with the largest smallest barycentric coordinate wins; points further than
        ``rtol`` (barycentric units) outside every candidate get -1.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        pts = np.zeros((len(points), 3))
        pts[:, :2] = points
        if "bbtree" not in self._cache:
            self._cache["bbtree"] = dgeom.bb_tree(self.mesh, 2)
        cand = dgeom.compute_collisions_points(self._cache["bbtree"], pts)
        off = np.asarray(cand.offsets)
        cells = np.asarray(cand.array, dtype=np.int64)
        owner = np.repeat(np.arange(len(points)), np.diff(off))
        x0, Jinv, _ = self._geometry()
        lam = np.einsum("pmi,pi->pm", Jinv[cells], points[owner] - x0[cells])
        score = np.minimum(1.0 - lam.sum(axis=1), lam.min(axis=1))
        out = np.full(len(points), -1, dtype=np.int64)
        if len(cells):
            # per point, the candidate with the best score: sort by (owner, -score), take the first
            order = np.lexsort((-score, owner))
            first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
            ok = score[first] >= -rtol
            out[owner[first][ok]] = cells[first][ok]
        return out

    def evaluate(self, points: np.ndarray, cell_index: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Exact FE values of the eight fields at arbitrary points (N, 2); NaN outside the mesh.

        ``cell_index`` (N,) may give the holding cell of each point (-1 = outside) in the output cell
        order, e.g. ``raster.locate_cells(sol.points, sol.cells, grid)``; otherwise the points are
        located with dolfinx's bounding-box tree.
        On a cell boundary the value is that of the cell chosen (strains jump across cells).
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if cell_index is None:
            cidx = self._locate(points)
        else:
            cidx = self._cell_in(np.asarray(cell_index, dtype=np.int64).reshape(-1))
        inside = cidx >= 0
        c = cidx[inside]
        x0, Jinv, _ = self._geometry()
        Xref = np.einsum("pmi,pi->pm", Jinv[c], points[inside] - x0[c])
        tab = self._basis().tabulate(1, Xref)[:, :, :, 0]  # (3, P, nd)
        vals = self._fields_from_grads(self._cell_coeffs()[c], tab[0], np.stack([tab[1], tab[2]], axis=2),
                                       Jinv[c], self._cell_E[c], self._cell_nu[c])
        out = {}
        for k, v in vals.items():
            arr = np.full(len(points), np.nan)
            arr[inside] = v
            out[k] = arr
        return out


    def fe_grid(self, grid, cell_index: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Exact FE values of the eight fields at the pixel centres of a ``raster.Grid``: (H, W) arrays.

        NaN outside the mesh.  ``cell_index``: optional (H, W) holding cell per pixel (-1 outside), in
        the output cell order, e.g. ``raster.locate_cells(sol.points, sol.cells, grid)``.
        """
        X, Y = grid.centres()
        pts = np.column_stack([X.ravel(), Y.ravel()])
        ci = None if cell_index is None else np.asarray(cell_index).reshape(-1)
        vals = self.evaluate(pts, ci)
        return {k: v.reshape(X.shape) for k, v in vals.items()}


# --------------------------------------------------------------------------------------------------
# The solve.


def _as_cell_array(values, n_cells: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n_cells, float(arr))
    if arr.shape != (n_cells,):
        raise ValueError(f"{name} must be a scalar or have shape ({n_cells},), got {arr.shape}")
    return arr


def solve_plane_stress(
    mesh: dmesh.Mesh,
    cell_E,
    cell_nu,
    traction: float,
    order: int = DEFAULT_ORDER,
    *,
    facet_tags: dmesh.MeshTags | None = None,
    top_tag: int | None = None,
    bottom_tag: int | None = None,
    coord_rtol: float = 1e-8,
    mumps_ordering: int = 0,
    body_force: Callable | None = None,
    boundary_stress: Callable | None = None,
) -> PlaneStressSolution:
    """Solve the plane-stress problem of the module docstring on ``mesh``.

    Args:
        mesh: serial (``MPI.COMM_SELF``) dolfinx triangle mesh with affine geometry, coordinates in m;
            or a mesher result with ``points`` (N, 2), ``cells`` (M, 3) and ``to_dolfinx()`` (e.g.
            ``meshes.labelmesh.LabelMesh``): then ``cell_E``/``cell_nu`` are in ITS cell order and all
            outputs (points, cells, nodal and cell fields) come back in its node / cell order.
        cell_E, cell_nu: per-cell Young's modulus [Pa] and Poisson ratio, (M,) (dolfinx cell order
            for a dolfinx mesh), or scalars.
        traction: top normal traction [Pa]; > 0 compresses (pushes the top down), < 0 pulls.
        order: Lagrange order of the displacement (1 or 2; higher works, untested).
        facet_tags, top_tag, bottom_tag: optional facet markers of the top / bottom edges.  Without
            them, boundary facets with all vertices within ``coord_rtol * height`` of ``y = ymax``
            (top) or ``y = ymin`` (bottom) are used.
        mumps_ordering: MUMPS ICNTL(7) fill-reducing ordering (0 = AMD: fastest measured on these
            2D meshes, see scripts/bench_elasticity.py).
        body_force, boundary_stress: TEST-ONLY hooks, callables of ``ufl.SpatialCoordinate(mesh)``
            returning a UFL vector ``f`` and 2x2 tensor ``S``; they add ``int f.v dx + int (S n).v ds``
            (all boundary facets).  They bypass the compiled-form cache.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    mesh, node_out, cell_out, n_out_nodes = _as_dolfinx(mesh)
    n_cells = mesh.topology.index_map(2).size_local
    E_arr = _as_cell_array(cell_E, n_cells, "cell_E")
    nu_arr = _as_cell_array(cell_nu, n_cells, "cell_nu")
    if cell_out is not None:  # given in the input cell order
        E_arr, nu_arr = E_arr[cell_out], nu_arr[cell_out]
    if np.any(E_arr <= 0) or np.any(nu_arr <= -1) or np.any(nu_arr >= 0.5):
        raise ValueError("need E > 0 and -1 < nu < 0.5 in every cell")
    top_facets, bottom_facets, pin_vertex = _boundary(mesh, facet_tags, top_tag, bottom_tag, coord_rtol)
    V = fem.functionspace(mesh, ("Lagrange", order, (2,)))
    Q = fem.functionspace(mesh, ("DG", 0))
    E, nu = _dg0(Q, E_arr, "E"), _dg0(Q, nu_arr, "nu")
    uh = fem.Function(V, name="u")
    t_c = fem.Constant(mesh, PETSc.ScalarType(traction))
    if body_force is None and boundary_stress is None:
        a_form, L_form, R_form = _bound_forms(mesh, V, E, nu, uh, t_c, top_facets, order)
    else:
        a_form, L_form, R_form = _hooked_forms(mesh, V, E, nu, uh, t_c, top_facets, body_force,
                                               boundary_stress, order)
    bcs, bottom_dofs, pin_dofs = _supports(mesh, V, bottom_facets, pin_vertex)
    timings["setup"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    A, b, load = _assemble(a_form, L_form, bcs)
    timings["assemble"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    _cholesky_solve(A, b, uh, mumps_ordering)
    timings["solve"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    return PlaneStressSolution(u=uh, E=E, nu=nu, traction=float(traction), order=order,
                               bottom_dofs=np.asarray(bottom_dofs, dtype=np.int64).reshape(-1),
                               pin_dofs=np.asarray(pin_dofs, dtype=np.int64).reshape(-1),
                               load_vector=load, _residual_form=R_form, timings=timings,
                               node_out=node_out, cell_out=cell_out, n_out_nodes=n_out_nodes)


def _as_dolfinx(mesh):
    """(dolfinx mesh, node_out, cell_out, n_out_nodes): a mesher result with arrays and ``to_dolfinx()``
    is converted (outputs then follow its node / cell order); a result holding ``.mesh`` is unwrapped."""
    node_out = cell_out = n_out_nodes = None
    if not isinstance(mesh, dmesh.Mesh):
        if hasattr(mesh, "to_dolfinx"):  # mesher result with points / cells arrays (LabelMesh)
            n_out_nodes = int(np.asarray(mesh.points).shape[0])
            mesh = mesh.to_dolfinx()[0]
            node_out = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)
            cell_out = np.asarray(mesh.topology.original_cell_index, dtype=np.int64)
        elif hasattr(mesh, "mesh"):
            mesh = mesh.mesh
    if mesh.comm.size != 1:
        raise ValueError("solve_plane_stress works on serial meshes (MPI.COMM_SELF)")
    if mesh.topology.cell_type != dmesh.CellType.triangle or mesh.geometry.cmaps[0].degree != 1:
        raise ValueError("solve_plane_stress needs an affine triangle mesh")
    return mesh, node_out, cell_out, n_out_nodes


def _boundary(mesh, facet_tags, top_tag, bottom_tag, coord_rtol):
    """Top and bottom facets (from the tags, else by coordinate) and the pin: the bottom vertex with the
    smallest x."""
    tdim, fdim = 2, 1
    topo = mesh.topology
    X = mesh.geometry.x
    ymin, ymax = float(X[:, 1].min()), float(X[:, 1].max())
    tol = coord_rtol * (ymax - ymin)
    topo.create_connectivity(fdim, tdim)
    topo.create_connectivity(tdim, fdim)
    if facet_tags is not None and top_tag is not None and bottom_tag is not None:
        top_facets = facet_tags.find(top_tag)
        bottom_facets = facet_tags.find(bottom_tag)
    else:
        top_facets = dmesh.locate_entities_boundary(mesh, fdim, lambda x: np.abs(x[1] - ymax) <= tol)
        bottom_facets = dmesh.locate_entities_boundary(mesh, fdim, lambda x: np.abs(x[1] - ymin) <= tol)
    if len(top_facets) == 0 or len(bottom_facets) == 0:
        raise ValueError("found no top or no bottom boundary facets")
    topo.create_connectivity(fdim, 0)
    bverts = np.unique(topo.connectivity(fdim, 0).array.reshape(-1, 2)[bottom_facets])
    vx = dmesh.entities_to_geometry(mesh, 0, bverts).reshape(-1)
    pin_vertex = bverts[[int(np.argmin(X[vx, 0]))]].astype(np.int32)
    return top_facets, bottom_facets, pin_vertex


def _dg0(Q, values: np.ndarray, name: str) -> fem.Function:
    """A function of the DG0 space ``Q`` with the given per-cell values (dolfinx cell order)."""
    f = fem.Function(Q, name=name)
    f.x.array[Q.dofmap.list[:, 0]] = values
    return f


def _bound_forms(mesh, V, E, nu, uh, t_c, top_facets, order):
    """The per-process compiled a, L, R bound to this mesh and its coefficients."""
    top_domains = fem.compute_integration_domains(fem.IntegralType.exterior_facet, mesh.topology,
                                                  np.asarray(top_facets, dtype=np.int32))
    cf = _compiled_forms(order, mesh.ufl_domain().ufl_coordinate_element())
    cmap = {cf.E: E, cf.nu: nu, cf.uh: uh}
    kmap = {cf.t: t_c}
    sub = {fem.IntegralType.exterior_facet: [(_TOP, np.asarray(top_domains))]}
    return (fem.create_form(cf.a, [V, V], mesh, {}, cmap, {}),
            fem.create_form(cf.L, [V], mesh, sub, {}, kmap),
            fem.create_form(cf.R, [V], mesh, sub, cmap, kmap))


def _supports(mesh, V, bottom_facets, pin_vertex):
    """Homogeneous Dirichlet conditions: u_y = 0 on the bottom, u_x = 0 at the pin; (bcs, their dofs)."""
    mesh.topology.create_connectivity(0, 2)
    bottom_dofs = fem.locate_dofs_topological(V.sub(1), 1, bottom_facets)
    pin_dofs = fem.locate_dofs_topological(V.sub(0), 0, pin_vertex)
    zero = PETSc.ScalarType(0)
    bcs = [fem.dirichletbc(zero, bottom_dofs, V.sub(1)), fem.dirichletbc(zero, pin_dofs, V.sub(0))]
    return bcs, bottom_dofs, pin_dofs


def _assemble(a_form, L_form, bcs):
    """(A, b, unconstrained load vector); homogeneous Dirichlet values, so lifting is a no-op and only the
    constrained entries of b are zeroed."""
    A = fem_petsc.assemble_matrix(a_form, bcs=bcs)
    A.assemble()
    b = fem_petsc.assemble_vector(L_form)
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    load = b.getArray(readonly=True).copy()
    fem_petsc.set_bc(b, bcs)
    return A, b, load


def _cholesky_solve(A, b, uh, mumps_ordering: int) -> None:
    """Solve A u = b into ``uh`` by MUMPS Cholesky (A is SPD); A and b are destroyed."""
    A.setOption(PETSc.Mat.Option.SPD, True)
    ksp = PETSc.KSP().create(MPI.COMM_SELF)
    try:
        ksp.setOperators(A)
        ksp.setType("preonly")
        pc = ksp.getPC()
        pc.setType("cholesky")
        pc.setFactorSolverType("mumps")
        pc.setFactorSetUpSolverType()
        pc.getFactorMatrix().setMumpsIcntl(7, int(mumps_ordering))
        ksp.setUp()
        ksp.solve(b, uh.x.petsc_vec)
        reason = ksp.getConvergedReason()
        if reason < 0:
            raise RuntimeError(f"plane-stress solve failed (PETSc reason {reason})")
        uh.x.scatter_forward()
    finally:
        ksp.destroy()
        A.destroy()
        b.destroy()


def _hooked_forms(mesh, V, E, nu, uh, t_c, top_facets, body_force, boundary_stress, order):
    """Forms with the test-only load hooks (compiled per call through dolfinx.fem.form)."""
    top_facets = np.sort(np.asarray(top_facets, dtype=np.int32))
    mt = dmesh.meshtags(mesh, 1, top_facets, np.full(len(top_facets), _TOP, dtype=np.int32))
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=mt)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    x = ufl.SpatialCoordinate(mesh)
    n = ufl.FacetNormal(mesh)
    q = {"quadrature_degree": 2 * order + 6}
    L = -t_c * v[1] * ds(_TOP)
    if body_force is not None:
        L = L + ufl.dot(body_force(x), v) * ufl.dx(metadata=q)
    if boundary_stress is not None:
        L = L + ufl.dot(ufl.dot(boundary_stress(x), n), v) * ds(metadata=q)
    a = ufl.inner(stress(u, E, nu), strain(v)) * ufl.dx
    R = ufl.inner(stress(uh, E, nu), strain(v)) * ufl.dx - L
    return fem.form(a), fem.form(L), fem.form(R)
