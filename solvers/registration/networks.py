"""Networks of the learned registration solvers: a U-Net on concat(fixed, moving) predicts a stationary velocity
field, scaling and squaring integrates it into a displacement, a spatial transformer warps the moving image.

Conventions (checked in ``tests/test_learned_registration.py`` with a pure translation): the displacement ``u``
(B, D, *S) is in voxels on the fixed grid, channel d along spatial axis d, and ``warp(moving, u)(x) =
moving(x + u(x))``, which should equal fixed(x). MONAI's :class:`~monai.networks.blocks.Warp` has exactly this
convention (its reference grid is ``meshgrid(..., indexing="ij")`` plus the DDF in voxel units, channel i on axis
i, reversed to grid_sample's x, y, z order with ``align_corners=True``), so it is used as is, with bilinear
interpolation (trilinear in 3-D) and border padding. :class:`~monai.networks.blocks.DVF2DDF` is MONAI's scaling
and squaring (``u = v / 2^N``, then N times ``u <- u + warp(u, u)``); it is used with border padding too (a
displacement field continues past the edge rather than dropping to zero).

Backbones:

* ``"voxelmorph"`` -- VoxelMorph's U-Net (encoder [16, 32, 32, 32], decoder [32, 32, 32, 32, 32, 16, 16]:
  3x3 convolution + LeakyReLU(0.2) per level, max-pooling down, nearest upsampling and skip concatenation up,
  the decoder's extra entries as full-resolution convolutions). Written here, not taken from MONAI: MONAI's
  ``UNet`` has symmetric channel lists, strided convolutions and residual units, so it cannot express this
  layout, and this one takes FiLM conditioning (below) at every convolution.
* ``"attention"`` -- MONAI's :class:`~monai.networks.nets.AttentionUnet` (P5's network; channels and strides as
  given, kernel 3), with its output as features for the flow head.

Flow head: a 3x3 convolution to D channels initialised with N(0, 1e-5) weights and zero bias (VoxelMorph's), so
training starts from the identity.

Conditioning (HyperMorph-style, for :mod:`.hyper`): with ``cond_dim > 0`` a small MLP maps the hyper-parameter
vector to a FiLM scale and shift per channel of every convolution of the VoxelMorph U-Net
(``y = act(conv x) * (1 + gamma) + beta``); its last layer starts at zero (the unconditioned network).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["RegNet", "build_regnet", "make_warp", "make_integrator", "n_parameters"]


def make_warp(mode: str = "bilinear", padding_mode: str = "border"):
    """MONAI's Warp (its 'using PyTorch native grid_sample' notice silenced)."""
    from monai.networks.blocks import Warp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Warp(mode=mode, padding_mode=padding_mode)


def make_integrator(steps: int):
    """MONAI's DVF2DDF scaling and squaring with ``steps`` squarings (border padding); None for 0 steps."""
    from monai.networks.blocks import DVF2DDF

    if steps <= 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DVF2DDF(num_steps=int(steps), mode="bilinear", padding_mode="border")


def _conv(ndim: int):
    return nn.Conv2d if ndim == 2 else nn.Conv3d


class FiLMConv(nn.Module):
    """3x3 convolution + LeakyReLU(0.2), optionally modulated by FiLM (gamma, beta) of shape (B, C)."""

    def __init__(self, ndim: int, cin: int, cout: int):
        super().__init__()
        self.conv = _conv(ndim)(cin, cout, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)
        self.out_channels = cout

    def forward(self, x, film=None):
        y = self.act(self.conv(x))
        if film is not None:
            gamma, beta = film
            shape = (y.shape[0], y.shape[1]) + (1,) * (y.ndim - 2)
            y = y * (1 + gamma.view(shape)) + beta.view(shape)
        return y


class VoxelMorphUNet(nn.Module):
    """VoxelMorph's U-Net (see the module docstring); ``forward(x, film_params=None)`` -> features."""

    def __init__(self, ndim: int, cin: int, enc: list[int], dec: list[int]):
        super().__init__()
        if len(dec) < len(enc):
            raise ValueError("the decoder needs at least as many entries as the encoder")
        self.ndim, self.levels = ndim, len(enc)
        self.enc = nn.ModuleList()
        c = cin
        for f in enc:
            self.enc.append(FiLMConv(ndim, c, f))
            c = f
        self.dec = nn.ModuleList()
        for k in range(len(enc)):
            self.dec.append(FiLMConv(ndim, c, dec[k]))
            c = dec[k] + enc[-1 - k]
        self.extra = nn.ModuleList()
        for f in dec[len(enc):]:
            self.extra.append(FiLMConv(ndim, c, f))
            c = f
        self.out_channels = c
        self.pool = nn.MaxPool2d(2) if ndim == 2 else nn.MaxPool3d(2)

    def layers(self) -> list[FiLMConv]:
        return [*self.enc, *self.dec, *self.extra]

    def forward(self, x, film=None):
        films = iter(film) if film is not None else None
        nxt = (lambda: next(films)) if films is not None else (lambda: None)
        skips = []
        for layer in self.enc:
            x = layer(x, nxt())
            skips.append(x)
            x = self.pool(x)
        for layer in self.dec:
            x = layer(x, nxt())
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = torch.cat([x, skips.pop()], dim=1)
        for layer in self.extra:
            x = layer(x, nxt())
        return x


class FiLMGenerator(nn.Module):
    """MLP: hyper-parameter vector (B, cond_dim) -> one (gamma, beta) pair per convolution."""

    def __init__(self, cond_dim: int, channels: list[int], hidden: int = 64):
        super().__init__()
        self.channels = list(channels)
        self.mlp = nn.Sequential(nn.Linear(cond_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * sum(self.channels)))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, cond):
        out = self.mlp(cond)
        films, k = [], 0
        for c in self.channels:
            films.append((out[:, k:k + c], out[:, k + c:k + 2 * c]))
            k += 2 * c
        return films


class AttentionBackbone(nn.Module):
    """MONAI's AttentionUnet on the 2-channel input, its ``channels[0]`` output channels used as features."""

    def __init__(self, ndim: int, cin: int, channels: list[int], strides: list[int]):
        super().__init__()
        from monai.networks.nets import AttentionUnet

        self.net = AttentionUnet(spatial_dims=ndim, in_channels=cin, out_channels=channels[0], channels=channels,
                                 strides=strides, kernel_size=3, up_kernel_size=3)
        self.levels = len(strides)
        self.out_channels = channels[0]

    def forward(self, x, film=None):
        if film is not None:
            raise ValueError("the attention backbone takes no conditioning")
        return F.leaky_relu(self.net(x), 0.2)


class RegNet(nn.Module):
    """backbone(concat(fixed, moving)) -> velocity v -> displacement u (scaling and squaring) -> warped moving.

    ``forward(fixed, moving, cond=None, extra=None)`` with images (B, 1, *S) (``extra``: more input channels,
    e.g. parameter maps) returns ``(warped, u, v)``. Inputs are padded
    (replicate) to a multiple of 2^levels and the velocity cropped back."""

    def __init__(self, backbone: nn.Module, ndim: int, int_steps: int, cond_dim: int = 0):
        super().__init__()
        self.backbone, self.ndim = backbone, ndim
        self.flow = _conv(ndim)(backbone.out_channels, ndim, 3, padding=1)
        nn.init.normal_(self.flow.weight, 0.0, 1e-5)
        nn.init.zeros_(self.flow.bias)
        self.film = None
        if cond_dim > 0:
            self.film = FiLMGenerator(cond_dim, [layer.out_channels for layer in backbone.layers()])
        self.integrate = make_integrator(int_steps)
        self.warp = make_warp("bilinear", "border")

    def velocity(self, fixed, moving, cond=None, extra=None):
        x = torch.cat([fixed, moving] + ([extra] if extra is not None else []), dim=1)
        size = x.shape[2:]
        m = 2 ** self.backbone.levels
        pad = []
        for s in reversed(size):
            pad += [0, (-s) % m]
        if any(pad):
            x = F.pad(x, pad, mode="replicate")
        film = self.film(cond) if self.film is not None and cond is not None else None
        v = self.flow(self.backbone(x, film))
        return v[(slice(None), slice(None)) + tuple(slice(0, s) for s in size)]

    def forward(self, fixed, moving, cond=None, extra=None):
        v = self.velocity(fixed, moving, cond, extra)
        u = self.integrate(v) if self.integrate is not None else v
        return self.warp(moving, u), u, v


def build_regnet(ndim: int, arch: str, enc=(16, 32, 32, 32), dec=(32, 32, 32, 32, 32, 16, 16),
                 channels=(16, 32, 64, 128, 256, 512), int_steps: int = 7, cond_dim: int = 0,
                 extra_channels: int = 0) -> RegNet:
    """A :class:`RegNet` with the ``"voxelmorph"`` or ``"attention"`` backbone (strides 2 between levels) on
    2 + ``extra_channels`` input channels."""
    cin = 2 + int(extra_channels)
    if arch == "voxelmorph":
        backbone = VoxelMorphUNet(ndim, cin, [int(c) for c in enc], [int(c) for c in dec])
    elif arch == "attention":
        if cond_dim:
            raise ValueError("conditioning needs the voxelmorph backbone")
        ch = [int(c) for c in channels]
        backbone = AttentionBackbone(ndim, cin, ch, [2] * (len(ch) - 1))
    else:
        raise ValueError(f"arch must be 'voxelmorph' or 'attention' (got {arch!r})")
    return RegNet(backbone, ndim, int(int_steps), int(cond_dim))


def n_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))
