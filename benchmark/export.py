"""`phantombench export`: a sample's FE mesh with its nodal and cell fields, via meshio (VTU / XDMF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def sample_mesh(ds, index: int):
    import meshio

    s = ds[index]
    if "mesh_points" not in s or "mesh_cells" not in s:
        raise ValueError(f"{ds.manifest['name']} stores no FE mesh (fields mesh_points/mesh_cells)")
    pts = np.asarray(s["mesh_points"], dtype=float)
    if pts.shape[1] == 2:
        pts = np.column_stack([pts, np.zeros(len(pts))])
    cells = np.asarray(s["mesh_cells"], dtype=np.int64)
    point_data = {k[len("mesh_point_"):]: v for k, v in s.items() if k.startswith("mesh_point_")}
    cell_data = {k[len("mesh_cell_"):]: [v] for k, v in s.items() if k.startswith("mesh_cell_")}
    return meshio.Mesh(pts, [("triangle", cells)], point_data=point_data, cell_data=cell_data)


def _write_xdmf(mesh, target: Path) -> None:
    """XDMF as a one-step time series (what ParaView and pyvista's reader expect); heavy data in ``<stem>.h5``."""
    import meshio

    with meshio.xdmf.TimeSeriesWriter(target) as w:
        w.write_points_cells(mesh.points, mesh.cells)
        w.write_data(0.0, point_data=mesh.point_data, cell_data=mesh.cell_data)


def export_sample(ds, index: int, target: Path, fmt: str) -> None:
    """Write the sample's mesh to ``target`` (VTU, or XDMF + its .h5 beside it); nothing is left half-written."""
    import shutil
    import tempfile

    mesh = sample_mesh(ds, index)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        staged = Path(tmp) / target.name
        if fmt == "xdmf":
            cwd = Path.cwd()
            try:   # meshio names the .h5 relative to the working directory's view of the xdmf path
                import os

                os.chdir(tmp)
                _write_xdmf(mesh, Path(target.name))
            finally:
                os.chdir(cwd)
            h5 = staged.with_suffix(".h5")
            if h5.exists():
                shutil.move(h5, target.with_suffix(".h5"))
        else:
            mesh.write(staged, file_format=fmt)
        shutil.move(staged, target)
