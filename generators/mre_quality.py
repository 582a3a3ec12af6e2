"""MRE acquisition noise in physical units and per-pixel wave quality (used by ``liver-mre``).

Noise model (``noise_model = "phase"``): an MR phase image of magnitude SNR ``s`` carries phase noise of standard
deviation ``1/s`` rad (the high-SNR limit of the phase of a complex Gaussian signal); a motion-encoding gradient
maps a displacement amplitude ``u`` to a phase ``xi u`` (``xi`` the encoding efficiency [rad/m]), so one wave
image has displacement noise ``1 / (s xi)``. The stored complex field is the first temporal harmonic of ``N``
wave images (``U = 2/N sum_n w_n exp(-i theta_n)``), whose real and imaginary parts each get standard deviation
``sqrt(2/N) / (s xi)``. The magnitude SNR varies over the image with the magnitude image: a relative tissue
signal times a receive-coil sensitivity falling with depth below the skin.

Quality: the fraction of liver pixels whose clean displacement magnitude is at least 10 times the per-part
noise standard deviation, the octahedral shear strain (OSS) SNR (signal OSS over the local RMS OSS of the noise
field itself), and how many shear wavelengths the liver spans along the driver direction.
"""

from __future__ import annotations

import numpy as np

# relative magnitude signal per tissue label (meshes/abdomen.py), liver = 1: an assumed gradient-echo
# weighting (fat brighter, flowing blood and cortical bone darker); only its ratios matter
TISSUE_MAGNITUDE = {1: 1.5, 2: 0.8, 3: 1.0, 4: 1.0, 5: 0.6, 6: 1.1, 7: 1.2, 8: 0.4, 9: 0.5}


def magnitude_image(labels: np.ndarray, mask: np.ndarray, pixel_size: float, coil_depth: float,
                    coil_floor: float) -> np.ndarray:
    """Relative magnitude image: tissue signal times coil sensitivity ``floor + (1 - floor) exp(-d / depth)``,
    ``d`` the distance below the skin [m]; 0 outside ``mask``."""
    from scipy.ndimage import distance_transform_edt

    d = distance_transform_edt(np.pad(mask, 1)) [1:-1, 1:-1] * pixel_size
    coil = coil_floor + (1.0 - coil_floor) * np.exp(-d / coil_depth)
    tissue = np.zeros(labels.shape)
    for lab, v in TISSUE_MAGNITUDE.items():
        tissue[labels == lab] = v
    return np.where(mask, tissue * coil, 0.0)


def phase_noise_sigma(magnitude: np.ndarray, ref: np.ndarray, magnitude_snr: float,
                      encoding_efficiency: float, n_offsets: int) -> np.ndarray:
    """Per-part standard deviation [m] of the first-harmonic displacement: the magnitude SNR is
    ``magnitude_snr`` on average over ``ref`` (the liver) and scales with ``magnitude``."""
    snr = magnitude_snr * magnitude / float(np.mean(magnitude[ref]))
    with np.errstate(divide="ignore"):
        sigma_wave = np.where(snr > 0, 1.0 / (np.maximum(snr, 1e-12) * encoding_efficiency), 0.0)
    return sigma_wave * np.sqrt(2.0 / n_offsets)


def octahedral_shear_strain(U: np.ndarray, h: float) -> np.ndarray:
    """OSS amplitude of complex displacements ``U`` (C, H, W) on a grid of spacing ``h``: C = 1 is the
    out-of-plane component (strains e_xz, e_yz), C = 2 the in-plane (x, y) components under plane strain
    (e_zz = 0). Central differences; NaN where a neighbour is outside the body."""
    gy, gx = (lambda a: (-np.gradient(a, h, axis=0), np.gradient(a, h, axis=1)))(U[0])
    if U.shape[0] == 1:
        sq = 6 * (np.abs(0.5 * gx) ** 2 + np.abs(0.5 * gy) ** 2)
    else:
        vy_y, vy_x = -np.gradient(U[1], h, axis=0), np.gradient(U[1], h, axis=1)
        exx, eyy, exy = gx, vy_y, 0.5 * (gy + vy_x)
        sq = np.abs(exx - eyy) ** 2 + np.abs(eyy) ** 2 + np.abs(exx) ** 2 + 6 * np.abs(exy) ** 2
    return 2.0 / 3.0 * np.sqrt(sq)


def local_rms(x: np.ndarray, valid: np.ndarray, size: int = 9) -> np.ndarray:
    """RMS of ``x`` over a ``size`` x ``size`` window, counting only ``valid`` pixels."""
    from scipy.ndimage import uniform_filter

    v = valid & np.isfinite(x)
    num = uniform_filter(np.where(v, x**2, 0.0), size)
    den = uniform_filter(v.astype(float), size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(num / den)


def wave_quality(U: np.ndarray, noisy: np.ndarray, sigma: np.ndarray, liver: np.ndarray, h: float,
                 wavelength: np.ndarray, axis: np.ndarray | None) -> dict[str, float]:
    """Quality of one frequency: ``U``, ``noisy`` (C, H, W), ``sigma`` (H, W) the per-part noise std,
    ``wavelength`` (H, W) the shear wavelength [m], ``axis`` the driver direction (image x, y) or None."""
    amp = np.sqrt(np.sum(np.abs(U) ** 2, axis=0))
    lv = liver & np.isfinite(amp)
    above = float(np.mean(amp[lv] >= 10 * sigma[lv])) if lv.any() else float("nan")
    oss = octahedral_shear_strain(U, h)
    oss_n = local_rms(octahedral_shear_strain(noisy - U, h), np.isfinite(amp))
    ok = lv & np.isfinite(oss) & (oss_n > 0)
    snr = oss[ok] / oss_n[ok] if ok.any() else np.array([np.nan])
    out = {"fraction_liver_above_10x_noise": above,
           "oss_snr_median": float(np.median(snr)),
           "oss_snr_fraction_above_3": float(np.mean(snr >= 3.0)),
           "liver_amplitude_median_m": float(np.median(amp[lv])) if lv.any() else float("nan"),
           "noise_sigma_liver_median_m": float(np.median(sigma[lv])) if lv.any() else float("nan")}
    out["wavelengths_across_liver"] = wavelengths_across(liver, h, wavelength, axis)
    return out


def wavelengths_across(liver: np.ndarray, h: float, wavelength: np.ndarray, axis: np.ndarray | None) -> float:
    """Extent of the liver along ``axis`` (image x, y; default its longest bounding-box side) over the
    median shear wavelength in the liver."""
    rows, cols = np.nonzero(liver)
    if rows.size == 0:
        return float("nan")
    xy = np.column_stack([cols * h, -rows * h])
    if axis is None:
        ext = float(np.max(xy.max(axis=0) - xy.min(axis=0)))
    else:
        s = xy @ (np.asarray(axis, float) / np.linalg.norm(axis))
        ext = float(s.max() - s.min())
    return ext / float(np.nanmedian(wavelength[liver]))
