"""El-UNet's released grids (comma-separated text) -> a ``brain-elasticity`` task dataset.

Format: per example a folder of ``H x W`` (142 x 100) comma-separated files ``Ux_structured.txt``,
``Uy_structured.txt``, ``Exx_``, ``Eyy_``, ``Exy_``, ``Sxx_``, ``Syy_``, ``Sxy_structured.txt`` and, as truth,
``Youngs_Structured.txt`` and ``Poissons_Structured.txt`` (names matched case-insensitively by their prefix).
``src`` is one such folder or a folder of them. No spacing is given; values are SI.

Conventions of the task (README "Grid convention"): row 0 at the top, x to the right, y up, tensor shear ``exy``,
a uniform compressive traction on the top edge (``syy = -traction`` there), a frictionless supported bottom.
What the files do not say is read from the physics (:func:`detect`):

* row order -- the supported bottom edge is the row where ``uy`` vanishes: first row -> the file is stored
  bottom-up and is flipped; a declared ``rows`` that disagrees is refused;
* axis signs and spacing -- ``eyy = duy/dy`` and ``exx = dux/dx`` give the pixel spacing (a declared ``spacing``
  must agree within 5 %) and refuse a y axis pointing down or an x axis pointing left;
* load sign -- compression gives ``eyy < 0`` on average; stresses must share the strains' sign (``syy`` and
  ``eyy``); tension or disagreeing signs are refused with the fix;
* shear convention -- ``sxy / exy`` against ``(sxx - syy) / (exx - eyy)`` (= ``E / (1 + nu)`` in plane stress):
  1 for tensor shear, 1/2 for engineering shear (then halved);
* units of E -- plane-stress Hooke's law with the truth's E and nu must reproduce ``syy`` (E in kPa is refused
  unless ``youngs_unit="kPa"`` is declared).

The traction is ``-mean(syy)`` over the top row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from phantombench.importers.common import ConventionError, ImportedSample, conventions_card, write_dataset

FILES = {"ux": "ux", "uy": "uy", "exx": "exx", "eyy": "eyy", "exy": "exy", "sxx": "sxx", "syy": "syy",
         "sxy": "sxy", "E": "youngs", "nu": "poissons"}
TRUTH = ("E", "nu")
UNKNOWN_LABEL = 255


def _find(folder: Path, prefix: str) -> Path | None:
    hits = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".txt"
            and p.name.lower().startswith(prefix + "_")]
    if len(hits) > 1:
        raise ConventionError(f"{folder.name}: several files for {prefix} ({', '.join(p.name for p in hits)})")
    return hits[0] if hits else None


def examples(src: Path) -> list[Path]:
    """``src`` itself when it holds the files, else its sub-folders that do (sorted by name)."""
    if _find(src, "ux") is not None:
        return [src]
    return sorted(p for p in src.iterdir() if p.is_dir() and _find(p, "ux") is not None)


def read_example(folder: Path, truth: bool) -> tuple[dict[str, np.ndarray], list[Path]]:
    arrays, paths = {}, []
    for name, prefix in FILES.items():
        p = _find(folder, prefix)
        if p is None:
            if name in TRUTH and not truth:
                continue
            if name in TRUTH:
                raise ConventionError(f"{folder.name}: no {prefix}_*.txt; pass truth=False (--option truth=false) to "
                                      "import the observations alone")
            raise ConventionError(f"{folder.name}: no {prefix}_*.txt (El-UNet format: Ux, Uy, Exx, Eyy, Exy, Sxx, "
                                  "Syy, Sxy, Youngs, Poissons)")
        if name in TRUTH and not truth:
            continue
        try:
            a = np.loadtxt(p, delimiter=",", dtype=np.float64, ndmin=2)
        except ValueError as e:
            raise ConventionError(f"{p.name}: not a comma-separated grid of numbers ({e})") from None
        if not np.isfinite(a).all():
            raise ConventionError(f"{p.name}: holds NaN or inf; the El-UNet grids cover the whole rectangle")
        arrays[name], paths = a, paths + [p]
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1 or min(next(iter(shapes))) < 8:
        raise ConventionError(f"{folder.name}: grids of different or tiny shapes {sorted(shapes)}")
    return arrays, paths


# =========================================================================================== physics checks
def _row_order(uy: np.ndarray, rows: str) -> str:
    scale = np.abs(uy).max()
    if scale == 0:
        raise ConventionError("uy is zero everywhere: no load")
    first, last = np.abs(uy[0]).max() / scale, np.abs(uy[-1]).max() / scale
    found = ("bottom-up" if first < 1e-3 <= last else "top-down" if last < 1e-3 <= first else None)
    if found is None:
        raise ConventionError(f"row order: uy vanishes on neither the first nor the last row (max |uy| there "
                              f"{first:.2g} and {last:.2g} of the peak), so no supported bottom edge is found; the "
                              "task needs uy = 0 on the bottom edge")
    if rows != "auto" and rows != found:
        raise ConventionError(f"row order: uy vanishes on the {'first' if found == 'bottom-up' else 'last'} row, so "
                              f"the file is stored {found}, not {rows} as declared; pass rows='{found}' or 'auto'")
    return found


def _spacing(u: np.ndarray, e: np.ndarray, axis: int, sign: float) -> float:
    """Median of (du per pixel) / strain over pixels with a sizeable strain (signed: negative = axis reversed)."""
    du = sign * np.gradient(u, axis=axis)
    big = np.abs(e) > 0.3 * np.abs(e).max()
    return float(np.median(du[big] / e[big])) if big.any() else float("nan")


def _check_signs(a: dict[str, np.ndarray], dy: float, dx: float) -> None:
    if not dy > 0:
        raise ConventionError("sign: uy grows downward where eyy says it should grow upward: the files use a y axis "
                              "pointing down; negate Uy, Exy and Sxy (the task's y axis points up)")
    if not dx > 0:
        raise ConventionError("sign: ux decreases to the right where exx says it should grow: the files use an x "
                              "axis pointing left; negate Ux, Exy and Sxy and mirror the columns")
    if a["eyy"].mean() > 0:
        raise ConventionError(f"load: mean eyy = {a['eyy'].mean():+.3g} > 0 (tension); the task loads the top edge in "
                              "compression: negate every displacement, strain and stress file (linear elasticity)")
    if a["syy"].mean() > 0:
        raise ConventionError(f"sign: mean syy = {a['syy'].mean():+.3g} Pa but mean eyy = {a['eyy'].mean():+.3g}: "
                              "stresses and strains must share the load's sign; negate Sxx, Syy and Sxy")


def _shear_factor(a: dict[str, np.ndarray]) -> float:
    """1 for tensor shear strain, 0.5 for engineering shear (sxy = 2 mu exy_tensor)."""
    de = a["exx"] - a["eyy"]
    two_mu = (a["sxx"] - a["syy"]) / np.where(de == 0, np.nan, de)
    ok = (np.abs(a["exy"]) > 0.3 * np.abs(a["exy"]).max()) & (np.abs(de) > 0.3 * np.abs(de).max())
    ok &= np.isfinite(two_mu)
    if ok.sum() < 10:
        return 1.0     # too little shear to tell; the task's convention is assumed
    k = float(np.median(a["sxy"][ok] / (two_mu[ok] * a["exy"][ok])))
    if abs(k - 1) < 0.15:
        return 1.0
    if abs(k - 0.5) < 0.075:
        return 0.5
    raise ConventionError(f"shear: sxy / exy is {k:.3g} x (sxx - syy) / (exx - eyy); plane stress gives 1 for tensor "
                          "shear and 1/2 for engineering shear; check the Exy and Sxy files")


def _hooke(a: dict[str, np.ndarray], youngs_unit: str) -> float:
    """Scale factor of E to Pa, checked with plane-stress Hooke's law on syy."""
    scale = {"Pa": 1.0, "kPa": 1e3}[youngs_unit]
    E, nu = a["E"] * scale, a["nu"]
    if not ((nu > -1).all() and (nu < 0.5).all() and (E > 0).all()):
        raise ConventionError("truth: E must be positive and -1 < nu < 0.5 (Youngs and Poissons files swapped?)")
    pred = E / (1 - nu**2) * (a["eyy"] + nu * a["exx"])
    big = np.abs(pred) > 0.3 * np.abs(pred).max()
    r = float(np.median(a["syy"][big] / pred[big]))
    if abs(r - 1) < 0.2:
        return scale
    hint = (" (E looks like kPa: pass youngs_unit='kPa')" if abs(r / 1e3 - 1) < 0.2 else
            " (E looks like MPa or the stresses like kPa: convert the files to Pa)" if abs(r * 1e3 - 1) < 0.2 else "")
    raise ConventionError(f"units: syy is {r:.4g} x E/(1-nu^2) (eyy + nu exx) with E in {youngs_unit}; SI units "
                          f"(Pa, m) must agree with Hooke's law{hint}")


def detect(a: dict[str, np.ndarray], rows: str = "auto", spacing: tuple[float, float] | None = None,
           youngs_unit: str = "Pa") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Check and convert one example to the task's conventions; return (arrays, what was found)."""
    order = _row_order(a["uy"], rows)
    if order == "bottom-up":
        a = {k: v[::-1].copy() for k, v in a.items()}
    dy, dx = _spacing(a["uy"], a["eyy"], 0, -1.0), _spacing(a["ux"], a["exx"], 1, 1.0)
    if not np.isfinite(dx):
        dx = dy
    _check_signs(a, dy, dx)
    if spacing is not None:
        want = np.asarray(spacing, float)
        if want.shape != (2,) or (np.abs(np.array([dy, dx]) / want - 1) > 0.05).any():
            raise ConventionError(f"spacing: displacements and strains give (dy, dx) = ({dy:.4g}, {dx:.4g}) m, not the "
                                  f"declared {tuple(spacing)}; pass spacing=[{dy:.4g}, {dx:.4g}] or omit it")
        dy, dx = float(want[0]), float(want[1])
    shear = _shear_factor(a)
    if shear != 1.0:
        a["exy"] = a["exy"] * shear
    if "E" in a:
        a["E"] = a["E"] * _hooke(a, youngs_unit)
    traction = float(-a["syy"][0, 1:-1].mean())
    found = {"rows": order, "spacing_m": [dy, dx], "shear": "engineering (halved)" if shear != 1 else "tensor",
             "traction_Pa": traction, "youngs_unit": youngs_unit if "E" in a else None}
    return a, found


# =========================================================================================== import
SPECS = {
    "ux": ("m", "horizontal displacement"), "uy": ("m", "vertical displacement (y up)"),
    "exx": ("1", "normal strain xx"), "eyy": ("1", "normal strain yy"),
    "exy": ("1", "tensor shear strain (engineering shear / 2)"),
    "sxx": ("Pa", "normal stress xx"), "syy": ("Pa", "normal stress yy"), "sxy": ("Pa", "shear stress xy"),
    "E": ("Pa", "Young's modulus"), "nu": ("1", "Poisson's ratio"),
    "labels": ("", f"{UNKNOWN_LABEL} = no region labels in the source (per-region metrics are NaN)"),
    "mask": ("", "pixel centre inside the domain (the whole rectangle)"),
}


def _sample(folder: Path, opts: dict[str, Any]) -> ImportedSample:
    raw, paths = read_example(folder, opts["truth"])
    try:
        a, found = detect(raw, opts["rows"], opts["spacing"], opts["youngs_unit"])
    except ConventionError as e:
        raise ConventionError(f"{folder.name}: {e}") from None
    H, W = a["ux"].shape
    dy, dx = found["spacing_m"]
    fields = {k: a[k] for k in FILES if k in a}
    fields["mask"] = np.ones((H, W), bool)
    if "E" in a:
        fields["labels"] = np.full((H, W), UNKNOWN_LABEL, np.uint8)
    attrs = {"traction_Pa": found["traction_Pa"], "grid_spacing_m": [dy, dx], "conventions": found,
             "example": folder.name, "grid": {"x0": 0.0, "y_top": (H - 1) * dy, "dx": dx, "dy": dy, "H": H, "W": W}}
    return ImportedSample(fields, attrs, paths)


def import_elunet(src: str | Path, out: str | Path, *, rows: str = "auto", spacing: list[float] | None = None,
                  youngs_unit: str = "Pa", truth: bool = True, split: str = "test"):
    """Import El-UNet grids (one example folder or a folder of them) as a ``brain-elasticity`` dataset."""
    src = Path(src)
    if rows not in ("auto", "top-down", "bottom-up") or youngs_unit not in ("Pa", "kPa"):
        raise ConventionError("rows is 'auto', 'top-down' or 'bottom-up'; youngs_unit is 'Pa' or 'kPa'")
    folders = examples(src) if src.is_dir() else []
    if not folders:
        raise ConventionError(f"{src}: no El-UNet example (a folder holding Ux_structured.txt ... Poissons_"
                              "Structured.txt, or a folder of such folders)")
    opts = {"rows": rows, "spacing": spacing, "youngs_unit": youngs_unit, "truth": truth}
    samples = [_sample(f, opts) for f in folders]
    s0 = samples[0].attrs
    H, W = samples[0].fields["ux"].shape
    conv = s0["conventions"]
    card = conventions_card("El-UNet grids", [
        f"{len(samples)} example(s), {H} x {W} grids; rows stored {conv['rows']} (detected: uy = 0 on the supported "
        "bottom edge)" + (", flipped to row 0 = top" if conv["rows"] == "bottom-up" else ""),
        f"spacing (dy, dx) = ({s0['grid_spacing_m'][0]:.5g}, {s0['grid_spacing_m'][1]:.5g}) m "
        f"({'declared' if spacing else 'detected from displacement differences / strains'})",
        f"load: compressive top traction {s0['traction_Pa']:.4g} Pa (-mean syy on the top row; signs of strain and "
        f"stress checked); shear strain {conv['shear']}",
        ("truth E, nu (E in " + youngs_unit + ", checked with plane-stress Hooke's law on syy); labels unknown"
         if truth else "no truth: observations only")])
    config = {"source_format": "elunet", "grid_h": H, "grid_w": W, "width": (W - 1) * s0["grid_spacing_m"][1],
              "height": (H - 1) * s0["grid_spacing_m"][0], "rows_in_source": conv["rows"]}
    return write_dataset(out, "brain-slice", "elunet", config, samples, SPECS, card, split)
