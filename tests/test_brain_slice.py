"""The brain-slice generator end to end: presets, exact region values, physics through the whole pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from phantombench.generators.base import sample_rng
from phantombench.registry import get_generator

GEN = get_generator("brain-slice")


def make(preset: str, index: int = 0, seed: int = 0, **over):
    cfg = GEN.config(preset, over)
    return cfg, GEN.sample(cfg, sample_rng(seed, index), index)


@pytest.fixture(scope="module")
def soft():
    return make("elunet-soft")


def test_elunet_soft_grid_regions_and_strain_bound(soft):
    cfg, s = soft
    f = s.fields
    schema = GEN.schema(cfg)
    for name, spec in schema.items():
        assert f[name].dtype == np.dtype(spec.dtype), name
        if all(isinstance(d, int) for d in spec.shape):
            assert f[name].shape == tuple(spec.shape), name
    assert f["exx"].shape == (142, 100)
    lab = f["labels"]
    assert set(np.unique(lab)) == {0, 1, 2}
    # E and nu take exactly the released-data region values (no blending at interfaces)
    want = {0: (1000.0, 0.35), 1: (1500.0, 0.40), 2: (2000.0, 0.45)}
    for r, (E, nu) in want.items():
        assert np.all(f["E"][lab == r] == E) and np.all(f["nu"][lab == r] == nu)
    np.testing.assert_allclose(f["mu"], f["E"] / (2 * (1 + f["nu"])), rtol=1e-14)
    np.testing.assert_allclose(f["lam"], f["E"] * f["nu"] / (1 - f["nu"] ** 2), rtol=1e-14)
    # every region is well represented on the grid, brain roughly centred
    frac = np.bincount(lab.ravel(), minlength=3) / lab.size
    assert frac[1] > 0.1 and frac[2] > 0.05 and 0.3 < frac[0] < 0.8
    assert f["mask"].all() and np.isfinite(f["exx"]).all()
    strain_max = max(np.abs(f[c]).max() for c in ("exx", "eyy", "exy"))
    assert 0.01 < strain_max <= 0.05
    # compression: the top moves down, nothing moves at the bottom row in y
    assert f["uy"][0].mean() < 0 and np.abs(f["uy"][-1]).max() < 1e-12
    # far from the brain, the background is nearly uniaxial: syy ~ -traction at the top edge
    assert abs(np.median(f["syy"][0]) + 33.0) < 0.15 * 33.0


def test_global_equilibrium_on_the_brain_mesh(soft):
    _, s = soft
    top = np.array(s.attrs["top_traction_integral_N_per_m"])
    bottom = np.array(s.attrs["bottom_reaction_N_per_m"])
    assert abs(top[1]) == pytest.approx(33.0 * 0.0766, rel=1e-12)
    assert abs(top[1] + bottom[1]) <= 1e-8 * abs(top[1])
    assert abs(bottom[0]) <= 1e-8 * abs(top[1])


@pytest.mark.parametrize("raster", ["sibson", "fe"])
def test_homogeneous_brain_is_uniaxial_on_mesh_and_grid(raster):
    E, nu, s_ = 3000.0, 0.42, 40.0
    _, smp = make("elunet-soft", E_background=E, E_gray=E, E_white=E, nu_background=nu, nu_gray=nu, nu_white=nu,
                  traction=s_, raster=raster)
    f = smp.fields
    exact = {"exx": nu * s_ / E, "eyy": -s_ / E, "exy": 0.0, "sxx": 0.0, "syy": -s_, "sxy": 0.0}
    for k, v in exact.items():
        scale = s_ if k.startswith("s") else s_ / E
        assert np.abs(f[k] - v).max() <= 1e-8 * scale, (k, raster)
        assert np.abs(f[f"mesh_point_{k}"] - v).max() <= 1e-8 * scale, k
    # displacement is linear: uy = -s/E y, ux = nu s/E x (pinned at the bottom-left corner)
    pts = f["mesh_points"]
    np.testing.assert_allclose(f["mesh_point_uy"], -s_ / E * pts[:, 1], atol=1e-8 * s_ / E * 0.11)
    np.testing.assert_allclose(f["mesh_point_ux"], nu * s_ / E * pts[:, 0], atol=1e-8 * s_ / E * 0.11)


def test_presets_differ_as_the_paper_says():
    _, stiff = make("elunet-stiff")
    assert np.all(stiff.fields["E"][stiff.fields["labels"] == 0] == 5000.0)
    assert stiff.attrs["traction_Pa"] == 53.0
    cfg, noisy = make("elunet-noisy")
    f = noisy.fields
    for c in ("exx", "eyy", "exy"):
        resid = f[c] - f[f"{c}_clean"]
        rms = np.sqrt(np.mean(f[f"{c}_clean"] ** 2))
        assert resid.std() == pytest.approx(0.10 * rms, rel=0.05)
        assert abs(resid.mean()) < 0.01 * rms


def test_random_preset_draws_within_ranges_and_is_reproducible():
    cfg = GEN.config("random")
    seen_inclusion = False
    for i in range(4):
        s = GEN.sample(cfg, sample_rng(7, i), i)
        mats = s.attrs["materials"]
        for region, m in mats.items():
            if region == "inclusion":
                seen_inclusion = True
                assert cfg.inclusion_E[0] <= m["E_Pa"] <= cfg.inclusion_E[1]
                assert np.any(s.fields["labels"] == 3)
                continue
            assert cfg.E_range[0] <= m["E_Pa"] <= cfg.E_range[1]
            assert cfg.nu_range[0] <= m["nu"] <= cfg.nu_range[1]
        e_min = min(m["E_Pa"] for m in mats.values())
        nominal = s.attrs["traction_Pa"] / e_min
        assert cfg.max_nominal_strain[0] <= nominal <= cfg.max_nominal_strain[1]
        assert np.isfinite(s.fields["exx"]).all()
    assert seen_inclusion
    a = GEN.sample(cfg, sample_rng(7, 2), 2).fields
    b = GEN.sample(cfg, sample_rng(7, 2), 2).fields
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    c = GEN.sample(cfg, sample_rng(8, 2), 2).fields
    assert not np.array_equal(a["E"], c["E"])
