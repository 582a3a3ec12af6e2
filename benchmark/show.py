"""`phantombench show`: one figure with a sample's grid fields and its FE mesh.

How each field is drawn (decided from the dataset itself: schema, sample attributes, card, values):

* labels and masks (integer or bool dtype): one colour per class present, from a fixed palette keyed by the
  class value (so a class has the same colour in every panel and on the mesh), and the class names as colour
  bar ticks. Names come from the sample attribute ``label_names``, the field's schema description
  (``"0 background, 1 gray matter"``), a sibling label field's description, or the card's ``Labels:`` line;
* signed fields (both signs beyond round-off): a diverging map centred on zero, limits symmetric;
* one-signed fields: a sequential map (grey for intensity images; logarithmic for positive fields that span
  more than two decades between the percentiles);
* limits from the 1st and 99th percentiles of the finite values, so that a few extreme pixels (bone in a
  modulus map) do not wash out the rest; the colour bar is marked where values are clipped. A signed field's
  percentiles are those of the pixels the benchmark scores (the task's evaluation mask: ``liver_mask`` for
  MRE), so the large waves at the MRE driver do not wash out the waves in the liver;
* a constant field has no colour bar: its value is in the title;
* values are rescaled to an SI prefix (mm, kPa) or a power of ten named in the colour-bar label, so tick
  labels are plain numbers (no offset text);
* every channel of a stacked field (components, frequencies, current patterns, phase offsets) is a panel,
  titled by what the channel is where the schema says it; a 3-D volume shows its middle slice.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

DISCRETE = ("bool", "uint8", "uint16", "int8", "int16", "int32", "int64")
PERCENTILE = 1.0            # colour limits: this percentile and 100 minus it
ROUND_OFF = 1e-3            # opposite-sign values below this fraction of the largest magnitude are round-off
LOG_SPAN = 100.0            # positive fields whose percentile range spans more than this ratio: log scale
MAX_PER_FIELD = 8           # channels drawn per stacked field (evenly spaced when there are more)
SI_UNITS = ("m", "Pa", "S/m", "V", "A", "s", "Hz", "N", "W")
PREFIX = {-12: "p", -9: "n", -6: "\u00b5", -3: "m", 3: "k", 6: "M", 9: "G"}
BACKGROUND_COLOUR = "#d4d4d4"
TRUE_COLOUR = "#4a5a78"        # the inside of a bool mask
MAX_NAME = 26               # longer class names lose their trailing parenthesis on the colour bar


@dataclass
class Panel:
    """One image panel: what to draw and how (``data`` already scaled to ``cbar_label``'s unit)."""

    title: str
    data: np.ndarray
    kind: str                                   # categorical | diverging | sequential | log | constant
    cmap: Any = None
    norm: Any = None
    cbar_label: str = ""
    ticks: list[float] = field(default_factory=list)
    ticklabels: list[str] = field(default_factory=list)
    extend: str = "neither"


# ------------------------------------------------------------------------------------------ classes
def class_colour(value: int):
    """The colour of class ``value``: light grey for 0 (background / outside / free), tab10 then tab20 after."""
    from matplotlib import colormaps

    if value == 0:
        return BACKGROUND_COLOUR
    if value is True:
        return TRUE_COLOUR
    if value <= 10:
        return colormaps["tab10"](value - 1)
    return colormaps["tab20"]((value - 11) % 20)


def parse_classes(text: str) -> dict[int, str]:
    """``"0 background, 1 gray matter (GM), 2 = white"`` -> {0: "background", 1: "gray matter (GM)", 2: "white"}."""
    out: dict[int, str] = {}
    for m in re.finditer(r"(?:^|[,;(:])\s*(\d+)\s*[=:]?\s+([A-Za-z][^,;]*)", text):
        name = m.group(2).strip().rstrip(".")
        if name.count(")") > name.count("("):
            name = name[:name.rfind(")")].strip()
        out.setdefault(int(m.group(1)), name)
    return out


def _card_classes(path: Path) -> dict[int, str]:
    """Class names from the dataset card's ``Labels: 0 ..., 1 ....`` sentence, if there is one."""
    card = Path(path) / "README.md"
    text = card.read_text(errors="replace") if card.is_file() else ""
    m = re.search(r"Labels:\s*(.+?)(?:\.\s|\.$|\n\n)", text, flags=re.S)
    return parse_classes(" ".join(m.group(1).split())) if m else {}


def class_names(name: str, schema: dict, attrs: dict, dataset_path: Path | None = None) -> dict[int, str]:
    """Class value -> name for a discrete field, merged from (first wins) the attribute ``label_names``
    (label fields only), the field's description, the other label fields' descriptions and the card."""
    spec = schema[name]
    if spec["dtype"] == "bool":
        inside = "inside" in spec["description"]
        return {0: "outside" if inside else "false", 1: "inside" if inside else "true"}
    names: dict[int, str] = {}
    is_label = "label" in name
    if is_label:
        names.update({int(k): str(v) for k, v in (attrs.get("label_names") or {}).items()})
    sources = [spec["description"]]
    if is_label:
        sources += [v["description"] for k, v in schema.items() if "label" in k and k != name]
    for text in sources:
        for k, v in parse_classes(text).items():
            names.setdefault(k, v)
    if is_label and dataset_path is not None:
        for k, v in _card_classes(dataset_path).items():
            names.setdefault(k, v)
    return names


def _short(name: str) -> str:
    if len(name) > MAX_NAME and "(" in name:
        name = name[:name.find("(")].strip()
    return name if len(name) <= MAX_NAME else name[:MAX_NAME - 1] + "\u2026"


def categorical(values: np.ndarray, names: dict[int, str]) -> tuple[np.ndarray, Any, Any, list[str]]:
    """(class-index image with NaN kept, ListedColormap, BoundaryNorm, tick label per class) of the classes
    present in ``values``; colours follow :func:`class_colour` of each class value."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    a = np.asarray(values, dtype=float)
    ok = np.isfinite(a)
    present = np.unique(a[ok]).astype(int)
    if present.size == 0:
        present = np.array([0])
    index = np.full(a.shape, np.nan)
    index[ok] = np.searchsorted(present, a[ok].astype(int))
    boolean = np.asarray(values).dtype == bool
    cmap = ListedColormap([class_colour(bool(v) if boolean else int(v)) for v in present]).with_extremes(
        bad="white")
    norm = BoundaryNorm(np.arange(len(present) + 1) - 0.5, len(present))
    labels = [_short(names[int(v)]) if int(v) in names else str(int(v)) for v in present]
    return index, cmap, norm, labels


# ------------------------------------------------------------------------------------------ continuous
def unit_scale(unit: str, magnitude: float) -> tuple[float, str]:
    """(factor, label): values times factor are plain numbers in the labelled unit (``mm``, ``kPa``, or
    ``x1e-3`` for units without an SI prefix); unchanged where magnitudes are already readable."""
    if not magnitude or not np.isfinite(magnitude) or 1e-2 <= magnitude < 1e4:
        return 1.0, unit if unit not in ("", "1") else ""
    e = 3 * math.floor(math.log10(magnitude) / 3)
    if unit in SI_UNITS and e in PREFIX:
        return 10.0 ** -e, PREFIX[e] + unit
    tail = f" {unit}" if unit not in ("", "1") else ""
    return 10.0 ** -e, f"\u00d71e{e}{tail}"


def _extend(a: np.ndarray, lo: float, hi: float) -> str:
    below, above = bool((a < lo).any()), bool((a > hi).any())
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get((below, above), "both")


def continuous(a: np.ndarray, unit: str, description: str, title: str, roi: np.ndarray | None = None) -> Panel:
    """The panel of a real-valued map: constant, diverging (signed), log or sequential (see module doc).
    Whether it is constant or signed is decided on all its values; a signed field's limits on those inside
    ``roi`` (waves and displacements decay away from where they are driven), other limits on all of them."""
    from matplotlib.colors import LogNorm, Normalize, TwoSlopeNorm

    v = a[np.isfinite(a)]
    if v.size == 0 or float(v.max()) - float(v.min()) <= 1e-12 * max(abs(float(v.max())), abs(float(v.min()))):
        return _constant(a, float(v[0]) if v.size else float("nan"), unit, title)
    big = float(np.percentile(np.abs(v), 100 - PERCENTILE)) or float(np.abs(v).max())
    image = "image" in description and unit in ("", "1")     # intensities: grey, never diverging
    signed = min(-float(v.min()), float(v.max())) > ROUND_OFF * big and not image
    lo, hi = robust_limits(a, roi if signed else None)
    if signed:
        lim = max(abs(lo), abs(hi))
        factor, label = unit_scale(unit, lim)
        norm = TwoSlopeNorm(0.0, -lim * factor, lim * factor)
        return Panel(title, a * factor, "diverging", "RdBu_r", norm, label, extend=_extend(a, -lim, lim))
    factor, label = unit_scale(unit, max(abs(lo), abs(hi)))
    cmap = "gray" if image else "viridis"
    if lo > 0 and hi / lo > LOG_SPAN and not image:
        return Panel(title, a * factor, "log", cmap, LogNorm(lo * factor, hi * factor), label,
                     extend=_extend(a, lo, hi))
    return Panel(title, a * factor, "sequential", cmap, Normalize(lo * factor, hi * factor), label,
                 extend=_extend(a, lo, hi))


def robust_limits(a: np.ndarray, roi: np.ndarray | None = None) -> tuple[float, float]:
    """The :data:`PERCENTILE` and 100 - :data:`PERCENTILE` percentiles of the finite values inside ``roi``
    (all finite values where ``roi`` is None, holds fewer than 16 of them or only one value); the full range
    where those percentiles coincide (a small region on a constant background)."""
    ok = np.isfinite(a)
    v = a[ok]
    if roi is not None and np.shape(roi) == np.shape(a):
        inside = a[ok & np.asarray(roi, bool)]
        if inside.size >= 16 and inside.max() > inside.min():
            v = inside
    lo, hi = (float(x) for x in np.percentile(v, [PERCENTILE, 100 - PERCENTILE]))
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    return lo, hi


def _constant(a: np.ndarray, value: float, unit: str, title: str) -> Panel:
    from matplotlib.colors import Normalize

    unit = unit if unit not in ("", "1") else ""
    pad = abs(value) * 0.5 or 1.0
    if not np.isfinite(value):
        return Panel(f"{title} (no finite values)", a, "constant", "viridis", Normalize(0.0, 1.0), unit)
    return Panel(f"{title} = {value:.4g}{(' ' + unit) if unit else ''} (constant)", a, "constant", "viridis",
                 Normalize(value - pad, value + pad), unit)


# ------------------------------------------------------------------------------------------ channels
def spatial_shape(sample: dict[str, np.ndarray]) -> tuple[int, ...]:
    """The image grid: the ``mask`` field's shape, else the commonest shape of the 2-D and 3-D fields."""
    if "mask" in sample and np.ndim(sample["mask"]) >= 2:
        return tuple(np.shape(sample["mask"]))
    shapes = Counter(tuple(np.shape(v)) for k, v in sample.items() if not k.startswith("mesh_")
                     and np.ndim(v) in (2, 3))
    return shapes.most_common(1)[0][0] if shapes else ()


def grid_fields(schema: dict, sample: dict[str, np.ndarray]) -> list[str]:
    """Fields defined on the image grid (trailing axes equal to :func:`spatial_shape`), in schema order."""
    grid = spatial_shape(sample)
    return [k for k in schema if k in sample and not k.startswith("mesh_") and grid
            and np.ndim(sample[k]) >= len(grid) and tuple(np.shape(sample[k])[-len(grid):]) == grid]


def _components(schema: dict) -> list[str]:
    """Displacement component names the schema states (``component z``, ``components (x, y)``)."""
    for spec in schema.values():
        m = re.search(r"components? \(?([xyz](?:,\s*[xyz])*)\)?", spec["description"])
        if m:
            return [c.strip() for c in m.group(1).split(",")]
    return []


def _axis_labels(name: str, spec: dict, lead: tuple[int, ...], sample: dict, schema: dict,
                 rank: int) -> list[list[str]]:
    """What each index of each leading (non-spatial) axis of a field is, as short labels."""
    desc, comps = spec["description"], _components(schema)
    freqs = np.ravel(sample.get("frequencies", []))
    phases = re.search(r"n = 0\s*\.\.\s*(\d+)", desc)
    out = []
    for i, n in enumerate(lead):
        if i == 0 and len(lead) == 1 and n == rank and ("displacement" in desc or "normal" in desc):
            out.append(["along rows", "along columns"] if rank == 2 else [f"along axis {d}" for d in range(n)])
        elif i == 0 and "pattern" in desc:
            out.append([f"pattern {k}" for k in range(n)])
        elif i == 0 and name != "frequencies" and len(freqs) == n:
            out.append([f"{f:g} Hz" for f in freqs])
        elif i > 0 and len(comps) == n:
            out.append(list(comps))
        elif phases and int(phases.group(1)) + 1 == n:
            out.append([f"phase {k}/{n}" for k in range(n)])
        else:
            out.append([f"[{k}]" for k in range(n)])
    return out


def channels(name: str, spec: dict, shape: tuple[int, ...], sample: dict, schema: dict, rank: int,
             limit: int = MAX_PER_FIELD) -> list[tuple[tuple[int, ...], str]]:
    """(index into the leading axes, panel title) of the channels to draw: all of them up to ``limit``,
    else ``limit`` evenly spaced ones (the first title says how many there are)."""
    lead = tuple(shape[:len(shape) - rank])
    labels = _axis_labels(name, spec, lead, sample, schema, rank)
    idx = list(product(*(range(n) for n in lead)))
    titles = [" ".join([name] + [labels[a][k] for a, k in enumerate(ix)]).replace(" [", "[") for ix in idx]
    if len(idx) <= limit:
        return list(zip(idx, titles))
    keep = sorted(set(np.linspace(0, len(idx) - 1, limit).round().astype(int).tolist()))
    picked = [(idx[j], titles[j]) for j in keep]
    picked[0] = (picked[0][0], f"{picked[0][1]} ({len(keep)} of {len(idx)} channels)")
    return picked


def volume_slice(grid: tuple[int, ...], roi: np.ndarray | None) -> int | None:
    """The axis-0 slice a 3-D grid is shown at: the one holding most of ``roi`` (the scored objects), else
    the middle one; None on a 2-D grid."""
    if len(grid) != 3:
        return None
    if roi is not None and roi.any():
        return int(np.argmax(roi.reshape(roi.shape[0], -1).sum(axis=1)))
    return grid[0] // 2


def field_panels(name: str, a: np.ndarray, schema: dict, attrs: dict, path: Path | None,
                 sample: dict, grid: tuple[int, ...], roi: np.ndarray | None = None) -> list[Panel]:
    """The panels of one grid field: one per channel (a volume at :func:`volume_slice`); colour limits from
    the values inside ``roi`` (a grid-shaped bool array) where given."""
    spec, rank = schema[name], len(grid)
    cut = volume_slice(grid, roi)
    if roi is not None and cut is not None:
        roi = roi[cut]
    names = class_names(name, schema, attrs, path) if spec["dtype"] in DISCRETE else {}
    out = []
    for ix, title in channels(name, spec, a.shape, sample, schema, rank):
        img = np.asarray(a[ix])
        if cut is not None:
            img = img[cut]
        if spec["dtype"] in DISCRETE:
            index, cmap, norm, labels = categorical(img, names)
            out.append(Panel(title, index, "categorical", cmap, norm, "", list(range(len(labels))), labels))
        else:
            out.append(continuous(np.real(img).astype(float), spec["unit"], spec["description"], title, roi))
    return out


def region_of_interest(ds, sample: dict) -> str | None:
    """The field holding the region the benchmark scores for this dataset's generator (a task's evaluation
    mask: ``liver_mask`` for MRE, ``body`` for registration), if the sample has it on the image grid."""
    from phantombench.tasks import TASKS

    gen = (ds.manifest.get("generator") or {}).get("name")
    grid = spatial_shape(sample)
    for task in TASKS.values():
        key = task.mask_field
        if gen in task.generators and key in sample and tuple(np.shape(sample[key])) == grid:
            return key
    return None


def sample_panels(ds, index: int, names: list[str] | None = None) -> tuple[list[Panel], dict, str | None]:
    """Every grid panel of sample ``index`` (or of the fields in ``names``), the sample's arrays and the
    name of the field whose region sets the colour limits (None: all pixels)."""
    schema = ds.manifest["schema"]
    s = ds[index]
    grid_names = grid_fields(schema, s)
    if names:
        unknown = [k for k in names if k not in grid_names and not (k == "mesh" and "mesh_cells" in s)]
        if unknown:
            raise ValueError(f"unknown grid field(s) {', '.join(unknown)}; this dataset has "
                             f"{', '.join(grid_names)}" + (" and mesh" if "mesh_cells" in s else ""))
        grid_names = [k for k in names if k != "mesh"]
    attrs, grid, roi_name = ds.attrs(index) or {}, spatial_shape(s), region_of_interest(ds, s)
    roi = np.asarray(s[roi_name], bool) if roi_name else None
    panels = [p for k in grid_names
              for p in field_panels(k, np.asarray(s[k]), schema, attrs, ds.path, s, grid, roi)]
    return panels, s, roi_name


# ------------------------------------------------------------------------------------------ drawing
def _colourbar(fig, ax, mappable, p: Panel):
    """The panel's colour bar: class names as ticks, or plain numbers with the unit as its label."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter, ScalarFormatter

    if p.kind == "constant":
        return None
    cb = fig.colorbar(mappable, ax=ax, shrink=0.85, extend="neither" if p.kind == "categorical" else p.extend)
    if p.kind == "categorical":
        cb.set_ticks(p.ticks)
        cb.set_ticklabels(p.ticklabels)
        cb.ax.tick_params(labelsize=7, length=0)
        return cb
    if p.kind == "log":
        cb.ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        cb.ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        fmt = ScalarFormatter(useOffset=False)
        fmt.set_scientific(False)
        cb.ax.yaxis.set_major_formatter(fmt)
    cb.ax.tick_params(labelsize=7)
    if p.cbar_label:
        cb.set_label(p.cbar_label, fontsize=8)
    return cb


def draw_panel(fig, ax, p: Panel):
    """Draw one image panel (and its colour bar) into ``ax``; return the image."""
    im = ax.imshow(p.data, cmap=p.cmap, norm=p.norm, interpolation="nearest")
    ax.set_title(p.title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    _colourbar(fig, ax, im, p)
    return im


def mesh_panel(s: dict, schema: dict, attrs: dict, path: Path | None) -> tuple[Panel, str]:
    """How to colour the mesh's cells: by label (the label panels' colours) or by a cell property."""
    key = next((k for k in ("mesh_cell_labels", "mesh_cell_E", "mesh_cell_sigma", "mesh_cell_g_storage",
                            "mesh_cell_abs_G") if k in s), None)
    if key is None:
        return Panel("", np.zeros(len(s["mesh_cells"])), "none"), ""
    values = np.asarray(s[key])
    if values.ndim > 1:
        values = values[:, 0]
    if key == "mesh_cell_labels":
        index, cmap, norm, labels = categorical(values, class_names(key, schema, attrs, path))
        return Panel("", index, "categorical", cmap, norm, "", list(range(len(labels))), labels), "labels"
    return continuous(values.astype(float), schema[key]["unit"], schema[key]["description"], ""), key[10:]


def draw_mesh(fig, ax, s: dict, schema: dict, attrs: dict, path: Path | None) -> Panel:
    """The FE mesh in physical coordinates, cells coloured as :func:`mesh_panel` says."""
    from matplotlib.collections import PolyCollection

    pts, cells = np.asarray(s["mesh_points"]), np.asarray(s["mesh_cells"])
    p, what = mesh_panel(s, schema, attrs, path)
    coloured = p.kind != "none"
    pc = PolyCollection(pts[cells][:, :, :2], linewidths=0.1, edgecolors=(0, 0, 0, 0.35),
                        array=p.data if coloured else None, cmap=p.cmap, norm=p.norm,
                        facecolors=None if coloured else "none")
    ax.add_collection(pc)
    ax.autoscale_view()
    ax.set_aspect("equal")
    p.title = f"mesh: {len(pts)} nodes, {len(cells)} cells" + (f"\ncoloured by {what}" if what else "")
    ax.set_title(p.title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    if coloured:
        _colourbar(fig, ax, pc, p)
    return p


def sample_figure(ds, index: int, names: list[str] | None = None, cols: int = 5):
    """The matplotlib Figure of sample ``index`` (see the module doc for how each field is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels, s, roi_name = sample_panels(ds, index, names)
    schema = ds.manifest["schema"]
    has_mesh = "mesh_points" in s and "mesh_cells" in s and (not names or "mesh" in names)
    n = len(panels) + int(has_mesh)
    cols = min(cols, max(1, n))
    rows = math.ceil(n / cols)
    grid = spatial_shape(s)
    aspect = min(1.6, max(0.6, grid[-2] / grid[-1])) if len(grid) >= 2 else 1.0
    fig = plt.figure(figsize=(3.1 * cols, (2.6 * aspect + 0.5) * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, p in zip(axes.flat, panels):
        draw_panel(fig, ax, p)
    if has_mesh:
        draw_mesh(fig, axes.flat[len(panels)], s, schema, ds.attrs(index) or {}, ds.path)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    m = ds.manifest
    where = f" (signed fields: of the pixels in {roi_name})" if roi_name else ""
    cut = volume_slice(grid, np.asarray(s[roi_name], bool) if roi_name else None)
    if cut is not None:
        where += f"; volumes: slice {cut} of {grid[0]} along axis 0"
    fig.suptitle(f"{m['name']} v{m['version']}, sample {index}\ncolour limits: {PERCENTILE:g} and "
                 f"{100 - PERCENTILE:g} % percentiles{where}; arrows: values beyond them", fontsize=10)
    return fig


def plot_sample(ds, index: int, out_file: Path, names: list[str] | None = None, dpi: int = 110,
                cols: int = 5) -> None:
    """Write :func:`sample_figure` to ``out_file`` (.png, .pdf, .svg)."""
    import matplotlib.pyplot as plt

    fig = sample_figure(ds, index, names, cols)
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    png = Path(out_file).suffix.lower() == ".png"
    fig.savefig(out_file, dpi=dpi, metadata={"Software": None} if png else None)   # same input, same bytes
    plt.close(fig)
