"""Classical MRE inversions (AHI, MDEV): exactness of the building blocks, the homogeneous box, and that each
baseline beats the constant solver on the mre task's main metric on small generated liver datasets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from phantombench.solvers import mre_direct as D
from phantombench.solvers.constant import Constant
from phantombench.tasks import get_task

TASK = get_task("mre")


@pytest.fixture(scope="module")
def datasets(generated):
    from phantombench.store import open_dataset

    # the scalar (antiplane) liver presets: AHI and MDEV invert each component's Helmholtz equation, which the
    # in-plane fields of the default plane-strain presets obey only after the compressional part is removed
    return {preset: open_dataset(generated("liver-mre", preset, n, seed))
            for preset, n, seed in (("homogeneous", 1, 0), ("dime-liver-antiplane", 3, 11),
                                    ("mdev-liver-antiplane", 1, 12))}


# ------------------------------------------------------------------------------------------ building blocks
def test_laplacian_exact_on_quadratic_and_plane_wave_dispersion():
    dy, dx = 0.002, 0.0015
    y, x = np.mgrid[0:20, 0:30]
    Y, X = -y * dy, x * dx
    q = 3 * X**2 - 2 * Y**2 + X * Y
    lap = D.laplacian(q, (dy, dx))
    assert np.allclose(lap[1:-1, 1:-1], 6 - 4, rtol=0, atol=1e-6)
    # plane wave exp(i k x): 5-point stencil gives -(2 - 2 cos(k dx)) / dx^2 exactly
    k = 2 * np.pi / 0.02
    u = np.exp(1j * k * X)
    ratio = D.laplacian(u, (dy, dx))[5, 5] / u[5, 5]
    assert ratio.real == pytest.approx(-(2 - 2 * np.cos(k * dx)) / dx**2, rel=1e-10)
    assert abs(ratio.imag) < 1e-6 * abs(ratio.real)


def test_butterworth_gain_and_fill():
    sp = (0.001, 0.001)
    y, x = np.mgrid[0:128, 0:128] * 0.001
    lam = 0.016  # 16 px; the gain is read in the interior, away from the padded edges
    u = np.cos(2 * np.pi * x / lam)
    out = D.butterworth_lowpass(u, sp, cutoff_wavelength=lam, order=3, pad=32)
    gain = np.abs(out[40:88, 40:88]).max() / np.abs(u[40:88, 40:88]).max()
    assert gain == pytest.approx(1 / np.sqrt(2), abs=0.03)  # |kappa| = kappa_c -> 1/sqrt(2)
    m = np.zeros((5, 5), bool)
    m[1:4, 1:4] = True
    a = np.arange(25.0).reshape(5, 5)
    f = D.fill_outside(a, m)
    assert f[0, 0] == a[1, 1] and f[4, 2] == a[3, 2] and np.array_equal(f[m], a[m])


def test_ahi_and_mdev_exact_on_synthetic_plane_waves():
    """Damped plane waves with known G* at three frequencies: both inversions recover |G*| and phi."""
    rho, G = 1000.0, 3000.0 * np.exp(1j * 0.3)
    dy = dx = 0.001
    y, x = np.mgrid[0:96, 0:96]
    X, Y = x * dx, -y * dy
    freqs = np.array([40.0, 60.0, 80.0])
    d = np.array([np.cos(0.4), np.sin(0.4)])
    us = []
    for f in freqs:
        k = 2 * np.pi * f * np.sqrt(rho / G)                     # Re k > 0, Im k < 0
        us.append(np.exp(-1j * k * (X * d[0] + Y * d[1])))
    u = np.array(us)[:, None]
    mask = np.ones(X.shape, bool)
    inner = np.zeros_like(mask)
    inner[12:-12, 12:-12] = True
    g_a, p_a = D.ahi(u[1], 2 * np.pi * 60.0, rho, (dy, dx), mask, cutoff_wavelength=None, window_px=0)
    g_m, p_m = D.mdev(u, 2 * np.pi * freqs, rho, (dy, dx), mask, cutoff_wavelength=None, smooth_px=0)
    # only the O((k dx)^2 / 12) finite-difference dispersion remains (< 1 % here)
    for g, p in ((g_a, p_a), (g_m, p_m)):
        assert np.median(g[inner]) == pytest.approx(abs(G), rel=0.01)
        assert np.median(p[inner]) == pytest.approx(0.3, abs=0.01)
        assert np.all(np.isfinite(g)) and np.all(np.isfinite(p))


# ------------------------------------------------------------------------------------------ generated data
def test_mdev_and_ahi_recover_homogeneous_box(datasets):
    """`homogeneous` preset (box, 60 Hz, G* = 2000 + 500i Pa, no noise): median |G*| within 5 % over the
    region 5 pixels (7.5 mm) or more inside the box boundary (the driven top edge, free sides, absorbing
    bottom), phase angle within 0.02 rad."""
    ds = datasets["homogeneous"]
    obs, t = D.observation_from_dataset(ds, 0), D.truth_from_dataset(ds, 0)
    inner = ndimage.binary_erosion(t["mask"], iterations=5, border_value=0)
    assert inner.sum() > 0.6 * t["mask"].sum()
    true_g, true_phi = float(t["abs_G"][t["mask"]].mean()), float(t["phi"][t["mask"]].mean())
    assert true_g == pytest.approx(np.hypot(2000, 500), rel=1e-5)
    for cls in (D.MDEV, D.AHI):
        out = cls(TASK).solve(obs)
        med = float(np.median(out["abs_G"][inner]))
        assert abs(med / true_g - 1) < 0.05, (cls.name, med, true_g)
        assert abs(float(np.median(out["phi"][inner])) - true_phi) < 0.02
        assert out["abs_G"].shape == t["mask"].shape and np.all(np.isfinite(out["abs_G"]))


def test_homogeneous_whole_box_mare_beats_constant(datasets):
    """The task's own scoring (MARE of |G*| over the whole box, edges included): the edge handling keeps both
    inversions below 3 % there, under the constant solver's 2000 Pa guess (3.0 % off the true 2061.6 Pa)."""
    ds = datasets["homogeneous"]
    obs, truth = TASK.observation(ds, 0), TASK.truth(ds, 0)
    scores = {}
    for cls in (D.MDEV, D.AHI, Constant):
        pred, reason = TASK.validate(cls(TASK).solve(obs), truth)
        assert reason is None, reason
        scores[cls.name] = TASK.score(pred, truth)["MARE_absG"]
    assert scores["constant"] == pytest.approx(100 * (1 - 2000 / np.hypot(2000, 500)), rel=1e-4)
    assert scores["mdev"] < 2.0 and scores["ahi"] < 2.9, scores
    # without the edge handling the driven top and absorbing bottom rows cost several per cent
    raw = D.MDEV(TASK, params={"edge_px": 0}).solve(obs)
    assert TASK.score(TASK.validate(raw, truth)[0], truth)["MARE_absG"] > 2 * scores["mdev"]


def _main_metric(pred, t, region):
    m = TASK.metric("MARE_absG")     # the metric this check was written for (the board ranks by RIE_absG)
    truth = {"abs_G": t["abs_G"], "phi": t["phi"], "labels": t["labels"], "_mask": t[region]}
    return m, float(m.fn(pred, truth))


@pytest.mark.parametrize("region", ["liver_mask", "mask"])
def test_baselines_beat_constant(datasets, region):
    """MARE of |G*| (lower is better), mean over the cases, scored over the liver and over the whole tissue mask;
    truth = |G*| at 60 Hz."""
    scores: dict[str, list[float]] = {"constant": [], "ahi": [], "mdev": []}
    const = Constant(TASK)
    for preset in ("dime-liver-antiplane", "mdev-liver-antiplane"):
        ds = datasets[preset]
        for i in range(len(ds)):
            obs, t = D.observation_from_dataset(ds, i), D.truth_from_dataset(ds, i)
            for name, solver in (("constant", const), ("ahi", D.AHI(TASK))):
                metric, v = _main_metric(solver.solve(obs), t, region)
                scores[name].append(v)
            if len(obs["frequencies"]) > 1:
                scores["mdev"].append(_main_metric(D.MDEV(TASK).solve(obs), t, region)[1])
                scores.setdefault("constant_mdev", []).append(scores["constant"][-1])
    print(region, {k: round(float(np.mean(v)), 2) for k, v in scores.items()})
    assert metric.direction == "lower"
    assert np.mean(scores["ahi"]) < np.mean(scores["constant"]), scores
    assert np.mean(scores["mdev"]) < np.mean(scores["constant_mdev"]), scores


# ------------------------------------------------------------------------------------------ in-plane fields: curl
def test_curl_removes_a_gradient_field_and_keeps_a_shear_wave():
    """x = columns, y = up (minus rows): the curl of grad(phi) vanishes (a wrong sign pairing would give
    2 d2phi/dxdy), and a transverse plane wave keeps its wavenumber, so AHI on the curl recovers G exactly."""
    dy = dx = 0.0015
    r, c = np.mgrid[0:80, 0:80]
    X, Y = c * dx, -r * dy
    a, b = 2 * np.pi / 0.05, 2 * np.pi / 0.07
    phi = np.sin(a * X) * np.cos(b * Y)
    grad = np.stack([a * np.cos(a * X) * np.cos(b * Y), -b * np.sin(a * X) * np.sin(b * Y)])
    q = D.curl_z(grad, (dy, dx))[0]
    # central differences leave O((k h)^2) of each term a*b*cos*sin; the wrong pairing would leave 2 a b
    assert np.abs(q[2:-2, 2:-2]).max() < 0.02 * a * b
    # a shear wave travelling along x with its motion along y: curl = i k U
    G, rho, f = 3000.0, 1000.0, 60.0
    k = 2 * np.pi * f / np.sqrt(G / rho)
    wave = np.stack([np.zeros_like(X), np.exp(1j * k * X)]).astype(complex)
    qw = D.curl_z(wave, (dy, dx))[0]
    assert abs(qw[40, 40] / wave[1, 40, 40] - 1j * np.sin(k * dx) / dx) < 1e-8 * k
    mask = np.ones(X.shape, bool)
    g, _ = D.ahi(wave + 0.2 * grad, 2 * np.pi * f, rho, (dy, dx), mask, cutoff_wavelength=None, curl="on",
                 window_px=0)
    k_fd = np.sqrt(2 - 2 * np.cos(k * dx)) / dx         # the 5-point Laplacian's wavenumber on the grid
    assert np.median(g[10:-10, 10:-10]) == pytest.approx(rho * (2 * np.pi * f) ** 2 / k_fd**2, rel=1e-3)
    with pytest.raises(ValueError, match="two in-plane"):
        D.ahi(wave[1], 2 * np.pi * f, rho, (dy, dx), mask, curl="on")


def test_curl_makes_ahi_usable_on_plane_strain_liver(generated):
    """On a plane-strain dime-liver sample (pad-driven, nearly incompressible), the component-wise inversion
    sees the compressional part; the default (curl) inversion scores far better in the liver."""
    from phantombench.store import open_dataset

    ds = open_dataset(generated("liver-mre", "dime-liver", 1, 5))
    obs, t = D.observation_from_dataset(ds, 0), D.truth_from_dataset(ds, 0)
    assert np.asarray(obs["u"]).shape[-3] == 2
    off = _main_metric(D.AHI(TASK, {"curl": "off"}).solve(obs), t, "liver_mask")[1]
    on = _main_metric(D.AHI(TASK).solve(obs), t, "liver_mask")[1]
    print({"components": off, "curl": on})
    assert on < 60.0 and on < off / 3
