"""`phantombench show`: one figure with a sample's grid fields and its FE mesh."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def _is_grid(name: str, spec: dict) -> bool:
    return not name.startswith("mesh_") and len(spec["shape"]) >= 2


def plot_sample(ds, index: int, out_file: Path, names: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    schema = ds.manifest["schema"]
    s = ds[index]
    grid_names = [k for k, v in schema.items() if _is_grid(k, v) and k in s]
    if names:
        unknown = [k for k in names if k not in grid_names]
        if unknown:
            raise ValueError(f"unknown grid field(s) {', '.join(unknown)}; this dataset has {', '.join(grid_names)}")
        grid_names = names
    panels = []  # (title, 2D array, unit)
    for k in grid_names:
        a = np.asarray(s[k], dtype=float)
        unit = schema[k]["unit"]
        if a.ndim == 2:
            panels.append((k, a, unit))
        else:  # stacks (patterns, frequencies, components): show the first few slices
            flat = a.reshape(-1, *a.shape[-2:])
            for j in range(min(3, flat.shape[0])):
                panels.append((f"{k}[{j}]", flat[j], unit))
    has_mesh = "mesh_points" in s and "mesh_cells" in s
    n = len(panels) + int(has_mesh)
    cols = min(5, max(1, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax, (title, a, unit) in zip(axes.flat, panels):
        finite = a[np.isfinite(a)]
        discrete = schema[title.split("[")[0]]["dtype"] in ("bool", "uint8", "int8", "int32", "int64")
        if discrete:
            lo, hi, cmap = 0.0, max(1.0, float(finite.max()) if finite.size else 1.0), "tab10"
        else:
            lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0, 1))
            cmap = "viridis"
        im = ax.imshow(a, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
        ax.set_title(f"{title} [{unit}]" if unit else title, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    if has_mesh:
        ax = axes.flat[len(panels)]
        pts, cells = s["mesh_points"], s["mesh_cells"]
        color_key = next((k for k in ("mesh_cell_labels", "mesh_cell_E", "mesh_cell_sigma", "mesh_cell_abs_G")
                          if k in s), None)
        pc = PolyCollection(pts[cells][:, :, :2], linewidths=0.15, edgecolors="k",
                            array=s[color_key] if color_key else None, cmap="tab10" if color_key ==
                            "mesh_cell_labels" else "viridis")
        ax.add_collection(pc)
        ax.autoscale_view()
        ax.set_aspect("equal")
        ax.set_title(f"mesh: {len(pts)} nodes, {len(cells)} cells" + (f"\n({color_key})" if color_key else ""),
                     fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{ds.manifest['name']} v{ds.manifest['version']}  sample {index}", fontsize=11)
    fig.tight_layout()
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
