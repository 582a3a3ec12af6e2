"""Learned registration (solvers/registration: voxelmorph, hyper, losses, networks): MONAI's warp and scaling and
squaring against our displacement convention (pure translations, 2-D and 3-D), every loss term on fields with
known values, a smoke training that registers better than the identity, resume from the checkpoint, weights
reload, and the hyper-network's parameter maps and search."""

from __future__ import annotations

import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from phantombench.solvers.registration import losses as L  # noqa: E402
from phantombench.solvers.registration import networks as N  # noqa: E402

TASK = types.SimpleNamespace(name="registration")
SMALL = {"enc": [4, 8, 8, 8], "dec": [8, 8, 8, 8, 8, 4, 4], "channels": [4, 8, 16, 32], "batch": 4,
         "threads": 1, "progress": False, "int_steps": 4}


def blob(shape, centre, radius):
    grids = np.indices(shape, dtype=float)
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, centre)))
    return 1.0 / (1.0 + np.exp(r - radius))


def translation_pair(rng, n=32):
    """A blob and its translate: moving(y) = fixed(y - t), so disp = t everywhere (the task's convention)."""
    c, r, t = rng.uniform(12, 20, 2), rng.uniform(5, 8), rng.uniform(-3, 3, 2)
    y, x = np.indices((n, n), dtype=float)
    fixed = blob((n, n), c, r)
    moving = blob((n, n), c + t, r)
    labels = lambda img: (img > 0.5).astype(np.uint8)  # noqa: E731
    obs = {"fixed": fixed.astype(np.float32), "moving": moving.astype(np.float32), "spacing_mm": np.ones(2),
           "fixed_labels": labels(fixed), "mask": np.zeros((n, n), np.uint8),
           "normals": np.zeros((2, n, n), np.float32)}
    disp = np.broadcast_to(t[:, None, None], (2, n, n)).astype(np.float64).copy()
    return obs, {"disp": disp, "moving_labels": labels(moving)}


# ------------------------------------------------------------------------------------------ MONAI conventions
@pytest.mark.parametrize("ndim", [2, 3])
def test_monai_warp_follows_our_convention_on_a_pure_translation(ndim):
    """Warp(moving, u)(x) = moving(x + u(x)) with u in voxels, channel d along axis d: a blob moved by t is
    brought back onto the fixed one by the constant field t (interior voxels; border padding at the edges)."""
    n = 24 if ndim == 3 else 32
    t = np.array([2.0, -3.0, 1.0][:ndim])
    fixed = blob((n,) * ndim, [n / 2] * ndim, 5.0)
    moving = blob((n,) * ndim, [n / 2 + s for s in t], 5.0)
    u = torch.tensor(np.broadcast_to(t.reshape((ndim,) + (1,) * ndim), (ndim,) + (n,) * ndim).copy()).float()[None]
    warped = N.make_warp()(torch.tensor(moving).float()[None, None], u)[0, 0].numpy()
    inner = tuple(slice(4, -4) for _ in range(ndim))
    assert np.abs(warped - fixed)[inner].max() < 1e-5
    # the reversed channel order (x, y) is wrong: it does not register
    wrong = N.make_warp()(torch.tensor(moving).float()[None, None], u.flip(1))[0, 0].numpy()
    assert np.abs(wrong - fixed)[inner].max() > 0.1


@pytest.mark.parametrize("ndim", [2, 3])
def test_scaling_and_squaring_integrates_a_constant_velocity_exactly(ndim):
    n = 16
    v = torch.zeros((1, ndim) + (n,) * ndim)
    for d in range(ndim):
        v[:, d] = 1.5 - d
    u = N.make_integrator(7)(v)
    assert torch.allclose(u, v, atol=1e-5)


def test_scaling_and_squaring_of_a_rotation_velocity_is_a_rotation():
    """v = theta (-y, x) (a rotation generator) integrates to R(theta) - I near the centre."""
    n, th = 33, 0.1
    i, j = np.indices((n, n), dtype=float) - 16
    v = torch.tensor(np.stack([-th * j, th * i])).float()[None]
    u = N.make_integrator(7)(v)[0].numpy()
    c, s = np.cos(th), np.sin(th)
    exact = np.stack([c * i - s * j - i, s * i + c * j - j])
    assert np.abs(u - exact)[:, 12:21, 12:21].max() < 2e-3


def test_networks_shapes_2d_and_3d():
    for ndim, n in ((2, 20), (3, 12)):
        x = torch.rand((2, 1) + (n,) * ndim)
        for arch in ("voxelmorph", "attention"):
            net = N.build_regnet(ndim, arch, SMALL["enc"], SMALL["dec"], SMALL["channels"], 3)
            warped, u, v = net(x, x.flip(0))
            assert warped.shape == x.shape and u.shape == (2, ndim) + (n,) * ndim == v.shape
            assert float(u.detach().abs().max()) < 1e-2       # starts near the identity


# ------------------------------------------------------------------------------------------ losses
def linear_field(a: np.ndarray, n: int = 12):
    """u(x) = A x on an n^d grid as (1, d, *S)."""
    d = a.shape[0]
    x = np.indices((n,) * d, dtype=float)
    return torch.tensor(np.einsum("ij,j...->i...", a, x))[None]


def test_strain_norm_is_the_sum_of_squared_eigenvalues():
    rng = np.random.default_rng(1)
    for d in (2, 3):
        a = rng.normal(size=(d, d))
        eps = 0.5 * (a + a.T)
        val = L.strain_frobenius2(linear_field(a))
        assert torch.allclose(val, torch.full_like(val, float((np.linalg.eigvalsh(eps) ** 2).sum())))


def test_rigidity_shearing_jacobian_values():
    n = 12
    shift = torch.ones((1, 2, n, n)) * 2.5
    region = torch.ones((1, n, n), dtype=torch.bool)
    assert float(L.rigidity(shift, region)) == 0.0 and float(L.jacobian_term(shift, region)) == 0.0
    stretch = linear_field(np.diag([0.1, 0.1]), n)
    assert float(L.rigidity(stretch, region)) == pytest.approx(0.02)
    assert float(L.jacobian_term(stretch, region)) == pytest.approx(np.log(1.21) ** 2)
    # sliding along the interface (normal = axis 0): u = (0, s(row)) is free; a normal strain is not
    normals = torch.zeros((1, 2, n, n))
    normals[:, 0] = 1.0
    slide = torch.zeros((1, 2, n, n))
    slide[:, 1] = torch.where(torch.arange(n)[:, None] < n // 2, -2.0, 2.0).expand(n, n)
    assert float(L.shearing(slide, normals, region)) == 0.0
    assert float(L.rigidity(slide, region)) > 0.1
    assert float(L.shearing(linear_field(np.diag([0.1, 0.0]), n), normals, region)) == pytest.approx(0.01)
    # an empty region contributes 0; kheil_loss sums the weighted terms
    total, parts = L.kheil_loss(stretch, torch.zeros((1, n, n), dtype=torch.long), normals,
                                {"jacobian": 1.0, "rigidity": 2.0, "shearing": 1.0})
    assert float(parts["rigidity"]) == 0.0 and float(total) == pytest.approx(np.log(1.21) ** 2)


def test_extended_normals_make_a_sliding_band_free_at_its_edges():
    """A band of two rows (mask 2) with normal along axis 0 and a pure tangential slide: zero shearing once the
    normals are extended past the band; a normal stretch inside the band is still seen."""
    from phantombench.solvers.registration.voxelmorph import extend_normals

    n = 12
    mask = np.zeros((n, n), np.uint8)
    mask[5:7] = 2
    normals = np.zeros((2, n, n), np.float32)
    normals[0][mask == 2] = 1.0
    ext = extend_normals(normals, mask)
    assert (ext[0] == 1.0).all() and (ext[1] == 0.0).all()
    region = torch.tensor(mask == 2)[None]
    u = torch.zeros((1, 2, n, n))
    u[:, 0] = 0.5                                   # a uniform normal shift: rigid, no strain
    assert float(L.shearing(u, torch.tensor(ext)[None], region)) == 0.0
    assert float(L.shearing(u, torch.tensor(normals)[None], region)) > 0.01     # unextended: an artefact
    assert float(L.shearing(linear_field(np.diag([0.1, 0.0]), n), torch.tensor(ext)[None], region)) == \
        pytest.approx(0.01)


def test_jacobian_term_floors_folding():
    fold = linear_field(np.diag([-2.0, 0.0]), 8)      # J = -1
    assert float(L.jacobian_term(fold, None)) == pytest.approx(np.log(1e-9) ** 2, rel=1e-4)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_elastic_energy_of_a_pure_stretch_has_the_lambda_term(axis):
    """u_axis = a x_axis: div u = a and the (axis, axis) strain (2a)^2 / 4 = a^2 at every voxel but the last
    slice (forward differences, zero there): lam/2 a^2 + mu a^2, whatever the axis."""
    n, a = 10, 0.2
    m = np.zeros((3, 3))
    m[axis, axis] = a
    u = linear_field(m, n)
    frac = (n - 1) / n
    assert float(L.elastic_energy(u, 1.0, 0.0)) == pytest.approx(0.5 * a * a * frac)
    assert float(L.elastic_energy(u, 0.0, 1.0)) == pytest.approx(a * a * frac)
    assert float(L.diffusion(u)) == pytest.approx(a * a * frac)


def test_elastic_energy_of_a_shear_and_a_rotation():
    n, g = 10, 0.1
    shear = linear_field(np.array([[0.0, g], [0.0, 0.0]]), n)    # d_1 u_0 = g: (d_1 u_0 + d_0 u_1)^2 = g^2 twice
    frac = (n - 1) / n                                            # the d_1 derivative is zero on the last column
    assert float(L.elastic_energy(shear, 1.0, 1.0)) == pytest.approx(0.25 * 2 * g * g * frac)
    # infinitesimal rotation: no strain inside; only the last row and column, where one of the two forward
    # differences is set to zero, contribute (2 orderings x g^2 on 2 (n - 1) voxels, / 4, / n^2)
    rot = linear_field(np.array([[0.0, -g], [g, 0.0]]), n)
    assert float(L.elastic_energy(rot, 1.0, 1.0)) == pytest.approx(g * g * (n - 1) / n**2)


# ------------------------------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(0)
    return [translation_pair(rng) for _ in range(12)], [translation_pair(rng) for _ in range(3)]


def _mse_before_after(solver, cases):
    from phantombench.solvers.registration.voxelmorph import pair_arrays

    before, after = [], []
    for obs, _ in cases:
        u = torch.tensor(solver.predict(obs)).float()[None]
        a = pair_arrays(obs)
        w = N.make_warp()(torch.tensor(a["moving"])[None, None], u)[0, 0].numpy()
        before.append(np.mean((a["moving"] - a["fixed"]) ** 2))
        after.append(np.mean((w - a["fixed"]) ** 2))
    return float(np.mean(before)), float(np.mean(after))


@pytest.mark.parametrize("name", ["VoxelMorph", "KheilRigidity"])
def test_smoke_training_registers_and_resumes(name, pairs, tmp_path):
    from phantombench.solvers.registration import voxelmorph

    train, val = pairs
    cls = getattr(voxelmorph, name)
    params = {**SMALL, **voxelmorph.SMOKE_2D, "steps": 150, "val_every": 50, "lr": 1e-3, "w_sim": 0.99,
              "checkpoint_dir": str(tmp_path)}
    s = cls(TASK, params)
    s.fit(train, val)
    before, after = _mse_before_after(s, val)
    assert after < 0.7 * before, (before, after)
    assert s.history[-1]["val_mse"] < s.history[0]["val_mse"]
    d = s.solve(val[0][0])["disp"]
    assert d.shape == (2, 32, 32) and d.dtype == np.float64
    # same data and parameters: resumed from the checkpoint, no new steps; a saved weights file reloads
    s2 = cls(TASK, params)
    s2.fit(train, val)
    assert s2.meta["resumed_from_step"] == 150 and s2.meta["steps_done"] == 150
    s3 = cls(TASK, {**params, "weights": s.meta["weights"]})
    assert np.allclose(s3.solve(val[0][0])["disp"], d, atol=1e-5)


def test_hypernetwork_maps_and_search(pairs, tmp_path):
    from phantombench.solvers.registration.hyper import HyperDiffusion, HyperElastic, search

    train, val = pairs
    s = HyperElastic(TASK, {**SMALL, "steps": 20, "val_every": 20, "lr": 3e-3, "grid": [0.1, 0.9],
                            "checkpoint_dir": str(tmp_path / "e")})
    s.fit(train, val)
    k = s.meta["n_classes"]
    assert k == 2 and len(s.meta["cond"]) == 4
    assert s.meta["search"]["criterion"] == "dice" and s.meta["search"]["evaluations"] >= 4
    cond = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    labels = torch.tensor([[[0, 1], [1, 0]]])
    m = s.maps(cond, labels)
    assert torch.allclose(m[0, 0], torch.tensor([[0.1, 0.2], [0.2, 0.1]]))
    assert torch.allclose(m[0, 1], torch.tensor([[0.3, 0.4], [0.4, 0.3]]))
    assert s.solve(val[0][0])["disp"].shape == (2, 32, 32)
    # without moving labels the search scores by minus the endpoint error per class
    from phantombench.solvers.registration.voxelmorph import stack_cases

    arrays = stack_cases([(o, {"disp": t["disp"]}) for o, t in val])[0]
    found = search(s, arrays, [0.5], adaptive=False)
    assert found["criterion"] == "neg_epe" and found["cond"] == [0.5] * 4
    d = HyperDiffusion(TASK, {**SMALL, "steps": 5, "val_every": 5, "values": [0.3, 0.7],
                              "checkpoint_dir": str(tmp_path / "d")})
    d.fit(train, val)
    assert d.meta["cond"] == [0.3, 0.7] and d.describe_cond(d.meta["cond"]) == {"alpha": [0.3, 0.7]}


# ------------------------------------------------------------------------------------------ paper reproductions
def _check_report(paper, out):
    import json

    res = json.loads((out / f"{paper.name}.json").read_text())
    assert paper.render(res) == (out / f"{paper.name}.md").read_text()
    assert res["findings"] and all(f["supported"] in (True, False, None) for f in res["findings"])
    return res


def test_reproduce_kheil_pipeline_with_a_few_steps(tmp_path):
    """Both tables end to end (datasets, three regularisers per mode, before row, findings, report); 2 steps."""
    from phantombench.papers import get_paper

    paper = get_paper("kheil")
    paper.run(budget="smoke", steps=2, data_root=tmp_path / "data", out_dir=tmp_path / "out",
              work_dir=tmp_path / "work", log=lambda *_: None)
    res = _check_report(paper, tmp_path / "out")
    rows = res["modes"]["sliding"]["rows"]
    assert set(rows) == {"before", "diffusion", "jacobian", "physics"}
    assert rows["before"]["test"]["MSE_image"]["mean"] > 0 and rows["physics"]["solver"] == "kheil-sliding"
    assert len(res["findings"]) == 8


def test_reproduce_reithmeir_pipeline_with_a_few_steps(tmp_path):
    """g / sa / sas for both regularisers on the cuboid stand-in (two classes, no stiffness maps); 2 steps."""
    from phantombench.papers import get_paper

    paper = get_paper("reithmeir")
    paper.run(budget="smoke", steps=2, generator="kheil", data_root=tmp_path / "data", out_dir=tmp_path / "out",
              work_dir=tmp_path / "work", log=lambda *_: None)
    res = _check_report(paper, tmp_path / "out")
    el = res["regularisers"]["elastic"]
    assert el["n_classes"] == 3 and set(el["scores"]) == {"before", "g", "sa", "sas"}
    assert len(el["chosen"]["sas"]["mu"]) == 3 and res["order"]["sa"]["measured"] is False


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kheil", "reithmeir"])
def test_reproduce_smoke_budget(name, tmp_path):
    """The full smoke budgets (the committed reports' runs): about 10 min each on a busy 2-core machine."""
    from phantombench.papers import get_paper

    paper = get_paper(name)
    paper.run(budget="smoke", data_root=tmp_path / "data", out_dir=tmp_path / "out", work_dir=tmp_path / "work",
              log=lambda *_: None)
    _check_report(paper, tmp_path / "out")


@pytest.mark.parametrize("name", ["kheil", "reithmeir"])
def test_committed_reports_re_render_from_their_json(name):
    import importlib
    import json
    from pathlib import Path

    from phantombench.papers import get_paper

    papers = Path(__file__).resolve().parents[1] / "leaderboard" / "papers"
    res = json.loads((papers / f"{name}.json").read_text())
    assert get_paper(name).render(res) == (papers / f"{name}.md").read_text()
    module = importlib.import_module(f"phantombench.papers.{name}")
    assert module.findings(res) == res["findings"]          # the verdicts follow from the stored numbers
