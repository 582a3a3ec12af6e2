"""Complete electrode model (CEM) of EIT on a disk: DOLFINx-assembled P1 FE blocks, one sparse
Cholesky factorisation, every current pattern from it; measurement protocols; the forward
operator and its adjoint Jacobian for solvers.

Model (2-D, per unit out-of-plane thickness)
--------------------------------------------
Find the potential ``u`` (V) and electrode potentials ``U_l`` (V) such that

    -div(sigma grad u) = 0                      in the disk,
    u + z_l sigma du/dn = U_l                   on electrode e_l,
    int_{e_l} sigma du/dn ds = I_l              (current into the body through e_l),
    sigma du/dn = 0                             between electrodes,
    sum_l U_l = 0                               (ground; any other choice shifts u and U by a constant),

with ``sigma`` (S/m) cellwise constant, contact impedances ``z_l`` (Ohm m^2) and currents ``I_l``
with ``sum_l I_l = 0`` (A per metre of depth; "A" for a unit-thickness slab). The weak form

    int sigma grad u . grad v + sum_l 1/z_l int_{e_l} (u - U_l)(v - V_l) = sum_l I_l V_l

gives the block system ``[[A, B], [B^T, C]] [u; U] = [0; I]`` with ``A = K(sigma) + sum_l M_l / z_l``
(stiffness plus electrode boundary mass), ``B[:, l] = -b_l / z_l`` (``b_l = int_{e_l} phi``) and
``C = diag(|e_l| / z_l)``. ``K``, ``M`` and ``b`` are assembled by DOLFINx from UFL forms compiled
once per process.

Solution strategy: ``A`` is symmetric positive definite; it is factorised once (MUMPS Cholesky
through PETSc, SuperLU as a fallback) and solved for the ``L`` right-hand sides ``b_l / z_l``.
That yields the *electrode basis fields* ``W = A^{-1} B_-`` (the interior potential for unit
potential on electrode ``l`` and zero on the others) and the Schur complement
``S = C - B^T A^{-1} B`` (L x L, symmetric, kernel = constants). The transfer impedance is
``Z = (S + 11^T / L)^{-1} - 11^T / L``; any number of current patterns then costs a small dense
product: ``U = Z I`` and ``u = W U``.

Jacobian (adjoint method): for a measurement ``m^T U_p`` of pattern ``p``,
``d(m^T U_p) / d sigma_k = -int_{T_k} grad u_p . grad w_m`` where ``w_m`` is the field of the
current pattern ``m - mean(m)`` (reciprocity). With the basis fields, all patterns and all
adjoint fields are cheap combinations of ``grad W`` on each cell.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from phantombench.meshes.disk import DiskMesh, Electrodes, disk_mesh

__all__ = [
    "Protocol",
    "CEMModel",
    "CEMForward",
    "electrode_potentials",
    "p1_gradients",
    "disk_grid",
]


# --------------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------------
@dataclass
class Protocol:
    """Current patterns and measurements.

    ``currents`` (P, L): current into each electrode per pattern (A), rows sum to zero.
    ``meas_pattern`` (M,): the pattern each measurement belongs to.
    ``meas_weights`` (M, L): measurement ``k`` is ``meas_weights[k] . U[meas_pattern[k]]``.
    """

    currents: np.ndarray
    meas_pattern: np.ndarray
    meas_weights: np.ndarray
    name: str = "custom"
    description: str = ""

    def __post_init__(self) -> None:
        self.currents = np.atleast_2d(np.asarray(self.currents, dtype=np.float64))
        self.meas_pattern = np.asarray(self.meas_pattern, dtype=np.int64)
        self.meas_weights = np.atleast_2d(np.asarray(self.meas_weights, dtype=np.float64))
        P, L = self.currents.shape
        if np.abs(self.currents.sum(axis=1)).max() > 1e-12 * max(1.0, np.abs(self.currents).max()):
            raise ValueError("every current pattern must sum to zero (charge conservation)")
        if self.meas_weights.shape != (len(self.meas_pattern), L):
            raise ValueError("meas_weights must be (n_measurements, n_electrodes)")
        if len(self.meas_pattern) and (self.meas_pattern.min() < 0 or self.meas_pattern.max() >= P):
            raise ValueError("meas_pattern refers to a pattern that does not exist")

    @property
    def n_electrodes(self) -> int:
        return self.currents.shape[1]

    @property
    def n_patterns(self) -> int:
        return self.currents.shape[0]

    @property
    def n_measurements(self) -> int:
        return len(self.meas_pattern)

    def measure(self, U: np.ndarray) -> np.ndarray:
        """Measurements (..., M) from electrode potentials (..., P, L)."""
        U = np.asarray(U)
        return np.einsum("ml,...ml->...m", self.meas_weights, U[..., self.meas_pattern, :])

    # -- standard protocols ------------------------------------------------------------------
    @classmethod
    def pair_drive(cls, n_electrodes: int = 16, drive_skip: int = 0, measure_skip: int = 0,
                   exclude_driven: bool = True, amplitude: float = 1.0, name: str | None = None) -> Protocol:
        """Pair drive: pattern ``i`` injects ``+amplitude`` at electrode ``i`` and extracts it at
        ``i + 1 + drive_skip`` (mod L). Measurement ``m`` (m = 0..L-1) of each pattern is
        ``U[m + 1 + measure_skip] - U[m]`` (pyEIT's ``v[n] - v[m]`` convention, unrotated);
        ``exclude_driven`` drops pairs touching a driven electrode.

        ``drive_skip=0`` is the adjacent protocol (L = 16: 208 values, 256 with the driven ones),
        ``drive_skip=L//2 - 1`` the opposite protocol.
        """
        L = int(n_electrodes)
        dist = 1 + int(drive_skip)
        mdist = 1 + int(measure_skip)
        if not (1 <= dist < L and 1 <= mdist < L):
            raise ValueError("skips must leave the two electrodes of a pair distinct")
        cur = np.zeros((L, L))
        idx = np.arange(L)
        cur[idx, idx] = amplitude
        cur[idx, (idx + dist) % L] = -amplitude
        pat, wts = [], []
        for i in range(L):
            driven = {i, (i + dist) % L}
            for m in range(L):
                n = (m + mdist) % L
                if exclude_driven and (m in driven or n in driven):
                    continue
                w = np.zeros(L)
                w[n] += 1.0
                w[m] -= 1.0
                pat.append(i)
                wts.append(w)
        if name is None:
            name = "adjacent" if drive_skip == 0 else ("opposite" if dist == L // 2 else f"skip-{drive_skip}")
        desc = (f"pair drive +{amplitude:g} A at electrode i, -{amplitude:g} A at i+{dist} (mod {L}), "
                f"i = 0..{L - 1}; measurements U[m+{mdist}] - U[m], m = 0..{L - 1}"
                + (", pairs touching a driven electrode dropped" if exclude_driven else ", all pairs kept"))
        return cls(cur, np.array(pat, dtype=np.int64), np.array(wts).reshape(-1, L), name, desc)

    @classmethod
    def trigonometric(cls, n_electrodes: int = 16, kind: str = "full", amplitude: float | None = None,
                      phase: float = 0.0, measurement: str = "electrodes") -> Protocol:
        """Trigonometric current patterns over electrode index ``l`` (``w = 2 pi / L``).

        ``kind="p3"``: the single pattern of Yang et al. (P3), ``I_l = A sin(w l + phase)`` with
        ``A = 1/sqrt(2 pi)`` by default. ``kind="full"``: the ``L - 1`` patterns
        ``A cos(k w l)`` (k = 1..L/2) and ``A sin(k w l)`` (k = 1..(L-1)/2), ``A = 1`` by default.
        Measurements: every electrode potential (``"electrodes"``, ground sum U = 0), or adjacent
        differences ``U[m+1] - U[m]`` (``"adjacent"``).
        """
        L = int(n_electrodes)
        w = 2 * np.pi / L
        lidx = np.arange(L)
        if kind == "p3":
            A = 1.0 / np.sqrt(2 * np.pi) if amplitude is None else amplitude
            cur = A * np.sin(w * lidx + phase)[None, :]
            desc = f"one pattern I_l = {A:.6g} sin(2 pi l / {L} + {phase:g}), l = 0..{L - 1}"
        elif kind == "full":
            A = 1.0 if amplitude is None else amplitude
            rows = [A * np.cos(k * w * lidx) for k in range(1, L // 2 + 1)]
            rows += [A * np.sin(k * w * lidx) for k in range(1, (L - 1) // 2 + 1)]
            cur = np.array(rows)
            desc = (f"{len(rows)} patterns A cos(k w l), k = 1..{L // 2}, and A sin(k w l), k = 1..{(L - 1) // 2}; "
                    f"A = {A:g}, w = 2 pi / {L}")
        else:
            raise ValueError("kind must be 'p3' or 'full'")
        cur[np.abs(cur) < 1e-14 * np.abs(cur).max()] = 0.0  # sin(0), sin(pi), cos(pi/2) exactly zero
        P = len(cur)
        if measurement == "electrodes":
            pat = np.repeat(np.arange(P), L)
            wts = np.tile(np.eye(L), (P, 1))
            desc += "; measurements: all electrode potentials (sum U = 0)"
        elif measurement == "adjacent":
            pat = np.repeat(np.arange(P), L)
            one = np.zeros((L, L))
            one[lidx, (lidx + 1) % L] = 1.0
            one[lidx, lidx] -= 1.0
            wts = np.tile(one, (P, 1))
            desc += "; measurements: U[m+1] - U[m]"
        else:
            raise ValueError("measurement must be 'electrodes' or 'adjacent'")
        return cls(cur, pat, wts, "trig-p3" if kind == "p3" else "trig", desc)

    @classmethod
    def custom(cls, currents: np.ndarray, measurement: np.ndarray | None = None) -> Protocol:
        """Arbitrary injection matrix (P, L) and measurement matrix: (M, L) applied to every
        pattern, or (P, M, L) per pattern; ``None`` measures every electrode potential."""
        cur = np.atleast_2d(np.asarray(currents, dtype=np.float64))
        P, L = cur.shape
        meas = np.eye(L) if measurement is None else np.asarray(measurement, dtype=np.float64)
        if meas.ndim == 2:
            meas = np.broadcast_to(meas, (P, *meas.shape))
        if meas.ndim != 3 or meas.shape[0] != P or meas.shape[2] != L:
            raise ValueError("measurement must be (M, L) or (P, M, L)")
        M = meas.shape[1]
        return cls(cur, np.repeat(np.arange(P), M), meas.reshape(P * M, L), "custom",
                   f"{P} custom current patterns, {M} custom measurements each")


# --------------------------------------------------------------------------------------------
# DOLFINx forms (compiled once per process)
# --------------------------------------------------------------------------------------------
@functools.cache
def _compiled_forms():
    import mpi4py.MPI as MPI  # noqa: F401  (must precede dolfinx)
    import basix.ufl
    import dolfinx.fem as fem
    import ufl

    cel = basix.ufl.element("Lagrange", "triangle", 1, shape=(2,))
    domain = ufl.Mesh(cel)
    vel = basix.ufl.element("Lagrange", "triangle", 1)
    qel = basix.ufl.element("DG", "triangle", 0)
    Vs = ufl.FunctionSpace(domain, vel)
    Qs = ufl.FunctionSpace(domain, qel)
    u, v = ufl.TrialFunction(Vs), ufl.TestFunction(Vs)
    s = ufl.Coefficient(Qs)
    comm = MPI.COMM_SELF
    return dict(
        coord=cel, vel=vel, qel=qel, sigma=s,
        K=fem.compile_form(comm, ufl.inner(s * ufl.grad(u), ufl.grad(v)) * ufl.dx),
        M=fem.compile_form(comm, u * v * ufl.ds(1)),
        b=fem.compile_form(comm, v * ufl.ds(1)),
    )


def p1_gradients(points: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the P1 basis functions on each triangle, (M, 3, 2), and signed areas (M,)."""
    p = points[cells]
    d1 = p[:, 1] - p[:, 0]
    d2 = p[:, 2] - p[:, 0]
    det = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    # grad(lambda_1) = (d2_y, -d2_x) / det, grad(lambda_2) = (-d1_y, d1_x) / det
    g1 = np.column_stack([d2[:, 1], -d2[:, 0]]) / det[:, None]
    g2 = np.column_stack([-d1[:, 1], d1[:, 0]]) / det[:, None]
    g0 = -g1 - g2
    return np.stack([g0, g1, g2], axis=1), 0.5 * det


# PETSc objects are not thread-safe: one factorisation or solve at a time per process
_PETSC_LOCK = threading.RLock()


class _Factor:
    """Sparse SPD factorisation: MUMPS Cholesky via PETSc, SuperLU otherwise."""

    def __init__(self, A: sp.csr_matrix, backend: str = "auto"):
        self.n = A.shape[0]
        self.backend = None
        if backend in ("auto", "mumps"):
            with _PETSC_LOCK:
                try:
                    from petsc4py import PETSc

                    A = A.tocsr()
                    self._P = PETSc.Mat().createAIJ(
                        size=A.shape, csr=(A.indptr.astype(PETSc.IntType), A.indices.astype(PETSc.IntType),
                                           A.data), comm=PETSc.COMM_SELF)
                    self._P.setOption(PETSc.Mat.Option.SYMMETRIC, True)
                    self._P.assemble()
                    ksp = PETSc.KSP().create(PETSc.COMM_SELF)
                    ksp.setOperators(self._P)
                    ksp.setType("preonly")
                    pc = ksp.getPC()
                    pc.setType("cholesky")
                    pc.setFactorSolverType("mumps")
                    ksp.setUp()
                    self._ksp = ksp
                    self._F = pc.getFactorMatrix()
                    self.backend = "mumps-cholesky"
                except Exception:
                    if backend == "mumps":
                        raise
        if self.backend is None:
            import scipy.sparse.linalg as spl

            self._lu = spl.splu(A.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                options=dict(SymmetricMode=True))
            self.backend = "superlu"

    def solve(self, B: np.ndarray) -> np.ndarray:
        B = np.asarray(B, dtype=np.float64)
        one = B.ndim == 1
        B2 = B[:, None] if one else B
        if self.backend == "mumps-cholesky":
            from petsc4py import PETSc

            k = B2.shape[1]
            with _PETSC_LOCK:
                Bm = PETSc.Mat().createDense(size=(self.n, k), array=np.array(B2, order="F"), comm=PETSc.COMM_SELF)
                Xm = PETSc.Mat().createDense(size=(self.n, k), comm=PETSc.COMM_SELF)
                Bm.assemble()
                Xm.assemble()
                self._F.matSolve(Bm, Xm)
                X = np.array(Xm.getDenseArray(), copy=True)
                Bm.destroy()
                Xm.destroy()
        else:
            X = self._lu.solve(np.asarray(B2, order="F"))
        return X[:, 0] if one else X

    def __del__(self):
        for name in ("_ksp", "_P"):
            obj = getattr(self, name, None)
            if obj is not None:
                try:
                    with _PETSC_LOCK:
                        obj.destroy()
                except Exception:
                    pass


# --------------------------------------------------------------------------------------------
# The model on one mesh
# --------------------------------------------------------------------------------------------
class CEMModel:
    """CEM on a :class:`~phantombench.meshes.disk.DiskMesh`.

    Public arrays use the mesh's own node and cell order (``mesh.points``, ``mesh.cells``); the
    DOLFINx ordering stays internal. Call :meth:`set_conductivity` (assemble, factorise, basis
    fields), then :meth:`solve` for any currents.
    """

    def __init__(self, mesh: DiskMesh, contact_impedance: float | Sequence[float] = 0.01,
                 backend: str = "auto"):
        import mpi4py.MPI as MPI
        import dolfinx.fem as fem
        import dolfinx.mesh as dmesh

        self.mesh = mesh
        self.backend = backend
        L = mesh.electrodes.n
        z = np.broadcast_to(np.asarray(contact_impedance, dtype=np.float64), (L,)).copy()
        if np.any(z <= 0):
            raise ValueError("contact impedances must be positive (use a small value for the shunt limit)")
        self.z = z
        F = _compiled_forms()
        msh = dmesh.create_mesh(MPI.COMM_SELF, mesh.cells, F["coord"], mesh.points)
        self._msh = msh
        V = fem.functionspace(msh, F["vel"])
        Q = fem.functionspace(msh, F["qel"])
        self._V, self._Q = V, Q
        # orderings: dolfinx dof -> mesh node, dolfinx cell -> mesh cell
        geo_input = np.asarray(msh.geometry.input_global_indices, dtype=np.int64)
        vdm = np.asarray(V.dofmap.list)
        gdm = np.asarray(msh.geometry.dofmaps[0])
        n_dofs = V.dofmap.index_map.size_local
        dof_to_geo = np.empty(n_dofs, dtype=np.int64)
        dof_to_geo[vdm.ravel()] = gdm.ravel()
        self.dof_node = geo_input[dof_to_geo]  # dof -> mesh node
        self.node_dof = np.empty_like(self.dof_node)
        self.node_dof[self.dof_node] = np.arange(n_dofs)
        self.cell_orig = np.asarray(msh.topology.original_cell_index, dtype=np.int64)  # dolfinx -> mesh
        self.n_dofs = n_dofs
        # electrode facets
        tdim = 2
        msh.topology.create_connectivity(tdim - 1, tdim)
        bfacets = dmesh.exterior_facet_indices(msh.topology)
        mid = dmesh.compute_midpoints(msh, tdim - 1, bfacets)
        fel = mesh.electrodes.electrode_at(np.arctan2(mid[:, 1], mid[:, 0]))
        efacets = np.sort(bfacets[fel >= 0]).astype(np.int32)
        dom = fem.compute_integration_domains(fem.IntegralType.exterior_facet, msh.topology, efacets)
        sub = {fem.IntegralType.exterior_facet: [(1, dom)]}
        self._sigma = fem.Function(Q)
        self._formK = fem.create_form(F["K"], [V, V], msh, {}, {F["sigma"]: self._sigma}, {})
        formM = fem.create_form(F["M"], [V, V], msh, sub, {}, {})
        formb = fem.create_form(F["b"], [V], msh, sub, {}, {})
        Mb = fem.assemble_matrix(formM).to_scipy().tocsr()
        b = np.asarray(fem.assemble_vector(formb).array, dtype=np.float64)[:n_dofs].copy()
        dof_el = mesh.node_electrode[self.dof_node]
        self.dof_electrode = dof_el
        self.electrode_length = np.bincount(dof_el[dof_el >= 0], weights=b[dof_el >= 0], minlength=L)
        zinv_dof = np.where(dof_el >= 0, 1.0 / z[np.maximum(dof_el, 0)], 0.0)
        self._Mz = sp.diags(zinv_dof) @ Mb  # entries only couple nodes of one electrode
        self._Mb = Mb
        # B_- = b_l / z_l columns (N x L), sparse
        rows = np.flatnonzero(dof_el >= 0)
        self._Bm = sp.csr_matrix((b[rows] / z[dof_el[rows]], (rows, dof_el[rows])), shape=(n_dofs, L))
        self._b = b
        self.C = np.diag(self.electrode_length / z)
        # geometry for gradients (dolfinx order)
        xd = np.asarray(V.tabulate_dof_coordinates(), dtype=np.float64)[:, :2]
        self._cells_dof = vdm.astype(np.int64)
        self._dphi, self._area = p1_gradients(xd, self._cells_dof)
        self._area = np.abs(self._area)
        self.sigma_cells: np.ndarray | None = None

    # -- properties --------------------------------------------------------------------------
    @property
    def n_electrodes(self) -> int:
        return self.mesh.electrodes.n

    @property
    def n_cells(self) -> int:
        return self.mesh.n_cells

    # -- assembly and factorisation ----------------------------------------------------------
    def stiffness(self, sigma_cells: np.ndarray) -> sp.csr_matrix:
        """Stiffness matrix K(sigma) in DOLFINx dof order."""
        import dolfinx.fem as fem

        s = np.asarray(sigma_cells, dtype=np.float64)
        if s.shape != (self.n_cells,):
            raise ValueError(f"sigma_cells must have shape ({self.n_cells},), got {s.shape}")
        self._sigma.x.array[:] = s[self.cell_orig]
        return fem.assemble_matrix(self._formK).to_scipy().tocsr()

    def set_conductivity(self, sigma_cells: np.ndarray | float) -> CEMModel:
        """Assemble ``A = K(sigma) + M/z``, factorise, and compute basis fields and ``Z``."""
        s = np.broadcast_to(np.asarray(sigma_cells, dtype=np.float64), (self.n_cells,)).copy()
        if np.any(~np.isfinite(s)) or np.any(s <= 0):
            raise ValueError("conductivity must be positive and finite in every cell")
        K = self.stiffness(s)
        A = (K + self._Mz).tocsr()
        self._K = K
        self._A = A
        self._fac = _Factor(A, self.backend)
        Bm = self._Bm.toarray()
        self._W = self._fac.solve(Bm)  # (N, L): unit potential on electrode l, 0 on others
        S = self.C - Bm.T @ self._W
        S = 0.5 * (S + S.T)
        L = self.n_electrodes
        J = np.full((L, L), 1.0 / L)
        Z = np.linalg.inv(S + J) - J
        self.S = S
        self.Z = 0.5 * (Z + Z.T)
        self.sigma_cells = s
        self._gradW = None
        return self

    def _need(self) -> None:
        if self.sigma_cells is None:
            raise RuntimeError("call set_conductivity first")

    # -- solutions ---------------------------------------------------------------------------
    def electrode_potentials(self, currents: np.ndarray, ground: str | int = "mean") -> np.ndarray:
        """Electrode potentials (P, L) for currents (P, L) (or (L,) -> (L,)).

        ``ground="mean"``: sum U = 0; an integer ``k``: U_k = 0.
        """
        self._need()
        I = np.asarray(currents, dtype=np.float64)
        tot = I.sum(axis=-1)
        if np.abs(tot).max() > 1e-10 * max(1.0, np.abs(I).max()):
            raise ValueError("currents must sum to zero over the electrodes")
        U = I @ self.Z  # Z symmetric
        if ground != "mean":
            U = U - U[..., [int(ground)]]
        return U

    def solve(self, currents: np.ndarray, ground: str | int = "mean") -> tuple[np.ndarray, np.ndarray]:
        """``(U (P, L), u (P, N))``: electrode potentials and nodal potentials (mesh node order)."""
        I = np.atleast_2d(currents)
        U0 = self.electrode_potentials(I)  # sum-zero ground
        u = (U0 @ self._W.T)[:, self.node_dof]
        if ground != "mean":
            shift = U0[:, [int(ground)]]
            U0 = U0 - shift
            u = u - shift
        return U0, u

    def basis_fields(self) -> np.ndarray:
        """(N, L) nodal potential for unit potential on electrode l, zero on the others."""
        self._need()
        return self._W[self.node_dof]

    def solve_bordered(self, currents: np.ndarray, ground: str | int = "mean") -> tuple[np.ndarray, np.ndarray]:
        """Independent check: solve the full bordered system ``[[A, B, 0], [B^T, C, g], [0, g^T, 0]]``
        with a Lagrange multiplier for the ground (``g = 1`` for sum U = 0, ``e_k`` for U_k = 0) by
        sparse LU, one right-hand side per pattern. Returns ``(U, u)`` like :meth:`solve`."""
        import scipy.sparse.linalg as spl

        self._need()
        I = np.atleast_2d(np.asarray(currents, dtype=np.float64))
        L, N = self.n_electrodes, self.n_dofs
        g = np.ones(L) if ground == "mean" else np.eye(L)[int(ground)]
        B = -self._Bm
        big = sp.bmat([[self._A, B, None],
                       [B.T, sp.csr_matrix(self.C), sp.csr_matrix(g[:, None])],
                       [None, sp.csr_matrix(g[None, :]), None]], format="csc")
        rhs = np.zeros((N + L + 1, len(I)))
        rhs[N:N + L] = I.T
        x = spl.splu(big).solve(rhs)
        return x[N:N + L].T, x[:N].T[:, self.node_dof]

    # -- derivatives -------------------------------------------------------------------------
    def _grad_basis(self) -> np.ndarray:
        """(M, 2, L) gradient of each basis field on each cell (DOLFINx cell order)."""
        if self._gradW is None:
            Wc = self._W[self._cells_dof]  # (M, 3, L)
            self._gradW = np.einsum("cid,cil->cdl", self._dphi, Wc)
        return self._gradW

    def jacobian(self, protocol: Protocol, chunk: int = 64) -> np.ndarray:
        """d(measurements)/d(sigma_cells), (n_measurements, n_cells) in mesh cell order."""
        self._need()
        G = self._grad_basis()  # (M, 2, L)
        Up = self.electrode_potentials(protocol.currents)  # (P, L)
        mw = protocol.meas_weights
        Um = (mw - mw.mean(axis=1, keepdims=True)) @ self.Z  # adjoint electrode potentials (Mm, L)
        gp = np.einsum("cdl,pl->pcd", G, Up)  # (P, M, 2)
        area = self._area
        nm = protocol.n_measurements
        J = np.empty((nm, self.n_cells))
        inv = np.empty_like(self.cell_orig)
        inv[self.cell_orig] = np.arange(len(self.cell_orig))
        for s0 in range(0, nm, chunk):
            sl = slice(s0, min(nm, s0 + chunk))
            gm = np.einsum("cdl,kl->kcd", G, Um[sl])  # (k, M, 2)
            Jd = -(gp[protocol.meas_pattern[sl]] * gm).sum(axis=2) * area  # dolfinx cell order
            J[sl] = Jd[:, inv]
        return J

    # -- diagnostics -------------------------------------------------------------------------
    def dissipation(self, U: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
        """Bulk ``int sigma |grad u|^2`` and contact ``sum_l 1/z_l int (u - U_l)^2`` per pattern,
        from the assembled matrices (the tests recompute them independently)."""
        ud = np.atleast_2d(u)[:, self.dof_node]  # mesh node order -> dof order
        bulk = np.einsum("pi,pi->p", ud, (self._K @ ud.T).T)
        Mz = self._Mz
        bz = self._Bm.toarray()
        Ua = np.atleast_2d(U)
        contact = (np.einsum("pi,pi->p", ud, (Mz @ ud.T).T) - 2 * np.einsum("pl,pl->p", Ua, ud @ bz)
                   + np.einsum("pl,l,pl->p", Ua, self.electrode_length / self.z, Ua))
        return {"bulk": bulk, "contact": contact}


# --------------------------------------------------------------------------------------------
# Grid helpers
# --------------------------------------------------------------------------------------------
def disk_grid(radius: float = 1.0, H: int = 128, W: int = 128):
    """The task grid over the disk: ``H x W`` pixels tiling the square ``[-R, R]^2``
    (pixel centres half a pixel inside), row 0 at the top."""
    from phantombench.generators.raster import Grid

    return Grid.fit(-radius, radius, -radius, radius, H, W, include_edges=False)


# --------------------------------------------------------------------------------------------
# Forward operator for solvers
# --------------------------------------------------------------------------------------------
class CEMForward:
    """CEM forward operator on a mesh of the solver's choosing (coarser than the data mesh).

    ``forward(sigma_cells) -> measurements``, ``jacobian(sigma_cells)`` (adjoint method),
    ``to_grid`` / ``from_grid`` between cell values and the task grid.

    Example::

        fwd = CEMForward(mesh_size=0.08, n_electrodes=16, protocol="adjacent")
        v = fwd.forward(np.ones(fwd.n_cells))        # (208,)
        J = fwd.jacobian(np.ones(fwd.n_cells))       # (208, n_cells)
        img = fwd.to_grid(sigma_cells)               # (128, 128), NaN outside
    """

    def __init__(self, mesh_size: float = 0.08, n_electrodes: int = 16, coverage: float = 0.5,
                 contact_impedance: float | Sequence[float] = 0.01, first_angle: float = 0.0,
                 direction: str = "ccw", radius: float = 1.0, electrodes: Electrodes | None = None,
                 protocol: str | Protocol = "adjacent", electrode_mesh_size: float | None = None,
                 exclude_driven: bool = True, current: float = 1.0, grid_shape: tuple[int, int] = (128, 128),
                 backend: str = "auto"):
        if electrodes is None:
            electrodes = Electrodes.evenly_spaced(n_electrodes, coverage, first_angle, direction, radius)
        self.electrodes = electrodes
        self.mesh = disk_mesh(electrodes, mesh_size, electrode_mesh_size)
        self.model = CEMModel(self.mesh, contact_impedance, backend=backend)
        self.protocol = make_protocol(protocol, electrodes.n, exclude_driven=exclude_driven, amplitude=current)
        self.grid = disk_grid(electrodes.radius, *grid_shape)
        self._last: np.ndarray | None = None
        self._cell_index = None

    # -- mesh data ---------------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return self.mesh.n_cells

    @property
    def n_measurements(self) -> int:
        return self.protocol.n_measurements

    @property
    def points(self) -> np.ndarray:
        return self.mesh.points

    @property
    def cells(self) -> np.ndarray:
        return self.mesh.cells

    @property
    def cell_areas(self) -> np.ndarray:
        return self.mesh.cell_areas()

    @property
    def cell_centroids(self) -> np.ndarray:
        return self.mesh.cell_centroids()

    # -- physics -----------------------------------------------------------------------------
    def _set(self, sigma_cells) -> None:
        s = np.broadcast_to(np.asarray(sigma_cells, dtype=np.float64), (self.n_cells,))
        if self._last is None or not np.array_equal(self._last, s):
            self.model.set_conductivity(s)
            self._last = s.copy()

    def electrode_potentials(self, sigma_cells) -> np.ndarray:
        """(P, L) electrode potentials (sum U = 0) for every current pattern."""
        self._set(sigma_cells)
        return self.model.electrode_potentials(self.protocol.currents)

    def forward(self, sigma_cells) -> np.ndarray:
        """Measurements (M,) under the protocol."""
        return self.protocol.measure(self.electrode_potentials(sigma_cells))

    def jacobian(self, sigma_cells) -> np.ndarray:
        """d(measurements)/d(sigma_cells), (M, n_cells)."""
        self._set(sigma_cells)
        return self.model.jacobian(self.protocol)

    def forward_and_jacobian(self, sigma_cells) -> tuple[np.ndarray, np.ndarray]:
        return self.forward(sigma_cells), self.jacobian(sigma_cells)

    def potentials(self, sigma_cells) -> np.ndarray:
        """Nodal potentials (P, N) of every pattern (mesh node order)."""
        self._set(sigma_cells)
        return self.model.solve(self.protocol.currents)[1]

    # -- grid maps ---------------------------------------------------------------------------
    def cell_index(self, grid=None) -> np.ndarray:
        """(H, W) cell holding each pixel centre (-1 outside the mesh)."""
        from phantombench.generators.raster import locate_cells

        if grid is None:
            if self._cell_index is None:
                self._cell_index = locate_cells(self.points, self.cells, self.grid)
            return self._cell_index
        return locate_cells(self.points, self.cells, grid)

    def to_grid(self, cell_values: np.ndarray, grid=None) -> np.ndarray:
        """Cell values (n_cells,) or (n_cells, k) -> (H, W) or (k, H, W), NaN outside the mesh."""
        from phantombench.generators.raster import cell_to_grid

        return cell_to_grid(np.asarray(cell_values), self.cell_index(grid))

    def cells_to_grid_matrix(self, grid=None) -> sp.csr_matrix:
        """Sparse (H*W, n_cells) 0/1 operator of :meth:`to_grid` (rows of pixels outside the
        mesh are empty, i.e. give 0 instead of NaN)."""
        g = self.grid if grid is None else grid
        idx = self.cell_index(grid).ravel()
        inside = np.flatnonzero(idx >= 0)
        return sp.csr_matrix((np.ones(len(inside)), (inside, idx[inside])), shape=(g.H * g.W, self.n_cells))

    def grid_to_cells_matrix(self, grid=None) -> sp.csr_matrix:
        """Sparse (n_cells, H*W) averaging operator: each cell takes the mean of the pixels whose
        centres it holds; a cell holding none takes bilinear interpolation at its centroid."""
        g = self.grid if grid is None else grid
        idx = self.cell_index(grid).ravel()
        inside = np.flatnonzero(idx >= 0)
        cnt = np.bincount(idx[inside], minlength=self.n_cells)
        A = sp.csr_matrix((1.0 / cnt[idx[inside]], (idx[inside], inside)), shape=(self.n_cells, g.H * g.W))
        empty = np.flatnonzero(cnt == 0)
        if len(empty):
            c = self.cell_centroids[empty]
            fj = np.clip((c[:, 0] - g.x0) / g.dx, 0, g.W - 1)
            fi = np.clip((g.y_top - c[:, 1]) / g.dy, 0, g.H - 1)
            j0 = np.minimum(np.floor(fj).astype(int), g.W - 2)
            i0 = np.minimum(np.floor(fi).astype(int), g.H - 2)
            tj, ti = fj - j0, fi - i0
            rows = np.repeat(empty, 4)
            cols = np.column_stack([i0 * g.W + j0, i0 * g.W + j0 + 1, (i0 + 1) * g.W + j0,
                                    (i0 + 1) * g.W + j0 + 1]).ravel()
            vals = np.column_stack([(1 - ti) * (1 - tj), (1 - ti) * tj, ti * (1 - tj), ti * tj]).ravel()
            A = A + sp.csr_matrix((vals, (rows, cols)), shape=A.shape)
        return A.tocsr()

    def from_grid(self, image: np.ndarray, grid=None) -> np.ndarray:
        """Image (H, W) -> cell values (n_cells,) by :meth:`grid_to_cells_matrix`. NaN pixels
        (outside the disk) first take the value of the nearest finite pixel."""
        from phantombench.generators.raster import fill_nearest

        img = np.asarray(image, dtype=np.float64)
        fin = np.isfinite(img)
        if not fin.all():
            if not fin.any():
                raise ValueError("image has no finite pixel")
            img = fill_nearest(img, fin)
        return self.grid_to_cells_matrix(grid) @ img.ravel()


def make_protocol(protocol: str | Protocol, n_electrodes: int, *, exclude_driven: bool = True,
                  amplitude: float | None = None, drive_skip: int = 0, measurement: str | None = None,
                  phase: float = 0.0) -> Protocol:
    """A :class:`Protocol` from a name: ``adjacent``, ``opposite``, ``skip`` (with ``drive_skip``),
    ``trig-p3``, ``trig``; a Protocol passes through."""
    if isinstance(protocol, Protocol):
        return protocol
    L = int(n_electrodes)
    if protocol in ("adjacent", "opposite", "skip"):
        skip = {"adjacent": 0, "opposite": L // 2 - 1}.get(protocol, drive_skip)
        if measurement not in (None, "adjacent"):
            P = Protocol.pair_drive(L, skip, exclude_driven=False, amplitude=1.0 if amplitude is None else amplitude)
            return Protocol.custom(P.currents, np.eye(L))
        return Protocol.pair_drive(L, skip, 0, exclude_driven, 1.0 if amplitude is None else amplitude,
                                   name=protocol if protocol != "skip" else None)
    if protocol in ("trig-p3", "trig"):
        return Protocol.trigonometric(L, "p3" if protocol == "trig-p3" else "full", amplitude, phase,
                                      measurement or "electrodes")
    raise ValueError(f"unknown protocol {protocol!r}")


# --------------------------------------------------------------------------------------------
# Convenience: electrode potentials for a homogeneous or callable conductivity
# --------------------------------------------------------------------------------------------
def electrode_potentials(conductivity: float | Callable[[np.ndarray, np.ndarray], np.ndarray] = 1.0,
                         n_electrodes: int = 16, coverage: float = 0.5,
                         contact_impedance: float | Sequence[float] = 0.01,
                         currents: np.ndarray | None = None, mesh_size: float = 0.04,
                         first_angle: float = 0.0, direction: str = "ccw", radius: float = 1.0,
                         electrode_mesh_size: float | None = None, electrodes: Electrodes | None = None,
                         ground: str | int = "mean") -> np.ndarray:
    """Electrode potentials U (patterns x L) of the CEM on a disk.

    ``conductivity``: a number (S/m) or ``f(x, y) -> sigma`` evaluated (vectorised) at cell
    centroids. ``currents`` (patterns x L, A, rows summing to zero; default: the adjacent pattern
    set). ``mesh_size`` relative to the radius. Rows of the result sum to zero (ground
    ``"mean"``) or vanish at electrode ``ground``.
    """
    if electrodes is None:
        electrodes = Electrodes.evenly_spaced(n_electrodes, coverage, first_angle, direction, radius)
    mesh = disk_mesh(electrodes, mesh_size, electrode_mesh_size)
    model = CEMModel(mesh, contact_impedance)
    if callable(conductivity):
        c = mesh.cell_centroids()
        sig = np.broadcast_to(np.asarray(conductivity(c[:, 0], c[:, 1]), dtype=np.float64), (mesh.n_cells,))
    else:
        sig = float(conductivity)
    model.set_conductivity(sig)
    if currents is None:
        currents = Protocol.pair_drive(electrodes.n).currents
    I = np.asarray(currents, dtype=np.float64)
    return model.electrode_potentials(I, ground=ground)
