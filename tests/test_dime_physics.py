"""DIME-style CNN, physics of its input: the curl of in-plane fields (blind to a compressional field), exact
augmentation of scalar, pseudo-scalar and vector fields, and the report's resolution ceiling."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from phantombench.meshes.abdomen import HEPATIC_VESSEL, LESION, LIVER  # noqa: E402
from phantombench.papers import dime as P  # noqa: E402
from phantombench.solvers import dime as Dm  # noqa: E402
from phantombench.solvers.mre_direct import curl_z  # noqa: E402
from phantombench.tasks import get_task  # noqa: E402


def _stack(u):
    return torch.from_numpy(np.concatenate([[c.real, c.imag] for c in u]))


def _unstack(x):
    x = x.numpy()
    return x[0::2] + 1j * x[1::2]


@pytest.mark.parametrize("r", range(4))
@pytest.mark.parametrize("flip", [False, True])
def test_vector_and_curl_augmentation_commute_with_the_curl(r, flip):
    """Turning the vector components with the image is the same physical field: its curl is the transformed
    (pseudo-scalar) curl of the original, for every quarter turn and mirror."""
    rng = np.random.default_rng(r)
    u = rng.normal(size=(2, 24, 24)) + 1j * rng.normal(size=(2, 24, 24))
    q = curl_z(u, (1.0, 1.0))
    uv = _unstack(Dm.transform_field(_stack(u), r, flip, "vector"))
    qt = _unstack(Dm.transform_field(_stack(q), r, flip, "pseudo"))
    assert np.abs(curl_z(uv, (1.0, 1.0)) - qt).max() < 1e-12
    if r % 2 or flip:   # moving the values without turning the components would not be the same field
        moved = _unstack(Dm.transform_field(_stack(u), r, flip, "scalar"))
        assert np.abs(curl_z(moved, (1.0, 1.0)) - qt).max() > 0.1


def test_curl_input_removes_the_compressional_field():
    """A pure compressional field (the gradient of a potential) has no curl; a shear wave keeps its curl; with
    ``curl="auto"`` a two-component field becomes one complex channel (2 + mask + 3 wave maps)."""
    y, x = np.mgrid[0:64, 0:64].astype(float)
    k = 2 * np.pi / 16
    pot = np.exp(1j * k * (0.6 * x + 0.8 * y))
    comp = np.stack([np.gradient(pot, axis=1), -np.gradient(pot, axis=0)])   # (U_x, U_y), y up = -rows
    shear = np.stack([np.exp(1j * k * y) * 0, np.exp(1j * k * x)])          # U_y(x): transverse wave along x
    mask = np.ones((64, 64), bool)
    inner = (slice(12, -12), slice(12, -12))
    qc = Dm.curl_field(comp, mask, (1.0, 1.0), None)[0][inner]
    qs = Dm.curl_field(shear, mask, (1.0, 1.0), None)[0][inner]
    assert np.abs(qc).max() < 1e-10 * np.abs(qs).max()
    assert np.abs(qs).mean() == pytest.approx(np.sin(k), rel=1e-6)          # central difference of e^{ikx}
    solver = Dm.DIME(get_task("mre"), params={"progress": False})
    x_auto, kind = solver._input(comp + shear, (1.0, 1.0), mask)
    assert kind == "pseudo" and x_auto.shape == (6, 64, 64)
    solver.params["curl"] = "off"
    x_off, kind = solver._input(comp + shear, (1.0, 1.0), mask)
    assert kind == "vector" and x_off.shape == (8, 64, 64)


def _liver(n=96):
    """A textured liver: parenchyma ~2 kPa with a smooth ripple, a stiff 10 kPa lesion and a soft vessel."""
    y, x = np.mgrid[0:n, 0:n].astype(float)
    body = np.ones((n, n), bool)
    labels = np.full((n, n), LIVER, np.uint8)
    labels[(y - 40) ** 2 + (x - 50) ** 2 < 8**2] = LESION
    labels[np.abs(y - 70) < 2] = HEPATIC_VESSEL
    g = 2000 + 200 * np.sin(x / 9)
    g = np.where(labels == LESION, 10000.0, np.where(labels == HEPATIC_VESSEL, 400.0, g))
    return g, np.full((n, n), 0.2), body, labels


def test_resolution_ceiling_is_one_unblurred_and_drops_with_blur():
    g, phi, body, labels = _liver()
    liver = body.copy()
    args = (g, phi, body, liver, 60.0, 1000.0, 0.0015)
    r0, r4, r2 = (P.ceiling_r(*args, f) for f in (0.0, 0.25, 0.5))
    assert r0 == pytest.approx(1.0, abs=1e-12)
    assert 0.0 < r2 < r4 < 0.99, (r4, r2)
    lam = P.wavelength_px(np.array([2000.0]), np.array([0.0]), 60.0, 1000.0, 0.0015)
    assert lam[0] == pytest.approx(np.sqrt(2.0) / 60 / 0.0015)               # c = sqrt(G / rho), lambda = c / f


def test_variance_shares_add_up_and_attribute_the_lesion():
    g, _, body, labels = _liver()
    sh = P.variance_shares(g, labels, body)
    assert sum(sh.values()) == pytest.approx(1.0)
    flat = np.where(labels == LESION, 10000.0, 2000.0)
    assert P.variance_shares(flat, labels, body)["lesions"] > 0.9
    assert P.variance_shares(flat, labels, body)["vessels"] == pytest.approx(
        (labels == HEPATIC_VESSEL).sum() * (2000 - flat.mean()) ** 2 / ((flat - flat.mean()) ** 2).sum())
