"""The kheil generator against its stated facts: cuboid sizes, pose and shift distributions, the exact map
(warping the moving image with the true displacement reproduces the fixed one away from the voxelised edges),
the rigid part's strain, the sliding interface, the 2-D presets as z-slices of the 3-D ones, the splits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from phantombench.generators.base import sample_rng
from phantombench.generators.kheil import Kheil, draw_pose, grid_coords, rigid_inside
from phantombench.registration import small_strain_sq, warp

GEN = Kheil()


def sample(preset: str, index: int = 0, seed: int = 0, **overrides):
    cfg = GEN.config(preset, overrides)
    return cfg, GEN.sample(cfg, sample_rng(seed, index), index)


def test_cuboid_and_block_sizes_at_zero_angle():
    for ndim, expect in ((3, 7 * 29 * 20), (2, 7 * 29)):      # |u| < 4: 7 voxels, |v| < 15: 29, 20 along z
        cfg = GEN.config("kheil-rigid" if ndim == 3 else "kheil-rigid-2d")
        inside = rigid_inside(grid_coords(cfg), [32] * ndim, 0.0)
        assert inside.sum() == expect
        extent = [np.ptp(np.nonzero(inside)[a]) + 1 for a in range(ndim)]
        assert extent == [7, 29, 20][:ndim]
    _, s = sample("kheil-sliding")
    assert (s.fields["fixed_labels"] == 1).sum() == (s.fields["fixed_labels"] == 2).sum() == 20 * 10 * 20
    _, s = sample("kheil-sliding-2d")
    assert (s.fields["fixed_labels"] == 1).sum() == 20 * 10


def test_pose_and_shift_distributions_over_many_draws():
    cfg = GEN.config("kheil-rigid")
    rng = np.random.default_rng(1)
    poses = [draw_pose(cfg, rng) for _ in range(4000)]
    off = np.array([p["centre"] for p in poses]) - 32
    ang = np.array([p["angle"] for p in poses])
    z = rng.standard_normal(400_000)
    trunc4, trunc3 = np.trunc(4 * z), np.trunc(3 * z)          # int() of 4 N(0,1): std about 3.9
    assert np.issubdtype(off.dtype, np.integer) and abs(off.mean()) < 0.25
    assert off.std() == pytest.approx(trunc4.std(), rel=0.05)
    assert abs(ang.mean()) < 0.015 and ang.std() == pytest.approx(0.2, rel=0.05)
    shifts = np.array([sample("kheil-sliding-2d", i)[1].attrs["shift_px"] for i in range(300)])
    assert shifts.std() == pytest.approx(trunc3.std(), rel=0.15) and abs(shifts.mean()) < 0.5


def _far_from_edges(fixed_labels: np.ndarray, dist: float = 2.0) -> np.ndarray:
    inside = fixed_labels > 0
    return (ndimage.distance_transform_edt(inside) > dist) | (ndimage.distance_transform_edt(~inside) > dist)


@pytest.mark.parametrize("preset, n, dist", [("kheil-rigid-2d", 30, 3.5), ("kheil-sliding-2d", 30, 0.0),
                                             ("kheil-rigid", 2, 3.5), ("kheil-sliding", 2, 0.0)])
def test_warping_moving_with_the_truth_reproduces_fixed_away_from_edges(preset, n, dist):
    """Rigid: error 0 (to 1e-6) at voxels more than 3.5 voxels (distance transform) from the other class -- the
    interpolation corners (up to sqrt(ndim) away) and their smoothing neighbours (1 more) lie on the same side
    of the continuous edge there; nearer, the two voxelisations of the same shape differ (mean |error| below
    0.25). Sliding (integer shifts, no smoothing): exact on the whole grid."""
    for i in range(n):
        _, s = sample(preset, i)
        f = s.fields
        err = np.abs(warp(f["moving"], f["disp"], 1) - f["fixed"])
        far = _far_from_edges(f["fixed_labels"], dist)
        assert err[far].max() < 1e-6, (preset, i)
        assert err[~far].mean() < 0.25 if (~far).any() else True
        back = warp(f["moving_labels"], f["disp"], 0)
        assert np.mean(back[far] == f["fixed_labels"][far]) == 1.0


def test_rigid_truth_strain_is_only_the_rotation_and_scale_term():
    """The exact map is scale k times a rotation by phi: small strain (k cos phi - 1) I in-plane, so
    ||eps||^2 = 2 (k cos phi - 1)^2 on every voxel: the rotation term 2 (1 - cos phi)^2 up to
    the scale's |k - 1|, k = sqrt((1 + sin^2 t) / (1 + sin^2 t'))."""
    for preset in ("kheil-rigid-2d", "kheil-rigid"):
        for i in range(5):
            cfg, s = sample(preset, i)
            f, a = s.fields, s.attrs
            e2 = small_strain_sq(f["disp"], np.asarray(a["spacing_mm"]))[f["mask"] == 1]
            k, phi = a["map_scale"], a["map_angle_rad"]
            assert np.allclose(e2, 2 * (k * np.cos(phi) - 1) ** 2, rtol=1e-9, atol=1e-14)
            s1, s2 = np.sin(a["fixed_pose"]["angle"]), np.sin(a["moving_pose"]["angle"])
            assert k == pytest.approx(np.sqrt((1 + s1 ** 2) / (1 + s2 ** 2)))
            assert abs(np.sqrt(e2.max() / 2) - (1 - np.cos(phi))) <= abs(k - 1) + 1e-12


def test_sliding_interface_fields():
    for preset in ("kheil-sliding-2d", "kheil-sliding"):
        cfg, s = sample(preset, 3)
        f, a = s.fields, s.attrs
        cy, shift = a["centre"][1], a["shift_px"]
        j = np.indices(f["mask"].shape)[1]
        assert set(np.unique(f["disp"][0])) <= {-shift, shift} and np.all(f["disp"][1:] == 0)
        assert np.all(f["disp"][0][j < cy] == -shift) and np.all(f["disp"][0][j >= cy] == shift)
        slab = f["body"] & ((j == cy - 1) | (j == cy))
        assert np.array_equal(f["mask"] == 2, slab) and np.all(f["mask"][f["body"] & ~slab] == 1)
        assert np.all(f["normals"][1][slab] == 1) and np.abs(f["normals"]).sum() == slab.sum()
        assert np.allclose(f["jac_det"], 1.0)
        assert set(np.unique(f["fixed"])) == {0.0, np.float32(0.8), 1.0}


def test_2d_presets_are_the_z_slice_of_the_3d_ones():
    for mode in ("rigid", "sliding"):
        _, s3 = sample(f"kheil-{mode}", 4)
        _, s2 = sample(f"kheil-{mode}-2d", 4)
        cz = (s3.attrs["fixed_pose"]["centre"] if mode == "rigid" else s3.attrs["centre"])[2]
        assert np.array_equal(s2.fields["fixed"], s3.fields["fixed"][:, :, cz])
        assert np.allclose(s2.fields["disp"], s3.fields["disp"][:2, :, :, cz])
        assert np.array_equal(s2.fields["mask"], s3.fields["mask"][:, :, cz])


def test_landmarks_move_with_the_truth():
    for preset in ("kheil-rigid-2d", "kheil-sliding", "kheil-rigid"):
        cfg, s = sample(preset, 2)
        f = s.fields
        lf = f["landmarks_fixed"].astype(int)
        assert f["body"][tuple(lf.T)].all() and len(np.unique(lf, axis=0)) == cfg.n_landmarks
        at = f["disp"][(slice(None),) + tuple(lf.T)].T
        assert np.allclose(f["landmarks_moving"], f["landmarks_fixed"] + at, atol=1e-12)


def test_splits_follow_the_paper():
    cfg = GEN.config("kheil-rigid-2d")
    sp = GEN.splits(cfg, 300)
    assert [len(sp[k]) for k in ("train", "val", "test")] == [200, 50, 50] and sp["test"][-1] == 299


def test_card_states_the_convention():
    text = GEN.card(GEN.config("kheil-sliding-2d"))
    assert "moving(x + disp(x)) = fixed(x)" in text and "64 x 64" in text
