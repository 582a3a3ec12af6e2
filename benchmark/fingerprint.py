"""A dataset identity that is the same on every machine whose regeneration agrees within tolerance.

The exact content hash (sha256 of every array's bytes) changes when a BLAS kernel rounds the last bit
differently, so it cannot name a dataset on the leaderboard. The fingerprint can:

* **what was asked for** -- generator, version, preset, resolved config, seed, sample count, splits and
  schema -- enters as an exact digest (:func:`plan_digest`): another seed, preset, config or version gives
  another fingerprint whatever the data;
* **what came out** enters through a *sketch*: per sample and field, the count of finite values and their
  mean and root mean square (complex fields by their real and imaginary parts). Sample attributes do not
  enter (they hold solve times and iteration counts, which differ between bit-identical generations). Each sketch value is quantised on a grid whose step is ``STEP_RTOL_FACTOR`` times the
  dataset's ``regen_rtol`` times the field's scale.

Plain rounding would still flip the identity for a value that sits next to a grid boundary (a mean of
0.4999999999 vs 0.5000000001 on two machines). So the grid is *anchored* on a reference sketch: a value is
binned as ``floor(ref / step) + round((value - ref) / step)``. The reference itself lands in the middle of
its bin, and any value within half a step of it -- i.e. within a few ``regen_rtol`` of the reference, far
more than last-bit differences -- lands in the same bin, wherever the reference sits on the grid. A value
more than half a step away (another seed, a changed sample, edited data) moves to another bin and changes
the fingerprint.

For an official dataset the reference is the sketch its maintainers pinned (``official --pin``), shipped
with the package; for any other dataset it is the sketch in its own manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

FORMAT = "phantombench-fingerprint/2"   # 2: attributes no longer enter
STEP_RTOL_FACTOR = 8.0          # grid step = 8 x regen_rtol x scale: bins hold +-4 regen_rtol around the reference
MIN_RTOL = 1e-10                # a dataset that claims bit-exact regeneration still gets a grid
STATS = ("n_finite", "mean", "rms")


class FingerprintError(ValueError):
    """Sketches that cannot be compared (different samples or fields)."""


def plan_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 of what the dataset is: generator, version, preset, config, seed, n, splits and schema."""
    schema = {k: {"shape": v.get("shape"), "dtype": v.get("dtype")} for k, v in manifest.get("schema", {}).items()}
    what = {"generator": manifest.get("generator", {}).get("name"), "version": manifest.get("version"),
            "preset": manifest.get("preset"), "config": manifest.get("config"), "seed": manifest.get("seed"),
            "n": manifest.get("n"), "splits": manifest.get("splits"), "schema": schema}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def _stats(a: np.ndarray) -> list[float]:
    v = a[np.isfinite(a)].astype(np.float64, copy=False)
    if v.size == 0:
        return [0.0, 0.0, 0.0]
    return [float(v.size), float(v.mean()), float(np.sqrt(np.mean(v * v)))]


def array_sketch(a: np.ndarray) -> list[float]:
    """Sketch of one array: (n_finite, mean, rms) of its values; complex arrays give real then imaginary."""
    a = np.asarray(a)
    if a.dtype.kind == "c":
        return _stats(a.real) + _stats(a.imag)
    if a.dtype.kind not in "biuf":
        return []
    return _stats(a.astype(np.float64, copy=False))


def sample_sketch(fields: Mapping[str, np.ndarray], attrs: Mapping[str, Any] | None = None) -> dict[str, list[float]]:
    """Sketch of one sample: every numeric field. Attributes do not enter: they hold run facts such as solve
    times and Newton iterations that differ between two bit-identical generations (``attrs`` is accepted and
    ignored, for callers that pass it)."""
    sk = {name: array_sketch(arr) for name, arr in sorted(fields.items())}
    return {k: v for k, v in sk.items() if v}


def _arrays_only(sketch: Mapping[str, Mapping[str, list[float]]]) -> dict[str, dict[str, list[float]]]:
    """A stored sketch without the attribute entries ('@...') that format 1 held."""
    return {sid: {k: v for k, v in sk.items() if not k.startswith("@")} for sid, sk in sketch.items()}


def unit_groups(manifest: Mapping[str, Any]) -> dict[str, str]:
    """field -> its unit (from the schema): fields sharing a unit share a scale (see :func:`_scales`)."""
    return {k: str(v.get("unit", "")) for k, v in manifest.get("schema", {}).items()}


def _scales(sample: Mapping[str, list[float]], groups: Mapping[str, str] | None) -> dict[str, list[float]]:
    """Per field of one sample and sketch position, the magnitude the grid is relative to.

    A count is relative to itself; a mean and an rms to the largest rms among the sample's fields of the same
    unit, so a component that is zero up to rounding (a shear strain of a uniaxial test) is judged on the
    scale of its siblings, not on its own round-off; an attribute to its own |value|. Only the sample's own
    values enter, so a change in one sample moves only that sample's cells."""
    groups = groups or {}
    top: dict[str, float] = {}
    for name, vals in sample.items():
        if not name.startswith("@"):
            g = groups.get(name, name)
            top[g] = max([top.get(g, 0.0)] + [abs(vals[k + 2]) for k in range(0, len(vals) - 2, 3)])
    out: dict[str, list[float]] = {}
    for name, vals in sample.items():
        if name.startswith("@"):
            out[name] = [abs(v) for v in vals]
        else:
            t = top[groups.get(name, name)]
            out[name] = [x for k in range(0, len(vals) - 2, 3) for x in (abs(vals[k]), t, t)]
    return out


def _scaled(sketch: Mapping[str, Mapping[str, list[float]]], rtol: float,
            groups: Mapping[str, str] | None = None) -> list[tuple[str, float]]:
    """('sample/field', value / step) for every sketch value, in canonical order."""
    frac = STEP_RTOL_FACTOR * max(float(rtol), MIN_RTOL)
    sketch = _arrays_only(sketch)
    out = []
    for sid in sorted(sketch):
        scale = _scales(sketch[sid], groups)
        for name in sorted(sketch[sid]):
            vals = sketch[sid][name]
            if len(vals) != len(scale[name]):
                raise FingerprintError(f"sample {sid}/{name}: malformed sketch")
            for v, sc in zip(vals, scale[name]):
                if not math.isfinite(v):
                    raise FingerprintError(f"sample {sid}/{name}: non-finite sketch value")
                out.append((f"{sid}/{name}", v / (frac * sc) if sc > 0 else 0.0))
    return out


def anchors(sketch: Mapping[str, Mapping[str, list[float]]], rtol: float,
            groups: Mapping[str, str] | None = None) -> str:
    """Where each value sits inside its grid cell, in sixteenths (one hex digit per value). Says nothing
    useful about the value itself (the cell is ~1e-7 of the field's scale) and anchors the grid for others."""
    return "".join("0123456789abcdef"[min(int((x - math.floor(x)) * 16), 15)] for _, x in _scaled(sketch, rtol, groups))


def bins(sketch: Mapping[str, Mapping[str, list[float]]], rtol: float, anchor: str | None = None,
         groups: Mapping[str, str] | None = None) -> list[int]:
    """Anchored grid index of every sketch value: ``floor(x - a + 1/2)`` with ``x`` the value in grid steps and
    ``a`` the reference's position in its cell, so the reference sits mid-cell (within 1/32) and any value
    within 0.46 steps of it keeps its index."""
    xs = _scaled(sketch, rtol, groups)
    anchor = anchors(sketch, rtol, groups) if anchor is None else anchor
    if len(anchor) != len(xs):
        raise FingerprintError(f"{len(xs)} sketch values, but the reference anchors {len(anchor)}")
    return [math.floor(x - (int(a, 16) + 0.5) / 16 + 0.5) for (_, x), a in zip(xs, anchor)]


def fingerprint(manifest: Mapping[str, Any], sketch: Mapping[str, Mapping[str, list[float]]],
                anchor: str | None = None) -> str:
    """The dataset's identity (32 hex digits) from its manifest and sketch, on the grid ``anchor`` fixes
    (default: its own)."""
    grid = bins(sketch, manifest.get("regen_rtol", MIN_RTOL), anchor, unit_groups(manifest))
    h = hashlib.sha256(f"{FORMAT}\n{plan_digest(manifest)}\n".encode())
    h.update(np.asarray(grid, dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


def sample_digests(manifest: Mapping[str, Any], sketch: Mapping[str, Mapping[str, list[float]]],
                   anchor: str | None = None) -> dict[str, str]:
    """Per sample, a short hash of its grid indices: names the sample that left the tolerance."""
    rtol, groups = manifest.get("regen_rtol", MIN_RTOL), unit_groups(manifest)
    xs, grid = _scaled(sketch, rtol, groups), bins(sketch, rtol, anchor, groups)
    out: dict[str, list[int]] = {}
    for (where, _), b in zip(xs, grid):
        out.setdefault(where.split("/")[0], []).append(b)
    return {sid: hashlib.sha256(np.asarray(v, np.int64).tobytes()).hexdigest()[:12] for sid, v in out.items()}


def first_difference(sketch: Mapping[str, Mapping[str, list[float]]], ref: Mapping[str, Mapping[str, list[float]]],
                     rtol: float, groups: Mapping[str, str] | None = None) -> str | None:
    """None if ``sketch`` falls in the bins of the reference sketch ``ref`` everywhere; else where it leaves them."""
    if sorted(sketch) != sorted(ref):
        return f"samples differ: {len(sketch)} vs {len(ref)} in the reference"
    try:
        xs, xr = _scaled(sketch, rtol, groups), _scaled(ref, rtol, groups)
        got, want = bins(sketch, rtol, anchors(ref, rtol, groups), groups), bins(ref, rtol, None, groups)
    except FingerprintError as e:
        return str(e)
    if len(xs) != len(xr):
        return "the sketches hold different fields"
    for (where, x), (_, x0), b, b0 in zip(xs, xr, got, want):
        if b != b0:
            return f"sample {where}: {abs(x - x0):.3g} grid steps from the reference (tolerance 0.46)"
    return None
