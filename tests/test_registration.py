"""The registration task: every metric against hand-computed values, validation reasons, the elastix convention.

Hand values: zero displacement scores zero error; a pure translation's EPE/TRE is ||t * spacing||; a rotation
by theta has rigidity 2 (1 - cos theta)^2 and J = 1; a fold with d(disp_0)/d(row) = -2 on half the grid has
J = -1 there (negJ = 50 %); shifted 10 x 10 squares overlap 7/10 (Dice 0.7); single-pixel labels are their own
surface (HD95 = their distance); discs agree with a brute-force surface distance and with MONAI.
"""

from __future__ import annotations

import numpy as np
import pytest

from phantombench.registration import REGISTRATION, dice, hd95, registration_metrics, warp

N = 64


def truth_of(disp, fixed=None, moving=None, fl=None, ml=None, body=None, mask=None, spacing=(1.0, 1.0),
             lf=None, lm=None):
    """A truth dict as RegistrationTask.truth builds it, from arrays given by the test."""
    shape = disp.shape[1:]
    fixed = np.zeros(shape, np.float32) if fixed is None else fixed
    lf = np.array([[10.0, 10.0], [20.0, 30.0]]) if lf is None else lf
    return {"disp": np.asarray(disp, float), "_mask": np.ones(shape, bool) if body is None else body,
            "_spacing": np.asarray(spacing, float),
            "_region_mask": np.zeros(shape, np.uint8) if mask is None else mask,
            "_fixed": fixed, "_moving": fixed if moving is None else moving,
            "_fixed_labels": np.zeros(shape, np.uint8) if fl is None else fl,
            "_moving_labels": np.zeros(shape, np.uint8) if ml is None else ml,
            "_landmarks_fixed": lf, "_landmarks_moving": lf + disp[:, 0, 0] if lm is None else lm}


def square(r0, c0, n=10, shape=(N, N)):
    a = np.zeros(shape, np.uint8)
    a[r0:r0 + n, c0:c0 + n] = 1
    return a


def blob(shift=(0, 0)):
    """A smooth compact image (zero within 8 px of the border), shifted by whole pixels."""
    i, j = np.indices((N, N), dtype=float)
    r2 = ((i - 32 - shift[0]) ** 2 + (j - 30 - shift[1]) ** 2) / 100.0
    return np.where(r2 < 1, (1 - r2) ** 2, 0.0).astype(np.float32)


def test_zero_displacement_scores_zero_error():
    fl = square(20, 20)
    t = truth_of(np.zeros((2, N, N)), fixed=blob(), fl=fl, ml=fl, mask=fl)
    m = registration_metrics({"disp": np.zeros((2, N, N))}, t)
    for k in ("EPE_mean", "EPE_p95", "EPE_L1", "TRE", "SDlogJ", "negJ_pct", "rigidity", "MSE_image", "HD95"):
        assert m[k] == 0.0, k
    assert m["Dice"] == 1.0 and np.isnan(m["EPE_L2"])


def test_pure_translation_epe_tre_and_warp():
    sp = (0.5, 2.0)
    t_px = np.array([2.0, -3.0])
    disp = np.broadcast_to(t_px[:, None, None], (2, N, N)).copy()
    fixed, moving = blob(), blob(shift=t_px)               # moving(x + t) = fixed(x)
    t = truth_of(disp, fixed=fixed, moving=moving, spacing=sp, mask=np.ones((N, N), np.uint8))
    expect = np.sqrt((2 * 0.5) ** 2 + (3 * 2.0) ** 2)     # sqrt(37) mm
    m0 = registration_metrics({"disp": np.zeros((2, N, N))}, t)
    assert m0["EPE_mean"] == pytest.approx(expect) and m0["EPE_p95"] == pytest.approx(expect)
    assert m0["TRE"] == pytest.approx(expect) and m0["MSE_image"] > 1e-3
    m1 = registration_metrics({"disp": disp}, t)
    assert m1["EPE_mean"] == 0 and m1["TRE"] == 0 and m1["MSE_image"] < 1e-12
    assert m1["SDlogJ"] == pytest.approx(0, abs=1e-12) and m1["negJ_pct"] == 0 and m1["rigidity"] == 0


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.5, 2.0)])
@pytest.mark.parametrize("theta", [0.05, 0.2, -0.3])
def test_rotation_rigidity_is_two_one_minus_cos_squared(theta, spacing):
    """A rotation in physical space: rigidity 2 (1 - cos theta)^2 exactly (linear field), J = 1."""
    sp = np.asarray(spacing)
    X = np.indices((N, N), dtype=float) * sp[:, None, None] - 32 * sp[:, None, None]
    c, s = np.cos(theta), np.sin(theta)
    rot = np.stack([c * X[0] - s * X[1], s * X[0] + c * X[1]])
    disp = (rot - X) / sp[:, None, None]
    mask = np.ones((N, N), np.uint8)
    m = registration_metrics({"disp": disp}, truth_of(disp, mask=mask, spacing=spacing))
    assert m["rigidity"] == pytest.approx(2 * (1 - np.cos(theta)) ** 2, rel=1e-9)
    assert m["SDlogJ"] == pytest.approx(0, abs=1e-9) and m["negJ_pct"] == 0


def test_rotation_rigidity_in_3d():
    theta = 0.2
    X = np.indices((24, 24, 24), dtype=float) - 12
    c, s = np.cos(theta), np.sin(theta)
    disp = np.stack([c * X[0] - s * X[1] - X[0], s * X[0] + c * X[1] - X[1], np.zeros_like(X[2])])
    t = truth_of(disp, mask=np.ones((24,) * 3, np.uint8), spacing=(1.0, 1.0, 1.0),
                 lf=np.array([[5.0, 6.0, 7.0]]), lm=np.array([[5.0, 6.0, 7.0]]) + disp[:, 5, 6, 7])
    m = registration_metrics({"disp": disp}, t)
    assert m["rigidity"] == pytest.approx(2 * (1 - np.cos(theta)) ** 2, rel=1e-9)
    assert m["EPE_mean"] == 0 and m["TRE"] == pytest.approx(0, abs=1e-12)


def test_fold_gives_negative_jacobian():
    """disp_0 = -2 row on the left half: J = 1 - 2 = -1 there, 1 on the right (disp_1 = 0)."""
    disp = np.zeros((2, N, N))
    disp[0][:, :32] = -2.0 * np.arange(N)[:, None]
    m = registration_metrics({"disp": disp}, truth_of(disp))
    assert m["negJ_pct"] == pytest.approx(50.0) and m["SDlogJ"] == pytest.approx(0, abs=1e-12)
    mask = np.zeros((N, N), np.uint8)
    mask[:, :16] = 2                                      # the sliding interface is left out of the count
    m = registration_metrics({"disp": disp}, truth_of(disp, mask=mask))
    assert m["negJ_pct"] == pytest.approx(100 * 16 / 48)


def test_sdlogj_of_a_known_stretch():
    """disp_0 = a row on rows < 32 and b row elsewhere -> J = 1 + a / 1 + b away from the kink."""
    disp = np.zeros((2, N, N))
    i = np.arange(N, dtype=float)[:, None]
    disp[0] = np.where(i < 32, 0.5 * i, 0.5 * 31 + (-0.5) * (i - 31)) * np.ones((1, N))
    J = np.where(i < 32, 1.5, 0.5)[:, 0]
    J[31] = 1 + (disp[0][32, 0] - disp[0][30, 0]) / 2   # central difference across the kink
    expect = np.std(np.repeat(np.log(J), N))
    m = registration_metrics({"disp": disp}, truth_of(disp))
    assert m["SDlogJ"] == pytest.approx(expect) and m["negJ_pct"] == 0


def test_dice_of_shifted_squares():
    fl, ml = square(20, 20), square(23, 20)                 # moving label 3 rows further down
    t = truth_of(np.zeros((2, N, N)), fl=fl, ml=ml)
    assert registration_metrics({"disp": np.zeros((2, N, N))}, t)["Dice"] == pytest.approx(0.7)
    shift = np.zeros((2, N, N))
    shift[0] = 3.0                                          # the right answer pulls it back exactly
    assert registration_metrics({"disp": shift}, t)["Dice"] == 1.0
    assert dice(fl, ml) == pytest.approx(2 * 70 / 200)


def test_hd95_single_pixels_and_empty():
    a, b = np.zeros((N, N), bool), np.zeros((N, N), bool)
    a[10, 10], b[13, 14] = True, True
    assert hd95(a, b, (1.0, 1.0)) == pytest.approx(5.0)
    assert hd95(a, b, (0.5, 2.0)) == pytest.approx(np.hypot(1.5, 8.0))
    assert np.isnan(hd95(a & False, b & False, (1.0, 1.0)))
    assert hd95(a, b & False, (1.0, 1.0)) == pytest.approx(np.hypot(N, N))


def _brute_hd95(a, b, sp):
    from scipy import ndimage

    sa = np.argwhere(a & ~ndimage.binary_erosion(a)) * sp
    sb = np.argwhere(b & ~ndimage.binary_erosion(b)) * sp
    d = np.sqrt(((sa[:, None, :] - sb[None, :, :]) ** 2).sum(-1))
    return max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95))


@pytest.mark.parametrize("sp", [(1.0, 1.0), (0.5, 2.0)])
def test_hd95_of_shifted_discs_matches_brute_force_and_monai(sp):
    from monai.metrics import compute_hausdorff_distance

    i, j = np.indices((N, N))
    a = (i - 30) ** 2 + (j - 30) ** 2 < 12 ** 2
    b = (i - 34) ** 2 + (j - 31) ** 2 < 12 ** 2
    got = hd95(a, b, sp)
    assert got == pytest.approx(_brute_hd95(a, b, np.asarray(sp)))
    assert 0 < got <= np.hypot(4 * sp[0], 1 * sp[1]) + 1e-9          # bounded by the shift
    ref = compute_hausdorff_distance(a[None, None].astype(float), b[None, None].astype(float), percentile=95,
                                     spacing=list(sp))
    assert got == pytest.approx(float(ref.item()), rel=1e-6)


def test_tre_interpolates_the_prediction_at_the_landmark():
    lf = np.array([[10.5, 10.25], [20.0, 30.0]])
    lm = lf + np.array([1.5, -2.0])
    i, j = np.indices((N, N), dtype=float)
    disp = np.stack([0.1 * i, -0.05 * j])                   # linear: interpolation is exact
    t = truth_of(disp, lf=lf, lm=lm, spacing=(2.0, 1.0))
    pred_lm = lf + np.stack([0.1 * lf[:, 0], -0.05 * lf[:, 1]], axis=1)
    expect = np.mean(np.linalg.norm((pred_lm - lm) * [2.0, 1.0], axis=1))
    assert registration_metrics({"disp": disp}, t)["TRE"] == pytest.approx(expect, rel=1e-12)


def test_per_tissue_epe():
    fl = np.zeros((N, N), np.uint8)
    fl[:, :32], fl[:, 32:] = 1, 2
    pred = np.zeros((2, N, N))
    pred[1][:, 32:] = 4.0                                    # label 2 off by 4 px along columns
    t = truth_of(np.zeros((2, N, N)), fl=fl, ml=fl, spacing=(1.0, 0.5))
    m = registration_metrics({"disp": pred}, t)
    assert m["EPE_L1"] == 0 and m["EPE_L2"] == pytest.approx(2.0) and m["EPE_mean"] == pytest.approx(1.0)
    assert np.isnan(m["EPE_L3"])


def test_warp_directions():
    """warp(moving, d)(x) = moving(x + d): a moving image shifted down by 3 rows comes back with d_0 = +3."""
    fixed = blob()
    moving = blob(shift=(3, 0))
    d = np.zeros((2, N, N))
    d[0] = 3.0
    assert np.allclose(warp(moving, d, 1), fixed)


def _smooth_truth(spacing=(0.5, 0.5)):
    i, j = np.indices((N, N), dtype=float)
    disp = np.stack([3 * np.sin(i / 20) + 1.0, -2 * np.cos(j / 15) + 0.5 * np.sin(i / 9)])
    body = np.zeros((N, N), bool)
    body[16:48, 12:52] = True
    return truth_of(disp, body=body, spacing=spacing)


def test_validation_accepts_good_predictions():
    t = _smooth_truth()
    for pred in (t["disp"], t["disp"] + 0.3 * np.random.default_rng(0).standard_normal(t["disp"].shape),
                 np.zeros_like(t["disp"]), t["disp"].astype(np.float32)):
        clean, reason = REGISTRATION.validate({"disp": pred}, t)
        assert reason is None and clean["disp"].dtype == np.float64


@pytest.mark.parametrize("make, words", [
    (lambda t: {"u": t["disp"]}, "lacks field disp"),
    (lambda t: {"disp": t["disp"][:, :-1]}, "wrong shape"),
    (lambda t: {"disp": t["disp"].astype(int)}, "not floating point"),
    (lambda t: {"disp": np.where(np.arange(N) == 20, np.nan, t["disp"])}, "NaN"),
    (lambda t: {"disp": t["disp"] * 0.5}, "looks like mm"),          # mm at 0.5 mm/px: half the pixel values
    (lambda t: {"disp": t["disp"][::-1].copy()}, "swapped"),
    (lambda t: {"disp": t["disp"] + 100.0}, "beyond the image extent"),
    (lambda t: [t["disp"]], "expected a dict"),
])
def test_validation_reasons(make, words):
    t = _smooth_truth()
    clean, reason = REGISTRATION.validate(make(t), t)
    assert clean == {} and words in reason and "\n" not in reason


def test_unit_check_is_off_at_one_mm_spacing():
    """At 1 mm per pixel mm and pixels agree: the same half-scale prediction is a valid (poor) answer."""
    t = _smooth_truth(spacing=(1.0, 1.0))
    assert REGISTRATION.validate({"disp": t["disp"] * 0.5}, t)[1] is None


def test_task_declares_its_prediction_shape_and_metrics():
    assert REGISTRATION.prediction_shape("disp", {"fixed": np.zeros((5, 6, 7))}) == (3, 5, 6, 7)
    names = [m.name for m in REGISTRATION.metrics]
    assert REGISTRATION.main_metric == "EPE_mean" and {"HD95", "TRE", "rigidity", "negJ_pct"} <= set(names)
    assert REGISTRATION.describe()["predictions"][0]["shape"].startswith("(ndim")
    t = _smooth_truth()
    one = {m.name: m.fn({"disp": t["disp"]}, t) for m in REGISTRATION.metrics[:2]}
    assert one == {k: v for k, v in REGISTRATION.score({"disp": t["disp"]}, t).items() if k in one}


def test_elastix_field_conversion_channel_order():
    """ITK's field components are (x, y) = (column, row) in mm: channel 0 of disp is component 1 / row spacing."""
    from phantombench.solvers.registration.elastix import field_to_disp

    field = np.zeros((4, 5, 2))
    field[..., 0], field[..., 1] = -3.0, 1.0                # x (columns) -3 mm, y (rows) +1 mm
    d = field_to_disp(field, np.array([0.5, 1.5]))
    assert np.allclose(d[0], 2.0) and np.allclose(d[1], -2.0)


def test_elastix_recovers_a_pure_translation_with_the_right_sign_and_order():
    """moving(x + t) = fixed(x), t = (2, -3) px at spacing (0.5, 1) mm: elastix returns disp close to t."""
    from phantombench.solvers.registration.elastix import Elastix, register

    fixed, moving = blob(), blob(shift=(2, -3))
    d = register(fixed, moving, [0.5, 1.0], dict(Elastix.defaults))
    core = fixed > 0.2
    assert np.abs(d[0][core] - 2.0).max() < 0.3 and np.abs(d[1][core] + 3.0).max() < 0.3


def test_figure_fields_are_2d_maps_in_mm():
    t = _smooth_truth()
    maps = REGISTRATION.figure_fields(t, {"disp": t["disp"]})
    assert list(maps) == ["disp[0] (mm)", "disp[1] (mm)"]
    g, p, m = maps["disp[0] (mm)"]
    assert g.shape == p.shape == m.shape == (N, N) and np.allclose(g, t["disp"][0] * 0.5)
    X = np.zeros((3, 8, 9, 10))
    t3 = {"disp": X, "_spacing": np.ones(3), "_mask": np.ones((8, 9, 10), bool)}
    assert REGISTRATION.figure_fields(t3, {"disp": X})["disp[2] (mm)"][0].shape == (9, 10)
