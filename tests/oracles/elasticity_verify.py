"""Verification helpers for :mod:`phantombench.generators.elasticity` (a test oracle, not shipped:
used by tests/test_elasticity.py and ``scripts/study_elasticity_order.py``).

* :func:`inclusion_block_mesh` -- a rectangle with a circular inclusion, conforming gmsh mesh.
* :func:`refine_uniform` -- uniform (red) refinement carrying cellwise values to the children.
* :func:`discretisation_errors` -- errors of Pk solutions on a mesh against a P2 solution on the same
  mesh refined uniformly ``ref_levels`` times.  Uniform refinement nests the spaces (Pk on the coarse
  mesh is contained in P2 on the refined one) and keeps the material layout exactly, so the
  difference is pure discretisation error, and the energy-norm error follows from the two strain
  energies alone (Galerkin orthogonality in nested spaces with the same load):
  ``|u_ref - u_h|_a^2 = a(u_ref, u_ref) - a(u_h, u_h) = 2 (W_ref - W_h)``.
"""

from __future__ import annotations

import time

import mpi4py.MPI as MPI

import dolfinx.mesh as dmesh
import numpy as np

from phantombench.generators.elasticity import solve_plane_stress


def inclusion_block_mesh(width: float = 0.0766, height: float = 0.1088, centre=None, radius: float = 0.015,
                         h_fine: float = 0.0008, h_coarse: float = 0.003):
    """Conforming triangle mesh of ``[0, width] x [0, height]`` with a disc of ``radius`` at ``centre``.

    Mesh size ``h_fine`` on the circle growing linearly to ``h_coarse`` over 4 * h_coarse.
    Returns ``(mesh, cell_label)`` with label 1 inside the disc, 0 outside (dolfinx cell order).
    """
    from dolfinx.io import gmsh as dgmsh

    from phantombench.meshes.gmsh_session import gmsh_session

    cx, cy = (width / 2, height / 2) if centre is None else centre
    with gmsh_session("inclusion_block") as gmsh:
        occ = gmsh.model.occ
        rect = occ.addRectangle(0, 0, 0, width, height)
        disc = occ.addDisk(cx, cy, 0, radius, radius)
        out, _ = occ.fragment([(2, rect)], [(2, disc)])
        occ.synchronize()
        surfs = [tag for dim, tag in out if dim == 2]
        inside, outside = [], []
        for s in surfs:
            m = gmsh.model.occ.getMass(2, s)
            (inside if abs(m - np.pi * radius**2) < 1e-3 * np.pi * radius**2 else outside).append(s)
        gmsh.model.addPhysicalGroup(2, outside, 1)
        gmsh.model.addPhysicalGroup(2, inside, 2)
        circle = [c for dim, c in gmsh.model.getBoundary([(2, s) for s in inside], oriented=False)]
        f_d = gmsh.model.mesh.field.add("Distance")
        gmsh.model.mesh.field.setNumbers(f_d, "CurvesList", circle)
        gmsh.model.mesh.field.setNumber(f_d, "Sampling", 200)
        f_t = gmsh.model.mesh.field.add("Threshold")
        gmsh.model.mesh.field.setNumber(f_t, "InField", f_d)
        gmsh.model.mesh.field.setNumber(f_t, "SizeMin", h_fine)
        gmsh.model.mesh.field.setNumber(f_t, "SizeMax", h_coarse)
        gmsh.model.mesh.field.setNumber(f_t, "DistMin", 0.0)
        gmsh.model.mesh.field.setNumber(f_t, "DistMax", 4 * h_coarse)
        gmsh.model.mesh.field.setAsBackgroundMesh(f_t)
        gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
        gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
        gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
        gmsh.option.setNumber("Mesh.Algorithm", 6)
        gmsh.model.mesh.generate(2)
        data = dgmsh.model_to_mesh(gmsh.model, MPI.COMM_SELF, 0, gdim=2)
    mesh, ct = data.mesh, data.cell_tags
    label = np.zeros(mesh.topology.index_map(2).size_local, dtype=np.int64)
    label[ct.indices] = ct.values - 1
    return mesh, label


def refine_uniform(mesh: dmesh.Mesh, cell_values: np.ndarray, times: int = 1):
    """Refine every triangle into four ``times`` times; ``cell_values`` (M, ...) follow to the children."""
    vals = np.asarray(cell_values)
    for _ in range(times):
        mesh.topology.create_entities(1)
        mesh, parent, _ = dmesh.refine(mesh, option=dmesh.RefinementOption.parent_cell)
        # dolfinx 0.11 returns the parents in the order the refined cells were created, before the
        # new mesh reorders its cells; original_cell_index maps each final cell to that order
        vals = vals[parent][np.asarray(mesh.topology.original_cell_index)]
    return mesh, vals


def _rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.sqrt(np.sum((a[ok] - b[ok]) ** 2) / np.sum(b[ok] ** 2)))


def _linear_from_nodes(sol, at: str, points: np.ndarray, cidx: np.ndarray) -> np.ndarray:
    """Nodal strains (exx, eyy, exy stacked) interpolated linearly on the node triangulation.

    ``at="vertices"``: P1 interpolation on the mesh triangles; ``at="dofs"`` (P2): P1 interpolation on
    each triangle's 4-split through its edge midpoints.
    """
    nod = sol.nodal_fields(at=at)
    x0, Jinv, _ = sol._geometry()
    ok = cidx >= 0
    c = cidx[ok]
    lam = np.einsum("pmi,pi->pm", Jinv[c], points[ok] - x0[c])
    if at == "vertices":
        idx = sol._cells[c]
        w = np.column_stack([1 - lam.sum(axis=1), lam])
    else:
        # local P2 nodes: 0,1,2 vertices, 3,4,5 midpoints of edges (1,2), (0,2), (0,1)
        dofs = sol.u.function_space.dofmap.list[c]
        X, Y = lam[:, 0], lam[:, 1]
        L0 = 1 - X - Y
        sub = np.full(len(c), 3)
        sub[L0 >= 0.5] = 0
        sub[X >= 0.5] = 1
        sub[Y >= 0.5] = 2
        tri = np.array([[0, 5, 4], [1, 3, 5], [2, 4, 3], [3, 4, 5]])
        ref = np.array([[0, 0], [1, 0], [0, 1], [0.5, 0.5], [0, 0.5], [0.5, 0]])
        loc = tri[sub]                                   # (P, 3) local node ids
        a, b, d = ref[loc[:, 0]], ref[loc[:, 1]], ref[loc[:, 2]]
        T = np.stack([b - a, d - a], axis=2)             # (P, 2, 2)
        mu = np.linalg.solve(T, (lam - a)[:, :, None])[:, :, 0]
        w = np.column_stack([1 - mu.sum(axis=1), mu])
        idx = np.take_along_axis(dofs, loc, axis=1)
    n = len(points)
    out = np.full(3 * n, np.nan)
    for j, k in enumerate(("exx", "eyy", "exy")):
        out[j * n:(j + 1) * n][ok] = np.sum(w * nod[k][idx], axis=1)
    return out


def discretisation_errors(mesh, cell_E, cell_nu, traction, *, orders=(1, 2), ref_levels: int = 2,
                          points: np.ndarray | None = None, extra_levels: dict | None = None,
                          repeats: int = 2) -> dict:
    """Errors of Pk solutions against a P2 solution on ``mesh`` refined ``ref_levels`` times.

    ``points`` (N, 2): where strain fields are compared (e.g. the pixel centres); default: centroids
    of the reference cells.  ``extra_levels``: {order: [levels...]} to also solve Pk on the mesh refined
    that many times (cost-matched comparisons).  Returns a dict with the reference strain energy and,
    per (order, level): number of mesh nodes and dofs, the best-of-``repeats`` solve time, the relative
    energy-norm error ``sqrt((W_ref - W_h) / W_ref)``, and the relative L2 (over ``points``) errors of
    the strain (exx, eyy, exy together) from exact FE evaluation and from the nodal (vertex-averaged)
    strains interpolated linearly in each coarse triangle.
    """
    E0 = np.asarray(cell_E, dtype=float)
    nu0 = np.asarray(cell_nu, dtype=float)
    ref_mesh, vals = refine_uniform(mesh, np.column_stack([E0, nu0]), ref_levels)
    Er, nur = vals[:, 0], vals[:, 1]
    t = time.perf_counter()
    ref = solve_plane_stress(ref_mesh, Er, nur, traction, order=2)
    t_ref = time.perf_counter() - t
    if points is None:
        X = ref.points
        points = X[ref.cells].mean(axis=1)
    # reference strains at the points, located once on the reference mesh
    ref_vals = ref.evaluate(points)
    W_ref = ref.strain_energy()
    out = {"W_ref": W_ref, "ref_nodes": int(ref.points.shape[0]), "ref_dofs": int(ref.u.x.array.size),
           "ref_seconds": t_ref, "cases": []}
    cases = [(p, 0) for p in orders]
    for p, levels in (extra_levels or {}).items():
        cases += [(p, lv) for lv in levels]
    for p, lv in cases:
        m, v = (mesh, np.column_stack([E0, nu0])) if lv == 0 else refine_uniform(mesh, np.column_stack([E0, nu0]), lv)
        best = np.inf
        for _ in range(repeats):
            sol = solve_plane_stress(m, v[:, 0], v[:, 1], traction, order=p)
            best = min(best, sol.timings["total"])
        W = sol.strain_energy()
        cidx = sol._locate(points)
        fe = sol.evaluate(points, cidx)
        strain_ref = np.concatenate([ref_vals[k] for k in ("exx", "eyy", "exy")])
        strain_fe = np.concatenate([fe[k] for k in ("exx", "eyy", "exy")])
        # nodal strains interpolated linearly (what a node-based rasteriser sees, up to its interpolant)
        strain_nod = _linear_from_nodes(sol, "vertices", points, cidx)
        strain_dof = _linear_from_nodes(sol, "dofs", points, cidx) if p == 2 else strain_nod
        out["cases"].append({
            "order": p, "level": lv, "nodes": int(sol.points.shape[0]), "dofs": int(sol.u.x.array.size),
            "seconds": best, "timings": dict(sol.timings),
            "energy_err": float(np.sqrt(max(W_ref - W, 0.0) / W_ref)), "W": W,
            "strain_err_fe": _rel_l2(strain_fe, strain_ref),
            "strain_err_nodal": _rel_l2(strain_nod, strain_ref),
            "strain_err_nodal_dofs": _rel_l2(strain_dof, strain_ref),
        })
    return out


__all__ = ["inclusion_block_mesh", "refine_uniform", "discretisation_errors"]
