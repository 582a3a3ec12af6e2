"""DIME-style CNN for the ``mre`` task (P2: deep-learning inversion for MR elastography).

A UNet with skip connections maps the complex first-harmonic displacement at one drive frequency (60 Hz) to
the shear-modulus magnitude |G*| (and the phase angle phi, which the task also asks for). It is trained with
:meth:`DIME.fit` on generated ``liver-mre`` phantoms (FEM displacement / stiffness pairs only, as in the paper)
and then inverts a new displacement field in one forward pass.

Field (``curl``): what the network sees of the displacement, following the physics as the direct inversions do
(:mod:`phantombench.solvers.mre_direct`).

* ``"auto"`` (default): for in-plane (plane-strain, two-component U_x, U_y) data the curl
  ``q = dU_y/dx - dU_x/dy`` (:func:`curl_field`: the field filled outside the tissue, Butterworth low-pass of
  cut-off wavelength ``curl_cutoff`` = 8 mm as AHI/MDEV use, central differences), one complex channel; a scalar
  (antiplane U_z) field as it is. The curl removes the compressional part of the field -- in these nearly
  incompressible phantoms a long-wavelength near-field push that dominates the raw components but carries no
  shear stiffness -- and keeps the shear wave, whose wavelength encodes |G*|. The 8 mm low-pass keeps the
  derivative's noise down: on three train-s1-n60 phantoms the curl's SNR over the liver is 3-5 unfiltered and
  10-16 after it (the displacement's own: 21-35).
* ``"off"``: the displacement components themselves (version 1.0's input).

Measured (width 8, depth 4, 64-pixel patches, batch 8, 600 steps, seed 0; trained on train-s1-n60's 54 train
phantoms, best weights on its 6 val phantoms; scored on the official dime-liver v2 val split, 4 phantoms):
per-phantom r / pooled r / MARE of |G*| over the liver, components 0.343 / 0.333 / 36.2 %, curl 0.734 / 0.718 /
21.5 %; with the exact augmentation (below) components 0.341 / 0.351 / 36.0 %, curl 0.747 / 0.725 / 20.5 %.
Same set-up, curl, exact augmentation: cut-off 6 mm 0.752 / 0.734 / 20.7 %, no low-pass 0.741 / 0.677 / 21.1 %;
wave descriptors off (``features=raw``) 0.669 / 0.645 / 23.5 %. 1500 steps: with augmentation 0.752 / 0.740 /
19.8 %, without 0.764 / 0.775 / 19.1 % (on train-s1-n60's 6 val phantoms 0.536 vs 0.585): at these budgets the
rotations and mirrors, although exact, cost more than they give (likely because the phantoms' driver always sits
on the same side, so turned patches show wave directions the test phantoms never have), and the protocols here
train with ``augment=false``. At the board's budget (width 16, 96-pixel patches, 1500 steps, no augmentation;
same data, same val split): components r 0.666 / pooled 0.636 / MARE 22.2 % / RIE 0.389, curl 0.810 / 0.852 /
16.3 % / 0.273 (AHI on the same 4 phantoms: 0.592 / 0.659 / 27.8 % / 0.392).

Input (``features``), built from that field:

* ``"raw"`` -- ``2 C + 1`` channels: the real and imaginary parts of the field of each component (C = 1 for the
  curl), *scaled* (below), and the tissue mask. This is DIME's input.
* ``"raw+wave"`` (default) -- the same plus three fixed local wave descriptors (:func:`wave_features`: log local
  wavenumber from the gradient and from the Laplacian of the low-passed field, log local amplitude). They are
  deterministic functions of the same displacement (no extra data); a CNN could learn them, but on this CPU the
  budget is small and they speed learning up: measured on 32 training phantoms (width 8, 64-pixel patches,
  batch 4), validation L1 of log|G*| 0.269 vs 0.318 after 500 steps, and r 0.45 vs 0.35 on a separate 6-phantom
  set after 800 steps. ``--param features=raw`` gives the paper's pure input.

Scaling (``scaling``):

* ``"local"`` (default): divide by the local RMS amplitude ``a = sqrt(G_s * (m |U|^2) / G_s * m)`` (Gaussian
  ``G_s`` of ``sigma_px`` pixels, m the tissue mask). The waves decay by two orders of magnitude from the driver
  to the deep liver (the generator card), so a global scale leaves the deep liver as near-zero input; the local
  scale makes every region's wave pattern O(1) while keeping wavelength and attenuation, which is what carries
  the stiffness (a direct inversion is invariant to the same rescaling).
* ``"global"``: divide by the RMS amplitude over the mask (the paper's "scaled" input in its simplest reading).

Output (2 channels): ``(log(|G*| / (rho f^2 dy dx)) - 5.5)`` and ``phi / 0.5``. ``rho f^2 dy dx`` is the modulus of
a wave one pixel long, so the first channel is (twice) the log of the local wavelength in pixels: the network
learns a dimensionless map, and a field at another frequency, pixel size or density is decoded with its own
``rho f^2 dy dx`` (exact for the wavelength-to-modulus relation; the damping part is not rescaled).

Architecture: ``depth`` levels of [3x3 conv + batch norm + ReLU] x 2, ``width * 2^k`` channels at level k, 2x2
max-pool down, 2x2 transposed convolution up, skip concatenation, 1x1 head. Receptive field with depth 4:
~180 pixels (27 cm), more than the longest wavelength in the liver at 60 Hz (a 15 kPa lesion: ~43 px).

Patches, and why the inference is a full-image pass. DIME's public inference code cuts 30-pixel patches with
stride 3 and averages the overlapping predictions. This network is fully convolutional, so it is trained on
random ``crop`` x ``crop`` patches (centred on tissue pixels; many patches per phantom, random flips, 90-degree
rotations and a random global phase e^{i theta}, all exact symmetries of the isotropic problem once the field
turns with the image: :func:`transform_field` negates the curl under a mirror and turns the components of a
vector field, so ``augment`` is exact for every field kind) and
applied to the whole 256 x 256 image at once: the same translation-equivariant map as a dense sliding window,
with a receptive field larger than a 30-pixel patch (a 30-pixel patch holds less than one wavelength of a
stiff lesion), no seams and one pass instead of ~5,600 patch passes.

Loss: L1 on both output channels over the tissue mask, pixels of the liver (the observation's ``liver_mask``,
the task's scored region) weighted ``liver_weight`` times; ``phi_weight`` on the phase channel. AdamW with a
one-cycle schedule; the validation loss (full images) picks the best weights.

Training runs in the shared loop (:mod:`phantombench.solvers.training`) and is resumable: a checkpoint (model,
optimiser, schedule, scaler, step, RNG states, history) is written every ``val_every`` steps atomically into
``checkpoint_dir`` (default ``~/.cache/phantombench/dime/<key>``, key = hash of the content fingerprints of the
training and validation splits, the seed and the parameters that change the result); a later ``fit`` with the
same key resumes from it. The final weights (``weights.pt``) carry the fingerprints of the data they were
trained on, the parameters and the history; ``solve`` can load them with ``--param weights=PATH`` instead of
fitting. Seeds: torch and the patch sampler are seeded from the
run seed. Mixed precision (``amp``): ``"auto"`` uses float16 autocast with a gradient scaler on CUDA and
full precision on the CPU; ``"bf16"`` forces bfloat16 autocast. CUDA when present (``self.device``).
``threads`` (default 1) sets torch's CPU threads: on the shared 2-core machine, 2 OpenMP threads made a training
step 7-50x slower than 1 (threads wait on busy cores; ``scripts/bench_mre_solvers.py``).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from phantombench.solvers.base import Solver
from phantombench.solvers.mre_direct import read_observation, use_curl
from phantombench.solvers.training import (Budget, Checkpoint, Fingerprint, Precision, Trainer, atomic_save,
                                             seed_everything, tag_hash)

LOG_MID, LOG_SCALE = 5.5, 1.0
PHI_SCALE = 0.5
G_MIN, G_MAX = 50.0, 2e5

# parameters that change what is learned (they make the checkpoint key; the others do not)
_KEY_PARAMS = ("width", "depth", "crop", "batch", "steps", "lr", "weight_decay", "liver_weight", "phi_weight",
               "sigma_px", "scaling", "features", "frequency", "augment", "amp", "val_every", "curl", "curl_cutoff")


# ------------------------------------------------------------------------------------------ features
def modulus_unit(freq: float, spacing: tuple[float, float], rho: float) -> float:
    """rho f^2 dy dx: the modulus of a shear wave one pixel long [Pa]."""
    return float(rho * freq**2 * spacing[0] * spacing[1])


def scale_displacement(u: np.ndarray, mask: np.ndarray, scaling: str = "local", sigma_px: float = 4.0) -> np.ndarray:
    """u complex (C, H, W) -> scaled complex (C, H, W), zero outside the mask."""
    u = np.where(mask, np.nan_to_num(u), 0)
    m = mask.astype(np.float64)
    p = (np.abs(u) ** 2).sum(axis=0)
    if scaling == "global":
        rms = math.sqrt(float(p[mask].mean())) if mask.any() else 1.0
        return u / max(rms, 1e-30)
    if scaling != "local":
        raise ValueError(f"scaling must be 'local' or 'global', not {scaling!r}")
    num = ndimage.gaussian_filter(p, sigma_px, mode="constant")
    den = ndimage.gaussian_filter(m, sigma_px, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.sqrt(np.where(den > 1e-6, num / den, 0.0))
    floor = 1e-3 * float(a[mask].max()) if mask.any() else 1.0
    return np.where(mask, u / np.maximum(a, max(floor, 1e-30)), 0)


def wave_features(u: np.ndarray, mask: np.ndarray, smooth_px: float = 2.0, cutoff_px: float = 16.0) -> np.ndarray:
    """Three local wave descriptors (3, H, W), each a fixed function of the displacement:

    * log local wavenumber from the gradient, ``log(sqrt(G_s|grad U|^2 / G_s|U|^2))`` (rad per pixel), as in local
      frequency estimation -- |k| for a plane wave;
    * log local wavenumber from the Laplacian, ``log(sqrt(G_s|lap U| / G_s|U|))`` -- |k| for a plane wave, the
      quantity a Helmholtz (MDEV-type) inversion divides by;
    * log10 of the local amplitude relative to its maximum over the tissue (where the data meet the noise floor).

    Finite differences in pixel units on the field filled outside the tissue from the nearest tissue pixel and
    low-pass filtered (Butterworth, order 3, cut-off wavelength ``cutoff_px`` pixels); ``G_s`` a masked Gaussian
    of ``smooth_px`` pixels. Each map is centred to O(1) values. On the tuning set (dime-liver, seed 100) the
    modulus implied by the second descriptor alone scores r 0.60 / MARE 18.5 % over the liver (tuned AHI: 0.55 /
    19.7 %)."""
    from phantombench.solvers.mre_direct import butterworth_lowpass, fill_outside, laplacian

    uf = butterworth_lowpass(fill_outside(np.where(mask, np.nan_to_num(u), 0), mask), (1.0, 1.0), cutoff_px, 3)
    gy, gx = np.gradient(uf, axis=(-2, -1))
    lap = laplacian(uf, (1.0, 1.0))
    m = mask.astype(np.float64)
    den = np.maximum(ndimage.gaussian_filter(m, smooth_px, mode="constant"), 1e-6)

    def sm(a):
        return ndimage.gaussian_filter(a * m, smooth_px, mode="constant") / den

    p2 = sm((np.abs(uf) ** 2).sum(axis=0))
    g2 = sm((np.abs(gx) ** 2 + np.abs(gy) ** 2).sum(axis=0))
    l1 = sm(np.abs(lap).sum(axis=0))
    a1 = sm(np.abs(uf).sum(axis=0))
    tiny = 1e-30
    k_grad = 0.5 * np.log(np.maximum(g2, tiny) / np.maximum(p2, tiny))
    k_lap = 0.5 * np.log(np.maximum(l1, tiny) / np.maximum(a1, tiny))
    amp = np.sqrt(np.maximum(p2, tiny))
    rel = np.log10(amp / max(float(amp[mask].max()) if mask.any() else 1.0, tiny))
    # centre: a 16-pixel wave has log|k| = log(2 pi / 16) ~ -0.93; amplitudes span ~3 decades
    feats = np.stack([k_grad + 0.93, k_lap + 0.93, rel / 2.0 + 1.0])
    return np.where(mask, np.clip(np.nan_to_num(feats), -5, 5), 0.0)


def curl_field(u: np.ndarray, mask: np.ndarray, spacing: tuple[float, float],
               cutoff_m: float | None = 0.008) -> np.ndarray:
    """The curl ``q = dU_y/dx - dU_x/dy`` (1, H, W) of an in-plane field (2, H, W), as the direct inversions take
    it: filled outside the mask from the nearest tissue pixel, Butterworth low-pass (order 3, cut-off wavelength
    ``cutoff_m``; None: none), then :func:`~phantombench.solvers.mre_direct.curl_z`. Zero outside the mask."""
    from phantombench.solvers.mre_direct import butterworth_lowpass, curl_z, fill_outside

    uf = fill_outside(np.where(mask, np.nan_to_num(u), 0), mask)
    if cutoff_m:
        uf = butterworth_lowpass(uf, spacing, float(cutoff_m), 3)
    return np.where(mask, curl_z(uf, spacing), 0)


def make_input(u: np.ndarray, mask: np.ndarray, scaling: str = "local", sigma_px: float = 4.0,
               features: str = "raw") -> np.ndarray:
    """(2 C + 1 [+ 3], H, W) float32: Re and Im of the scaled field per component, the mask, and with
    ``features="raw+wave"`` the three :func:`wave_features` maps. ``u`` is the displacement (C, H, W) or, for
    in-plane data with ``curl``, its curl (1, H, W) from :func:`curl_field`."""
    us = scale_displacement(u, mask, scaling, sigma_px)
    ch = []
    for c in range(us.shape[0]):
        ch += [us[c].real, us[c].imag]
    ch.append(mask.astype(np.float64))
    if features == "raw+wave":
        ch += list(wave_features(u, mask))
    elif features != "raw":
        raise ValueError(f"features must be 'raw' or 'raw+wave', not {features!r}")
    return np.stack(ch).astype(np.float32)


def make_target(abs_g: np.ndarray, phi: np.ndarray, unit: float, mask: np.ndarray) -> np.ndarray:
    """(2, H, W) float32 network target (0 outside the mask)."""
    g = np.where(mask & np.isfinite(abs_g) & (abs_g > 0), abs_g, unit * math.exp(LOG_MID))
    t0 = (np.log(g / unit) - LOG_MID) / LOG_SCALE
    t1 = np.where(mask & np.isfinite(phi), phi, 0.0) / PHI_SCALE
    return np.stack([np.where(mask, t0, 0), np.where(mask, t1, 0)]).astype(np.float32)


def decode(out: np.ndarray, unit: float) -> tuple[np.ndarray, np.ndarray]:
    """Network output (2, H, W) -> (|G*| [Pa], phi [rad]), clipped to physical ranges."""
    abs_g = unit * np.exp(np.clip(out[0].astype(np.float64) * LOG_SCALE + LOG_MID, -30, 30))
    phi = out[1].astype(np.float64) * PHI_SCALE
    return np.clip(abs_g, G_MIN, G_MAX), np.clip(phi, 0.0, np.pi / 2)


# ------------------------------------------------------------------------------------------ network
def build_unet(in_ch: int, out_ch: int = 2, width: int = 16, depth: int = 4):
    import torch
    from torch import nn

    def block(ci, co):
        return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True),
                             nn.Conv2d(co, co, 3, padding=1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.depth = depth
            chs = [width * 2**k for k in range(depth + 1)]
            self.down = nn.ModuleList([block(in_ch if k == 0 else chs[k - 1], chs[k]) for k in range(depth)])
            self.bottom = block(chs[depth - 1], chs[depth])
            self.up = nn.ModuleList([nn.ConvTranspose2d(chs[k + 1], chs[k], 2, stride=2) for k in range(depth)])
            self.dec = nn.ModuleList([block(2 * chs[k], chs[k]) for k in range(depth)])
            self.head = nn.Conv2d(chs[0], out_ch, 1)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            H, W = x.shape[-2:]
            m = 2**self.depth
            ph, pw = (-H) % m, (-W) % m
            if ph or pw:
                x = nn.functional.pad(x, (0, pw, 0, ph))
            skips = []
            for k in range(self.depth):
                x = self.down[k](x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottom(x)
            for k in reversed(range(self.depth)):
                x = self.up[k](x)
                x = self.dec[k](torch.cat([x, skips[k]], dim=1))
            return self.head(x)[..., :H, :W]

    return UNet()


def n_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


# ------------------------------------------------------------------------------------------ training
def dime_loss(out, y, w, phi_weight: float):
    """Weighted L1 over the mask: (total, log|G*| part, phi part); ``w`` the per-pixel weights (B, H, W)."""
    e = (out - y).abs()
    den = w.sum().clamp_min(1.0)
    l0 = (e[:, 0] * w).sum() / den
    l1 = (e[:, 1] * w).sum() / den
    return l0 + phi_weight * l1, l0, l1


def transform_field(x, r: int, flip: bool, kind: str):
    """Rotate the image stack ``x`` (channels, H, W; channels ``[Re U_0, Im U_0, Re U_1, Im U_1, ...]`` first) by
    ``r`` quarter turns (:func:`torch.rot90`) then mirror the columns if ``flip``, transforming the field's
    components with the image so that the result is the same physical field seen in the transformed frame:

    * ``"scalar"`` (antiplane U_z): the values only move;
    * ``"pseudo"`` (the in-plane curl dU_y/dx - dU_x/dy): a rotation keeps it, a mirror negates it;
    * ``"vector"`` (in-plane (U_x, U_y), x along the columns, y up): a quarter turn (counter-clockwise in the
      y-up frame) maps (U_x, U_y) -> (-U_y, U_x), the mirror U_x -> -U_x.

    Other channels (the mask, the wave descriptors: magnitudes, invariant under these maps) only move."""
    import torch

    x = torch.rot90(x, r, dims=(-2, -1))
    if flip:
        x = torch.flip(x, dims=(-1,))
    if kind == "scalar":
        return x
    x = x.clone()
    if kind == "pseudo":
        if flip:
            x[0:2] = -x[0:2]
        return x
    if kind != "vector":
        raise ValueError(f"field kind must be scalar, pseudo or vector, not {kind!r}")
    ux, uy = x[0:2].clone(), x[2:4].clone()
    for _ in range(r % 4):
        ux, uy = -uy, ux
    if flip:
        ux = -ux
    x[0:2], x[2:4] = ux, uy
    return x


class PatchSampler:
    """Random training patches: ``crop`` x ``crop`` windows centred on tissue pixels of random images, with a
    random global phase, 90-degree rotation and flip when ``augment`` -- exact symmetries of the isotropic
    problem once the field's components turn with the image (:func:`transform_field`; ``kind`` the field's
    kind)."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, W: np.ndarray, crop: int, batch: int, augment: bool,
                 n_comp: int, rng: np.random.Generator, device, kind: str = "scalar"):
        import torch

        self.X, self.Y, self.W = (torch.from_numpy(a) for a in (X, Y, W))
        self.H, self.Wd = X.shape[-2:]
        self.crop = min(int(crop), self.H, self.Wd)
        self.batch_size, self.augment, self.n_comp, self.kind = int(batch), bool(augment), n_comp, kind
        self.rng, self.device = rng, device
        self.centres = [np.argwhere(w > 0) for w in W]   # crop centres: tissue pixels of each image

    def _augment(self, x, yy, ww):
        import torch

        rng = self.rng
        th = float(rng.uniform(0, 2 * np.pi))
        c, s = math.cos(th), math.sin(th)
        x = x.clone()
        for k in range(self.n_comp):  # U -> U e^{i th}
            re, im = x[2 * k].clone(), x[2 * k + 1]
            x[2 * k] = c * re - s * im
            x[2 * k + 1] = s * re + c * im
        r = int(rng.integers(4))
        flip = bool(rng.integers(2))
        x = transform_field(x, r, flip, self.kind)
        yy, ww = (torch.rot90(a, r, dims=(-2, -1)) for a in (yy, ww))
        if flip:
            yy, ww = (torch.flip(a, dims=(-1,)) for a in (yy, ww))
        return x, yy, ww

    def batch(self):
        import torch

        xb, yb, wb = [], [], []
        crop, rng = self.crop, self.rng
        for _ in range(self.batch_size):
            i = int(rng.integers(len(self.X)))
            cy, cx = self.centres[i][int(rng.integers(len(self.centres[i])))]
            y0 = int(np.clip(cy - crop // 2, 0, self.H - crop))
            x0 = int(np.clip(cx - crop // 2, 0, self.Wd - crop))
            win = (slice(y0, y0 + crop), slice(x0, x0 + crop))
            x, yy, ww = self.X[i][(slice(None), *win)], self.Y[i][(slice(None), *win)], self.W[i][win]
            if self.augment:
                x, yy, ww = self._augment(x, yy, ww)
            xb.append(x)
            yb.append(yy)
            wb.append(ww)
        return tuple(torch.stack(a).to(self.device) for a in (xb, yb, wb))


# ------------------------------------------------------------------------------------------ solver
class DIME(Solver):
    """DIME-style supervised UNet: displacement (60 Hz first harmonic) -> |G*| and phi."""

    name = "dime-cnn"
    version = "1.1.0"
    tasks = ("mre",)
    time_budget_s = 60.0
    fit_budget_s = 6 * 3600.0
    defaults = {
        "width": 16, "depth": 4, "crop": 96, "batch": 8, "steps": 3000, "lr": 2e-3, "weight_decay": 1e-4,
        "liver_weight": 4.0, "phi_weight": 0.5, "sigma_px": 4.0, "scaling": "local", "features": "raw+wave",
        "frequency": 60.0, "curl": "auto", "curl_cutoff": 0.008,
        "augment": True, "amp": "auto", "val_every": 200, "threads": 1, "max_fit_s": None,
        "weights": None, "checkpoint_dir": None, "save_weights": None, "progress": True,
    }

    def __init__(self, task, params=None, device=None, seed=0):
        super().__init__(task, params, device, seed)
        self.model = None
        self.kind = "scalar"
        self.meta: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []

    # -------------------------------------------------------------------------------- data
    def _pick(self, obs) -> tuple[np.ndarray, float, tuple[float, float], float, np.ndarray, np.ndarray]:
        u, freqs, spacing, rho, mask = read_observation(obs)
        f0 = float(self.meta.get("frequency", self.params["frequency"]))
        j = int(np.argmin(np.abs(freqs - f0)))
        liver = np.asarray(obs["liver_mask"], bool) if "liver_mask" in obs else np.zeros_like(mask)
        return u[j], float(freqs[j]), spacing, rho, mask, liver & mask

    def _field(self, u: np.ndarray, spacing, mask: np.ndarray) -> tuple[np.ndarray, str]:
        """The field the network sees and its kind (:func:`transform_field`): the curl of an in-plane field
        when ``curl`` says so (``"auto"``: two components), else the displacement itself."""
        p = self.params
        if use_curl(u, p["curl"]):
            return curl_field(u, mask, spacing, p["curl_cutoff"]), "pseudo"
        return u, ("vector" if u.shape[0] == 2 else "scalar")

    def _input(self, u: np.ndarray, spacing, mask: np.ndarray) -> tuple[np.ndarray, str]:
        field, kind = self._field(u, spacing, mask)
        p = self.params
        return make_input(field, mask, p["scaling"], float(p["sigma_px"]), p["features"]), kind

    def _arrays(self, cases, what: str):
        """Network inputs, targets and loss weights of a split, and the split's content fingerprint."""
        p = self.params
        xs, ys, ws, kinds = [], [], [], set()
        fp = Fingerprint()
        for obs, tgt in cases:
            fp.add(obs, tgt)
            u, f, sp, rho, mask, liver = self._pick(obs)
            unit = modulus_unit(f, sp, rho)
            x, kind = self._input(u, sp, mask)
            xs.append(x)
            kinds.add(kind)
            ys.append(make_target(np.asarray(tgt["abs_G"], float), np.asarray(tgt["phi"], float), unit, mask))
            ws.append((mask * (1.0 + (float(p["liver_weight"]) - 1.0) * liver)).astype(np.float32))
        if not xs and what == "train":
            raise ValueError(f"dime-cnn: the {what} split is empty")
        if len(kinds) > 1:
            raise ValueError(f"dime-cnn: the {what} split mixes field kinds {sorted(kinds)}")
        self.kind = kinds.pop() if kinds else getattr(self, "kind", "scalar")
        arrays = (np.stack(xs), np.stack(ys), np.stack(ws)) if xs else None
        return arrays, {"fingerprint": fp.hexdigest(), "n": fp.n}

    def _checkpoint_dir(self, key: str) -> Path:
        if self.params["checkpoint_dir"]:
            return Path(self.params["checkpoint_dir"])
        return Path(os.environ.get("PHANTOMBENCH_CACHE", Path.home() / ".cache" / "phantombench")) / "dime" / key

    # -------------------------------------------------------------------------------- fit
    def fit(self, train, val) -> None:
        import torch

        p = self.params
        if int(p["threads"]) > 0:
            torch.set_num_threads(int(p["threads"]))
        t_start = time.perf_counter()
        rng = seed_everything(self.seed)
        (X, Y, Wt), data_train = self._arrays(train, "train")
        kind = self.kind
        val_arrays, data_val = self._arrays(val, "val")
        if val_arrays is not None and self.kind != kind:
            raise ValueError("dime-cnn: the train and val splits hold different field kinds")
        Xv, Yv, Wv = val_arrays if val_arrays is not None else (X[:1], Y[:1], Wt[:1])
        in_ch = X.shape[1]
        n_comp = (in_ch - 1 - (3 if p["features"] == "raw+wave" else 0)) // 2
        model = build_unet(in_ch, 2, int(p["width"]), int(p["depth"])).to(self.device)
        dataset = {"train": data_train, "val": data_val}
        tag = {"data": dataset, "seed": self.seed, "params": {k: p[k] for k in _KEY_PARAMS}, "version": self.version}
        key = tag_hash(tag)
        ckpt = Checkpoint(self._checkpoint_dir(key) / "checkpoint.pt", tag)
        sampler = PatchSampler(X, Y, Wt, p["crop"], p["batch"], p["augment"], n_comp, rng, self.device, kind)
        val_t = tuple(torch.from_numpy(a).to(self.device) for a in (Xv, Yv, Wv))
        res = self._train(model, sampler, val_t, ckpt, rng, t_start)
        model.eval()
        self.model = model
        self.history = [{**r, "seconds": round(r["seconds"], 2)} for r in res.history]
        self.meta = {
            "solver": self.name, "solver_version": self.version, "frequency": float(p["frequency"]),
            "in_channels": in_ch, "field": kind, "params": {k: p[k] for k in _KEY_PARAMS}, "seed": self.seed,
            "n_parameters": n_parameters(model), "dataset": dataset,
            "steps_done": res.steps, "resumed_from_step": res.resumed_from, "stopped_early": res.stopped == "time",
            "train_seconds_this_run": round(res.seconds_this_run, 2), "train_seconds_total": round(res.seconds, 2),
            "best_val_loss": res.best, "device": self.device, "checkpoint": str(ckpt.path), "key": key,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        wpath = Path(p["save_weights"]) if p["save_weights"] else ckpt.path.parent / "weights.pt"
        atomic_save({"meta": self.meta, "history": self.history, "state_dict": model.state_dict()}, wpath)
        self.meta["weights"] = str(wpath)

    def _train(self, model, sampler: PatchSampler, val, ckpt: Checkpoint, rng, t_start: float):
        """The training loop (:class:`~phantombench.solvers.training.Trainer`): AdamW with a one-cycle schedule,
        one patch batch per step, validation on the full validation images every ``val_every`` steps."""
        import torch

        p = self.params
        steps, pw = int(p["steps"]), float(p["phi_weight"])
        opt = torch.optim.AdamW(model.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(p["lr"]), total_steps=max(steps, 1),
                                                    pct_start=0.15)
        precision = Precision(p["amp"], self.device)

        def loss(step):
            xb, yb, wb = sampler.batch()
            with precision.autocast():
                out = model(xb)
            return dime_loss(out.float(), yb, wb, pw)[0]

        @torch.no_grad()
        def evaluate(train_loss) -> dict[str, float]:
            model.eval()
            tot = [0.0, 0.0, 0.0]
            Xv, Yv, Wv = val
            for i in range(len(Xv)):
                with precision.autocast():
                    out = model(Xv[i:i + 1]).float()
                tot = [a + float(b) for a, b in zip(tot, dime_loss(out, Yv[i:i + 1], Wv[i:i + 1], pw))]
            model.train()
            n = max(len(Xv), 1)
            return {"val_loss": tot[0] / n, "val_loss_logG": tot[1] / n, "val_loss_phi": tot[2] / n,
                    "lr": float(sched.get_last_lr()[0])}

        max_fit = float(p["max_fit_s"]) if p["max_fit_s"] else 0.9 * self.fit_budget_s
        model.train()
        trainer = Trainer(model, [opt], Budget(steps, max_fit, cumulative=False, since=t_start), loss=loss,
                          schedulers=[sched], evaluate=evaluate, eval_every=int(p["val_every"]), checkpoint=ckpt,
                          rngs={"patches": rng}, precision=precision,
                          progress="dime-cnn fit" if p["progress"] else None)
        return trainer.run()

    # -------------------------------------------------------------------------------- inference
    def load(self, path: str | os.PathLike) -> None:
        """Load trained weights (a ``weights.pt`` written by :meth:`fit`)."""
        import torch

        blob = torch.load(Path(path), map_location="cpu", weights_only=False)
        meta = blob["meta"]
        kp = meta["params"]
        model = build_unet(int(meta["in_channels"]), 2, int(kp["width"]), int(kp["depth"]))
        model.load_state_dict(blob["state_dict"])
        self.model = model.to(self.device).eval()
        self.meta = {**meta, "weights": str(path)}
        self.history = blob.get("history", [])
        # inference must use the scaling the network was trained with
        for k in ("scaling", "sigma_px", "frequency", "features", "curl_cutoff"):
            self.params[k] = kp.get(k, self.params[k])
        self.params["curl"] = kp.get("curl", "off")   # weights of version 1.0 saw the displacement

    def predict_raw(self, obs) -> tuple[np.ndarray, float]:
        """Network output (2, H, W) and the modulus unit of the chosen frequency."""
        import torch

        if self.model is None:
            if not self.params["weights"]:
                raise RuntimeError("dime-cnn is not trained: run fit() (evaluate with a training split) or pass "
                                   "--param weights=PATH/weights.pt")
            self.load(self.params["weights"])
        if int(self.params["threads"]) > 0 and self.device == "cpu":
            torch.set_num_threads(int(self.params["threads"]))
        u, f, sp, rho, mask, _ = self._pick(obs)
        x = torch.from_numpy(self._input(u, sp, mask)[0])[None]
        dev = next(self.model.parameters()).device
        with torch.no_grad():
            out = self.model(x.to(dev)).float().cpu().numpy()[0]
        return out, modulus_unit(f, sp, rho)

    def solve(self, observation):
        out, unit = self.predict_raw(observation)
        abs_g, phi = decode(out, unit)
        return {"abs_G": abs_g, "phi": phi}
