"""Tasks: what a solver sees, what it must return, and how it is scored.

A :class:`Task` is the contract between a dataset, a solver and the harness:

* ``observations`` -- the entries of the observation dict handed to ``Solver.solve``; each is read from a
  sample field (``field``), a per-sample attribute (``attr``) or the dataset config (``config``). Only these
  entries are read for a solver: ground truth never reaches it (the harness holds it separately).
* ``predictions``  -- the fields ``solve`` must return: shape (the task grid, ``"grid"``), dtype kind, unit and
  physical bounds (used to reject predictions in the wrong unit).
* ``metrics``      -- name, direction (``lower``/``higher`` is better), unit, and the function scoring one case.
  ``main_metric`` ranks the leaderboard.
* ``truth(...)``   -- the prediction fields' ground truth plus what scoring needs (evaluation mask, labels).

Tasks are registered in :data:`TASKS`; :func:`get_task` finds one by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from phantombench import metrics as M

Direction = Literal["lower", "higher"]


@dataclass(frozen=True)
class Observed:
    """One entry of the observation dict."""

    name: str
    source: Literal["field", "attr", "config"]
    key: str                    # field name, attribute name or config key in the dataset
    unit: str
    description: str
    optional: bool = False      # absent in some datasets (the entry is then left out)


@dataclass(frozen=True)
class Predicted:
    """One field a solver must return."""

    name: str
    unit: str
    description: str
    kind: Literal["float", "complex"] = "float"
    lower: float | None = None            # physical bounds inside the evaluation mask (inclusive)
    upper: float | None = None
    scale_check: bool = False             # reject if the median is 100x off the truth's (wrong unit)


@dataclass(frozen=True)
class Metric:
    name: str
    direction: Direction
    unit: str
    description: str
    fn: Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], float] = field(repr=False, compare=False)

    def better(self, a: float, b: float) -> bool:
        return a < b if self.direction == "lower" else a > b


class TaskError(ValueError):
    """A dataset that does not fit a task (wrong generator, missing fields)."""


@dataclass
class Task:
    name: str
    version: str
    description: str
    generators: tuple[str, ...]
    observations: tuple[Observed, ...]
    predictions: tuple[Predicted, ...]
    metrics: tuple[Metric, ...]
    main_metric: str
    truth_fields: tuple[str, ...]            # dataset fields the harness reads as ground truth
    mask_field: str | None = "mask"          # evaluation mask (a dataset field); None = every pixel
    max_time_budget_s: float = 1800.0        # the most a solver may declare per case
    headline: tuple[str, ...] = ()           # metrics shown in README tables and charts (default: all)
    notes: str = ""
    extra_truth: Callable[[Any, int, dict[str, np.ndarray]], dict[str, np.ndarray]] | None = field(
        default=None, repr=False)

    # ------------------------------------------------------------------------------------ lookup
    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"task {self.name!r} has no metric {name!r}")

    @property
    def prediction_names(self) -> list[str]:
        return [p.name for p in self.predictions]

    @property
    def headline_metrics(self) -> list[str]:
        return list(self.headline) if self.headline else [m.name for m in self.metrics]

    def describe(self) -> dict[str, Any]:
        """JSON-able description (for records, the CLI and SUBMITTING.md)."""
        return {
            "name": self.name, "version": self.version, "description": self.description,
            "generators": list(self.generators),
            "observations": [{"name": o.name, "unit": o.unit, "description": o.description,
                              **({"optional": True} if o.optional else {})} for o in self.observations],
            "predictions": [{"name": p.name, "unit": p.unit, "kind": p.kind, "shape": "grid (H, W)",
                             "bounds": [p.lower, p.upper], "description": p.description}
                            for p in self.predictions],
            "metrics": [{"name": m.name, "direction": m.direction, "unit": m.unit, "description": m.description}
                        for m in self.metrics],
            "main_metric": self.main_metric, "max_time_budget_s": self.max_time_budget_s,
        }

    # ------------------------------------------------------------------------------------ data
    def check_dataset(self, ds) -> None:
        gen = ds.manifest.get("generator", {}).get("name")
        if gen not in self.generators:
            raise TaskError(f"task {self.name!r} takes datasets of generator {' or '.join(self.generators)}; "
                            f"{ds.path} was made by {gen!r}")
        schema = ds.manifest["schema"]
        need = [o.key for o in self.observations if o.source == "field" and not o.optional]
        need += list(self.truth_fields) + ([self.mask_field] if self.mask_field else [])
        missing = sorted({k for k in need if k not in schema})
        if missing:
            raise TaskError(f"dataset {ds.path} lacks field(s) {', '.join(missing)} needed by task {self.name!r}")

    def observation(self, ds, i: int, group=None) -> dict[str, Any]:
        """The observation dict of sample ``i``: only the declared entries, copied."""
        g = group if group is not None else ds.group(i)
        attrs = ds.attrs(i)
        obs: dict[str, Any] = {}
        schema = ds.manifest["schema"]
        for o in self.observations:
            if o.source == "field":
                if o.key not in schema:
                    if o.optional:
                        continue
                    raise TaskError(f"sample {i} lacks field {o.key!r}")
                obs[o.name] = np.asarray(g[o.key][...])
            elif o.source == "attr":
                if o.key not in attrs:
                    if o.optional:
                        continue
                    raise TaskError(f"sample {i} lacks attribute {o.key!r}")
                v = attrs[o.key]
                obs[o.name] = np.asarray(v, dtype=np.float64) if isinstance(v, list) else v
            else:
                cfg = ds.manifest.get("config", {})
                if o.key not in cfg:
                    if o.optional:
                        continue
                    raise TaskError(f"dataset config lacks {o.key!r}")
                v = cfg[o.key]
                obs[o.name] = np.asarray(v, dtype=np.float64) if isinstance(v, list) else v
        return obs

    def truth(self, ds, i: int, group=None) -> dict[str, np.ndarray]:
        """Ground truth of sample ``i`` plus the evaluation mask (``_mask``); never shown to a solver."""
        g = group if group is not None else ds.group(i)
        t = {k: np.asarray(g[k][...]) for k in self.truth_fields}
        ref = t[self.predictions[0].name]
        t["_mask"] = (np.asarray(g[self.mask_field][...], bool) if self.mask_field
                      else np.ones(ref.shape, bool))
        t["_mask"] = t["_mask"] & np.isfinite(ref)
        if self.extra_truth is not None:
            t.update(self.extra_truth(ds, i, t))
        return t

    def target(self, ds, i: int, group=None) -> dict[str, np.ndarray]:
        """Training target for ``Solver.fit``: the prediction fields' truth of a training sample."""
        t = self.truth(ds, i, group)
        return {p.name: t[p.name] for p in self.predictions}

    # ------------------------------------------------------------------------------------ checks
    def validate(self, pred: Any, truth: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str | None]:
        """Check a prediction (type, fields, shape, dtype, finite, bounds, unit scale).

        Returns (clean prediction as float64/complex128 arrays, None) or ({}, 'one-line reason').
        """
        if not isinstance(pred, dict):
            return {}, f"solve() returned {type(pred).__name__}, expected a dict of arrays"
        missing = [p.name for p in self.predictions if p.name not in pred]
        if missing:
            return {}, f"prediction lacks field(s) {', '.join(missing)} (must return {self.prediction_names})"
        mask = truth["_mask"]
        out = {}
        for p in self.predictions:
            a = pred[p.name]
            if not isinstance(a, np.ndarray):
                try:  # torch tensors and friends
                    if hasattr(a, "detach"):
                        a = a.detach().cpu().numpy()
                    a = np.asarray(a)
                except Exception as e:  # noqa: BLE001
                    return {}, f"{p.name}: not convertible to an array ({type(e).__name__})"
            want = truth[p.name].shape
            if a.shape != want:
                return {}, f"{p.name}: wrong shape {tuple(a.shape)}, expected {tuple(want)}"
            if p.kind == "float" and a.dtype.kind != "f":
                return {}, f"{p.name}: dtype {a.dtype} is not floating point (float32/float64 expected)"
            if p.kind == "complex" and a.dtype.kind not in "fc":
                return {}, f"{p.name}: dtype {a.dtype} is not floating point or complex"
            a = a.astype(np.complex128 if a.dtype.kind == "c" else np.float64, copy=False)
            inside = a[mask]
            bad = ~np.isfinite(inside)
            if bad.any():
                kind = "NaN" if np.isnan(inside).any() else "inf"
                return {}, f"{p.name}: {int(bad.sum())} of {inside.size} values in the evaluation mask are {kind}"
            if p.kind == "float" and inside.size:
                lo, hi = float(inside.min()), float(inside.max())
                if p.lower is not None and lo < p.lower:
                    return {}, (f"{p.name}: minimum {lo:.4g} below the physical bound {p.lower:g} {p.unit}".rstrip()
                                + " (check units)")
                if p.upper is not None and hi > p.upper:
                    return {}, (f"{p.name}: maximum {hi:.4g} above the physical bound {p.upper:g} {p.unit}".rstrip()
                                + " (check units)")
                if p.scale_check:
                    tv = np.abs(truth[p.name][mask])
                    ref, got = float(np.median(tv)), float(np.median(np.abs(inside)))
                    if ref > 0 and (got == 0 or not 1e-2 <= got / ref <= 1e2):
                        return {}, (f"{p.name}: median {got:.4g} is more than 100x off the expected scale; "
                                    f"{p.name} must be in {p.unit}")
            out[p.name] = a
        return out, None

    def score(self, pred: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
        return {m.name: float(m.fn(pred, truth)) for m in self.metrics}


# ============================================================================================ brain
BRAIN_REGIONS = {0: "background", 1: "gray", 2: "white", 3: "inclusion"}


def _region(fn, field_name: str, label: int | None):
    def f(p, t):
        m = t["_mask"] if label is None else t["_mask"] & (t["labels"] == label)
        if not m.any():
            return float("nan")
        return fn(p[field_name], t[field_name], m)
    return f


def _brain_metrics() -> tuple[Metric, ...]:
    ms = [
        Metric("MARE_E", "lower", "%", "mean absolute relative error of E over the domain", _region(M.mare, "E", None)),
        Metric("MARE_nu", "lower", "%", "mean absolute relative error of nu over the domain",
               _region(M.mare, "nu", None)),
        Metric("SSIM_E", "higher", "", "SSIM of E (data range of the true E, 7x7 uniform window)",
               _region(M.ssim, "E", None)),
        Metric("CC_E", "higher", "", "Pearson correlation of E", _region(M.pearson, "E", None)),
        Metric("RIE_E", "lower", "", "relative image error of E", _region(M.rie, "E", None)),
        Metric("SSIM_nu", "higher", "", "SSIM of nu", _region(M.ssim, "nu", None)),
    ]
    for lab, reg in BRAIN_REGIONS.items():
        ms.append(Metric(f"MARE_E_{reg}", "lower", "%", f"MARE of E over {reg} (NaN if absent)",
                         _region(M.mare, "E", lab)))
    for lab, reg in BRAIN_REGIONS.items():
        ms.append(Metric(f"MARE_nu_{reg}", "lower", "%", f"MARE of nu over {reg} (NaN if absent)",
                         _region(M.mare, "nu", lab)))
    return tuple(ms)


BRAIN = Task(
    name="brain-elasticity",
    version="1",
    description="Quasi-static plane-stress elastography of a brain slice (P1, El-UNet): from the strain images "
                "(and displacements) under a known top traction, recover Young's modulus E and Poisson's ratio nu.",
    generators=("brain-slice",),
    observations=(
        Observed("exx", "field", "exx", "1", "normal strain xx (H, W); row 0 = top edge, x to the right"),
        Observed("eyy", "field", "eyy", "1", "normal strain yy (load direction; negative under compression)"),
        Observed("exy", "field", "exy", "1", "tensor shear strain (engineering shear / 2)"),
        Observed("ux", "field", "ux", "m", "horizontal displacement"),
        Observed("uy", "field", "uy", "m", "vertical displacement (y up)"),
        Observed("mask", "field", "mask", "", "pixel centre inside the domain"),
        Observed("traction", "attr", "traction_Pa", "Pa",
                 "magnitude of the uniform compressive normal traction on the top edge (syy = -traction there); "
                 "sides traction-free; bottom frictionless (uy = 0, sxy = 0)"),
        Observed("spacing", "attr", "grid_spacing_m", "m",
                 "(dy, dx) pixel spacing; pixel centres lie on the rectangle's edges"),
    ),
    predictions=(
        Predicted("E", "Pa", "Young's modulus map (H, W)", lower=1.0, upper=1e9, scale_check=True),
        Predicted("nu", "1", "Poisson's ratio map (H, W), plane stress", lower=-1.0, upper=0.5),
    ),
    metrics=_brain_metrics(),
    main_metric="MARE_E",
    headline=("MARE_E", "MARE_nu", "SSIM_E", "CC_E"),
    truth_fields=("E", "nu", "labels"),
    max_time_budget_s=1800.0,
    notes="Per-region metrics use the generator's labels: 0 background, 1 gray matter, 2 white matter, "
          "3 inclusion.",
)


# ============================================================================================ MRE
def _lesion_truth(ds, i, t):
    # labels: the liver-mre generator marks lesions with LESION_LABELS; reference = liver parenchyma
    lab = t.get("labels")
    if lab is None:
        return {}
    return {"_lesion": np.isin(lab, MRE_LESION_LABELS) & t["_mask"],
            "_reference": np.isin(lab, MRE_REFERENCE_LABELS) & t["_mask"]}


MRE_REFERENCE_LABELS = (1,)
MRE_LESION_LABELS = (2,)


def _mre_metrics() -> tuple[Metric, ...]:
    def lce(p, t):
        if "_lesion" not in t:
            return float("nan")
        return M.lesion_contrast_error(p["abs_G"], t["abs_G"], t["_lesion"], t["_reference"])

    return (
        Metric("MARE_absG", "lower", "%", "mean absolute relative error of |G*|", _region(M.mare, "abs_G", None)),
        Metric("CC_absG", "higher", "", "Pearson r of |G*|", _region(M.pearson, "abs_G", None)),
        Metric("R2_absG", "higher", "", "R^2 of |G*|", _region(M.r2, "abs_G", None)),
        Metric("RIE_absG", "lower", "", "relative image error of |G*|", _region(M.rie, "abs_G", None)),
        Metric("LCE_absG", "lower", "%", "lesion contrast error of |G*| (NaN without a lesion)", lce),
        Metric("MAE_phi", "lower", "rad", "mean absolute error of the phase angle phi",
               lambda p, t: float(np.mean(np.abs(p["phi"] - t["phi"])[t["_mask"]]))),
    )


MRE = Task(
    name="mre",
    version="1",
    description="MR elastography of a liver phantom (P2): from complex time-harmonic displacement fields at one or "
                "more frequencies, recover the shear-modulus magnitude |G*| and phase angle phi.",
    generators=("liver-mre",),
    observations=(
        Observed("u", "field", "u", "m", "complex displacement (n_freq, n_comp, H, W), first temporal harmonic"),
        Observed("frequencies", "attr", "frequencies_Hz", "Hz", "drive frequencies (n_freq,)"),
        Observed("spacing", "attr", "grid_spacing_m", "m", "(dy, dx) pixel spacing"),
        Observed("density", "attr", "density_kg_m3", "kg/m^3", "mass density"),
        Observed("mask", "field", "mask", "", "pixel inside the tissue"),
    ),
    predictions=(
        Predicted("abs_G", "Pa", "|G*| map (H, W)", lower=0.0, upper=1e7, scale_check=True),
        Predicted("phi", "rad", "phase angle of G* map (H, W), in [0, pi/2]", lower=-np.pi, upper=np.pi),
    ),
    metrics=_mre_metrics(),
    main_metric="MARE_absG",
    headline=("MARE_absG", "CC_absG", "R2_absG", "RIE_absG", "LCE_absG"),
    truth_fields=("abs_G", "phi", "labels"),
    extra_truth=_lesion_truth,
    max_time_budget_s=600.0,
)


# ============================================================================================ EIT
def _eit_metrics() -> tuple[Metric, ...]:
    return (
        Metric("SSIM", "higher", "", "SSIM of the conductivity change (data range of the truth)",
               _region(M.ssim, "dsigma", None)),
        Metric("CC", "higher", "", "Pearson correlation coefficient", _region(M.pearson, "dsigma", None)),
        Metric("RIE", "lower", "", "relative image error ||p - g|| / ||g||", _region(M.rie, "dsigma", None)),
    )


EIT = Task(
    name="eit",
    version="1",
    description="Electrical impedance tomography on the unit disk (P3): from boundary voltage differences under "
                "the complete electrode model, recover the conductivity change on the task grid (difference imaging).",
    generators=("eit",),
    observations=(
        Observed("dv", "field", "dv", "V", "voltage differences (n_meas,), noisy"),
        Observed("v_ref", "field", "v_ref", "V", "reference (homogeneous) voltages (n_meas,)", optional=True),
        Observed("mask", "field", "mask", "", "pixel inside the disk"),
    ),
    predictions=(
        Predicted("dsigma", "S/m", "conductivity change sigma - sigma_ref on the grid (H, W)", lower=-1e3,
                  upper=1e3),
    ),
    metrics=_eit_metrics(),
    main_metric="CC",
    headline=("SSIM", "CC", "RIE"),
    truth_fields=("dsigma",),
    max_time_budget_s=600.0,
)

TASKS: dict[str, Task] = {t.name: t for t in (BRAIN, MRE, EIT)}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[name]


def task_names() -> list[str]:
    return list(TASKS)
