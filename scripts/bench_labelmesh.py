"""Time and quality of the label image -> gmsh mesh pipeline on the 12 MNI152 slices.

    python scripts/bench_labelmesh.py [--repeat 3] [--h-fine 0.5e-3] [--h-coarse 4e-3]

For each slice: the best of ``repeat`` runs (wall and CPU seconds; CPU time is the
better number on a shared machine, the whole pipeline is single-threaded), node and cell
counts, min angle and 5th-percentile radius ratio, for the plain and a perturbed mesh.
Side by side, the floor set by gmsh itself: a bare rectangle meshed by the same gmsh
algorithm with a uniform size chosen to give the same node count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _timed(fn, repeat):
    best_w = best_c = np.inf
    out = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        best_w = min(best_w, time.perf_counter() - w)
        best_c = min(best_c, time.process_time() - c)
    return out, best_w, best_c


def bare_gmsh(width_mm, height_mm, n_nodes, algorithm):
    import gmsh

    h = np.sqrt(width_mm * height_mm / (n_nodes * np.sqrt(3) / 2))
    gmsh.initialize(readConfigFiles=False, interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("General.NumThreads", 1)
        gmsh.option.setNumber("Mesh.Algorithm", algorithm)
        gmsh.model.occ.addRectangle(0, 0, 0, width_mm, height_mm)
        gmsh.model.occ.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMin", h)
        gmsh.option.setNumber("Mesh.MeshSizeMax", h)
        gmsh.model.mesh.generate(2)
        return len(gmsh.model.mesh.getNodes()[0])
    finally:
        gmsh.finalize()


def main():
    from phantombench.meshes.anatomy import load_brain_slices
    from phantombench.meshes.labelmesh import mesh_label_image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--h-fine", type=float, default=0.5e-3)
    ap.add_argument("--h-coarse", type=float, default=4.0e-3)
    args = ap.parse_args()
    bs = load_brain_slices()
    kw = dict(h_fine=args.h_fine, h_coarse=args.h_coarse)
    print(f"h_fine {args.h_fine * 1e3:.2f} mm, h_coarse {args.h_coarse * 1e3:.2f} mm, best of {args.repeat}")
    head = (f"{'slice':>5} {'y mm':>5} | {'nodes':>6} {'cells':>6} {'wall s':>7} {'cpu s':>6} "
            f"{'gen s':>6} {'minang':>6} {'q05':>5} | {'pert cpu':>8} {'minang':>6} | {'bare gmsh cpu':>13}")
    print(head)
    print("-" * len(head))
    rows = []
    for i in range(len(bs)):
        lab = bs.labels[i]
        m, w, c = _timed(lambda: mesh_label_image(lab, **kw), args.repeat)
        mp, _, cp = _timed(lambda: mesh_label_image(lab, perturb=np.random.default_rng(i), **kw), args.repeat)
        n_bare, _, cb = _timed(lambda: bare_gmsh(m.width * 1e3, m.height * 1e3, m.quality["n_nodes"],
                                                  m.params["algorithm"]), args.repeat)
        q = m.quality
        rows.append((q["n_nodes"], w, c, cp, cb, q["min_angle_deg"], mp.quality["min_angle_deg"]))
        print(f"{i:5d} {bs.y_mm[i]:5.0f} | {q['n_nodes']:6d} {q['n_cells']:6d} {w:7.3f} {c:6.3f} "
              f"{q['time_gmsh_generate_s']:6.3f} {q['min_angle_deg']:6.1f} {q['q05_quality']:5.3f} | "
              f"{cp:8.3f} {mp.quality['min_angle_deg']:6.1f} | {cb:6.3f} ({n_bare:5d} n)")
    r = np.array(rows)
    print("-" * len(head))
    print(f"nodes {r[:, 0].min():.0f}..{r[:, 0].max():.0f}; cpu s median {np.median(r[:, 2]):.3f} "
          f"max {r[:, 2].max():.3f} (perturbed median {np.median(r[:, 3]):.3f}); bare gmsh at the same node "
          f"count median {np.median(r[:, 4]):.3f}; min angle {r[:, 5].min():.1f} deg "
          f"(perturbed {r[:, 6].min():.1f})")


if __name__ == "__main__":
    main()
