"""The ``registration`` task: from a fixed and a moving image, recover the dense displacement between them.

Convention (every registration dataset states it in its card): the prediction ``disp`` lives on the FIXED
image's grid, in pixels, channel d along array axis d (2-D: d = 0 rows (down), d = 1 columns (right); 3-D:
axes 0, 1, 2), and ``moving(x + disp(x)) = fixed(x)``. ``spacing_mm`` gives the voxel size per axis; every
distance metric is in mm. Both 2-D (H, W) and 3-D (D, H, W) grids are handled: the prediction has shape
``(ndim, *grid)``.

Metrics (:func:`registration_metrics`, one pass per case; warping with ``scipy.ndimage.map_coordinates``,
order 1 for images, order 0 -- nearest neighbour -- for labels, edge values replicated outside the grid like
MONAI's ``Warp`` with border padding; gradients by central differences, one-sided at the grid border):

* ``EPE_mean`` (main), ``EPE_p95`` -- end-point error ||(p - g) * spacing|| in mm over ``body``; per tissue
  ``EPE_L<k>`` over ``body & fixed_labels == k`` (NaN when the label is absent; names in ``label_names``);
* ``Dice`` -- mean over the labels present in ``fixed_labels`` (k > 0) of 2 |A & B| / (|A| + |B|), A the
  moving labels warped by the prediction, B the fixed labels;
* ``HD95`` (mm) -- per label, MONAI's ``compute_hausdorff_distance(percentile=95)``: surfaces are the masks
  minus their erosion (face connectivity), distances by an exact Euclidean distance transform with the voxel
  spacing, HD95 = max of the two directed, unweighted 95th percentiles (numpy's linear interpolation); mean over
  labels. A label that vanishes after warping scores the grid diagonal in mm (MONAI would give inf);
* ``TRE`` (mm) -- mean over landmarks of ||(x_f + p(x_f) - x_m) * spacing||, p linearly interpolated at the
  fixed landmark x_f, x_m its true moving position;
* ``SDlogJ`` -- std of log J over the voxels with J > 0, J = det(I + grad p); ``negJ_pct`` = 100 #(J <= 0) / N.
  No J + 3 clipping (unlike Learn2Reg). Region: the whole grid except the sliding interface (mask == 2), N its
  voxel count;
* ``rigidity`` -- mean over mask == 1 of ||eps||_F^2, eps = (G + G^T) / 2 the small strain of the predicted
  displacement in physical units. A pure rotation by theta (d = (R - I) x) is not strain-free in this linear
  measure: eps = (cos theta - 1) I in-plane, so it scores 2 (1 - cos theta)^2 per voxel (2-D, or 3-D about an
  axis), e.g. 3.0e-4 at 0.2 rad;
* ``MSE_image`` -- mean over the grid of (moving warped by p - fixed)^2.

Validation (:meth:`RegistrationTask.validate`) rejects, each with one reason: a missing or non-float ``disp``,
a wrong shape, NaN/inf inside the body, a field larger than the image (``disp`` must be in pixels), a
prediction in mm (it matches the truth far better once divided by the spacing) and swapped channels (it matches
far better with its channel order reversed, e.g. ITK's (x, y) order).

The official datasets of the task are :data:`REGISTRATION_OFFICIAL` (entry point ``registration`` of
``phantombench.official``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from phantombench.official import OfficialDataset
from phantombench.tasks import Metric, Observed, Predicted, Task

N_TISSUE_LABELS = 6          # per-tissue EPE columns EPE_L1 .. EPE_L6
SCALE_MARGIN = 0.5           # mm / channel-swap checks: the alternative reading must halve the error


# ============================================================================================ fields
def warp(image: np.ndarray, disp: np.ndarray, order: int) -> np.ndarray:
    """``image(x + disp(x))`` on the fixed grid (order 1: linear, 0: nearest); edge values outside the grid."""
    coords = np.indices(image.shape, dtype=np.float64) + disp
    return ndimage.map_coordinates(np.asarray(image, np.float64 if order else image.dtype), coords, order=order,
                                   mode="nearest")


def displacement_gradient(disp: np.ndarray, spacing: np.ndarray | None = None) -> np.ndarray:
    """G[a, b] = d u_a / d x_b, shape (n, n, *grid), central differences; in physical units when ``spacing`` is
    given (u_a = disp_a * s_a, x_b = idx_b * s_b), else in pixels."""
    n = disp.shape[0]
    s = np.ones(n) if spacing is None else np.asarray(spacing, np.float64)
    G = np.empty((n, n) + disp.shape[1:])
    for a in range(n):
        for b in range(n):
            G[a, b] = np.gradient(disp[a], axis=b) * (s[a] / s[b])
    return G


def jacobian_det(disp: np.ndarray) -> np.ndarray:
    """det(I + grad disp) (pixel units; the determinant is the same in physical units)."""
    G = displacement_gradient(disp)
    G[np.arange(disp.shape[0]), np.arange(disp.shape[0])] += 1.0
    return np.linalg.det(np.moveaxis(G, (0, 1), (-2, -1)))


def small_strain_sq(disp: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """||eps||_F^2 per voxel, eps = (G + G^T) / 2 in physical units."""
    G = displacement_gradient(disp, spacing)
    eps = 0.5 * (G + np.swapaxes(G, 0, 1))
    return np.sum(eps * eps, axis=(0, 1))


def interpolate_at(disp: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``disp`` linearly interpolated at ``points`` (K, n) in pixels; returns (K, n)."""
    return np.stack([ndimage.map_coordinates(disp[d], points.T, order=1, mode="nearest")
                     for d in range(disp.shape[0])], axis=1)


# ============================================================================================ metrics
def dice(a: np.ndarray, b: np.ndarray) -> float:
    """2 |A & B| / (|A| + |B|); NaN when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    den = int(a.sum()) + int(b.sum())
    return float(2.0 * np.logical_and(a, b).sum() / den) if den else float("nan")


def _surface(m: np.ndarray) -> np.ndarray:
    return m & ~ndimage.binary_erosion(m)


def hd95(a: np.ndarray, b: np.ndarray, spacing) -> float:
    """MONAI-style 95 % Hausdorff distance (mm) of two masks: max of the two directed 95th percentiles of
    surface-to-surface distances (surface = mask minus its face-connected erosion). NaN when both are empty;
    the grid diagonal when exactly one is."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if not a.any() and not b.any():
        return float("nan")
    if not a.any() or not b.any():
        return float(np.linalg.norm(np.asarray(a.shape) * np.asarray(spacing, float)))
    sa, sb = _surface(a), _surface(b)
    d_ab = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    d_ba = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    return float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))


def _label_scores(warped: np.ndarray, fixed: np.ndarray, spacing) -> tuple[float, float]:
    labels = [int(k) for k in np.unique(fixed) if k > 0]
    if not labels:
        return float("nan"), float("nan")
    d = [dice(warped == k, fixed == k) for k in labels]
    h = [hd95(warped == k, fixed == k, spacing) for k in labels]
    return float(np.mean(d)), float(np.mean(h))


def _epe(pred: np.ndarray, truth: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    diff = (pred - truth) * spacing.reshape((-1,) + (1,) * (pred.ndim - 1))
    return np.sqrt(np.sum(diff * diff, axis=0))


def _jacobian_scores(disp: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    J = jacobian_det(disp)[region]
    if J.size == 0:
        return float("nan"), float("nan")
    pos = J[J > 0]
    sd = float(np.std(np.log(pos))) if pos.size else float("nan")
    return sd, float(100.0 * np.count_nonzero(J <= 0) / J.size)


def _tre(disp: np.ndarray, lf: np.ndarray, lm: np.ndarray, spacing: np.ndarray) -> float:
    if lf.size == 0:
        return float("nan")
    err = (lf + interpolate_at(disp, lf) - lm) * spacing
    return float(np.mean(np.sqrt(np.sum(err * err, axis=1))))


def registration_metrics(pred: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
    """Every metric of the task for one case (see the module docstring for the definitions)."""
    p, g = np.asarray(pred["disp"], np.float64), truth["disp"]
    sp = np.asarray(truth["_spacing"], np.float64)
    body, mask, fl = truth["_mask"], truth["_region_mask"], truth["_fixed_labels"]
    epe = _epe(p, g, sp)
    out = {"EPE_mean": float(epe[body].mean()) if body.any() else float("nan"),
           "EPE_p95": float(np.percentile(epe[body], 95)) if body.any() else float("nan")}
    for k in range(1, N_TISSUE_LABELS + 1):
        sel = body & (fl == k)
        out[f"EPE_L{k}"] = float(epe[sel].mean()) if sel.any() else float("nan")
    out["Dice"], out["HD95"] = _label_scores(warp(truth["_moving_labels"], p, 0), fl, sp)
    out["TRE"] = _tre(p, truth["_landmarks_fixed"], truth["_landmarks_moving"], sp)
    out["SDlogJ"], out["negJ_pct"] = _jacobian_scores(p, mask != 2)
    rigid = mask == 1
    out["rigidity"] = float(small_strain_sq(p, sp)[rigid].mean()) if rigid.any() else float("nan")
    diff = warp(truth["_moving"], p, 1) - truth["_fixed"]
    out["MSE_image"] = float(np.mean(diff * diff))
    return out


METRIC_INFO: tuple[tuple[str, str, str, str], ...] = (
    ("EPE_mean", "lower", "mm", "mean end-point error ||(p - g) * spacing|| over the body"),
    ("EPE_p95", "lower", "mm", "95th percentile of the end-point error over the body"),
    *((f"EPE_L{k}", "lower", "mm", f"mean end-point error over the body's label {k} (NaN if absent; names in "
       "the sample's label_names)") for k in range(1, N_TISSUE_LABELS + 1)),
    ("Dice", "higher", "", "mean Dice over the fixed labels (k > 0) of the moving labels warped by the "
                           "prediction (nearest neighbour)"),
    ("HD95", "lower", "mm", "mean over labels of the 95 % Hausdorff distance: max of the two directed, "
                            "unweighted 95th percentiles of surface distances in mm (as MONAI); a label lost by "
                            "the warp scores the grid diagonal"),
    ("TRE", "lower", "mm", "mean target registration error at the landmarks (prediction linearly interpolated "
                           "at the fixed landmark)"),
    ("SDlogJ", "lower", "", "std of log J over voxels with J > 0, J = det(I + grad p) by central differences; "
                            "no J + 3 clipping; whole grid except the sliding interface (mask 2)"),
    ("negJ_pct", "lower", "%", "100 #(J <= 0) / N over the whole grid except the sliding interface (mask 2); "
                               "no J + 3 clipping"),
    ("rigidity", "lower", "", "mean ||eps||_F^2 of the small strain eps = (G + G^T)/2 over mask 1 (rigid); "
                              "a pure rotation by theta scores 2 (1 - cos theta)^2 (2-D), not 0"),
    ("MSE_image", "lower", "", "mean squared difference of the warped moving image (linear) and the fixed one "
                               "over the grid"),
)


def _metric(name: str, direction: str, unit: str, description: str) -> Metric:
    return Metric(name, direction, unit, description, lambda p, t: registration_metrics(p, t)[name])


def _spacing(g, attrs, cfg) -> np.ndarray:
    return np.asarray(attrs["spacing_mm"], dtype=np.float64)


def _mismatch(a: np.ndarray, g: np.ndarray, body: np.ndarray) -> float:
    return float(np.mean(np.abs(a - g)[:, body]))


# ============================================================================================ the task
@dataclass
class RegistrationTask(Task):
    """A :class:`Task` whose one prediction is a vector field of shape (ndim, *grid) on 2-D or 3-D grids: its
    own truth (every scoring input, helpers prefixed ``_``), validation (shape, finiteness, pixel units,
    channel order) and one-pass scoring."""

    def prediction_shape(self, name: str, observation: dict[str, Any]) -> tuple[int, ...]:
        """The shape ``solve`` must return for ``name``: (ndim, *grid) of the observation's fixed image."""
        grid = tuple(np.shape(observation["fixed"]))
        return (len(grid),) + grid

    def truth(self, ds, i: int, group=None) -> dict[str, np.ndarray]:
        g = group if group is not None else ds.group(i)
        attrs = ds.attrs(i)
        disp = np.asarray(g["disp"][...], np.float64)
        body = np.asarray(g["body"][...], bool) & np.all(np.isfinite(disp), axis=0)
        t = {"disp": disp, "_mask": body, "_spacing": _spacing(g, attrs, {}),
             "_region_mask": np.asarray(g["mask"][...], np.uint8)}
        for k in ("fixed", "moving", "fixed_labels", "moving_labels", "landmarks_fixed", "landmarks_moving"):
            t[f"_{k}"] = np.asarray(g[k][...])
        return t

    def validate(self, pred: Any, truth: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str | None]:
        if not isinstance(pred, dict):
            return {}, f"solve() returned {type(pred).__name__}, expected a dict of arrays"
        if "disp" not in pred:
            return {}, "prediction lacks field disp (must return {'disp': array of shape (ndim, *grid)})"
        a = pred["disp"]
        try:
            a = np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a)
        except Exception as e:  # noqa: BLE001
            return {}, f"disp: not convertible to an array ({type(e).__name__})"
        want = truth["disp"].shape
        if a.shape != want:
            return {}, f"disp: wrong shape {tuple(a.shape)}, expected (ndim, *grid) = {tuple(want)}"
        if a.dtype.kind != "f":
            return {}, f"disp: dtype {a.dtype} is not floating point (float32/float64 expected)"
        a = a.astype(np.float64, copy=False)
        body = truth["_mask"]
        bad = ~np.isfinite(a[:, body])
        if bad.any():
            kind = "NaN" if np.isnan(a[:, body]).any() else "inf"
            return {}, f"disp: {int(bad.sum())} of {bad.size} values inside the body are {kind}"
        reason = self._convention_check(a, truth)
        return ({}, reason) if reason else ({"disp": a}, None)

    @staticmethod
    def _convention_check(a: np.ndarray, truth: dict[str, np.ndarray]) -> str | None:
        """One reason if ``a`` breaks the unit or channel convention, else None."""
        body, g = truth["_mask"], truth["disp"]
        sp = np.asarray(truth["_spacing"], np.float64)
        for d, n in enumerate(a.shape[1:]):
            big = float(np.max(np.abs(a[d][body]))) if body.any() else 0.0
            if big > n:
                return (f"disp: channel {d} reaches {big:.4g} px inside the body, beyond the image extent ({n} px): "
                        "disp must be in pixels of the fixed grid, not mm")
        if not body.any():
            return None
        e0 = _mismatch(a, g, body)
        if e0 < 0.1:
            return None
        shape = (-1,) + (1,) * (a.ndim - 1)
        if np.any(np.abs(np.log(sp)) > np.log(1.05)):
            e_mm = _mismatch(a / sp.reshape(shape), g, body)
            if e_mm < SCALE_MARGIN * e0:
                return (f"disp looks like mm: divided by the spacing {sp.tolist()} mm it fits the truth "
                        f"{e0 / max(e_mm, 1e-12):.3g}x better; disp must be in pixels")
        e_swap = _mismatch(a[::-1], g, body)
        if e_swap < SCALE_MARGIN * e0:
            return (f"disp channels look swapped: reversed they fit the truth {e0 / max(e_swap, 1e-12):.3g}x "
                    "better; channel d must be along array axis d (rows first, not ITK's x, y order)")
        return None

    def score(self, pred: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
        return registration_metrics(pred, truth)

    def figure_fields(self, truth: dict[str, np.ndarray], pred: dict[str, np.ndarray]
                      ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """2-D maps a figure can show for one case, name -> (truth, prediction, mask): each channel of
        ``disp`` in mm (3-D: the middle slice along axis 0). The prediction itself is (ndim, *grid), which a
        per-field (H, W) figure cannot draw."""
        g, p = truth["disp"], np.asarray(pred["disp"], np.float64)
        sp, mask = np.asarray(truth["_spacing"], np.float64), truth["_mask"]
        mid = (g.shape[1] // 2,) if g.ndim == 4 else ()
        return {f"disp[{d}] (mm)": (g[d][mid] * sp[d], p[d][mid] * sp[d], mask[mid]) for d in range(g.shape[0])}

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        for p in out["predictions"]:
            p["shape"] = "(ndim, *grid): (2, H, W) or (3, D, H, W)"
        return out


# generators whose pairs follow the registration contract; those installed are the task's generators
PAIR_GENERATORS = ("kheil", "brain-deform", "abdomen-breathing", "deform-pairs")


def _installed(names: tuple[str, ...]) -> tuple[str, ...]:
    from phantombench import registry

    have = set(registry.names("generators"))
    return tuple(n for n in names if n in have)


REGISTRATION = RegistrationTask(
    name="registration",
    version="1",
    description="Deformable image registration with a known displacement: from a fixed and a moving image (2-D "
                "or 3-D), recover the dense displacement disp on the fixed grid, in pixels, channel d along array "
                "axis d, with moving(x + disp(x)) = fixed(x).",
    generators=_installed(PAIR_GENERATORS),
    observations=(
        Observed("fixed", "field", "fixed", "1", "fixed image (H, W) or (D, H, W); row 0 at the top"),
        Observed("moving", "field", "moving", "1", "moving image on the same grid"),
        Observed("spacing_mm", "attr", "spacing_mm", "mm", "voxel spacing per array axis"),
        Observed("fixed_labels", "field", "fixed_labels", "", "tissue classes of the fixed image (0 = background)"),
        Observed("mask", "field", "mask", "", "0 free, 1 rigid, 2 sliding interface (on the fixed grid)"),
        Observed("normals", "field", "normals", "1", "unit interface normal (ndim, *grid) on mask == 2, 0 "
                 "elsewhere"),
    ),
    predictions=(
        Predicted("disp", "px", "displacement (ndim, *grid) on the fixed grid, channel d along array axis d, "
                  "moving(x + disp(x)) = fixed(x)"),
    ),
    metrics=tuple(_metric(*m) for m in METRIC_INFO),
    main_metric="EPE_mean",
    headline=("EPE_mean", "EPE_p95", "Dice", "HD95", "TRE", "SDlogJ", "negJ_pct", "rigidity"),
    order=4,
    truth_fields=("disp", "body", "moving_labels", "landmarks_fixed", "landmarks_moving"),
    mask_field="body",
    max_time_budget_s=600.0,
    notes="Scored over body (EPE, per-tissue EPE), the fixed labels (Dice, HD95), the landmarks (TRE), the grid "
          "except mask 2 (Jacobian), mask 1 (rigidity) and the whole grid (image MSE). See "
          "phantombench.registration for the exact definitions.",
)

# the official datasets: the 2-D Kheil pairs (the paper's 200/50/50 split; the leaderboard scores the 50 test
# pairs of each); the 3-D presets stay out until the official run has time for them
REGISTRATION_OFFICIAL: tuple[OfficialDataset, ...] = (
    OfficialDataset("registration", "kheil", "kheil-rigid-2d", n=300, seed=0),
    OfficialDataset("registration", "kheil", "kheil-sliding-2d", n=300, seed=0),
)
