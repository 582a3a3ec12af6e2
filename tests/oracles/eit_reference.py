"""Semi-analytic complete-electrode-model solution for a homogeneous disk (verification reference).

Independent of the FEM: only the boundary is discretised.

For a homogeneous disk of radius ``R`` and conductivity ``sigma`` the Neumann-to-Dirichlet map is
diagonal in Fourier modes: the boundary current density ``j = sum_n a_n cos(n t) + b_n sin(n t)``
(zero mean) produces the boundary potential ``u = sum_n R / (sigma n) (a_n cos(n t) + b_n sin(n t))``
(zero mean). The complete electrode model on electrode ``l`` (arc ``e_l``) reads

    u + z_l j = U_l  on e_l,     int_{e_l} j ds = I_l,     j = 0 off the electrodes.

Each electrode is cut into ``P`` panels (cosine-graded, so that they cluster at the electrode
ends where ``j`` varies fastest) carrying a constant current density; the first equation is
imposed on panel averages (Galerkin). The panel-average potential of a unit panel density is a
double integral of ``sum_n cos(n (t - s)) / n``; integrating twice gives, with no truncation
of the Fourier series,

    avg_p u[chi_q] = R / (sigma pi dt_p) * [F(b_p-b_q) - F(b_p-a_q) - F(a_p-b_q) + F(a_p-a_q)],
    F(t) = sum_{n>=1} cos(n t) / n^3 - zeta(3) = -int_0^t Cl_2(s) ds,

where ``Cl_2`` is the Clausen function; ``F`` is evaluated from the convergent expansion
``Cl_2(s) = s - s log s + sum_k |B_2k| s^(2k+1) / (2k (2k+1)!)`` on ``[0, pi]`` (the ratio of
successive terms is below ``(s / 2pi)^2 <= 1/4``; 40 terms reach round-off), extended by
``F(t) = F(-t) = F(2 pi - t)``. The panel solution converges as the panels are refined;
:func:`disk_cem_reference` refines (P, 2P, 4P, ...) and Richardson-extrapolates with the
observed order.

The result is the transfer-impedance matrix ``Z`` (L x L): electrode potentials ``U = Z I`` for
currents ``I`` with ``sum I = 0`` and the ground ``sum U = 0``. ``Z`` is symmetric (reciprocity).
"""

from __future__ import annotations

from math import factorial

import numpy as np
from scipy.special import bernoulli

__all__ = ["clausen_f", "disk_cem_panels", "disk_cem_reference"]

_NTERMS = 40
_B = np.abs(bernoulli(2 * _NTERMS))
# F(t) = -(3 t^2 / 4 - t^2 log(t) / 2 + sum_k C_k t^(2k+2))
_C = np.array([_B[2 * k] / (2 * k * factorial(2 * k + 1) * (2 * k + 2)) for k in range(1, _NTERMS + 1)])


def clausen_f(t: np.ndarray) -> np.ndarray:
    """``F(t) = sum_{n>=1} cos(n t) / n^3 - zeta(3)`` for any real ``t`` (vectorised)."""
    t = np.mod(np.asarray(t, dtype=np.float64), 2 * np.pi)
    t = np.minimum(t, 2 * np.pi - t)  # in [0, pi]
    t2 = t * t
    series = np.zeros_like(t)
    for c in _C[::-1]:  # Horner in t^2: sum_k C_k t^(2k+2) = t^4 * sum_k C_k t^(2k-2)
        series = series * t2 + c
    series *= t2 * t2
    with np.errstate(divide="ignore", invalid="ignore"):
        logterm = np.where(t > 0, 0.5 * t2 * np.log(np.where(t > 0, t, 1.0)), 0.0)
    return -(0.75 * t2 - logterm + series)


def _panel_breaks(a: float, b: float, P: int) -> np.ndarray:
    i = np.arange(P + 1)
    return a + (b - a) * 0.5 * (1.0 - np.cos(np.pi * i / P))


def disk_cem_panels(start: np.ndarray, end: np.ndarray, contact_impedance: np.ndarray | float,
                    radius: float = 1.0, sigma: float = 1.0, panels: int = 32) -> np.ndarray:
    """Transfer-impedance matrix ``Z`` (L, L) from ``panels`` panels per electrode.

    ``start``, ``end``: electrode arcs (radians, ``end > start``, counter-clockwise);
    ``contact_impedance``: z_l (Ohm m^2), scalar or (L,); ``sigma`` in S/m; ``radius`` in m.
    """
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    L = len(start)
    z = np.broadcast_to(np.asarray(contact_impedance, dtype=np.float64), (L,))
    brk = np.stack([_panel_breaks(a, b, panels) for a, b in zip(start, end)])  # (L, P+1)
    lo = brk[:, :-1].ravel()
    hi = brk[:, 1:].ravel()
    dt = hi - lo
    Np = L * panels
    # panel averages of the potential of unit panel densities
    Fbb = clausen_f(hi[:, None] - hi[None, :])
    Fba = clausen_f(hi[:, None] - lo[None, :])
    Fab = clausen_f(lo[:, None] - hi[None, :])
    Faa = clausen_f(lo[:, None] - lo[None, :])
    D2 = Fbb - Fba - Fab + Faa  # symmetric
    G = radius / (sigma * np.pi) * D2 / dt[:, None]
    el = np.repeat(np.arange(L), panels)
    E = np.zeros((Np, L))
    E[np.arange(Np), el] = 1.0
    # Galerkin rows scaled by the panel length make the system symmetric
    w = radius * dt
    A = np.zeros((Np + L, Np + L))
    A[:Np, :Np] = w[:, None] * G + np.diag(w * z[el])
    A[:Np, Np:] = -w[:, None] * E
    A[Np:, :Np] = (w[:, None] * E).T
    rhs = np.zeros((Np + L, L))
    rhs[Np:, :] = np.eye(L) - 1.0 / L  # columns: I = e_m - 1/L (zero total current)
    sol = np.linalg.solve(A, rhs)
    U = sol[Np:, :]
    U -= U.mean(axis=0, keepdims=True)  # ground: sum U = 0
    return 0.5 * (U + U.T)


def disk_cem_reference(start: np.ndarray, end: np.ndarray, contact_impedance: np.ndarray | float,
                       radius: float = 1.0, sigma: float = 1.0, panels: tuple[int, ...] = (16, 32, 64)
                       ) -> tuple[np.ndarray, dict]:
    """Richardson-extrapolated ``Z`` from successively doubled panel counts.

    Returns ``(Z, info)``; ``info`` holds the observed convergence order and an error estimate
    (max |Z_extrapolated - Z_finest| relative to max |Z|).
    """
    Zs = [disk_cem_panels(start, end, contact_impedance, radius, sigma, p) for p in panels]
    if len(Zs) < 3:
        return Zs[-1], {"order": None, "rel_error_estimate": None, "panels": list(panels)}
    d1 = np.linalg.norm(Zs[-2] - Zs[-3])
    d2 = np.linalg.norm(Zs[-1] - Zs[-2])
    ratio = panels[-1] / panels[-2]
    order = float(np.log(d1 / d2) / np.log(ratio)) if d2 > 0 and d1 > d2 else 1.0
    Zx = Zs[-1] + (Zs[-1] - Zs[-2]) / (ratio ** order - 1.0)
    scale = np.abs(Zx).max()
    return Zx, {"order": order, "rel_error_estimate": float(np.abs(Zx - Zs[-1]).max() / scale),
                "panels": list(panels)}
