"""Observation noise models: the "observe" stage of every generator.

* :func:`relative_gaussian` -- brain-slice strains: i.i.d. Gaussian, std a fraction of the image's RMS;
* :func:`gaussian_at_snr_db` -- EIT voltages: i.i.d. Gaussian at an SNR in dB of the RMS signal;
* :func:`complex_gaussian_at_snr` -- MRE displacements: circular complex Gaussian per frequency, SNR referred
  to the RMS magnitude over a reference region, added over a mask;
* :func:`complex_gaussian_map` -- MRE displacements: circular complex Gaussian with a per-pixel standard
  deviation (physical noise maps, e.g. from MR phase noise);
* :func:`phase_offset_images` -- MRE wave images, the real part of the complex field at N phase offsets.

Each draws from the generator it is given, in a fixed order, so a sample's noise depends on its seed only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["relative_gaussian", "gaussian_at_snr_db", "complex_gaussian_at_snr", "complex_gaussian_map",
           "phase_offset_images"]


def relative_gaussian(clean: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``clean`` plus i.i.d. N(0, s^2) with ``s = fraction * rms(clean)`` (RMS over the finite values)."""
    rms = float(np.sqrt(np.nanmean(clean**2)))
    return clean + rng.normal(0.0, fraction * rms, clean.shape)


def gaussian_at_snr_db(clean: np.ndarray, snr_db: float | None,
                       rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """(noisy, noise std, rms of clean): i.i.d. N(0, s^2), ``s = rms(clean) 10^(-snr_db / 20)``;
    ``snr_db=None`` gives a noise-free copy and draws nothing."""
    rms = float(np.sqrt(np.mean(clean ** 2))) if clean.size else 0.0
    if snr_db is None:
        return clean.copy(), 0.0, rms
    std = rms * 10.0 ** (-snr_db / 20.0)
    return clean + std * rng.standard_normal(clean.shape), std, rms


def complex_gaussian_at_snr(U: np.ndarray, mask: np.ndarray, ref: np.ndarray, snr: float | None,
                            rng: np.random.Generator) -> tuple[np.ndarray, list[float]]:
    """(noisy, sigma per frequency) for complex fields ``U`` (F, C, H, W).

    Per frequency ``sigma = rms_ref(|U|) / snr`` over the pixels of ``ref``; real and imaginary parts each get
    N(0, sigma^2 / 2), independently per pixel of ``mask`` and component. ``snr=None`` (or a zero signal) adds
    nothing for that frequency and draws nothing.
    """
    noisy = U.copy()
    C = U.shape[1]
    sigmas = []
    for j in range(U.shape[0]):
        amp = np.abs(U[j][:, ref])
        rms = float(np.sqrt(np.mean(amp**2))) if amp.size else 0.0
        sigma = rms / snr if snr else 0.0
        sigmas.append(sigma)
        if sigma > 0:
            nz = rng.normal(size=(2, C, int(mask.sum()))) * (sigma / np.sqrt(2))
            noisy[j][:, mask] += nz[0] + 1j * nz[1]
    return noisy, sigmas


def complex_gaussian_map(U: np.ndarray, mask: np.ndarray, sigma: np.ndarray,
                         rng: np.random.Generator) -> np.ndarray:
    """``U`` (F, C, H, W) plus circular complex Gaussian noise over ``mask``: real and imaginary parts of each
    component independently N(0, sigma_f(x)^2), ``sigma`` (F, H, W) the per-real-part standard deviation."""
    noisy = U.copy()
    C, n = U.shape[1], int(mask.sum())
    for j in range(U.shape[0]):
        nz = rng.normal(size=(2, C, n)) * sigma[j][mask]
        noisy[j][:, mask] += nz[0] + 1j * nz[1]
    return noisy


def phase_offset_images(U: np.ndarray, n_offsets: int) -> np.ndarray:
    """``Re[U exp(i 2 pi n / N)]``, n = 0..N-1, for ``U`` (F, C, H, W) -> (F, C, N, H, W)."""
    theta = 2 * np.pi * np.arange(n_offsets) / n_offsets
    return np.real(U[:, :, None] * np.exp(1j * theta)[None, None, :, None, None])
