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


def export_sample(ds, index: int, target: Path, fmt: str) -> None:
    mesh = sample_mesh(ds, index)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.partial{target.suffix}")
    mesh.write(tmp, file_format=fmt)
    tmp.replace(target)
    if fmt == "xdmf":  # meshio writes heavy data to a sibling .h5 named after the xdmf file
        h5 = tmp.with_suffix(".h5")
        if h5.exists():
            h5.replace(target.with_suffix(".h5"))
            text = target.read_text().replace(h5.name, target.with_suffix(".h5").name)
            target.write_text(text)
