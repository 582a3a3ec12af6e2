"""Classical EIT baselines for the ``eit`` task: one-step Gauss-Newton difference imaging with the NOSER
prior, Tikhonov, and total variation.

Every solver linearises the complete electrode model at the homogeneous background ``sigma_0`` (the
dataset config's ``background``) on its *own* coarse mesh -- ``task.forward_operator(observation, mesh_size=...)``
builds a :class:`~phantombench.generators.cem.CEMForward` with the electrodes, contact impedance and protocol the
observation declares, never the data mesh (no inverse crime) -- and uses the adjoint Jacobian ``J = d v / d sigma_cells``
(M x n_cells). With the observed voltage differences ``dv`` (M,), the conductivity change on the solver's cells:

* ``noser`` -- ``dx = argmin ||J dx - dv||^2 + lam ||dx||_R^2`` with the NOSER prior ``R = diag(J^T J)^p``.
  Two conventions exist and the exponent is a parameter, recorded in every result: ``p = 1`` (Cheney et al.
  1990, pyEIT's ``lm``/NOSER) and ``p = 0.5`` (EIDORS ``prior_noser`` default ``exponent = 0.5``). Default 0.5:
  on P3-style data (one pattern, 16 adjacent measurements) it gives CC 0.49 against 0.33 for ``p = 1`` (below).
* ``tikhonov`` -- the same with ``R = I`` (identity prior on the cell values, as EIDORS ``prior_tikhonov``).
* ``tv`` -- ``dx = argmin 1/2 ||J dx - dv||^2 + alpha TV(dx)``, ``TV(dx) = sum over interior edges e of
  |e| |dx_i - dx_j|`` (the exact total variation of a cellwise-constant function), solved by Borsic's
  primal-dual interior point method (PD-IPM; :func:`tv_pdipm`).

Why PD-IPM rather than Chambolle-Pock: both were implemented (:func:`tv_chambolle_pock` stays as the
independent reference the tests compare against). The validation split picks a small ``alpha`` (the data
are only 16 measurements, and TV must fill the null space of J), and there first-order primal-dual steps move
the iterate along the null space of J by only ``O(t alpha |e|)`` per iteration: measured on P3 case 1 with
alpha = 1e-3, Chambolle-Pock (even with adaptive step balancing) needed ~40,000 iterations (6.5 s) to reach
a relative residual of 1e-2, while PD-IPM reaches the optimum (same objective to 1e-4, relative) in ~25 Newton
steps whatever alpha is. Each Newton step solves a weighted graph Laplacian plus the rank-M ``J^T J`` as one
sparse bordered system, so no dense n_cells x n_cells matrix is formed. The price is a smoothing parameter
beta, driven to ``1e-8`` of its start by continuation, where it no longer changes the image.

Hyperparameters are dimensionless and chosen by stated rules, never on test truth:

* ``lam`` (NOSER, Tikhonov) is relative: ``lam_abs = lam * trace(J R^-1 J^T) / M`` (independent of the units
  of ``J`` and of the mesh size);
* ``alpha`` (TV) is relative: with ``J`` scaled to unit spectral norm (``J / s``, ``dv / s``),
  ``alpha_abs = alpha * ||dv / s||_2``, so the solution scales linearly with ``dv`` like the linear methods'.

The defaults were chosen once with :func:`select_hyperparameter` by the lowest mean RIE (a criterion that
depends on the amplitude, unlike CC) on validation data that no test set shares: the validation splits of
P3-style training sets (``cnn-pinn-case1..3``, seeds 101-103, 90 phantoms, fixed mesh) and 8 ``random``
phantoms (seed 11). Mean RIE for lam = 1e-4 / 1e-3 / 1e-2 / 1e-1 / 1:

* NOSER p = 0.5 -- P3: 0.9212 / 0.9212 / 0.9217 / 0.9268 / 0.9556; random: 0.9218 / 0.8729 / 0.8798 / 0.8998 /
  0.9201 -> lam = 1e-3 (default). NOSER p = 1 -- P3: 0.9373 / 0.9373 / 0.9372 / 0.9388 / 0.9564; random: 1.0438 /
  0.9551 / 0.9439 / 0.9501 / 0.9496 -> lam = 1e-2 (pass it with p = 1). CC barely depends on lam here (P3,
  p = 0.5: 0.492-0.494), and p = 0.5 beats p = 1 on both data sets (P3 CC 0.49 against 0.33).
* Tikhonov -- P3: 0.9293 / 0.9294 / 0.9299 / 0.9352 / 0.9632; random: 0.9055 / 0.8737 / 0.8842 / 0.9052 / 0.9289
  -> lam = 1e-3.
* TV (30 of the P3 validation phantoms), alpha = 1e-3 / 1e-2 / 1e-1 / 1: RIE 0.9583 / 0.9566 / 0.9570 / 0.9621
  -> alpha = 1e-2 (CC 0.263 / 0.274 / 0.274 / 0.263). TV stays well behind NOSER on these single-pattern data
  whatever alpha: the smallest-TV explanation of 16 boundary measurements puts the change next to the
  electrodes, where the sensitivity is largest (NOSER's prior counters exactly that depth bias).

``phantombench reproduce cnn-pinn-eit --budget paper`` re-selects them on the validation split of its own
training data and records the values.

Results are cellwise constant on the solver mesh and returned on the task grid (``dsigma``, S/m, NaN outside
the mask); pixels inside the mask but outside the (polygonal) coarse mesh take their nearest cell.

Which dataset config the solver uses: the observation's ``config`` entry (the dataset manifest's resolved
config, a dict) when the task provides it; otherwise the P3 preset's config if there are 16 measurements, the
adjacent protocol's if 208 (16 electrodes, default layout and contact impedance); the ``config`` parameter
(a dict of overrides) can force any field.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from phantombench.solvers.base import Solver

__all__ = ["NOSER", "Tikhonov", "TotalVariation", "LinearisedEIT", "eit_config", "linearised_operator",
           "gauss_newton_step", "tv_chambolle_pock", "interior_edges", "select_hyperparameter"]


# ------------------------------------------------------------------------------------------ config
_P3_FALLBACK = dict(n_electrodes=16, protocol="trig-p3", measurement="adjacent", background=1.0)
_ADJ_FALLBACK = dict(n_electrodes=16, protocol="adjacent")


def eit_config(observation: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The acquisition a solver should model (see the module docstring), as a plain dict: the observation's
    config (other keys kept), validated and completed by :class:`~phantombench.generators.operators.CEMSetup`."""
    from phantombench.generators.operators import CEMSetup

    cfg = observation.get("config")
    if isinstance(cfg, str):
        cfg = json.loads(cfg)
    if cfg is None:
        m = int(np.size(observation["dv"]))
        if m == 16:
            cfg = dict(_P3_FALLBACK)
        elif m == 208:
            cfg = dict(_ADJ_FALLBACK)
        else:
            raise ValueError(f"the observation carries no dataset config and {m} measurements match no default "
                             "protocol; pass the config with --param config=...")
        # fields the task may hand over one by one
        for k in ("protocol", "n_electrodes", "background", "contact_impedance", "coverage", "radius",
                  "first_angle", "direction", "measurement", "current_amplitude", "trig_phase"):
            if k in observation:
                v = observation[k]
                cfg[k] = v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v
    cfg = dict(cfg)
    if overrides:
        unknown = sorted(set(overrides) - set(CEMSetup.model_fields) - set(cfg))
        if unknown:
            raise ValueError(f"config override(s) {', '.join(unknown)}: not acquisition fields "
                             f"({', '.join(CEMSetup.model_fields)})")
        cfg.update(overrides)
    return CEMSetup(**cfg).model_dump(mode="json")


# ------------------------------------------------------------------------------------------ operator
@dataclass
class LinearOperatorData:
    """What the linearised solvers need, computed once per (config, mesh size, grid shape)."""

    fwd: Any                 # CEMForward on the solver mesh
    J: np.ndarray            # (M, n_cells) Jacobian at the background
    sigma0: float            # background conductivity
    pix: sp.csr_matrix       # (H*W, n_cells) pixel <- cell (nearest cell for mask pixels outside the mesh)
    mask: np.ndarray         # (H, W) pixels assigned a cell
    edges: np.ndarray        # (E, 2) cells sharing an interior edge
    edge_length: np.ndarray  # (E,)
    setup_s: float


_OP_CACHE: dict[str, LinearOperatorData] = {}
_OP_LOCK = threading.Lock()


def interior_edges(cells: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of triangles sharing an edge, (E, 2), and the length of that edge, (E,)."""
    cells = np.asarray(cells)
    e = np.concatenate([cells[:, [0, 1]], cells[:, [1, 2]], cells[:, [2, 0]]])
    owner = np.tile(np.arange(len(cells)), 3)
    e.sort(axis=1)
    key = e[:, 0].astype(np.int64) * (int(e.max()) + 1) + e[:, 1]
    order = np.argsort(key, kind="stable")
    ks = key[order]
    same = np.flatnonzero(ks[1:] == ks[:-1])
    a, b = order[same], order[same + 1]
    pairs = np.column_stack([owner[a], owner[b]])
    nodes = e[a]
    length = np.linalg.norm(points[nodes[:, 1]] - points[nodes[:, 0]], axis=1)
    return pairs, length


def linearised_operator(cfg: dict[str, Any], mesh_size: float, shape: tuple[int, int],
                        mask: np.ndarray | None = None, build=None) -> LinearOperatorData:
    """Forward operator, Jacobian at the background and grid maps (cached per process). ``build()`` makes the
    forward operator (a solver passes its task's ``forward_operator``); default: built from ``cfg``."""
    from scipy.spatial import cKDTree

    from phantombench.generators.cem import disk_grid
    from phantombench.generators.operators import forward_operator
    from phantombench.generators.raster import locate_cells

    key = json.dumps([cfg, float(mesh_size), list(shape),
                      None if mask is None else int(np.asarray(mask).sum())], sort_keys=True)
    with _OP_LOCK:
        if key in _OP_CACHE:
            return _OP_CACHE[key]
        t0 = time.perf_counter()
        fwd = build() if build is not None else forward_operator(cfg, mesh_size=mesh_size, grid_shape=tuple(shape))
        sigma0 = float(cfg["background"])
        J = fwd.jacobian(np.full(fwd.n_cells, sigma0))
        grid = disk_grid(float(cfg["radius"]), *shape)
        idx = locate_cells(fwd.points, fwd.cells, grid)
        want = (idx >= 0) if mask is None else np.asarray(mask, bool)
        miss = want & (idx < 0)
        if miss.any():
            X, Y = grid.centres()
            _, nn = cKDTree(fwd.cell_centroids).query(np.column_stack([X[miss], Y[miss]]))
            idx = idx.copy()
            idx[miss] = nn
        flat = idx.ravel()
        inside = np.flatnonzero((flat >= 0) & want.ravel())
        pix = sp.csr_matrix((np.ones(len(inside)), (inside, flat[inside])), shape=(flat.size, fwd.n_cells))
        edges, length = interior_edges(fwd.cells, fwd.points)
        op = LinearOperatorData(fwd, J, sigma0, pix, want.copy(), edges, length, time.perf_counter() - t0)
        if len(_OP_CACHE) > 8:
            _OP_CACHE.clear()
        _OP_CACHE[key] = op
        return op


# ------------------------------------------------------------------------------------------ algorithms
def gauss_newton_step(J: np.ndarray, dv: np.ndarray, prior_diag: np.ndarray, lam: float) -> np.ndarray:
    """One regularised Gauss-Newton step from the background with a diagonal prior ``R``:

    ``dx = (J^T J + lam_abs R)^-1 J^T dv = R^-1 J^T (J R^-1 J^T + lam_abs I)^-1 dv``

    (the second form, an M x M solve, is exact and cheap when M << n_cells), ``lam_abs = lam *
    trace(J R^-1 J^T) / M``.
    """
    Ri = 1.0 / np.asarray(prior_diag, dtype=np.float64)
    JRi = J * Ri
    G = JRi @ J.T
    M = len(G)
    lam_abs = float(lam) * np.trace(G) / M
    y = np.linalg.solve(G + lam_abs * np.eye(M), np.asarray(dv, dtype=np.float64))
    return JRi.T @ y


def noser_prior(J: np.ndarray, p: float) -> np.ndarray:
    """NOSER prior diag(J^T J)^p (cells with no sensitivity get the smallest positive value)."""
    d = np.einsum("mk,mk->k", J, J)
    pos = d[d > 0]
    d = np.where(d > 0, d, pos.min() if pos.size else 1.0)
    return d ** float(p)


def edge_difference_matrix(edges: np.ndarray, n_cells: int) -> sp.csr_matrix:
    """(E, n_cells) sparse D with (D x)_e = x_i - x_j for edge e = (i, j)."""
    E = len(edges)
    rows = np.repeat(np.arange(E), 2)
    vals = np.tile([1.0, -1.0], E)
    return sp.csr_matrix((vals, (rows, edges.ravel())), shape=(E, n_cells))


def _spectral_norm(D: sp.spmatrix, iters: int = 100, seed: int = 0) -> float:
    x = np.random.default_rng(seed).standard_normal(D.shape[1])
    lam = 0.0
    for _ in range(iters):
        y = D.T @ (D @ x)
        n = np.linalg.norm(y)
        if n == 0:
            return 0.0
        x = y / n
        lam = n
    return float(np.sqrt(lam)) * 1.01  # a little above the power-iteration estimate


@dataclass
class TVResult:
    x: np.ndarray
    iterations: int
    primal: float
    history: list[float]


DENSE_FROM_M = 512   # measurements from which TV's Newton system is solved dense (see _newton_solver)


def _newton_solver(J: np.ndarray):
    """``solve(S, rhs)`` for ``(S + J^T J) x = rhs`` (S sparse, changing every Newton step, J fixed).

    Few measurements (M < ``DENSE_FROM_M``, e.g. 208 for a 16-electrode ring): the sparse bordered system of
    :func:`_bordered_solve` (M dense rows, no N x N matrix). Many (KTC2023's 2,356 on 32 electrodes): the
    bordered factorisation fills in and is an order of magnitude slower than a dense Cholesky of ``J^T J``
    (formed once) plus S, which agrees with it to rounding (``scripts/bench_tv_ktc.py`` measures both)."""
    import scipy.linalg as sl

    if J.shape[0] < DENSE_FROM_M:
        return lambda S, rhs: _bordered_solve(S, J, rhs)
    JtJ = J.T @ J

    def solve(S, rhs):
        A = S.toarray()
        A += JtJ
        return sl.cho_solve(sl.cho_factor(A, overwrite_a=True, check_finite=False), rhs, check_finite=False)
    return solve


def spectral_norm(J: np.ndarray) -> float:
    """||J||_2: a full SVD for few measurements (unchanged results there); from ``DENSE_FROM_M`` on, ARPACK's
    largest singular value from a fixed start vector (a full SVD of a 2,356 x 2,328 Jacobian takes ~30 s of a
    TV reconstruction; the two agree to ~1e-15 relative)."""
    if J.shape[0] < DENSE_FROM_M:
        return float(np.linalg.norm(J, 2))
    import scipy.sparse.linalg as spl

    v0 = np.ones(min(J.shape)) / np.sqrt(min(J.shape))
    return float(spl.svds(J, k=1, v0=v0, return_singular_vectors=False)[0])


def _bordered_solve(S: sp.spmatrix, J: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``(S + J^T J) x = rhs`` for sparse symmetric S (possibly singular on constants) through the sparse
    bordered system ``[[S, J^T], [J, -I]] [x; z] = [rhs; 0]`` (M dense rows only; no dense N x N matrix)."""
    import scipy.sparse.linalg as spl

    M, N = J.shape
    Js = sp.csr_matrix(J)
    A = sp.bmat([[S, Js.T], [Js, -sp.eye(M)]], format="csc")
    return spl.splu(A, permc_spec="COLAMD").solve(np.concatenate([rhs, np.zeros(M)]))[:N]


def tv_pdipm(J: np.ndarray, b: np.ndarray, edges: np.ndarray, edge_length: np.ndarray, alpha: float,
             max_iter: int = 100, tol: float = 1e-6, beta0: float | None = None, beta_min_rel: float = 1e-8,
             beta_factor: float = 0.3, history: bool = False) -> TVResult:
    """Minimise ``P(x) = 1/2 ||J x - b||^2 + alpha sum_e l_e |x_i - x_j|`` (absolute ``alpha``) by the
    primal-dual interior point method of Borsic et al. (2010) for total variation.

    With edge differences ``D`` and dual variables ``|y_e| <= 1`` the optimality conditions, smoothed by beta, are

        F1 = J^T (J x - b) + alpha D^T L y = 0,      F2 = eta y - D x = 0,   eta = sqrt((D x)^2 + beta),

    (``L = diag(l_e)``). A Newton step on (F1, F2) gives

        (J^T J + alpha D^T L E^-1 K D) dx = -F1 + alpha D^T L E^-1 F2,    dy = E^-1 (K D dx - F2),

    ``E = diag(eta)``, ``K = diag(1 - y D x / eta)`` (positive while |y| <= 1). x takes the full step; y the
    largest step up to 1 that keeps ``|y| <= 1`` (times 0.99). beta decreases geometrically (``beta_factor``)
    from ``beta0`` (default: the mean squared edge difference of the minimum-norm solution) to
    ``beta_min_rel * beta0``, where the smoothing moves the TV of an edge by at most ``sqrt(beta)``. The
    system matrix is a weighted graph Laplacian plus the rank-M ``J^T J``: it is solved sparse through the
    bordered form for few measurements, dense with ``J^T J`` formed once for many (:func:`_newton_solver`). Stops at the smallest beta once the relative step is below ``tol``.
    """
    J = np.asarray(J, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    M, N = J.shape
    D = edge_difference_matrix(edges, N)
    Dt = D.T.tocsr()
    ell = np.asarray(edge_length, dtype=np.float64)
    a = float(alpha)

    def primal(xx: np.ndarray) -> float:
        r = J @ xx - b
        return 0.5 * float(r @ r) + a * float(ell @ np.abs(D @ xx))

    if beta0 is None:
        G = J @ J.T
        x_mn = J.T @ np.linalg.solve(G + 1e-3 * np.trace(G) / M * np.eye(M), b)
        beta0 = float(np.mean((D @ x_mn) ** 2)) or 1.0
    beta = beta0
    beta_min = beta_min_rel * beta0
    x = np.zeros(N)
    y = np.zeros(len(edges))
    hist: list[float] = []
    it = 0
    newton = _newton_solver(J)
    for it in range(1, max_iter + 1):
        Dx = D @ x
        eta = np.sqrt(Dx ** 2 + beta)
        F1 = J.T @ (J @ x - b) + a * (Dt @ (ell * y))
        F2 = eta * y - Dx
        K = 1.0 - y * Dx / eta
        S = Dt @ sp.diags(a * ell * K / eta) @ D
        dx = newton(S, -F1 + a * (Dt @ (ell * F2 / eta)))
        dy = (K * (D @ dx) - F2) / eta
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(dy > 0, (1.0 - y) / dy, np.where(dy < 0, (-1.0 - y) / dy, np.inf))
        step_y = min(1.0, 0.99 * float(room.min())) if room.size else 1.0
        x = x + dx
        y = np.clip(y + step_y * dy, -1.0, 1.0)
        if history:
            hist.append(primal(x))
        rel = float(np.linalg.norm(dx)) / max(float(np.linalg.norm(x)), 1e-300)
        if beta <= beta_min and rel < tol:
            break
        beta = max(beta * beta_factor, beta_min)
    return TVResult(x, it, primal(x), hist)


def tv_chambolle_pock(J: np.ndarray, b: np.ndarray, edges: np.ndarray, edge_length: np.ndarray, alpha: float,
                      max_iter: int = 5000, tol: float = 1e-4, x0: np.ndarray | None = None,
                      history: bool = False) -> TVResult:
    """Minimise ``P(x) = 1/2 ||J x - b||^2 + alpha sum_e l_e |x_i - x_j|`` (absolute ``alpha``) by Chambolle-Pock.

    Saddle-point form ``min_x max_{|y_e| <= alpha l_e} <D x, y> + G(x)``, ``G = 1/2 ||J x - b||^2``, D the edge
    differences (entries +-1):

        x_new = prox_{tG}(x - t D^T y),  y_new = clip(y + s D (2 x_new - x), -alpha l, alpha l)

    (Chambolle & Pock 2011, Algorithm 1 with theta = 1), ``t s ||D||^2 < 1``. ``prox_{tG}(w) =
    (I + t J^T J)^-1 (w + t J^T b)`` is applied through Woodbury, ``w' - t J^T (I + t J J^T)^-1 J w'`` (an
    M x M solve). The ratio t / s is adapted as in Goldstein, Li & Yuan (2015, "Adaptive primal-dual splitting
    methods"): it grows while the primal residual dominates the dual one and shrinks in the opposite case, by a
    factor (1 - a) with a decaying geometrically (a0 = 0.5, eta = 0.95), so the product t s stays fixed and
    convergence is kept. Without it the primal iterate moves in the null space of J only by steps of order
    ``t alpha l``, and small alpha needs tens of thousands of iterations.

    Stops when the primal and dual residuals ``p = (x_old - x_new)/t - D^T (y_old - y_new)`` and
    ``d = (y_old - y_new)/s - D (x_old - x_new)`` are both below ``tol`` relative to ``||D^T y||`` and ``||D x||``.
    """
    J = np.asarray(J, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    M, N = J.shape
    D = edge_difference_matrix(edges, N)
    Dt = D.T.tocsr()
    bound = float(alpha) * np.asarray(edge_length, dtype=np.float64)
    L = _spectral_norm(D)
    t = s = 0.99 / L
    JJt = J @ J.T
    Jtb = J.T @ b

    def make_prox(tt: float):
        Kinv = np.linalg.inv(np.eye(M) + tt * JJt)

        def prox(w: np.ndarray) -> np.ndarray:
            w = w + tt * Jtb
            return w - tt * (J.T @ (Kinv @ (J @ w)))
        return prox

    def primal(xx: np.ndarray) -> float:
        r = J @ xx - b
        return 0.5 * float(r @ r) + float(bound @ np.abs(D @ xx))

    x = np.zeros(N) if x0 is None else np.asarray(x0, dtype=np.float64).copy()
    y = np.zeros(len(edges))
    Dty = Dt @ y
    Dx = D @ x
    prox = make_prox(t)
    a, eta, delta = 0.5, 0.95, 1.5
    hist: list[float] = []
    it = 0
    for it in range(1, max_iter + 1):
        x_new = prox(x - t * Dty)
        Dx_new = D @ x_new
        y_new = np.clip(y + s * (2.0 * Dx_new - Dx), -bound, bound)
        Dty_new = Dt @ y_new
        p = (x - x_new) / t - (Dty - Dty_new)
        d = (y - y_new) / s - (Dx - Dx_new)
        x, y, Dx, Dty = x_new, y_new, Dx_new, Dty_new
        pn, dn = np.linalg.norm(p), np.linalg.norm(d)
        if history and it % 10 == 0:
            hist.append(primal(x))
        if pn <= tol * max(np.linalg.norm(Dty), 1e-300) and dn <= tol * max(np.linalg.norm(Dx), 1e-300):
            break
        if a > 1e-3:
            if pn > delta * dn:
                t, s = t / (1 - a), s * (1 - a)
                a *= eta
                prox = make_prox(t)
            elif pn < dn / delta:
                t, s = t * (1 - a), s / (1 - a)
                a *= eta
                prox = make_prox(t)
    return TVResult(x, it, primal(x), hist)


# ------------------------------------------------------------------------------------------ solvers
class LinearisedEIT(Solver):
    """Common part of the linearised difference-imaging baselines (not registered itself)."""

    tasks = ("eit",)
    time_budget_s = 60.0
    defaults: dict[str, Any] = {"mesh_size": 0.1, "config": None}

    def _operator(self, observation: dict[str, Any]) -> LinearOperatorData:
        cfg = eit_config(observation, self.params.get("config"))
        mask = np.asarray(observation["mask"], bool)
        h = float(self.params["mesh_size"])

        def build():
            return self.task.forward_operator({**observation, "config": cfg}, mesh_size=h, grid_shape=mask.shape)

        return linearised_operator(cfg, h, mask.shape, mask, build=build)

    def reconstruct_cells(self, op: LinearOperatorData, dv: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def solve(self, observation: dict[str, Any]) -> dict[str, np.ndarray]:
        op = self._operator(observation)
        dv = np.asarray(observation["dv"], dtype=np.float64)
        x = self.reconstruct_cells(op, dv)
        img = (op.pix @ x).reshape(op.mask.shape)
        img[~op.mask] = np.nan
        return {"dsigma": img}


class NOSER(LinearisedEIT):
    name = "noser"
    version = "1.0.0"
    defaults = {**LinearisedEIT.defaults, "p": 0.5, "lam": 1e-3}

    def reconstruct_cells(self, op, dv):
        return gauss_newton_step(op.J, dv, noser_prior(op.J, self.params["p"]), self.params["lam"])


class Tikhonov(LinearisedEIT):
    name = "tikhonov"
    version = "1.0.0"
    defaults = {**LinearisedEIT.defaults, "lam": 1e-3}

    def reconstruct_cells(self, op, dv):
        return gauss_newton_step(op.J, dv, np.ones(op.J.shape[1]), self.params["lam"])


class TotalVariation(LinearisedEIT):
    name = "tv"
    version = "1.0.0"
    time_budget_s = 120.0  # ~25-35 Newton steps: ~1 s per case with 16 measurements, ~5-15 s with 208
    defaults = {**LinearisedEIT.defaults, "alpha": 1e-2, "max_iter": 100, "tol": 1e-6}

    def reconstruct_cells(self, op, dv):
        s = spectral_norm(op.J)
        Js, bs = op.J / s, dv / s
        alpha_abs = float(self.params["alpha"]) * float(np.linalg.norm(bs))
        res = tv_pdipm(Js, bs, op.edges, op.edge_length, alpha_abs, int(self.params["max_iter"]),
                       float(self.params["tol"]))
        self.last_result = res
        return res.x


class ChosenOnValidation:
    """Mixin: ``fit`` picks the regularisation weight ``param`` from ``grid`` by the mean ``criterion`` (default
    RIE, the rule the fixed defaults were chosen by) over the validation cases it receives, then solves every
    case with it. The plain solvers keep their fixed defaults, so their records do not depend on a split."""

    param: ClassVar[str] = "lam"
    fit_budget_s = 900.0

    def fit(self, train, val) -> None:
        cases = list(val) or list(train)[:10]
        if not cases:
            raise ValueError(f"{self.name}: no validation (or training) cases to choose {self.param} on")
        metric = self.task.metric(str(self.params["criterion"]))
        scores = {}
        for v in (float(x) for x in self.params["grid"]):
            self.params = {**self.params, self.param: v}
            vals = []
            for obs, target in cases:
                truth = {**target, "_mask": np.asarray(obs["mask"], bool)}
                pred, reason = self.task.validate(self.solve(obs), truth)
                vals.append(metric.fn(pred, truth) if reason is None else np.nan)
            scores[v] = float(np.nanmean(vals)) if np.isfinite(vals).any() else np.nan
        finite = {v: sc for v, sc in scores.items() if np.isfinite(sc)}
        best = (min if metric.direction == "lower" else max)(finite, key=finite.get)
        self.params = {**self.params, self.param: best}
        self.chosen = {"param": self.param, "value": best, "scores": scores, "n_cases": len(cases)}


class NOSERChosen(ChosenOnValidation, NOSER):
    name = "noser-val"
    defaults = {**NOSER.defaults, "grid": [1e-1, 1e-2, 1e-3, 1e-4], "criterion": "RIE"}


class TikhonovChosen(ChosenOnValidation, Tikhonov):
    name = "tikhonov-val"
    defaults = {**Tikhonov.defaults, "grid": [1e-1, 1e-2, 1e-3, 1e-4], "criterion": "RIE"}


class TVChosen(ChosenOnValidation, TotalVariation):
    name = "tv-val"
    param = "alpha"
    defaults = {**TotalVariation.defaults, "grid": [1e-1, 1e-2, 1e-3], "criterion": "RIE"}


# ------------------------------------------------------------------------------------------ tuning
def select_hyperparameter(solver_cls: type[LinearisedEIT], task, cases, name: str, values, metric: str = "RIE",
                          params: dict[str, Any] | None = None) -> tuple[float, dict[float, float]]:
    """Pick ``params[name]`` from ``values`` by the mean ``metric`` over ``cases`` (a validation split:
    an iterable of (observation, truth dict with the prediction fields and '_mask')). Returns
    (best value, {value: mean metric})."""
    met = task.metric(metric)
    scores: dict[float, float] = {}
    cases = list(cases)
    for v in values:
        s = solver_cls(task, params={**(params or {}), name: v})
        vals = []
        for obs, truth in cases:
            pred = s.solve(obs)
            vals.append(met.fn(pred, truth))
        scores[float(v)] = float(np.nanmean(vals))
    pick = (min if met.direction == "lower" else max)(scores, key=scores.get)
    return pick, scores
