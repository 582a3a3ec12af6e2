"""Benchmark the sparse direct solve behind the plane-strain ``liver-mre`` sample: MUMPS options side by side.

    .venv/bin/python scripts/bench_mre_factor.py [--samples 1 3]

For each ``dime-liver`` sample (dataset seed 0) the Taylor-Hood u-p matrix (real and imaginary parts as one real
symmetric indefinite system) is assembled as the generator does, then factorised and solved with each setting:
MUMPS LDL^T with the fill-reducing orderings METIS (the generator's choice), SCOTCH, PORD and QAMD, LU with METIS,
and LDL^T with block low-rank compression (ICNTL(35) = 2) at two tolerances. Reported: analysis + factorisation
seconds, solve seconds and the relative difference from the generator's solution (one BLAS thread each).
"""

from __future__ import annotations

import argparse
import time

import mpi4py.MPI  # noqa: F401
from threadpoolctl import threadpool_limits

SETTINGS = (("LDLt METIS (default)", "cholesky", {7: 5}, {}), ("LDLt SCOTCH", "cholesky", {7: 3}, {}),
            ("LDLt PORD", "cholesky", {7: 4}, {}), ("LDLt QAMD", "cholesky", {7: 6}, {}),
            ("LU METIS", "lu", {7: 5}, {}), ("LDLt METIS, BLR 1e-10", "cholesky", {7: 5, 35: 2}, {7: 1e-10}),
            ("LDLt METIS, BLR 1e-8", "cholesky", {7: 5, 35: 2}, {7: 1e-8}))


def system(index: int):
    """(A, b, x) of dime-liver sample ``index``: the matrix with the driver's Dirichlet rows, as generated."""
    import dolfinx.fem.petsc as fpetsc
    from petsc4py import PETSc

    from phantombench.generators import liver_mre as L
    from phantombench.generators.base import sample_rng

    cfg = L.LiverMRE().config("dime-liver")
    r_anat, r_mat, _, r_freq = sample_rng(0, index).spawn(4)
    freqs = L.draw_frequencies(cfg, r_freq)
    ph = L.draw_phantom(cfg, r_anat, r_mat)
    mesh = L.mesh_phantom(cfg, ph, L.element_sizes(cfg, ph, freqs))
    solver, driver = L.make_solver(cfg, mesh, ph)
    L.solve(cfg, solver, driver, mesh, freqs)
    b = fpetsc.assemble_vector(solver.L)
    fpetsc.apply_lifting(b, [solver.a], bcs=[solver._bcs_last])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    fpetsc.set_bc(b, solver._bcs_last)
    return solver._A, b, solver.uh.x.petsc_vec.copy()


def timed(A, b, x_ref, pc_type: str, icntl: dict, cntl: dict) -> tuple[float, float, float]:
    from petsc4py import PETSc

    ksp = PETSc.KSP().create()
    ksp.setType("preonly")
    pc = ksp.getPC()
    pc.setType(pc_type)
    pc.setFactorSolverType("mumps")
    ksp.setOperators(A)
    pc.setFactorSetUpSolverType()
    F = pc.getFactorMatrix()
    for k, v in icntl.items():
        F.setMumpsIcntl(k, v)
    for k, v in cntl.items():
        F.setMumpsCntl(k, v)
    x = b.duplicate()
    t0 = time.perf_counter()
    ksp.setUp()
    t1 = time.perf_counter()
    ksp.solve(b, x)
    t2 = time.perf_counter()
    err = (x - x_ref).norm() / x_ref.norm()
    ksp.destroy()
    return t1 - t0, t2 - t1, float(err)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[1, 3], help="dime-liver sample indices (seed 0)")
    args = ap.parse_args()
    with threadpool_limits(1):
        for i in args.samples:
            A, b, x_ref = system(i)
            print(f"\ndime-liver sample {i}: {A.getSize()[0]:,} unknowns, {int(A.getInfo()['nz_used']):,} non-zeros")
            print("| setting | analysis + factorisation [s] | solve [s] | relative difference |")
            print("|---|---|---|---|")
            for name, pc_type, icntl, cntl in SETTINGS:
                f, s, e = timed(A, b, x_ref, pc_type, icntl, cntl)
                print(f"| {name} | {f:.2f} | {s:.2f} | {e:.1e} |", flush=True)


if __name__ == "__main__":
    main()
