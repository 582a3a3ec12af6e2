"""Element-order study behind ``elasticity.DEFAULT_ORDER``.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/study_elasticity_order.py [--ref-levels 2]

Two problems at the brain-slice default mesh sizes (h 0.8 mm at interfaces, 3 mm away):
  * a stiff disc (r 15 mm, E 20 kPa / nu 0.30) in a soft block (1 kPa / 0.35), gmsh mesh;
  * the MNI brain slice 6 (El-UNet soft materials), meshes/labelmesh.py mesh.
Top traction 33 Pa.  For each, Pk solutions on the mesh (level 0) and on the mesh refined uniformly
once (level 1, P1 only: the same number of dofs as P2 on level 0) are compared with P2 on the mesh
refined ``--ref-levels`` times (same material layout, nested spaces): relative energy-norm error,
relative L2 error of the strain (exx, eyy, exy) at the 142 x 100 pixel centres from exact FE
evaluation ("fe") and from nodal values interpolated linearly on the vertex triangulation
("nodal"), or for P2 on the 4-split through the edge midpoints ("nodal@dofs"), plus the solve
time (best of 3, warm, one core).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mpi4py.MPI  # noqa: F401

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: tests.oracles

from tests.oracles.elasticity_verify import discretisation_errors, inclusion_block_mesh
from phantombench.generators.raster import Grid

W, H = 0.0766, 0.1088


def report(title, res):
    print(f"\n== {title}: reference P2 on {res['ref_nodes']} nodes ({res['ref_dofs']} dofs, "
          f"{res['ref_seconds']:.1f} s) ==")
    print(f"{'case':>10s} {'nodes':>7s} {'dofs':>7s} {'solve s':>8s} {'energy':>8s} {'strain fe':>10s} "
          f"{'nodal':>8s} {'nodal@dofs':>10s}")
    for c in res["cases"]:
        name = f"P{c['order']} L{c['level']}"
        nd = f"{c['strain_err_nodal_dofs']:10.2%}" if c["order"] == 2 else f"{'':>10s}"
        print(f"{name:>10s} {c['nodes']:7d} {c['dofs']:7d} {c['seconds']:8.3f} {c['energy_err']:8.3%} "
              f"{c['strain_err_fe']:10.3%} {c['strain_err_nodal']:8.2%} {nd}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref-levels", type=int, default=2)
    ap.add_argument("--h-fine", type=float, default=0.0008)
    ap.add_argument("--h-coarse", type=float, default=0.003)
    a = ap.parse_args()
    grid = Grid.fit(0.0, W, 0.0, H, 142, 100)
    X, Y = grid.centres()
    pts = np.column_stack([X.ravel(), Y.ravel()])
    kw = dict(points=pts, ref_levels=a.ref_levels, extra_levels={1: [1]}, repeats=3)

    mesh, lab = inclusion_block_mesh(h_fine=a.h_fine, h_coarse=a.h_coarse)
    res = discretisation_errors(mesh, np.where(lab == 1, 20e3, 1e3), np.where(lab == 1, 0.30, 0.35), 33.0, **kw)
    report("stiff disc in a soft block", res)

    from phantombench.meshes.anatomy import load_brain_slices
    from phantombench.meshes.labelmesh import mesh_label_image

    lm = mesh_label_image(load_brain_slices().labels[6], h_fine=a.h_fine, h_coarse=a.h_coarse)
    bmesh, _ = lm.to_dolfinx()
    lab = lm.cell_labels[np.asarray(bmesh.topology.original_cell_index)]
    E = np.array([1000.0, 1500.0, 2000.0])[lab]
    nu = np.array([0.35, 0.40, 0.45])[lab]
    res = discretisation_errors(bmesh, E, nu, 33.0, **kw)
    report("MNI brain slice 6, El-UNet soft", res)


if __name__ == "__main__":
    main()
