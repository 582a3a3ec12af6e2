"""Metrics against hand-computed values and against scikit-image / NumPy where they have one."""

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from phantombench import metrics as M


def test_mare_hand_value_and_mask():
    g = np.array([100.0, 100.0, 200.0, 50.0])
    p = np.array([110.0, 90.0, 200.0, 0.0])
    # |10|/100, |10|/100, 0, |50|/50  -> mean (0.1 + 0.1 + 0 + 1) / 4 = 0.3 -> 30 %
    assert M.mare(p, g) == pytest.approx(30.0)
    assert M.mare(p, g, mask=np.array([True, True, True, False])) == pytest.approx(100 * 0.2 / 3)
    assert np.isnan(M.mare(p, g, mask=np.zeros(4, bool)))


def test_rie_hand_value():
    g = np.array([3.0, 4.0])          # ||g|| = 5
    p = np.array([3.0, 1.0])          # ||p - g|| = 3
    assert M.rie(p, g) == pytest.approx(0.6)
    assert M.rie(g, g) == 0.0


def test_pearson_hand_and_numpy():
    g = np.array([1.0, 2.0, 3.0])
    p = np.array([2.0, 4.0, 7.0])
    # deviations g: (-1, 0, 1); p: mean 13/3 -> (-7/3, -1/3, 8/3); cov = 7/3 + 8/3 = 5; |dg| = sqrt 2;
    # |dp|^2 = (49 + 1 + 64)/9 = 114/9
    hand = 5.0 / (np.sqrt(2.0) * np.sqrt(114.0 / 9.0))
    assert M.pearson(p, g) == pytest.approx(hand, rel=1e-12)
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 40, 30))
    assert M.pearson(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], rel=1e-12)
    # conventions: constant prediction scores 0, constant truth is undefined
    assert M.pearson(np.full(3, 0.1), g) == 0.0
    assert np.isnan(M.pearson(p, np.full(3, 2.0)))


def test_r2_hand_value():
    g = np.array([1.0, 2.0, 3.0])     # SS_tot = 2
    p = np.array([1.0, 2.0, 2.0])     # SS_res = 1
    assert M.r2(p, g) == pytest.approx(0.5)
    assert M.r2(g, g) == 1.0
    assert M.r2(np.array([3.0, 2.0, 1.0]), g) == pytest.approx(1 - 8 / 2)   # worse than the mean: negative


def test_ssim_equals_scikit_image_without_mask():
    rng = np.random.default_rng(0)
    g = rng.uniform(1000, 2000, size=(40, 30))
    p = g + rng.normal(0, 100, size=g.shape)
    want = structural_similarity(g, p, win_size=7, data_range=g.max() - g.min(), gaussian_weights=False)
    assert M.ssim(p, g) == pytest.approx(want, rel=1e-12)
    assert M.ssim(g, g) == pytest.approx(1.0)


def test_ssim_hand_value_constant_images():
    # both images constant: only the luminance term is left, (2 mu_p mu_g + C1) / (mu_p^2 + mu_g^2 + C1),
    # with data range max|g| = 1 (g constant) -> C1 = (0.01 * 1)^2
    g = np.ones((12, 12))
    p = 2 * np.ones((12, 12))
    c1 = 1e-4
    assert M.ssim(p, g) == pytest.approx((4 + c1) / (5 + c1), rel=1e-12)


def test_ssim_mask_ignores_outside_pixels():
    rng = np.random.default_rng(2)
    g = rng.uniform(0, 1, size=(30, 30))
    p = g + rng.normal(0, 0.1, size=g.shape)
    yy, xx = np.mgrid[:30, :30]
    disk = (yy - 14.5) ** 2 + (xx - 14.5) ** 2 < 13**2
    p2 = p.copy()
    p2[~disk] = 1e6                      # garbage outside the evaluation region changes nothing
    assert M.ssim(p2, g, disk) == pytest.approx(M.ssim(p, g, disk), rel=1e-12)
    assert M.ssim(p, g, disk) != pytest.approx(M.ssim(p, g), rel=1e-3)


def test_lesion_contrast_error_hand_value():
    g = np.array([3.0, 3.0, 1.0, 1.0, 1.0])       # contrast 3/1 - 1 = 2
    p = np.array([2.0, 2.0, 1.0, 1.0, 1.0])       # contrast 1
    lesion = np.array([1, 1, 0, 0, 0], bool)
    ref = ~lesion
    assert M.contrast(g, lesion, ref) == pytest.approx(2.0)
    assert M.lesion_contrast_error(p, g, lesion, ref) == pytest.approx(50.0)
    assert np.isnan(M.lesion_contrast_error(p, g, np.zeros(5, bool), ref))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        M.mare(np.ones(3), np.ones(4))


def test_masked_ssim_equals_scikit_image_map_averaged_over_the_mask():
    rng = np.random.default_rng(3)
    g = rng.uniform(1, 3, size=(60, 50))
    p = g + rng.normal(0, 0.3, size=g.shape)
    yy, xx = np.mgrid[:60, :50]
    blob = (yy - 20) ** 2 / 100 + (xx - 30) ** 2 / 40 < 1          # small, off-centre region
    g0, p0 = np.where(blob, g, 0), np.where(blob, p, 0)
    rng_g = g[blob].max() - g[blob].min()
    _, smap = structural_similarity(g0, p0, win_size=7, data_range=rng_g, gaussian_weights=False, full=True)
    inner = np.zeros_like(blob)
    inner[3:-3, 3:-3] = True
    assert M.ssim(p, g, blob) == pytest.approx(smap[blob & inner].mean(), rel=1e-12)
