"""Benchmark: the brain-slice plane-stress solve (generators/elasticity.py) next to scikit-fem.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_elasticity.py [--repeats 5]

Same mesh (the MNI brain slice meshed by meshes/labelmesh.py, ~6k and ~11k nodes), same materials
(El-UNet soft: background 1 kPa / 0.35, gray 1.5 kPa / 0.40, white 2 kPa / 0.45), same loads and
supports, P1 and P2.  Times are the best of ``--repeats`` in a warm process (JIT cache and imports
warm), one core.  phantombench: setup (spaces, forms bound to the mesh, BCs) + assembly + MUMPS
Cholesky; then the nodal post-processing.  scikit-fem: assembly + condense + scipy spsolve.
Agreement: relative difference of the strain energies and max |uy| difference at the vertices.
Goal (brief): the solve ~0.2-0.3 s for ~10k nodes, inside a 1 s per-sample budget.
"""

from __future__ import annotations

import argparse
import time

import mpi4py.MPI  # noqa: F401  (before dolfinx)

import numpy as np

from phantombench.generators.elasticity import solve_plane_stress
from phantombench.meshes.anatomy import load_brain_slices
from phantombench.meshes.labelmesh import mesh_label_image

E_TAB = np.array([1000.0, 1500.0, 2000.0])
NU_TAB = np.array([0.35, 0.40, 0.45])
TRACTION = 33.0


def skfem_solve(points, cells, E, nu, traction, order, height):
    from skfem import (Basis, BilinearForm, ElementTriP0, ElementTriP1, ElementTriP2, ElementVector, FacetBasis,
                       LinearForm, MeshTri, asm, condense, solve)
    from skfem.helpers import ddot, sym_grad, trace

    t0 = time.perf_counter()
    m = MeshTri(points.T.copy(), cells.T.copy())
    e = ElementVector(ElementTriP1() if order == 1 else ElementTriP2())
    ib = Basis(m, e)
    b0 = ib.with_element(ElementTriP0())

    @BilinearForm
    def a(u, v, w):
        mu = w.E / (2 * (1 + w.nu))
        lam = w.E * w.nu / (1 - w.nu**2)
        eu, ev = sym_grad(u), sym_grad(v)
        return 2 * mu * ddot(eu, ev) + lam * trace(eu) * trace(ev)

    @LinearForm
    def load(v, w):
        return -traction * v[1]

    K = asm(a, ib, E=b0.interpolate(E), nu=b0.interpolate(nu))
    top = m.facets_satisfying(lambda x: np.abs(x[1] - height) < 1e-9 * height)
    f = asm(load, FacetBasis(m, e, facets=top))
    bottom = ib.get_dofs(lambda x: np.abs(x[1]) < 1e-9 * height).all("u^2")
    bverts = np.flatnonzero(np.abs(points[:, 1]) < 1e-9 * height)
    pin = bverts[np.argmin(points[bverts, 0])]
    D = np.concatenate([bottom, [ib.nodal_dofs[0, pin]]])
    u = solve(*condense(K, f, D=D))
    dt = time.perf_counter() - t0
    return dt, 0.5 * float(f @ u), u[ib.nodal_dofs[1]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    labels = load_brain_slices().labels[6]
    print(f"{'mesh':>24s} {'P':>2s} {'dofs':>7s} | {'pb setup':>8s} {'assem':>6s} {'chol':>6s} {'total':>6s} "
          f"{'nodal':>6s} | {'pb AMD/METIS':>12s} | {'skfem':>6s} | {'dW/W':>8s} {'max|duy|/max|uy|':>16s}")
    for hf, hc in ((0.0008, 0.003), (0.0005, 0.004)):
        lm = mesh_label_image(labels, h_fine=hf, h_coarse=hc)
        E, nu = E_TAB[lm.cell_labels], NU_TAB[lm.cell_labels]
        name = f"brain {len(lm.points)} nodes"
        for order in (1, 2):
            best, best_nod, best_metis = None, np.inf, np.inf
            for _ in range(a.repeats):
                sol = solve_plane_stress(lm, E, nu, TRACTION, order=order)
                if best is None or sol.timings["total"] < best["total"]:
                    best = dict(sol.timings)
                sol._cache.clear()
                t = time.perf_counter()
                nod = sol.nodal_fields()
                best_nod = min(best_nod, time.perf_counter() - t)
                s_m = solve_plane_stress(lm, E, nu, TRACTION, order=order, mumps_ordering=5)
                best_metis = min(best_metis, s_m.timings["solve"])
            t_sk = np.inf
            for _ in range(max(1, a.repeats // 2)):
                dt, W_sk, uy_sk = skfem_solve(lm.points, lm.cells, E, nu, TRACTION, order, lm.height)
                t_sk = min(t_sk, dt)
            W = sol.strain_energy()
            duy = np.max(np.abs(nod["uy"] - uy_sk)) / np.max(np.abs(uy_sk))
            print(f"{name:>24s} {order:2d} {sol.u.x.array.size:7d} | {best['setup']:8.3f} {best['assemble']:6.3f} "
                  f"{best['solve']:6.3f} {best['total']:6.3f} {best_nod:6.3f} | {best['solve']:5.3f}/{best_metis:5.3f} "
                  f"| {t_sk:6.3f} | {abs(W - W_sk) / W_sk:8.1e} {duy:16.1e}")


if __name__ == "__main__":
    main()
