"""El-UNet family and dense PINN (P1): loss terms against hand-computed values, conversions, network shapes,
self-adaptive weights, and short training runs that must lower the loss and the error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phantombench.solvers.elunet import (
    Case,
    DensePINN,
    ElUNetNet,
    ElUNetP,
    ElUNetPS,
    ElUNetPSW1,
    ElUNetPSW2,
    count_parameters,
    d_dx,
    d_dy,
    equilibrium_fd,
    homogeneous_lame,
    lame_to_E_nu,
    prepare_case,
    residual_terms,
    total_loss,
)
from phantombench.tasks import get_task

torch.set_num_threads(1)   # the test machine is shared: no oversubscription
TASK = get_task("brain-elasticity")


def grid_case(H=9, W=7, dx=0.5, dy=0.25, traction=10.0, eps=None) -> Case:
    """A non-dimensional case on an H x W grid with pixel centres on the edges (l0 = mean side length)."""
    if eps is None:
        eps = np.zeros((3, H, W))
    obs = {"exx": eps[0], "eyy": eps[1], "exy": eps[2], "mask": np.ones((H, W), bool), "traction": traction,
           "spacing": np.array([dy, dx])}
    return prepare_case(obs, "cpu", torch.float64, lame_scale="paper")


def coords(case: Case):
    return case.coordinates()


def named(terms):
    return {n: float(torch.mean(r * r)) for n, r, _ in terms}


# ------------------------------------------------------------------------------------------- finite differences
def test_case_scaling_and_coordinates():
    case = grid_case(H=9, W=7, dx=0.5, dy=0.25)
    Lx, Ly = 0.5 * 6, 0.25 * 8
    assert case.l0 == pytest.approx((Lx + Ly) / 2)
    assert case.hx == pytest.approx(0.5 / case.l0) and case.hy == pytest.approx(0.25 / case.l0)
    assert case.sigma0 == 10.0 and case.top == 1.0
    X, Y = coords(case)
    assert float(X[0, -1]) == pytest.approx(Lx / case.l0)       # right edge
    assert float(Y[0, 0]) == pytest.approx(Ly / case.l0)        # row 0 is the top
    assert float(Y[-1, 0]) == 0.0


def test_differences_exact_for_quadratics_and_y_points_up():
    case = grid_case()
    X, Y = coords(case)
    f = 3 * X**2 - 2 * X * Y + 5 * Y**2 + X - 4
    assert torch.allclose(d_dx(f, case.hx), 6 * X - 2 * Y + 1, atol=1e-10)
    assert torch.allclose(d_dy(f, case.hy), -2 * X + 10 * Y, atol=1e-10)


def test_equilibrium_residual_zero_for_airy_field_and_known_otherwise():
    case = grid_case()
    X, Y = coords(case)
    # Airy stress function phi = x^3 y: sxx = 0, syy = 6 x y, sxy = -3 x^2 satisfies div sigma = 0 exactly
    rx, ry = equilibrium_fd(torch.zeros_like(X), 6 * X * Y, -3 * X**2, case.hx, case.hy)
    assert float(rx.abs().max()) < 1e-10 and float(ry.abs().max()) < 1e-10
    # a field out of equilibrium: sxx = x^2, syy = y^2, sxy = x y -> rx = 2x + x = 3x, ry = y + 2y = 3y
    terms = residual_terms(case, torch.zeros_like(X), torch.zeros_like(X), (X**2, Y**2, X * Y))
    t = named(terms)
    assert t["E_x"] == pytest.approx(float(torch.mean(9 * X**2)), rel=1e-10)
    assert t["E_y"] == pytest.approx(float(torch.mean(9 * Y**2)), rel=1e-10)


def test_exact_homogeneous_uniaxial_solution_has_zero_loss():
    """Homogeneous solid under the top traction: syy = -t everywhere; the P and PS losses vanish."""
    H, W, t, E, nu = 11, 8, 33.0, 1500.0, 0.4
    eps = np.zeros((3, H, W))
    eps[0], eps[1] = nu * t / E, -t / E
    case = grid_case(H, W, traction=t, eps=eps)
    lam_ps, mu = E * nu / (1 - nu**2), E / (2 * (1 + nu))          # plane-stress effective lam
    lam = torch.full((H, W), lam_ps / case.modulus_scale, dtype=torch.float64)
    mu_t = torch.full((H, W), mu / case.modulus_scale, dtype=torch.float64)
    p_terms = residual_terms(case, lam, mu_t)
    assert float(total_loss(p_terms)) < 1e-24
    stresses = (torch.zeros(H, W, dtype=torch.float64), torch.full((H, W), -1.0, dtype=torch.float64),
                torch.zeros(H, W, dtype=torch.float64))
    ps_terms = residual_terms(case, lam, mu_t, stresses)
    assert {n for n, _, _ in ps_terms} >= {"C_xx", "C_yy", "C_xy", "E_x", "E_y", "top_syy", "bottom_sxy"}
    assert float(total_loss(ps_terms)) < 1e-24
    # the homogeneous estimate used for the "homogeneous" initialisation recovers exactly these Lame values
    lh, mh = homogeneous_lame(case)
    assert lh * case.modulus_scale == pytest.approx(lam_ps, rel=1e-6)
    assert mh * case.modulus_scale == pytest.approx(mu, rel=1e-6)


def test_traction_loss_of_a_known_uniform_stress():
    H, W = 6, 5
    case = grid_case(H, W)
    a, b, c = 0.5, -0.25, 0.1
    full = lambda v: torch.full((H, W), v, dtype=torch.float64)  # noqa: E731
    z = full(0.0)
    terms = residual_terms(case, z, z, (full(a), full(b), full(c)))
    t = named(terms)
    assert t["top_syy"] == pytest.approx((b + 1) ** 2)        # syy = -traction / sigma0 = -1 on top
    assert t["top_sxy"] == pytest.approx(c**2) and t["bottom_sxy"] == pytest.approx(c**2)
    assert t["left_sxx"] == pytest.approx(a**2) and t["right_sxy"] == pytest.approx(c**2)
    boundary = sum(v for k, v in t.items() if k[:2] not in ("C_", "E_"))
    assert boundary == pytest.approx((b + 1) ** 2 + 2 * c**2 + 2 * (a**2 + c**2))   # 1.1025
    assert boundary == pytest.approx(1.1025)
    assert t["E_x"] < 1e-28 and t["E_y"] < 1e-28
    assert t["C_yy"] == pytest.approx(b**2)                    # zero Lame -> computed stress 0
    # spatial weights multiply the residual inside the square: psi = 2 on the top row -> 4x the top terms
    w = {"tb": torch.stack([torch.full((W,), 2.0), torch.ones(W)]).double(), "sides": torch.ones(2, H).double(),
         "C": torch.ones(H, W).double(), "E": torch.ones(H, W).double()}
    weighted = residual_terms(case, z, z, (full(a), full(b), full(c)), weights=w)
    gap = float(total_loss(weighted)) - float(total_loss(weighted, weighted=False))
    assert gap == pytest.approx(3 * ((b + 1) ** 2 + c**2))


def test_paper_conversion_is_exact_for_plane_stress_lame():
    E = np.array([500.0, 1000.0, 1500.0, 2000.0, 20000.0])
    nu = np.array([0.0, 0.3, 0.35, 0.45, 0.49])
    lam_ps = E * nu / (1 - nu**2)
    mu = E / (2 * (1 + nu))
    E2, nu2 = lame_to_E_nu(lam_ps, mu)
    np.testing.assert_allclose(E2, E, rtol=1e-12)
    np.testing.assert_allclose(nu2, nu, rtol=1e-12, atol=1e-15)
    # same as the direct plane-stress inverse nu = lam / (lam + 2 mu), E = 2 mu (1 + nu)
    np.testing.assert_allclose(nu2, lam_ps / (lam_ps + 2 * mu), rtol=1e-12)
    # unphysical outputs are clipped into the task's bounds
    Ec, nuc = lame_to_E_nu(np.array([-5.0, 1e6]), np.array([-1.0, 1.0]))
    assert np.all(Ec >= 1.0) and np.all((nuc >= 0) & (nuc <= 0.4999))


# ------------------------------------------------------------------------------------------- networks
@pytest.mark.parametrize("shape", [(142, 100), (37, 33)])
def test_unet_keeps_odd_image_sizes(shape):
    net = ElUNetNet(3, 5, width=4, depth=5)
    y = net(torch.rand(1, 3, *shape))
    assert tuple(y.shape) == (1, 5, *shape)


def test_paper_width_parameter_count():
    n = count_parameters(ElUNetNet(3, 5, width=64, depth=5))
    # 64-128-256-512-1024 UNet: ~31 M parameters (double 3x3 convs, 2x2 up-convs, 1x1 head)
    assert 30e6 < n < 32e6
    assert count_parameters(ElUNetNet(3, 5, width=8, depth=5)) < 0.6e6
    with pytest.raises(ValueError, match="at least 32 x 32"):
        ElUNetNet(3, 5, width=4, depth=5)(torch.rand(1, 3, 24, 40))


# ------------------------------------------------------------------------------------------- training
def synthetic_observation(H=48, W=34):
    """A two-material column under uniaxial load: a stiff vertical strip (exact uniaxial stress state).

    With a vertical interface and a uniform top traction, syy = -t in both materials and sxx = sxy = 0 is an exact
    state of equilibrium meeting every traction condition; the strains eyy = -t/E, exx = nu t / E differ per strip.
    (They are not compatible at the interface, which the inverse problem never uses: the truth has zero loss.)
    """
    t = 30.0
    E = np.full((H, W), 1000.0)
    nu = np.full((H, W), 0.35)
    E[:, W // 3: 2 * W // 3] = 2500.0
    nu[:, W // 3: 2 * W // 3] = 0.45
    obs = {"exx": nu * t / E, "eyy": -t / E, "exy": np.zeros((H, W)), "mask": np.ones((H, W), bool),
           "traction": t, "spacing": np.array([1e-3, 1e-3])}
    return obs, {"E": E, "nu": nu}


def mare(p, g):
    return float(100 * np.mean(np.abs(p - g) / np.abs(g)))


@pytest.mark.parametrize(("cls", "epochs"), [(ElUNetPS, 60), (ElUNetPSW1, 60), (DensePINN, 75)])
def test_smoke_training_lowers_loss_and_error(cls, epochs):
    obs, truth = synthetic_observation()
    s = cls(TASK, params={"train_time_s": 60.0, "max_epochs": epochs, "n_snapshots": 4}, seed=0)
    pred = s.solve(obs)
    h = s.last_history
    assert h["epochs"] == epochs
    assert h["loss_plain"][-1] < 0.5 * h["loss_plain"][0]
    first, last = h["snapshots"][0], h["snapshots"][-1]
    assert first["epoch"] == 0 and last["epoch"] == epochs
    e0, e1 = mare(first["E"], truth["E"]), mare(pred["E"], truth["E"])
    assert e1 < 0.8 * e0, (e0, e1)
    if cls is not DensePINN:   # the tanh MLP needs far more epochs for the Poisson ratio jumps
        assert mare(pred["nu"], truth["nu"]) < mare(first["nu"], truth["nu"])
    clean, reason = TASK.validate(pred, {**truth, "_mask": np.ones(truth["E"].shape, bool)})
    assert reason is None and clean["E"].dtype == np.float64


def test_bf16_mixed_precision_trains_and_stays_near_float32():
    """amp='bf16': features in bfloat16, head and losses in float32 -- the run still learns, and its error after the
    same epochs is within a few points of the float32 run (bfloat16 makes the FD residual noisier, not useless)."""
    obs, truth = synthetic_observation()
    res = {}
    for amp in ("off", "bf16"):
        s = ElUNetPSW1(TASK, params={"train_time_s": 60.0, "max_epochs": 60, "n_snapshots": 1, "amp": amp}, seed=0)
        pred = s.solve(obs)
        h = s.last_history
        assert h["loss_plain"][-1] < 0.5 * h["loss_plain"][0], amp
        res[amp] = (mare(h["snapshots"][0]["E"], truth["E"]), mare(pred["E"], truth["E"]), pred["E"])
    e0, e_bf16, E_bf16 = res["bf16"]
    assert e_bf16 < 0.8 * e0
    assert abs(e_bf16 - res["off"][1]) < 3.0, (e_bf16, res["off"][1])
    assert not np.array_equal(E_bf16, res["off"][2])        # the option really changes the arithmetic
    with pytest.raises(ValueError, match="amp"):
        ElUNetPSW1(TASK, params={"max_epochs": 1, "amp": "fp8"}).solve(obs)


def test_w1_weights_ascend_and_w2_omits_equilibrium_weights():
    obs, _ = synthetic_observation(H=40, W=34)
    lr = 1e-3
    s = ElUNetPSW1(TASK, params={"max_epochs": 5, "n_snapshots": 0, "weight_lr": lr}, seed=0)
    s.solve(obs)
    w = s.last_history["weights"]
    assert set(w) == {"C", "E", "sides", "tb"}
    H, W = 40, 34
    assert w["C"].shape == (H, W) and w["sides"].shape == (2, H) and w["tb"].shape == (2, W)
    for k, v in w.items():
        assert v.min() >= 1.0 - 1e-6, k                  # ascent on sum (psi r)^2 never lowers a weight
        assert v.max() > 1.0 + 0.5 * 5 * lr, k           # and Adam moves them ~lr per step
    s2 = ElUNetPSW2(TASK, params={"max_epochs": 2, "n_snapshots": 0}, seed=0)
    s2.solve(obs)
    assert set(s2.last_history["weights"]) == {"C", "sides", "tb"}


def test_same_seed_same_result_and_p_model_outputs():
    obs, _ = synthetic_observation(H=40, W=34)
    a = ElUNetP(TASK, params={"max_epochs": 3, "n_snapshots": 0}, seed=7).solve(obs)
    b = ElUNetP(TASK, params={"max_epochs": 3, "n_snapshots": 0}, seed=7).solve(obs)
    np.testing.assert_array_equal(a["E"], b["E"])
    s = ElUNetP(TASK, params={"max_epochs": 3, "n_snapshots": 0, "return_history": True}, seed=7)
    out = s.solve(obs)
    assert "history" in out and out["history"]["epochs"] == 3
    assert {"C_xx"}.isdisjoint(out["history"]["terms"])       # P: no constitutive term


def test_solver_classes_load_by_module_path():
    from phantombench.solvers.base import load_solver_class

    for name in ("ElUNetP", "ElUNetPS", "ElUNetPSW1", "ElUNetPSW2", "DensePINN"):
        cls = load_solver_class(f"phantombench.solvers.elunet:{name}")
        assert cls.tasks == ("brain-elasticity",) and cls.time_budget_s <= TASK.max_time_budget_s


def test_cpu_clock_budget_stops_training():
    obs, _ = synthetic_observation(H=40, W=34)
    s = ElUNetPS(TASK, params={"train_time_s": 0.3, "clock": "cpu", "n_snapshots": 2}, seed=0)
    s.solve(obs)
    h = s.last_history
    assert h["clock"] == "cpu" and h["epochs"] >= 1
    assert h["train_s"] >= 0.3 and h["time_s"][-2 if len(h["time_s"]) > 1 else -1] < 0.3 + 1e-9
    with pytest.raises(ValueError, match="clock"):
        ElUNetPS(TASK, params={"clock": "sundial", "max_epochs": 1}, seed=0).solve(obs)


@pytest.mark.parametrize("cls", [ElUNetPSW1, DensePINN])
def test_checkpoint_resume_is_bit_identical(tmp_path, cls):
    obs, _ = synthetic_observation(H=40, W=34)
    base = {"n_snapshots": 3, "train_time_s": 1e4}
    full = cls(TASK, params={**base, "max_epochs": 8}, seed=1).solve(obs)
    ck = tmp_path / "run.pt"
    cls(TASK, params={**base, "max_epochs": 5, "checkpoint": str(ck)}, seed=1).solve(obs)
    assert ck.exists()
    s = cls(TASK, params={**base, "max_epochs": 8, "checkpoint": str(ck)}, seed=1)
    resumed = s.solve(obs)
    assert s.last_history["resumed_at_epoch"] == 5 and s.last_history["epochs"] == 8
    assert s.last_history["epoch"] == list(range(1, 9))
    np.testing.assert_array_equal(resumed["E"], full["E"])
    np.testing.assert_array_equal(resumed["nu"], full["nu"])
    other = dict(obs, exx=obs["exx"] * 1.01)
    with pytest.raises(ValueError, match="another solver or observation"):
        cls(TASK, params={**base, "max_epochs": 9, "checkpoint": str(ck)}, seed=1).solve(other)


def test_paper_initialisation_option():
    obs, _ = synthetic_observation(H=40, W=34)
    s = ElUNetPS(TASK, params={"init": "default", "max_epochs": 1, "n_snapshots": 1}, seed=0)
    s.solve(obs)
    E0 = s.last_history["snapshots"][0]["E"]
    assert np.ptp(E0) > 0                     # a randomly initialised head: not the homogeneous fit
    h = ElUNetPS(TASK, params={"max_epochs": 1, "n_snapshots": 1}, seed=0)
    h.solve(obs)
    assert np.ptp(h.last_history["snapshots"][0]["E"]) == 0.0   # homogeneous start: one value everywhere
    with pytest.raises(ValueError, match="init"):
        ElUNetPS(TASK, params={"init": "xavier", "max_epochs": 1}, seed=0).solve(obs)
