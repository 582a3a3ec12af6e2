"""El-UNet (P1: Kamali, Laksari et al. 2023) and the dense PINN baseline for ``brain-elasticity``.

Per-sample physics-informed optimisers: each trains a fresh network on the one observation it is given, inside
``solve``, for ``train_time_s`` wall seconds (equal wall time per model, as in the paper), then returns the
Young's modulus and Poisson's ratio maps. No ground truth is ever used; the reproduce script
(:mod:`phantombench.papers.elunet`) scores the snapshots the solver keeps in :attr:`ElasticityPINN.last_history`.

Models (``name`` on the leaderboard):

* ``elunet-p``     P El-UNet: 2 outputs (Lame lam, mu); stresses computed from them and the measured strains.
* ``elunet-ps``    PS El-UNet: 5 outputs (lam, mu, sxx, syy, sxy) and a constitutive MSE tying the predicted
                   stresses to those computed from (lam, mu) and the strains.
* ``elunet-ps-w1`` PS with self-adaptive spatial loss weights (psi_C, psi_E, sides, top/bottom), trainable
                   fields initialised to 1 and updated by gradient *ascent* while the network descends (min-max).
* ``elunet-ps-w2`` the same without psi_E (equilibrium unweighted).
* ``pinn-elasticity`` the dense PINN: two MLPs on the pixel-centre coordinates (one for lam, mu; one for the
                   stresses); equilibrium by automatic differentiation; same losses, same scaling.

Architecture (El-UNet): UNet with ``depth`` levels (paper: 5) and ``width * 2**k`` channels at level k (paper:
width 64, i.e. 64-128-256-512-1024); each level a double 3x3 convolution with batch norm and no bias, ReLU;
2x2 max-pool going down; bilinear x2 upsampling + 2x2 convolution going up, resampled (bilinear) to the skip
connection's size when odd sizes do not match (142 x 100 -> 71 x 50 -> 35 x 25 -> 17 x 12 -> 8 x 6); a linear
1x1 convolution head. Input: the three strain images, each min-max normalised to [0, 1] (as the authors' code).
The CPU default is ``width=8`` (0.5 M parameters); ``width=64`` is the paper's network (31 M).

Non-dimensional problem (lengths by l0, stresses by sigma0):

* l0 = mean domain dimension ((L_x + L_y) / 2); pixel spacing dx / l0, dy / l0 (the task grid puts pixel centres
  on the rectangle's edges, so L_x = dx (W - 1)).
* sigma0 = the top traction (uniform, so it is also the maximum top traction).
* Strains enter the constitutive law as eps / eps0 and the network's Lame outputs are in units of
  sigma0 / eps0. ``lame_scale="paper"`` uses eps0 = 1 (the paper: Lame in units of sigma0, ~30 for the soft
  case); the default ``"strain"`` uses eps0 = mean |eyy|, which makes the homogeneous answer O(1) and shortens the
  warm-up of a linear head that starts near 0. Both are exact rescalings of the same loss up to the factor
  eps0 on the unknowns; only the optimiser's path differs.

Losses (each an MSE over its points; all summed):

* constitutive (PS only): (sigma_hat - C(lam, mu) eps_hat) for xx, yy, xy, with plane stress
  sxx = (lam + 2 mu) exx + lam eyy, syy = lam exx + (lam + 2 mu) eyy, sxy = 2 mu exy (exy tensor shear);
* equilibrium: d sxx/dx + d sxy/dy and d sxy/dx + d syy/dy, central differences inside and second-order
  one-sided differences on the edges (El-UNet; exact for quadratic fields), automatic differentiation (PINN).
  Row 0 is the top (largest y), so d/dy = -d/d(row);
* boundary tractions: top syy = -1 (i.e. -traction / sigma0) and sxy = 0; sides sxx = sxy = 0; bottom
  (frictionless) sxy = 0 -- the bottom normal stress is an unknown reaction and is not constrained.

With traction conditions only, the traction is what fixes the modulus scale: multiplying (lam, mu) by a
constant scales every stress and is penalised only by the top traction term.

Which Lame parameter, and the conversions. In plane stress the constitutive law above holds with the
*effective* lam* = E nu / (1 - nu^2) (our generator's ``lam`` field is this one) and mu = E / (2 (1 + nu)), so
the networks learn (lam*, mu). The paper converts with the 3D formulas E' = mu (3 lam + 2 mu) / (lam + mu),
nu' = lam / (2 (lam + mu)), followed by the plane-strain-to-plane-stress map E = E' / (1 - nu'^2),
nu = nu' / (1 - nu'). Applied to lam* this chain is exact: nu' = nu / (1 + nu), E' = E (1 + 2 nu) / (1 + nu)^2,
and the map gives back E and nu, identical to the direct plane-stress inverse nu = lam* / (lam* + 2 mu),
E = 2 mu (1 + nu) used by ``direct-elasticity`` (see :func:`lame_to_E_nu`; tested). Before converting, mu is
kept positive and lam* non-negative; nu is clipped to [0, 0.4999] and E to [1 Pa, 1e9 Pa] (the task's bounds).

Training: Adam, lr 1e-3 for the network; the W1/W2 weights use a second Adam with ``maximize=True`` (gradient
ascent) and lr ``weight_lr``. Batch norm runs in training mode throughout (one image; the prediction uses the
same batch statistics the loss saw). Seeds: ``torch.manual_seed(self.seed)`` at the start of ``solve``.

Training runs in the shared loop (:mod:`phantombench.solvers.training`). Checkpoints: with ``checkpoint=PATH``
the whole training state (network, batch-norm statistics, adaptive weights, both optimisers, epoch, elapsed
budget, history) is saved every ``checkpoint_every_s`` and at the end, tagged with the solver, a hash of the
observation, the seed and the optimisation parameters (not the budget); a later ``solve`` of the same observation
resumes from it and spends only the rest of the budget (bit-identical to an uninterrupted run on the same device;
tested); a file of another observation is refused.

Mixed precision (El-UNet only, ``amp="bf16"``, default ``"off"``): the encoder-decoder runs under bfloat16 autocast
and the 1x1 output head in float32, so the (lam, mu, stress) maps the losses differentiate are float32 sums of
bfloat16 features; every loss term is float32. Off by default because the equilibrium residual is a difference
quotient over 1/140 of the domain, which bfloat16's 3 significant digits in the features make noisier; the cost in
accuracy is measured in ``tests/test_elunet.py`` and the README. It pays only on GPUs with bf16 tensor cores.

Budget clock: ``clock="wall"`` (the paper: wall seconds) or ``"cpu"`` (this process's CPU seconds, which gives
every model the same compute on a shared, contended machine; use it with ``threads=1``).

History (for loss/error-versus-epoch curves): after ``solve``, ``self.last_history`` holds per-epoch time (on the
budget clock),
objective and plain (unweighted) loss, and ``snapshots`` of (E, nu) at ``n_snapshots`` log-spaced fractions
(1 % to 100 %) of the budget, plus the untrained network at epoch 0 and the final one. With ``return_history=True`` the same dict is also returned under the
key ``"history"`` (the harness ignores keys that are not prediction fields).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from phantombench.solvers.base import Solver
from phantombench.solvers.finite_differences import d_dx, d_dy, fill_invalid
from phantombench.solvers.training import Budget, Checkpoint, TensorState, Trainer, TrainResult, seed_everything

PAPER_WIDTH = 64
PAPER_DEPTH = 5
NU_MAX = 0.4999
E_MIN, E_MAX = 1.0, 1e9


# =========================================================================================== the case
@dataclass
class Case:
    """One observation as non-dimensional tensors."""

    eps: torch.Tensor      # (3, H, W) exx, eyy, exy divided by eps0
    inp: torch.Tensor      # (1, 3, H, W) network input: strains min-max normalised per channel
    hx: float              # dx / l0
    hy: float              # dy / l0
    l0: float              # m
    sigma0: float          # Pa
    eps0: float            # strain scale of the Lame unknowns
    top: float             # top traction / sigma0 (1 here)

    @property
    def modulus_scale(self) -> float:
        """Pa per unit of the networks' non-dimensional Lame outputs."""
        return self.sigma0 / self.eps0

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.eps.shape[-2:])

    def coordinates(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-dimensional pixel-centre coordinates (H, W): x from the left edge, y from the bottom edge."""
        H, W = self.shape
        dev, dt = self.eps.device, self.eps.dtype
        x = torch.arange(W, device=dev, dtype=dt) * self.hx
        y = (H - 1 - torch.arange(H, device=dev, dtype=dt)) * self.hy
        Y, X = torch.meshgrid(y, x, indexing="ij")
        return X, Y


def observation_sha256(observation: dict[str, Any]) -> str:
    """Identity of an observation (strains, mask, traction, spacing): a checkpoint resumes only on the same one."""
    h = hashlib.sha256()
    for k in ("exx", "eyy", "exy", "mask", "traction", "spacing"):
        if k in observation:
            a = np.ascontiguousarray(np.asarray(observation[k]))
            h.update(k.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def prepare_case(observation: dict[str, Any], device: str = "cpu", dtype=torch.float32,
                 lame_scale: str = "strain") -> Case:
    """Non-dimensionalise an observation of ``brain-elasticity`` (see the module docstring)."""
    exx, eyy, exy = (np.asarray(observation[k], dtype=np.float64) for k in ("exx", "eyy", "exy"))
    mask = np.asarray(observation.get("mask", np.ones(exx.shape, bool)), bool)
    valid = mask & np.isfinite(exx) & np.isfinite(eyy) & np.isfinite(exy)
    # the domain is the whole rectangle: the rare pixels without data take their nearest neighbour's strain
    exx, eyy, exy = (fill_invalid(a, valid) for a in (exx, eyy, exy))
    traction = float(observation["traction"])
    if not traction > 0:
        raise ValueError(f"the top traction must be positive (got {traction})")
    dy, dx = (float(s) for s in np.asarray(observation["spacing"], dtype=np.float64))
    H, W = exx.shape
    if H < 3 or W < 3:
        raise ValueError(f"need at least 3 x 3 pixels (got {H} x {W})")
    l0 = 0.5 * (dx * (W - 1) + dy * (H - 1))
    sigma0 = traction
    if lame_scale == "strain":
        eps0 = float(np.mean(np.abs(eyy[valid]))) if valid.any() else 1.0
        eps0 = eps0 if eps0 > 0 else 1.0
    elif lame_scale == "paper":
        eps0 = 1.0
    else:
        raise ValueError(f"lame_scale must be 'strain' or 'paper' (got {lame_scale!r})")
    eps = torch.as_tensor(np.stack([exx, eyy, exy]) / eps0, dtype=dtype, device=device)
    inp = torch.as_tensor(np.stack([_minmax(exx), _minmax(eyy), _minmax(exy)])[None], dtype=dtype, device=device)
    return Case(eps=eps, inp=inp, hx=dx / l0, hy=dy / l0, l0=l0, sigma0=sigma0, eps0=eps0, top=traction / sigma0)


# =========================================================================================== physics
def plane_stress(lam: torch.Tensor, mu: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(sxx, syy, sxy) of plane stress with the effective lam* (eps[2] = tensor shear)."""
    exx, eyy, exy = eps[0], eps[1], eps[2]
    tr = exx + eyy
    return lam * tr + 2 * mu * exx, lam * tr + 2 * mu * eyy, 2 * mu * exy


def equilibrium_fd(sxx, syy, sxy, hx: float, hy: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Residuals of div sigma = 0 by finite differences: (d sxx/dx + d sxy/dy, d sxy/dx + d syy/dy)."""
    return d_dx(sxx, hx) + d_dy(sxy, hy), d_dx(sxy, hx) + d_dy(syy, hy)


def _mse(r: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return torch.mean(r * r) if w is None else torch.mean((w * r) ** 2)


def residual_terms(case: Case, lam, mu, stresses=None, equilibrium=None, weights=None
                   ) -> list[tuple[str, torch.Tensor, torch.Tensor | None]]:
    """Every loss term as (name, residual, spatial weight or None); the loss is the sum of their MSEs.

    ``stresses``: the network's (sxx, syy, sxy) (PS models); None: computed from (lam, mu) and the strains (P).
    ``equilibrium``: precomputed (rx, ry) (the PINN's autograd residuals); None: finite differences.
    ``weights``: self-adaptive fields {"C": (H, W), "E": (H, W), "sides": (2, H), "tb": (2, W)} (any may be
    missing: unweighted).
    """
    w = weights or {}
    terms: list[tuple[str, torch.Tensor, torch.Tensor | None]] = []
    computed = plane_stress(lam, mu, case.eps)
    if stresses is None:
        sxx, syy, sxy = computed
    else:
        sxx, syy, sxy = stresses
        wc = w.get("C")
        for name, s, c in zip(("C_xx", "C_yy", "C_xy"), stresses, computed, strict=True):
            terms.append((name, s - c, wc))
    rx, ry = equilibrium if equilibrium is not None else equilibrium_fd(sxx, syy, sxy, case.hx, case.hy)
    we = w.get("E")
    terms += [("E_x", rx, we), ("E_y", ry, we)]
    tb, sd = w.get("tb"), w.get("sides")
    wt, wb = (None, None) if tb is None else (tb[0], tb[1])
    wl, wr = (None, None) if sd is None else (sd[0], sd[1])
    terms += [("top_syy", syy[0, :] + case.top, wt), ("top_sxy", sxy[0, :], wt),
              ("bottom_sxy", sxy[-1, :], wb),
              ("left_sxx", sxx[:, 0], wl), ("left_sxy", sxy[:, 0], wl),
              ("right_sxx", sxx[:, -1], wr), ("right_sxy", sxy[:, -1], wr)]
    return terms


def total_loss(terms, weighted: bool = True) -> torch.Tensor:
    return sum(_mse(r, w if weighted else None) for _, r, w in terms)


def homogeneous_lame(case: Case) -> tuple[float, float]:
    """Non-dimensional (lam*, mu) of the homogeneous uniaxial fit: E = traction / mean|eyy|, nu = -mean exx / mean eyy.

    Every horizontal section carries the top load, so mean(syy) = -traction for any material distribution."""
    exx, eyy = (case.eps[k].double().cpu().numpy() * case.eps0 for k in (0, 1))
    m_yy = float(np.mean(eyy))
    E = case.top * case.sigma0 / max(abs(m_yy), 1e-30)
    nu = float(np.clip(-np.mean(exx) / m_yy, 0.0, 0.45)) if m_yy else 0.3
    lam, mu = E * nu / (1 - nu**2), E / (2 * (1 + nu))
    return lam / case.modulus_scale, mu / case.modulus_scale


def init_output_layer(layer: nn.Module, values: list[float]) -> None:
    """Zero the output layer's weights and set its bias: the untrained model outputs ``values`` everywhere."""
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.as_tensor(values, dtype=layer.bias.dtype))


def lame_to_E_nu(lam, mu):
    """The paper's conversion of (plane-stress effective) Lame maps to E and nu, clipped to the task's bounds.

    E' = mu (3 lam + 2 mu) / (lam + mu), nu' = lam / (2 (lam + mu)); E = E' / (1 - nu'^2), nu = nu' / (1 - nu').
    """
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)
    mu = np.asarray(mu, dtype=np.float64)
    mu = np.maximum(mu, 1e-9 * max(float(np.max(np.abs(mu))), 1e-30))
    E3 = mu * (3 * lam + 2 * mu) / (lam + mu)
    nu3 = lam / (2 * (lam + mu))
    E = E3 / (1 - nu3**2)
    nu = nu3 / (1 - nu3)
    return np.clip(E, E_MIN, E_MAX), np.clip(nu, 0.0, NU_MAX)


# =========================================================================================== networks
class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Up(nn.Module):
    """Bilinear x2 upsampling, then a 2x2 convolution (halving the channels); resampled to the skip's size."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 2, bias=False)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv(F.pad(x, (0, 1, 0, 1), mode="replicate"))
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x


class ElUNetNet(nn.Module):
    """The El-UNet network: ``depth`` levels of ``width * 2**k`` channels, linear 1x1 head."""

    def __init__(self, in_channels: int = 3, out_channels: int = 5, width: int = PAPER_WIDTH,
                 depth: int = PAPER_DEPTH):
        super().__init__()
        if depth < 2:
            raise ValueError("depth must be at least 2")
        ch = [width * 2**k for k in range(depth)]
        self.downs = nn.ModuleList()
        c = in_channels
        for f in ch[:-1]:
            self.downs.append(DoubleConv(c, f))
            c = f
        self.bottleneck = DoubleConv(ch[-2], ch[-1])
        self.ups = nn.ModuleList(Up(ch[k + 1], ch[k]) for k in reversed(range(depth - 1)))
        self.up_convs = nn.ModuleList(DoubleConv(2 * ch[k], ch[k]) for k in reversed(range(depth - 1)))
        self.head = nn.Conv2d(ch[0], out_channels, 1)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_amp(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Mixed precision: the features under ``dtype`` autocast, the linear head in float32."""
        with torch.autocast(x.device.type, dtype=dtype):
            f = self.features(x)
        return self.head(f.float())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        need = 2 ** (len(self.downs) + 1)
        if min(x.shape[-2:]) < need:
            raise ValueError(f"a {len(self.downs) + 1}-level UNet needs images of at least {need} x {need} pixels "
                             f"(got {tuple(x.shape[-2:])}); lower depth")
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, conv, skip in zip(self.ups, self.up_convs, reversed(skips), strict=True):
            x = conv(torch.cat([skip, up(x, tuple(skip.shape[-2:]))], dim=1))
        return x


class MLP(nn.Module):
    """tanh MLP on the non-dimensional coordinates (affinely mapped to [-1, 1] inside)."""

    def __init__(self, out: int, hidden: int, layers: int, lo: torch.Tensor, hi: torch.Tensor):
        super().__init__()
        mods: list[nn.Module] = []
        c = 2
        for _ in range(layers):
            mods += [nn.Linear(c, hidden), nn.Tanh()]
            c = hidden
        mods.append(nn.Linear(c, out))
        self.net = nn.Sequential(*mods)
        self.register_buffer("lo", lo)
        self.register_buffer("hi", hi)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.net(2 * (xy - self.lo) / (self.hi - self.lo) - 1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# =========================================================================================== solvers
class ElasticityPINN(Solver):
    """Shared training loop: subclasses build the model and map it to (lam, mu, stresses, equilibrium)."""

    tasks = ("brain-elasticity",)
    time_budget_s = 1800.0          # the task's maximum; the training time is the train_time_s parameter
    version = "1.0.0"
    setup_margin_s = 30.0           # kept free of training inside time_budget_s (setup, conversion, transfer)
    common_defaults: dict[str, Any] = {
        "train_time_s": 120.0,      # wall seconds of training (equal per model; paper: 1800 s on a P100)
        "max_epochs": 0,            # > 0: also stop after this many epochs (tests, reproducible short runs)
        "lr": 1e-3,
        "lame_scale": "strain",     # "strain" (Lame in units of traction / mean|eyy|) or "paper" (traction)
        "n_snapshots": 40,          # (E, nu) snapshots kept for error-versus-epoch curves
        "return_history": False,
        "threads": 0,               # > 0: torch.set_num_threads for the solve
        "init": "homogeneous",      # output layer: "homogeneous" (start at the uniaxial fit) or "default" (paper)
        "clock": "wall",            # budget clock: "wall" (paper) or "cpu" (this process's CPU time: equal
                                    # compute per model on a shared machine; use with threads=1)
        "checkpoint": "",           # file: resume from it if present, save to it every checkpoint_every_s and at the end
        "checkpoint_every_s": 300.0,
    }

    # ---- to implement
    def build(self, case: Case) -> tuple[list[nn.Parameter], dict[str, torch.Tensor]]:
        """Create the model; return (network parameters, self-adaptive weights to ascend)."""
        raise NotImplementedError

    def state_modules(self) -> dict[str, nn.Module]:
        """The modules whose state a checkpoint keeps."""
        raise NotImplementedError

    def forward(self, case: Case) -> tuple[torch.Tensor, torch.Tensor, tuple | None, tuple | None]:
        """(lam, mu, stresses or None, equilibrium residuals or None), all (H, W), non-dimensional."""
        raise NotImplementedError

    # ---- shared
    def terms(self, case: Case, weights: dict[str, torch.Tensor] | None = None):
        lam, mu, stresses, eq = self.forward(case)
        return residual_terms(case, lam, mu, stresses, eq, weights)

    def predict_lame(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        """(lam, mu) in Pa from the current model."""
        with torch.no_grad():
            lam, mu, _, _ = self.forward(case)
        s = case.modulus_scale
        return lam.double().cpu().numpy() * s, mu.double().cpu().numpy() * s

    def predict(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        return lame_to_E_nu(*self.predict_lame(case))

    def solve(self, observation: dict[str, Any]) -> dict[str, Any]:
        p = self.params
        if int(p["threads"]) > 0:
            torch.set_num_threads(int(p["threads"]))
        seed_everything(self.seed)
        case = prepare_case(observation, self.device, torch.float32, str(p["lame_scale"]))
        net_params, self.weights = self.build(case)
        opt = torch.optim.Adam(net_params, lr=float(p["lr"]))
        opts = [opt] + ([torch.optim.Adam(list(self.weights.values()), lr=float(p.get("weight_lr", p["lr"])),
                                          maximize=True)] if self.weights else [])
        train_time = min(float(p["train_time_s"]), max(1.0, float(self.time_budget_s) - self.setup_margin_s))
        log = TrainingLog(self, case, train_time)
        trainer = Trainer(self.state_modules(), opts, self._budget(train_time), loss=log.loss,
                          checkpoint=self._checkpoint(observation, log), stateful={"weights": TensorState(self.weights)},
                          on_step=log.on_step, on_end=log.on_end, unit="epoch")
        log.start(trainer.restore())
        trainer.run()
        hist = log.hist
        final = self.terms(case, None)      # with autograd on: the PINN's equilibrium needs it
        hist["terms"] = {name: float(torch.mean(r.detach() ** 2)) for name, r, _ in final}
        if self.weights:
            hist["weights"] = {k: v.detach().cpu().numpy().copy() for k, v in self.weights.items()}
        E, nu = self.predict(case)
        self.last_history = hist
        out: dict[str, Any] = {"E": E, "nu": nu}
        if p["return_history"]:
            out["history"] = hist
        return out

    def _budget(self, train_time: float) -> Budget:
        """``train_time`` seconds of the budget clock over every resumed run, and at most ``max_epochs``."""
        max_epochs = int(self.params["max_epochs"])
        return Budget(max_epochs if max_epochs > 0 else None, train_time, str(self.params["clock"]), cumulative=True)

    def _checkpoint(self, observation: dict[str, Any], log: TrainingLog) -> Checkpoint | None:
        """The ``checkpoint`` file (if set), tagged with the solver, the observation and the parameters that shape
        the optimisation (not the budget): another observation's file is refused."""
        p = self.params
        if not p["checkpoint"]:
            return None
        tag = {"solver": self.name, "version": self.version, "observation_sha256": observation_sha256(observation),
               "seed": self.seed, "params": {k: p[k] for k in _TAG_PARAMS if k in p}}
        return Checkpoint(p["checkpoint"], tag, on_mismatch="error", every_s=float(p["checkpoint_every_s"]),
                          extra=(log.state, log.load))


_TAG_PARAMS = ("lr", "lame_scale", "init", "width", "depth", "weight_lr", "amp", "hidden", "layers")


class TrainingLog:
    """What a per-sample run records (``ElasticityPINN.last_history``): per-epoch time, objective and plain
    (unweighted) loss, and (E, nu) snapshots at ``n_snapshots`` log-spaced fractions (1 % to 100 %) of the budget,
    plus the untrained network at epoch 0 and the final one. It also supplies the trainer's loss."""

    def __init__(self, solver: ElasticityPINN, case: Case, train_time: float):
        p = solver.params
        self.solver, self.case, self.train_time = solver, case, train_time
        self.max_epochs, n_snap = int(p["max_epochs"]), max(0, int(p["n_snapshots"]))
        # snapshot k at the fraction 10**(-2 + 2 k / n) of the budget: log-spaced, for curves on a log epoch axis
        self.fracs = [10 ** (-2 + 2 * k / n_snap) for k in range(1, n_snap + 1)] if n_snap else []
        self.next_snap, self.terms, self.w0 = 0, None, time.perf_counter()
        self.hist: dict[str, Any] = {"model": solver.name, "epoch": [], "time_s": [], "loss": [], "loss_plain": [],
                                     "terms": {}, "snapshots": [], "train_time_s": train_time,
                                     "modulus_scale_Pa": case.modulus_scale, "device": solver.device,
                                     "clock": p["clock"]}

    def state(self) -> dict[str, Any]:
        return {"next_snap": self.next_snap, "history": self.hist}

    def load(self, st: dict[str, Any]) -> None:
        self.next_snap, self.hist = st["next_snap"], st["history"]

    def start(self, resumed_at_epoch: int) -> None:
        """After the trainer's restore: mark a resume, or snapshot the untrained network."""
        self.w0 = time.perf_counter()
        if resumed_at_epoch:
            self.hist["resumed_at_epoch"] = resumed_at_epoch
        elif self.fracs:
            self.snapshot(0, 0.0)

    def snapshot(self, epoch: int, t: float) -> None:
        E, nu = self.solver.predict(self.case)
        self.hist["snapshots"].append({"epoch": epoch, "time_s": t, "E": E.astype(np.float32),
                                       "nu": nu.astype(np.float32)})

    def loss(self, step: int) -> torch.Tensor:
        self.terms = self.solver.terms(self.case, self.solver.weights)
        return total_loss(self.terms, weighted=True)

    def on_step(self, epoch: int, t: float, loss: float) -> None:
        with torch.no_grad():
            plain = float(total_loss(self.terms, weighted=False)) if self.solver.weights else loss
        h = self.hist
        h["epoch"].append(epoch)
        h["time_s"].append(t)
        h["loss"].append(loss)
        h["loss_plain"].append(plain)
        if self.next_snap < len(self.fracs):
            progress = max(epoch / self.max_epochs if self.max_epochs > 0 else 0.0, t / self.train_time)
            if progress >= self.fracs[self.next_snap]:
                self.snapshot(epoch, t)
                while self.next_snap < len(self.fracs) and progress >= self.fracs[self.next_snap]:
                    self.next_snap += 1

    def on_end(self, res: TrainResult) -> None:
        h = self.hist
        if res.stopped not in (None, "time"):
            h["stopped"] = res.stopped
        h["epochs"] = res.steps
        h["train_s"] = res.seconds
        h["wall_train_s"] = time.perf_counter() - self.w0
        if self.fracs and (not h["snapshots"] or h["snapshots"][-1]["epoch"] != res.steps):
            self.snapshot(res.steps, h["train_s"])


class ElUNet(ElasticityPINN):
    """El-UNet base: ``stress_outputs`` (PS) and ``adaptive`` weights (None, "W1", "W2") set by the subclasses."""

    stress_outputs = False
    adaptive: str | None = None
    defaults = {**ElasticityPINN.common_defaults, "width": 8, "depth": PAPER_DEPTH, "weight_lr": 1e-3, "amp": "off"}

    def build(self, case: Case):
        n_out = 5 if self.stress_outputs else 2
        self.net = ElUNetNet(3, n_out, int(self.params["width"]), int(self.params["depth"])).to(self.device)
        self.net.train()
        if self.params["init"] == "homogeneous":
            init_output_layer(self.net.head, [*homogeneous_lame(case), 0.0, -case.top, 0.0][:n_out])
        elif self.params["init"] != "default":
            raise ValueError(f"init must be 'homogeneous' or 'default' (got {self.params['init']!r})")
        weights: dict[str, torch.Tensor] = {}
        if self.adaptive:
            H, W = case.shape
            shapes = {"C": (H, W), "E": (H, W), "sides": (2, H), "tb": (2, W)}
            if self.adaptive == "W2":
                del shapes["E"]
            for k, s in shapes.items():
                weights[k] = torch.ones(s, device=self.device, dtype=case.eps.dtype, requires_grad=True)
        return list(self.net.parameters()), weights

    def state_modules(self):
        return {"net": self.net}

    def forward(self, case: Case):
        amp = str(self.params["amp"])
        if amp == "off":
            y = self.net(case.inp)[0]
        elif amp == "bf16":
            y = self.net.forward_amp(case.inp, torch.bfloat16)[0]
        else:
            raise ValueError(f"amp must be 'off' or 'bf16' (got {amp!r})")
        stresses = (y[2], y[3], y[4]) if self.stress_outputs else None
        return y[0], y[1], stresses, None


class ElUNetP(ElUNet):
    name = "elunet-p"


class ElUNetPS(ElUNet):
    name = "elunet-ps"
    stress_outputs = True


class ElUNetPSW1(ElUNet):
    name = "elunet-ps-w1"
    stress_outputs = True
    adaptive = "W1"


class ElUNetPSW2(ElUNet):
    name = "elunet-ps-w2"
    stress_outputs = True
    adaptive = "W2"


class DensePINN(ElasticityPINN):
    """The dense PINN baseline: a parameter MLP (lam, mu) and a stress MLP (sxx, syy, sxy) on (x, y).

    Collocation points are the pixel centres (142 x 100 = 14,200, as the paper); equilibrium by automatic
    differentiation of the stress MLP; constitutive and traction terms as El-UNet PS.
    """

    name = "pinn-elasticity"
    defaults = {**ElasticityPINN.common_defaults, "hidden": 64, "layers": 4}

    def build(self, case: Case):
        X, Y = case.coordinates()
        xy = torch.stack([X.reshape(-1), Y.reshape(-1)], dim=1)
        self.xy = xy
        lo, hi = xy.min(dim=0).values, xy.max(dim=0).values
        h, L = int(self.params["hidden"]), int(self.params["layers"])
        self.param_net = MLP(2, h, L, lo, hi).to(self.device)
        self.stress_net = MLP(3, h, L, lo, hi).to(self.device)
        if self.params["init"] == "homogeneous":
            init_output_layer(self.param_net.net[-1], list(homogeneous_lame(case)))
            init_output_layer(self.stress_net.net[-1], [0.0, -case.top, 0.0])
        elif self.params["init"] != "default":
            raise ValueError(f"init must be 'homogeneous' or 'default' (got {self.params['init']!r})")
        return list(self.param_net.parameters()) + list(self.stress_net.parameters()), {}

    def state_modules(self):
        return {"param_net": self.param_net, "stress_net": self.stress_net}

    def forward(self, case: Case):
        H, W = case.shape
        if not torch.is_grad_enabled():
            lam_mu = self.param_net(self.xy)
            s = self.stress_net(self.xy)
            return (lam_mu[:, 0].reshape(H, W), lam_mu[:, 1].reshape(H, W),
                    tuple(s[:, k].reshape(H, W) for k in range(3)), None)   # no derivatives without autograd
        xy = self.xy.detach().requires_grad_(True)
        lam_mu = self.param_net(self.xy)
        s = self.stress_net(xy)
        grads = [torch.autograd.grad(s[:, k].sum(), xy, create_graph=True)[0] for k in range(3)]
        rx = grads[0][:, 0] + grads[2][:, 1]          # d sxx/dx + d sxy/dy  (y is up)
        ry = grads[2][:, 0] + grads[1][:, 1]          # d sxy/dx + d syy/dy
        shape = (H, W)
        return (lam_mu[:, 0].reshape(shape), lam_mu[:, 1].reshape(shape),
                tuple(s[:, k].reshape(shape) for k in range(3)), (rx.reshape(shape), ry.reshape(shape)))


MODELS: dict[str, type[ElasticityPINN]] = {c.name: c for c in (ElUNetP, ElUNetPS, ElUNetPSW1, ElUNetPSW2, DensePINN)}
