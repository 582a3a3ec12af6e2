"""Two-stage CNN-PINN for EIT (P3: Yang, Zhang, Chen, Ma, Wang, IEEE Signal Processing Letters 2025,
10.1109/LSP.2025.3545306) on the ``eit`` task.

Stage 1 (supervised, trained once in :meth:`CNNPINN.fit`): a UNet maps the boundary voltage differences dV
to the interior potential image U of every current pattern. It is trained on the ``potential`` field of the
training samples (the generator's Sibson interpolation of the FE potential; the ``eit`` task hands it to
``fit`` with the targets) in the shared training loop (:mod:`phantombench.solvers.training`), and checkpointed
under the content fingerprints of the training and validation splits.

Stage 2 (physics-informed, per sample inside :meth:`CNNPINN.solve`): an MLP ``sigma(x, y)`` is fitted so that
U from stage 1 satisfies ``div(sigma grad U) = 0`` with the boundary conditions, by minimising P3's equation (2)
with Table I's weights:

    L = alpha * mean(r^2)                           PDE residual r = sigma lap U + grad sigma . grad U
      + beta  * mean(top-M |r|)                     the M largest |r| (M = 40)
      + gamma * mean((sigma_b dU/dn - j)^2)         Neumann: inward current density j on the boundary
      + mean(|sigma_b - sigma_b*|)                  known boundary conductivity (the background)
      + tau   * mean(sqrt(|grad sigma|^2 + xi))     smoothed total variation
      + v     * mean(max(0, sigma_min - sigma))     hinge (P3: sigma_min = 1, the background)
      + zeta  * sum ||W||^2                         weight decay on the weight matrices

with alpha = 0.01, beta = 0.01, M = 40, gamma = 1.5, tau = 1, xi = 1e-4, v = 8, zeta = 1e-6 (Table I).
Derivatives of U are central finite differences on the potential image (the "matrix-based finite
differences" of P3); derivatives of sigma come from automatic differentiation of the MLP. The learning rate
decays by 0.9 every 200 epochs (P3).

Units, and the two knobs this implementation adds (both recorded in every result). Table I's weights are
tied to P3's units, which the paper does not state. In ours (unit disk, potentials in V for P3's currents of
1/sqrt(2 pi) A) they make the TV and hinge terms dominate: on exact potentials the objective at the true
inclusion is *higher* than at the homogeneous sigma = 1 (TV of a contrast-2 inclusion ~1.4 against a PDE gain
of alpha * ~5 = 0.05), and the PINN returns a homogeneous image (measured: CC 0.03 on validation cases).
Raising alpha and beta alone lets the residual pull sigma towards 0 (div(sigma grad U) = 0 is solved by
sigma = 0; only the hinge resists), giving negative correlations. So:

* ``residual_form``: ``"divergence"`` is P3's r = sigma lap U + grad sigma . grad U; ``"log"`` (default) divides
  it by sigma, r = lap U + grad(ln sigma) . grad U -- the same PDE, with no trivial sigma -> 0 minimiser;
* ``pde_weight_scale`` (kappa, default 100) multiplies alpha and beta. Chosen on the validation split of
  P3-style training data (6 cases, 500 epochs; mean of SSIM and CC, the two metrics of the quality goal):
  kappa = 30: SSIM 0.91 / CC 0.17 (nearly homogeneous), 100: 0.65 / 0.52, 300: 0.52 / 0.56 -- on the same
  cases NOSER (p = 0.5) gave 0.57 / 0.44 and TV 0.53 / 0.19.

``residual_form="divergence", pde_weight_scale=1`` is Table I exactly as printed.

Choices the paper leaves open, made here and stated:

* image size ``image_size`` (default 64 x 64 over [-R, R]^2, pixel centres as the task grid): the stage-1
  output and the PINN's collocation grid; the PINN is a function of (x, y), so sigma is evaluated on the
  task grid (128 x 128) at the end. Coordinates are in units of the radius (P3: the unit disk).
* the top-M term is the *mean* of the M largest |r| (a sum would be M times larger);
* TV: ``tv_form="squared"`` (default) is the usual smoothed TV sqrt(|grad sigma|^2 + xi); the summary of P3 in
  PAPERS.md writes sqrt(|grad sigma| + xi), available as ``tv_form="literal"``;
* Neumann target: the complete electrode model's mean current density on each electrode, I_l / |e_l|, and 0
  in the gaps; dU/dn = grad U . (x, y)/r with one-sided differences where a central one leaves the disk.
  Sign: with the outward normal, sigma dU/dn is the current density *into* the body (I_l > 0 injects);
* residual points: mask pixels whose four neighbours are inside; boundary points: mask pixels with a
  neighbour outside; TV and hinge over all mask pixels;
* ``sigma_min`` of the hinge and ``sigma_b*`` are the dataset's background conductivity (P3: 1 S/m; objects are
  2-6 S/m, so sigma >= 1 is prior knowledge the paper uses);
* MLP: input (x, y) -> Linear(2, 64) + tanh, then 4 hidden layers ``h <- h + tanh(W h + b)`` (residual
  connections), linear output; the output bias starts at the background so sigma starts homogeneous;
* stage-1 UNet: dV (normalised by the training rms) -> a linear lift to one image channel (the learned
  linearised map), stacked with x, y and the mask as fixed channels -> UNet of ``depth`` levels with
  ``width * 2**k`` channels, each level 2 x [3x3 conv + batch norm + ReLU], 2x2 max-pool down, bilinear x2
  up + 3x3 conv, skip connections, 1x1 conv head; it predicts ``(U - mean U_train) / std`` per pattern.
  Adam (lr 1e-3), masked MSE, ``stage1_epochs`` epochs, the checkpoint with the best validation loss kept.
  ``amp="bf16"`` runs the stage-1 network under bfloat16 autocast (loss in float32; default ``"off"``). Stage 2
  always runs in float32: its loss is built from derivatives of sigma and of the potential.

Parameters that must reach the solver from the dataset config (protocol, electrodes, background): see
:func:`phantombench.solvers.eit_classical.eit_config`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from phantombench.solvers.base import Solver
from phantombench.solvers.finite_differences import fd_derivatives, one_sided_gradient
from phantombench.solvers.training import (Budget, Checkpoint, Fingerprint, Precision, Trainer, fingerprint,
                                             seed_everything, tag_hash, torch_threads)

__all__ = ["CNNPINN", "UNet", "Stage1", "SigmaMLP", "PINNGeometry", "P3_WEIGHTS", "fd_derivatives",
           "pde_residual", "p3_loss_terms", "downsample_potential", "pinn_geometry", "fit_sigma"]

P3_WEIGHTS = dict(alpha=0.01, beta=0.01, M=40, gamma=1.5, tau=1.0, xi=1e-4, v=8.0, zeta=1e-6)


# =========================================================================================== stage 1
class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Plain UNet: ``depth`` levels of DoubleConv, 2x2 max-pool down, bilinear x2 + 3x3 conv up, skips."""

    def __init__(self, cin: int, cout: int, width: int = 16, depth: int = 4):
        super().__init__()
        ch = [width * 2 ** k for k in range(depth)]
        self.down = nn.ModuleList([DoubleConv(cin, ch[0])] + [DoubleConv(ch[k - 1], ch[k]) for k in range(1, depth)])
        self.up_conv = nn.ModuleList([nn.Conv2d(ch[k], ch[k - 1], 3, padding=1) for k in range(depth - 1, 0, -1)])
        self.up = nn.ModuleList([DoubleConv(2 * ch[k - 1], ch[k - 1]) for k in range(depth - 1, 0, -1)])
        self.head = nn.Conv2d(ch[0], cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, blk in enumerate(self.down):
            if k:
                x = F.max_pool2d(x, 2)
            x = blk(x)
            skips.append(x)
        skips.pop()
        for conv, blk in zip(self.up_conv, self.up):
            s = skips.pop()
            x = F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
            x = blk(torch.cat([conv(x), s], dim=1))
        return self.head(x)


class Stage1(nn.Module):
    """dV (B, M) -> normalised potential images (B, P, n, n)."""

    def __init__(self, n_meas: int, n_patterns: int, n: int, coords: np.ndarray, width: int = 16,
                 depth: int = 4):
        super().__init__()
        self.n = n
        self.lift = nn.Linear(n_meas, n * n)
        self.register_buffer("coords", torch.as_tensor(coords, dtype=torch.float32)[None])  # (1, 3, n, n)
        self.unet = UNet(1 + coords.shape[0], n_patterns, width, depth)

    def forward(self, dv: torch.Tensor) -> torch.Tensor:
        B = dv.shape[0]
        img = self.lift(dv).view(B, 1, self.n, self.n)
        return self.unet(torch.cat([img, self.coords.expand(B, -1, -1, -1)], dim=1))


# =========================================================================================== stage 2
class SigmaMLP(nn.Module):
    """(x, y) -> sigma: Linear(2, width) + tanh, ``n_hidden`` residual tanh layers, linear output."""

    def __init__(self, width: int = 64, n_hidden: int = 4, sigma0: float = 1.0):
        super().__init__()
        self.inp = nn.Linear(2, width)
        self.hidden = nn.ModuleList([nn.Linear(width, width) for _ in range(n_hidden)])
        self.out = nn.Linear(width, 1)
        with torch.no_grad():
            self.out.weight.mul_(0.1)
            self.out.bias.fill_(sigma0)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.inp(xy))
        for lin in self.hidden:
            h = h + torch.tanh(lin(h))
        return self.out(h)[..., 0]

    def value_and_grad(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sigma (N,) and its exact gradient d sigma / d(x, y) (N, 2), by forward-mode propagation of the two
        input derivatives through the layers (no double backward: about 3x cheaper than autograd.grad with
        create_graph, and identical up to round-off -- tested)."""
        h = torch.tanh(self.inp(xy))                                        # (N, w)
        dh = (1 - h * h)[:, None, :] * self.inp.weight.T[None]              # (N, 2, w)
        for lin in self.hidden:
            t = torch.tanh(lin(h))
            dt = (1 - t * t)[:, None, :] * (dh @ lin.weight.T)
            h, dh = h + t, dh + dt
        return self.out(h)[..., 0], (dh @ self.out.weight.T)[..., 0]

    def weight_norm2(self) -> torch.Tensor:
        return sum((m.weight ** 2).sum() for m in self.modules() if isinstance(m, nn.Linear))


def pde_residual(sigma: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, Ux: torch.Tensor, Uy: torch.Tensor,
                 lapU: torch.Tensor) -> torch.Tensor:
    """div(sigma grad U) = sigma lap U + grad sigma . grad U (broadcast over patterns)."""
    return sigma * lapU + sx * Ux + sy * Uy


def p3_loss_terms(r: torch.Tensor, sigma_b: torch.Tensor, dUdn_b: torch.Tensor, j_b: torch.Tensor,
                  sigma_b_star: float, grad_sigma: torch.Tensor, sigma_all: torch.Tensor,
                  weight_norm2: torch.Tensor, weights: dict[str, float] | None = None,
                  sigma_min: float = 1.0, tv_form: str = "squared") -> dict[str, torch.Tensor]:
    """Every term of P3's equation (2), unweighted, and the weighted ``total``.

    ``r``: PDE residuals (any shape, all patterns); ``sigma_b`` (Nb,), ``dUdn_b`` and ``j_b`` (P, Nb) or (Nb,):
    boundary conductivity, normal derivative of U and inward current density; ``grad_sigma`` (N, 2) and
    ``sigma_all`` (N,) over the TV/hinge points; ``weight_norm2``: sum of squared MLP weights.
    """
    w = {**P3_WEIGHTS, **(weights or {})}
    ra = r.abs().reshape(-1)
    k = min(int(w["M"]), ra.numel())
    g2 = (grad_sigma ** 2).sum(dim=-1)
    if tv_form == "squared":
        tv = torch.sqrt(g2 + w["xi"]).mean()
    elif tv_form == "literal":
        tv = torch.sqrt(torch.sqrt(g2) + w["xi"]).mean()
    else:
        raise ValueError("tv_form must be 'squared' or 'literal'")
    t = {
        "pde": (r ** 2).mean(),
        "topM": torch.topk(ra, k).values.mean() if k else ra.sum() * 0,
        "neumann": ((sigma_b * dUdn_b - j_b) ** 2).mean(),
        "boundary": (sigma_b - sigma_b_star).abs().mean(),
        "tv": tv,
        "hinge": F.relu(sigma_min - sigma_all).mean(),
        "weight_decay": weight_norm2,
    }
    t["total"] = (w["alpha"] * t["pde"] + w["beta"] * t["topM"] + w["gamma"] * t["neumann"] + t["boundary"]
                  + w["tau"] * t["tv"] + w["v"] * t["hinge"] + w["zeta"] * t["weight_decay"])
    return t


@dataclass
class PINNGeometry:
    """Collocation grid of the PINN (image_size x image_size over [-R, R]^2, coordinates / R)."""

    n: int
    h: float                    # pixel spacing / R
    mask: np.ndarray            # (n, n) pixel centre inside the disk
    interior: np.ndarray        # (n, n) mask pixels whose 4 neighbours are in the mask
    boundary: np.ndarray        # (n, n) mask pixels with a neighbour outside
    X: np.ndarray               # (n, n) x / R
    Y: np.ndarray
    normal: np.ndarray          # (Nb, 2) outward unit normal at the boundary pixels
    j: np.ndarray               # (P, Nb) inward current density (A/m, per unit R) at the boundary pixels


def pinn_geometry(n: int, cfg: dict[str, Any]) -> PINNGeometry:
    """The collocation grid and the boundary data (normals, current density) for a dataset config."""
    from phantombench.generators.cem import disk_grid
    from phantombench.generators.operators import electrodes_from_config, protocol_from_config

    R = float(cfg["radius"])
    g = disk_grid(1.0, n, n)
    X, Y = g.centres()
    # half a pixel inside the circle: every pixel is then a full block of finer-grid pixels inside the
    # (polygonal) data mesh, so downsampled potentials are defined on all of them
    mask = np.hypot(X, Y) < 1.0 - 0.5 * g.dx
    mp = np.pad(mask, 1)
    nb_all = mp[:-2, 1:-1] & mp[2:, 1:-1] & mp[1:-1, :-2] & mp[1:-1, 2:]
    interior = mask & nb_all
    boundary = mask & ~nb_all
    xb, yb = X[boundary], Y[boundary]
    rb = np.hypot(xb, yb)
    normal = np.column_stack([xb / rb, yb / rb])
    el = electrodes_from_config(cfg)
    prot = protocol_from_config(cfg)
    theta = np.arctan2(yb, xb)
    which = el.electrode_at(theta)
    lengths = el.lengths  # m
    j = np.zeros((prot.n_patterns, len(xb)))
    on = which >= 0
    # current density per metre of boundary, expressed per unit of the scaled coordinate (x / R): I / (|e| / R)
    j[:, on] = prot.currents[:, which[on]] / (lengths[which[on]] / R)
    return PINNGeometry(n, float(g.dx), mask, interior, boundary, X, Y, normal, j)


def downsample_potential(pot: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(P, H, W) potential with NaN outside -> (P, n, n) block means and the (n, n) mask of blocks whose
    pixels are all finite (H and W multiples of n)."""
    pot = np.asarray(pot, dtype=np.float64)
    P, H, W = pot.shape
    if H % n or W % n:
        raise ValueError(f"potential grid {H}x{W} is not a multiple of image_size {n}")
    fy, fx = H // n, W // n
    blocks = pot.reshape(P, n, fy, n, fx)
    fin = np.isfinite(blocks).all(axis=(0, 2, 4))
    mean = np.where(np.isfinite(blocks), blocks, 0.0).mean(axis=(2, 4))
    mean = np.where(fin[None], mean, 0.0)
    return mean, fin


@dataclass
class PINNData:
    """The fixed tensors of a stage-2 fit: collocation points (all mask pixels), which of them are interior and
    boundary points, the potential's derivatives there and the boundary data."""

    xy_all: torch.Tensor        # (N, 2) every mask pixel
    idx_int: torch.Tensor       # indices of the interior points among them
    idx_b: torch.Tensor         # indices of the boundary points
    Ux: torch.Tensor            # (P, N_int) dU/dx, dU/dy, lap U at the interior points
    Uy: torch.Tensor
    lap: torch.Tensor
    dUdn: torch.Tensor          # (P, Nb) normal derivative at the boundary points
    j: torch.Tensor             # (P, Nb) inward current density


def pinn_data(U: np.ndarray, geom: PINNGeometry, device: str = "cpu") -> PINNData:
    """Finite differences of the potential images U (P, n, n) and the collocation data on ``geom``."""
    dev = torch.device(device)
    Uf = np.where(geom.mask[None], np.nan_to_num(np.asarray(U, dtype=np.float64)), 0.0)
    Ux, Uy, lap = fd_derivatives(Uf, geom.h)
    gx, gy = one_sided_gradient(Uf, geom.mask, geom.h)
    I, B, M_all = geom.interior, geom.boundary, geom.mask
    dUdn = gx[:, B] * geom.normal[:, 0] + gy[:, B] * geom.normal[:, 1]  # (P, Nb)
    T = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev)  # noqa: E731
    # TV/hinge points = interior + boundary = all mask pixels; sigma and its gradient are computed once on all
    return PINNData(T(np.column_stack([geom.X[M_all], geom.Y[M_all]])),
                    torch.as_tensor(np.flatnonzero(I[M_all]), device=dev),
                    torch.as_tensor(np.flatnonzero(B[M_all]), device=dev),
                    T(Ux[:, I]), T(Uy[:, I]), T(lap[:, I]), T(dUdn), T(geom.j))


def fit_sigma(U: np.ndarray, geom: PINNGeometry, sigma0: float, *, epochs: int = 2000, lr: float = 1e-3,
              weights: dict[str, float] | None = None, tv_form: str = "squared", sigma_min: float | None = None,
              width: int = 64, n_hidden: int = 4, time_limit_s: float | None = None, seed: int = 0,
              device: str = "cpu", log_every: int = 0, residual_form: str = "divergence",
              pde_weight_scale: float = 1.0) -> tuple[SigmaMLP, dict[str, list[float]]]:
    """Stage 2: fit sigma(x, y) to the potential images U (P, n, n) (NaN/anything outside ``geom.mask``), in the
    shared training loop: Adam, the learning rate times 0.9 every 200 epochs, ``epochs`` epochs or
    ``time_limit_s`` seconds (at least one epoch). Returns the MLP and the per-epoch loss terms."""
    torch.manual_seed(seed)
    w = {**P3_WEIGHTS, **(weights or {})}
    w["alpha"] *= pde_weight_scale
    w["beta"] *= pde_weight_scale
    sigma_min = sigma0 if sigma_min is None else sigma_min
    d = pinn_data(U, geom, device)
    net = SigmaMLP(width, n_hidden, sigma0).to(torch.device(device))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=200, gamma=0.9)
    hist: dict[str, list[float]] = {k: [] for k in ("total", "pde", "topM", "neumann", "boundary", "tv", "hinge",
                                                     "weight_decay", "time_s")}
    terms: dict[str, torch.Tensor] = {}

    def loss(step: int) -> torch.Tensor:
        s, gs = net.value_and_grad(d.xy_all)
        si = s[d.idx_int]
        if residual_form == "divergence":
            r = pde_residual(si, gs[d.idx_int, 0], gs[d.idx_int, 1], d.Ux, d.Uy, d.lap)
        else:  # "log": the same PDE divided by sigma, lap U + grad(ln sigma) . grad U
            r = pde_residual(torch.ones_like(si), gs[d.idx_int, 0] / si, gs[d.idx_int, 1] / si, d.Ux, d.Uy, d.lap)
        terms.update(p3_loss_terms(r, s[d.idx_b], d.dUdn, d.j, sigma0, gs, s, net.weight_norm2(), w, sigma_min,
                                   tv_form))
        return terms["total"]

    def on_step(epoch: int, t: float, value: float) -> None:
        for k in hist:
            if k != "time_s":
                hist[k].append(float(terms[k].detach()))
        hist["time_s"].append(t)
        if log_every and (epoch - 1) % log_every == 0:
            print(epoch - 1, {k: round(v[-1], 6) for k, v in hist.items()})

    budget = Budget(int(epochs), time_limit_s, cumulative=False)
    Trainer(net, [opt], budget, loss=loss, schedulers=[sched], on_step=on_step, unit="epoch",
            stop_on_nonfinite=False).run()
    return net, hist


def sigma_on_grid(net: SigmaMLP, shape: tuple[int, int], radius_scaled: float = 1.0,
                  device: str = "cpu") -> np.ndarray:
    """Evaluate the MLP at the pixel centres of the task grid (H, W) over [-1, 1]^2 (coordinates / R)."""
    from phantombench.generators.cem import disk_grid

    g = disk_grid(radius_scaled, *shape)
    X, Y = g.centres()
    with torch.no_grad():
        xy = torch.as_tensor(np.column_stack([X.ravel(), Y.ravel()]), dtype=torch.float32, device=device)
        return net(xy).cpu().numpy().astype(np.float64).reshape(shape)


# =========================================================================================== the solver
STAGE1_KEYS = ("image_size", "width", "depth", "stage1_epochs", "batch_size", "stage1_lr")


def training_potential(target: dict[str, Any]) -> np.ndarray:
    """The stage-1 target of a training case: the ``potential`` entry of its target (the interior potential of
    every pattern, training truth that the ``eit`` task hands to ``fit`` only)."""
    if "potential" not in target:
        raise ValueError("cnn-pinn: the training targets carry no 'potential' (P, n, n) field; stage 1 is "
                         "supervised on the interior potential, which the eit task's training targets include")
    return np.asarray(target["potential"])


def _history_lists(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Trainer records (one per epoch) as the stage-1 history: epoch (from 0), train/val loss, time."""
    return {"epoch": [r["step"] - 1 for r in records], "train_loss": [r["train_loss"] for r in records],
            "val_loss": [r["val_loss"] for r in records], "time_s": [r["seconds"] for r in records]}


class CNNPINN(Solver):
    name = "cnn-pinn"
    version = "1.0.0"
    tasks = ("eit",)
    time_budget_s = 600.0
    fit_budget_s = 3600.0
    defaults = {
        "image_size": 64, "width": 16, "depth": 4, "stage1_epochs": 60, "batch_size": 32, "stage1_lr": 1e-3,
        "epochs": 2000, "lr": 1e-3, "pinn_width": 64, "pinn_hidden": 4, "pinn_time_s": 500.0,
        "tv_form": "squared", "weights": None, "checkpoint_dir": None, "config": None, "threads": 1,
        "fit_time_s": 3300.0, "residual_form": "log",
        "pde_weight_scale": 100.0, "amp": "off", "progress": True,
    }

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.stage1: Stage1 | None = None
        self.norm: dict[str, Any] = {}
        self.fit_history: dict[str, list[float]] = {}
        self.trained_on: str | None = None
        self.last_history: dict[str, list[float]] | None = None
        self.last_potential: np.ndarray | None = None
        self._prec: Precision | None = None

    # ------------------------------------------------------------------ helpers
    def _threads(self):
        """Context: torch's CPU intra-op threads set to the ``threads`` parameter (0 = leave torch's choice).
        Default 1: these networks are small, and on a shared 2-core machine two threads ran the PINN epoch 20x
        slower than one (1.9 s against 0.09 s, measured under load)."""
        return torch_threads(int(self.params["threads"]))

    def _cfg(self, observation) -> dict[str, Any]:
        from phantombench.solvers.eit_classical import eit_config

        return eit_config(observation, self.params.get("config"))

    @staticmethod
    def _coords(n: int) -> np.ndarray:
        """Fixed input channels of the UNet: x / R, y / R and the disk mask on the n x n grid."""
        from phantombench.generators.cem import disk_grid

        X, Y = disk_grid(1.0, n, n).centres()
        return np.stack([X, Y, (X ** 2 + Y ** 2 < 1.0).astype(np.float64)]).astype(np.float32)

    def _precision(self, device) -> Precision:
        return Precision(self.params["amp"], device, allowed=("off", "bf16"))

    def _stage1(self, dv: torch.Tensor) -> torch.Tensor:
        """Stage-1 forward, under bfloat16 autocast when ``amp="bf16"``; float32 out."""
        if self._prec is None or self._prec.device_type != dv.device.type:
            self._prec = self._precision(dv.device)
        with self._prec.autocast():
            return self.stage1(dv).float()

    def build_stage1(self, n_meas: int, n_patterns: int) -> Stage1:
        n = int(self.params["image_size"])
        seed_everything(self.seed)
        return Stage1(n_meas, n_patterns, n, self._coords(n), int(self.params["width"]),
                      int(self.params["depth"])).to(self.device)

    def _tag(self, data: dict[str, str]) -> dict[str, Any]:
        blob = {k: self.params[k] for k in STAGE1_KEYS} | {"seed": self.seed, "v": self.version}
        if self.params["amp"] != "off":  # (float32 runs keep the tags they had before the option existed)
            blob["amp"] = self.params["amp"]
        return {"data": data, "params": blob}

    def checkpoint_path(self, data_id: str) -> Path:
        """The stage-1 checkpoint of training data ``data_id`` (see :meth:`fit`) under these parameters."""
        root = self.params.get("checkpoint_dir") or os.environ.get("PHANTOMBENCH_CHECKPOINTS") or \
            Path.home() / ".cache" / "phantombench" / "checkpoints"
        tag = tag_hash(self._tag({})["params"], 10)
        safe = "".join(c if c.isalnum() or c in "._-@+" else "-" for c in data_id)
        return Path(root) / f"cnn-pinn-stage1__{safe}__{tag}.pt"

    def predict_potential(self, dv: np.ndarray) -> np.ndarray:
        """Stage 1: (M,) or (B, M) dV -> (P, n, n) or (B, P, n, n) potential images (V)."""
        if self.stage1 is None:
            raise RuntimeError("stage 1 is not trained: call fit() or load a checkpoint")
        one = np.ndim(dv) == 1
        d = torch.as_tensor(np.atleast_2d(dv) / self.norm["dv_scale"], dtype=torch.float32, device=self.device)
        self.stage1.eval()
        with torch.no_grad():
            out = self._stage1(d).cpu().numpy().astype(np.float64)
        U = self.norm["U_mean"][None] + self.norm["U_std"] * out
        return U[0] if one else U

    # ------------------------------------------------------------------ stage 1 training
    def fit(self, train, val) -> None:
        """Stage 1 on the training split (``(observation, target)`` pairs; targets carry ``potential``).

        The checkpoint is tagged with the content fingerprints of both splits and the stage-1 parameters:
        an interrupted fit resumes, a finished one is reused without training."""
        with self._threads():
            self._fit(train, val)

    def _fit(self, train, val) -> None:
        n = int(self.params["image_size"])
        (dv_tr, U_tr, m_tr), fp_tr = self._collect(train, n)
        (dv_va, U_va, m_va), fp_va = self._collect(val, n) if len(val) else (
            (dv_tr[:0], U_tr[:0], m_tr[:0]), fingerprint([]))
        did = f"{fp_tr[:12]}-{fp_va[:12]}"
        P, M = U_tr.shape[1], dv_tr.shape[1]
        mask_all = m_tr.all(axis=0)
        U_mean = np.where(mask_all[None], (U_tr * m_tr[:, None]).sum(0) / np.maximum(m_tr.sum(0), 1)[None], 0.0)
        resid = (U_tr - U_mean[None])[:, :, mask_all]
        self.norm = {"dv_scale": float(np.sqrt(np.mean(dv_tr ** 2))) or 1.0, "U_mean": U_mean,
                     "U_std": float(resid.std()) or 1.0, "mask": mask_all, "n_meas": M, "n_patterns": P}
        precision = self._precision(self.device)
        self.stage1 = self.build_stage1(M, P)
        to = lambda a: torch.as_tensor(np.array(a, dtype=np.float32), device=self.device)  # noqa: E731

        def tensors(dv, U, m):
            return (to(dv / self.norm["dv_scale"]), to((U - U_mean[None]) / self.norm["U_std"]),
                    to(np.broadcast_to(m[:, None] & mask_all[None, None], U.shape)))

        extra = (lambda: {"norm": self.norm, "data_id": did, "params": dict(self.params)}, lambda _: None)
        ckpt = Checkpoint(self.checkpoint_path(did), self._tag({"train": fp_tr, "val": fp_va}), extra=extra)
        res = self._train(tensors(dv_tr, U_tr, m_tr), tensors(dv_va, U_va, m_va), ckpt, precision)
        self.fit_history = _history_lists(res.history)
        self.trained_on = did

    def _train(self, train, val, ckpt: Checkpoint, precision: Precision):
        """Adam on the masked MSE, one epoch of shuffled mini-batches per unit (batches of one skipped), validated
        every epoch; the budget is ``stage1_epochs`` epochs or ``fit_time_s`` seconds."""
        Xtr, Ytr, Mtr = train
        gen = torch.Generator().manual_seed(self.seed)
        bs = int(self.params["batch_size"])

        def epoch(trainer, step) -> float:
            self.stage1.train()
            perm = torch.randperm(len(Xtr), generator=gen)
            tot, cnt = 0.0, 0
            for b0 in range(0, len(perm), bs):
                ib = perm[b0:b0 + bs]
                if len(ib) < 2:
                    continue
                loss = _masked_mse(self._stage1(Xtr[ib]), Ytr[ib], Mtr[ib])
                trainer.optimise(loss)
                tot += loss.item() * len(ib)
                cnt += len(ib)
            return tot / max(cnt, 1)

        def evaluate(train_loss: float) -> dict[str, float]:
            return {"val_loss": self._val_loss(*val) if len(val[0]) else train_loss}

        opt = torch.optim.Adam(self.stage1.parameters(), lr=float(self.params["stage1_lr"]))
        budget = Budget(int(self.params["stage1_epochs"]), float(self.params["fit_time_s"]))
        trainer = Trainer(self.stage1, [opt], budget, step=epoch, evaluate=evaluate, checkpoint=ckpt,
                          rngs={"shuffle": gen}, precision=precision, unit="epoch",
                          progress="cnn-pinn stage 1" if self.params["progress"] else None)
        return trainer.run()

    def _val_loss(self, X, Y, Mk) -> float:
        self.stage1.eval()
        with torch.no_grad():
            tot = 0.0
            for b0 in range(0, len(X), 64):
                tot += float(_masked_mse(self._stage1(X[b0:b0 + 64]), Y[b0:b0 + 64], Mk[b0:b0 + 64])) * \
                    len(X[b0:b0 + 64])
        return tot / len(X)

    def _collect(self, cases, n: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], str]:
        """(dv, potential images, masks) of a split at n x n, and the split's content fingerprint."""
        dvs, Us, ms = [], [], []
        fp = Fingerprint()
        for obs, target in cases:
            fp.add(obs, target)
            U, m = downsample_potential(training_potential(target), n)
            dvs.append(np.asarray(obs["dv"], dtype=np.float64))
            Us.append(U)
            ms.append(m)
        return (np.array(dvs), np.array(Us), np.array(ms)), fp.hexdigest()

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Load stage 1 (its best weights) from a checkpoint written by :meth:`fit`."""
        st = torch.load(path, map_location=self.device, weights_only=False)
        self.norm = st["extra"]["norm"]
        self.stage1 = self.build_stage1(int(self.norm["n_meas"]), int(self.norm["n_patterns"]))
        self.stage1.load_state_dict((st["best_state"] or st["state"])["model"])
        self.fit_history = _history_lists(st["history"])
        self.trained_on = st["extra"]["data_id"]

    # ------------------------------------------------------------------ stage 2 per case
    def solve(self, observation: dict[str, Any]) -> dict[str, np.ndarray]:
        with self._threads():
            return self._solve(observation)

    def _solve(self, observation: dict[str, Any]) -> dict[str, np.ndarray]:
        cfg = self._cfg(observation)
        n = int(self.params["image_size"])
        geom = pinn_geometry(n, cfg)
        U = self.predict_potential(np.asarray(observation["dv"], dtype=np.float64))
        self.last_potential = U
        sigma0 = float(cfg["background"])
        net, hist = fit_sigma(U, geom, sigma0, epochs=int(self.params["epochs"]), lr=float(self.params["lr"]),
                              weights=self.params.get("weights"), tv_form=self.params["tv_form"],
                              width=int(self.params["pinn_width"]), n_hidden=int(self.params["pinn_hidden"]),
                              time_limit_s=float(self.params["pinn_time_s"]), seed=self.seed, device=self.device,
                              residual_form=self.params["residual_form"],
                              pde_weight_scale=float(self.params["pde_weight_scale"]))
        self.last_history = hist
        mask = np.asarray(observation["mask"], bool)
        sig = sigma_on_grid(net, mask.shape, 1.0, self.device)
        out = sig - sigma0
        out[~mask] = np.nan
        return {"dsigma": out}


def _masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)
