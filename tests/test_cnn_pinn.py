"""Two-stage CNN-PINN (solvers/cnn_pinn.py): every loss term of P3's equation (2) against hand-computed values
on tiny fields, the finite differences, the boundary data, and a smoke training run."""

from __future__ import annotations

import mpi4py.MPI  # noqa: F401  (before dolfinx)
import numpy as np
import pytest
import torch

from phantombench.solvers import cnn_pinn as cp
from phantombench.tasks import get_task

TASK = get_task("eit")


def _grid(n=9, h=0.25):
    """Pixel centres with row 0 at the top: x = j h, y = -i h."""
    j, i = np.meshgrid(np.arange(n), np.arange(n))
    return j * h, -i * h, h


# ------------------------------------------------------------------------------------------ derivatives
def test_fd_derivatives_exact_on_quadratics_and_orientation():
    X, Y, h = _grid()
    U = X ** 2 + 3 * Y - 0.5 * Y ** 2
    Ux, Uy, lap = cp.fd_derivatives(U, h)
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(Ux[inner], 2 * X[inner], atol=1e-12)
    np.testing.assert_allclose(Uy[inner], 3 - Y[inner], atol=1e-12)   # y grows upwards (row 0 at the top)
    np.testing.assert_allclose(lap[inner], 2.0 - 1.0, atol=1e-11)
    assert np.isnan(Ux[0]).all() and np.isnan(lap[:, -1]).all()


def test_one_sided_gradient_exact_on_linear_field_up_to_the_boundary():
    X, Y, h = _grid(11, 0.2)
    mask = (X - 1.0) ** 2 + (Y + 1.0) ** 2 < 0.9 ** 2
    gx, gy = cp.one_sided_gradient(2 * X - 5 * Y, mask, h)
    np.testing.assert_allclose(gx[mask], 2.0, atol=1e-12)
    np.testing.assert_allclose(gy[mask], -5.0, atol=1e-12)


def test_pde_residual_hand_values():
    X, Y, h = _grid()
    t = lambda a: torch.as_tensor(a)  # noqa: E731
    # sigma = 2, U = x^2 + y^2: div(sigma grad U) = 2 * 4 = 8
    Ux, Uy, lap = cp.fd_derivatives(X ** 2 + Y ** 2, h)
    r = cp.pde_residual(t(2.0), t(0.0), t(0.0), t(Ux[4, 4]), t(Uy[4, 4]), t(lap[4, 4]))
    assert float(r) == pytest.approx(8.0)
    # sigma = x (grad sigma = (1, 0)), U = x: sigma * 0 + 1 * 1 = 1 everywhere
    Ux, Uy, lap = cp.fd_derivatives(X, h)
    r = cp.pde_residual(t(X[1:-1, 1:-1]), t(1.0), t(0.0), t(Ux[1:-1, 1:-1]), t(Uy[1:-1, 1:-1]), t(lap[1:-1, 1:-1]))
    np.testing.assert_allclose(r.numpy(), 1.0, atol=1e-12)
    # an exact solution: sigma = exp(x), U = exp(-x) give div(sigma grad U) = (sigma U')' = 0; with the
    # central differences of U the residual is exactly (2 cosh h - 2) / h^2 - sinh(h) / h everywhere
    Ux, Uy, lap = cp.fd_derivatives(np.exp(-X), h)
    s = np.exp(X)
    r = cp.pde_residual(t(s), t(s), t(0.0 * s), t(Ux), t(Uy), t(lap))[1:-1, 1:-1]
    np.testing.assert_allclose(r.numpy(), (2 * np.cosh(h) - 2) / h ** 2 - np.sinh(h) / h, rtol=1e-9, atol=1e-12)


def test_p3_loss_terms_hand_computed():
    r = torch.tensor([1.0, -2.0, 3.0])
    sigma_b = torch.tensor([1.0, 2.0])
    dUdn = torch.tensor([[0.5, 1.0]])
    j = torch.tensor([[0.5, 0.0]])
    grad = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    sig = torch.tensor([0.5, 1.5, 1.0])
    w = {"M": 2}
    t = cp.p3_loss_terms(r, sigma_b, dUdn, j, 1.0, grad, sig, torch.tensor(10.0), w, sigma_min=1.0)
    assert float(t["pde"]) == pytest.approx(14 / 3)                     # mean r^2
    assert float(t["topM"]) == pytest.approx((3 + 2) / 2)               # mean of the M = 2 largest |r|
    assert float(t["neumann"]) == pytest.approx((0 + 2 ** 2) / 2)       # sigma_b dU/dn - j = (0, 2)
    assert float(t["boundary"]) == pytest.approx(0.5)                   # |(1, 2) - 1|
    tv = (np.sqrt(25 + 1e-4) + np.sqrt(1e-4)) / 2
    assert float(t["tv"]) == pytest.approx(tv, rel=1e-6)
    assert float(t["hinge"]) == pytest.approx(0.5 / 3)                  # max(0, 1 - sigma) mean
    assert float(t["weight_decay"]) == 10.0
    total = 0.01 * 14 / 3 + 0.01 * 2.5 + 1.5 * 2 + 0.5 + 1.0 * tv + 8 * 0.5 / 3 + 1e-6 * 10
    assert float(t["total"]) == pytest.approx(total, rel=1e-6)
    lit = cp.p3_loss_terms(r, sigma_b, dUdn, j, 1.0, grad, sig, torch.tensor(0.0), w, tv_form="literal")
    assert float(lit["tv"]) == pytest.approx((np.sqrt(5 + 1e-4) + np.sqrt(1e-4)) / 2, rel=1e-6)
    # Table I defaults: M = 40 over 100 residuals 1..100 -> mean of 61..100
    t = cp.p3_loss_terms(torch.arange(1.0, 101.0), sigma_b, dUdn, j, 1.0, grad, sig, torch.tensor(0.0))
    assert float(t["topM"]) == pytest.approx(80.5)


def test_weight_decay_counts_weight_matrices_only():
    net = cp.SigmaMLP(8, 2, sigma0=1.0)
    ref = sum(float((m.weight.detach() ** 2).sum()) for m in (net.inp, *net.hidden, net.out))
    assert float(net.weight_norm2()) == pytest.approx(ref, rel=1e-6)
    xy = torch.zeros(5, 2)
    # the output bias starts at the background: at the origin the first layer gives tanh(b)
    assert net.out.bias.item() == 1.0 and net(xy).shape == (5,)


def test_mlp_has_residual_connections():
    net = cp.SigmaMLP(4, 1)
    with torch.no_grad():
        for p in net.hidden[0].parameters():
            p.zero_()  # tanh(0) = 0: the hidden layer is then the identity through its skip
        h = torch.tanh(net.inp(torch.ones(1, 2)))
        assert torch.allclose(net(torch.ones(1, 2)), net.out(h)[..., 0])


def test_boundary_current_density_integrates_to_the_electrode_currents():
    from phantombench.generators.eit import EIT, electrodes_from_config, protocol_from_config

    cfg = EIT().config("cnn-pinn-case1").model_dump(mode="json")
    g = cp.pinn_geometry(128, cfg)
    el, prot = electrodes_from_config(cfg), protocol_from_config(cfg)
    which = el.electrode_at(np.arctan2(g.Y[g.boundary], g.X[g.boundary]))
    for l in (2, 4, 12):
        on = which == l
        # j is I_l / |e_l| (per unit of x / R) on every boundary pixel of electrode l, 0 in the gaps
        np.testing.assert_allclose(g.j[0, on], prot.currents[0, l] / el.lengths[l])
    assert np.all(g.j[0, which < 0] == 0)
    assert g.boundary.sum() > 100 and (g.interior & g.boundary).sum() == 0


def test_downsample_potential_block_means():
    pot = np.arange(16.0).reshape(1, 4, 4)
    pot[0, 0, 0] = np.nan
    U, m = cp.downsample_potential(pot, 2)
    assert m.tolist() == [[False, True], [True, True]]
    assert U[0, 0, 1] == pytest.approx((2 + 3 + 6 + 7) / 4)


# ------------------------------------------------------------------------------------------ smoke training
@pytest.fixture(scope="module")
def small_data(generated):
    from phantombench.store import open_dataset

    return open_dataset(generated("eit", "cnn-pinn-case1", 40, 3, mesh_mode="fixed", store_mesh=False,
                                  grid_size=64))


def Cases(task, ds, indices):
    """A split as fit() receives it: a sequence of (observation, target) pairs; eit targets carry `potential`."""
    return [(task.observation(ds, i), task.target(ds, i)) for i in indices]


def test_training_targets_carry_the_potential_and_observations_do_not(small_data):
    ds = small_data
    i = ds.split("train")[0]
    obs, target = Cases(TASK, ds, [i])[0]
    assert "potential" not in obs and set(target) == {"dsigma", "potential"}
    np.testing.assert_array_equal(target["potential"], ds.group(i)["potential"][...])
    assert "potential" not in TASK.truth(ds, i)
    with pytest.raises(ValueError, match="potential"):
        cp.training_potential({"dsigma": target["dsigma"]})


def test_smoke_training_lowers_loss_and_improves_the_potential(small_data, tmp_path):
    """Stage 1: the training loss falls and the held-out potential error beats the untrained network's.
    Stage 2: the PINN's objective falls."""
    from phantombench.solvers.training import fingerprint

    torch.set_num_threads(1)
    ds = small_data
    params = {"image_size": 32, "width": 4, "depth": 3, "stage1_epochs": 12, "batch_size": 8, "epochs": 60,
              "checkpoint_dir": str(tmp_path), "stage1_lr": 3e-3}
    tr, va = Cases(TASK, ds, ds.split("train")), Cases(TASK, ds, ds.split("val"))
    test = ds.split("test") + ds.split("val")

    def pot_error(solver):
        errs = []
        for i in test:
            U, m = cp.downsample_potential(ds.group(i)["potential"][...], 32)
            Up = solver.predict_potential(TASK.observation(ds, i)["dv"])
            mm = m & solver.norm["mask"]
            errs.append(np.linalg.norm((Up - U)[:, mm]) / np.linalg.norm((U - solver.norm["U_mean"])[:, mm]))
        return float(np.mean(errs))

    s = cp.CNNPINN(TASK, params=params, seed=0)
    s.fit(tr, va)
    h = s.fit_history
    assert len(h["train_loss"]) == 12
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0], h["train_loss"]
    trained = pot_error(s)
    untrained = cp.CNNPINN(TASK, params=params, seed=0)
    untrained.norm = s.norm
    untrained.stage1 = untrained.build_stage1(s.norm["n_meas"], s.norm["n_patterns"])
    assert trained < 0.8 * pot_error(untrained), (trained, pot_error(untrained))
    # checkpoint: tagged with the fingerprints of the training data, and reused without training
    path = s.checkpoint_path(s.trained_on)
    state = torch.load(path, weights_only=False)
    assert state["step"] == 12 and state["tag"]["data"] == {"train": fingerprint(tr), "val": fingerprint(va)}
    again = cp.CNNPINN(TASK, params=params, seed=0)
    again.fit(tr, va)
    assert again.fit_history["train_loss"] == h["train_loss"]
    assert pot_error(again) == pytest.approx(trained)
    loaded = cp.CNNPINN(TASK, params=params, seed=0)
    loaded.load_checkpoint(path)
    assert loaded.trained_on == s.trained_on and pot_error(loaded) == pytest.approx(trained)
    # stage 2 on one case
    obs = TASK.observation(ds, test[0])
    out = s.solve(obs)["dsigma"]
    assert out.shape == obs["mask"].shape and np.isfinite(out[obs["mask"]]).all()
    ph = s.last_history
    # the objective is dominated by the residual of the (imperfect) stage-1 potential, which no sigma removes:
    # measured 4.023 -> 3.971 over 60 epochs
    assert np.mean(ph["total"][-5:]) < 0.995 * ph["total"][0], (ph["total"][0], ph["total"][-5:])
    assert min(ph["total"]) < ph["total"][0]


def test_bf16_stage1_trains_and_keeps_its_own_checkpoint(small_data, tmp_path):
    torch.set_num_threads(1)
    ds = small_data
    base = {"image_size": 32, "width": 4, "depth": 3, "stage1_epochs": 6, "batch_size": 8,
            "checkpoint_dir": str(tmp_path), "stage1_lr": 3e-3}
    tr, va = Cases(TASK, ds, ds.split("train")), Cases(TASK, ds, ds.split("val"))
    s = cp.CNNPINN(TASK, params={**base, "amp": "bf16"}, seed=0)
    s.fit(tr, va)
    h = s.fit_history["train_loss"]
    assert h[-1] < 0.7 * h[0], h
    did = "0123456789ab-ba9876543210"
    assert s.checkpoint_path(did) != cp.CNNPINN(TASK, params=base, seed=0).checkpoint_path(did)
    Up = s.predict_potential(TASK.observation(ds, ds.split("test")[0])["dv"])
    assert Up.dtype == np.float64 and np.isfinite(Up).all()
    with pytest.raises(ValueError, match="amp"):
        cp.CNNPINN(TASK, params={**base, "amp": "fp8"}, seed=0).fit(tr, va)


def test_forward_mode_gradient_matches_autograd():
    torch.manual_seed(0)
    net = cp.SigmaMLP(16, 4, sigma0=1.0).double()
    xy = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    s, g = net.value_and_grad(xy)
    xy2 = xy.clone().requires_grad_(True)
    s2 = net(xy2)
    (g2,) = torch.autograd.grad(s2.sum(), xy2)
    torch.testing.assert_close(s, s2.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, g2, rtol=1e-10, atol=1e-12)
