"""Generator ``brain-deform``: MR-like brain-slice registration pairs with a finite-strain FEM ground truth.

Pipeline per sample (:meth:`BrainDeform.sample`), one short function per stage:

    draw_phantom  MNI152 coronal label slice with the ventricles as a CSF class, per-tissue Lame parameters,
                  the boundary load (random smooth displacement of the box edges, optional indentation), the
                  intensity model (class means, bias field, texture)          (meshes/anatomy)
    mesh_phantom  conforming gmsh mesh of the box with the slice embedded       (meshes/labelmesh.py)
    solve         compressible neo-Hookean plane strain, Newton + load steps    (generators/hyperelastic.py)
    render        fixed and moving images from one intensity model, the true displacement in pixels
                                                                                (generators/render.py)
    observe       Gaussian noise on both images                                (independent draws)
    attributes    materials, load, displacement statistics, solver and mesh statistics, timings

Presets and the dataset card are data: ``generators/presets/brain-deform.json``, ``generators/cards/brain-deform.md``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from phantombench.generators.assets import card_text, load_presets
from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample

BACKGROUND, GRAY, WHITE, CSF = 0, 1, 2, 3
LABEL_NAMES = {str(GRAY): "gray matter", str(WHITE): "white matter", str(CSF): "CSF (ventricles)"}
Range = tuple[float, float]


class BrainDeformConfig(GeneratorConfig):
    # geometry and grid
    size: float = Field(0.17, gt=0.16, le=0.5, description="side of the square box holding the slice [m]")
    grid: int = Field(128, ge=16, le=1024, description="image rows = columns")
    slice_index: int | None = Field(None, ge=0, description="anatomy slice; None = drawn per sample")
    # materials (E log-uniform, nu fixed per class); plane-strain Lame pairs follow
    E_gray: Range = Field((1000.0, 2000.0), description="gray-matter Young's modulus range [Pa]")
    white_over_gray: Range = Field((1.2, 1.6), description="white / gray stiffness ratio range")
    E_csf: Range = Field((100.0, 300.0), description="ventricle (CSF) Young's modulus range [Pa]")
    E_background: Range = Field((500.0, 1500.0), description="extracerebral tissue Young's modulus range [Pa]")
    nu_brain: float = Field(0.45, gt=0, lt=0.5, description="Poisson ratio of gray and white matter")
    nu_csf: float = Field(0.1, gt=-1, lt=0.5, description="Poisson ratio of the ventricles (drainable CSF)")
    nu_background: float = Field(0.4, gt=0, lt=0.5, description="Poisson ratio of the extracerebral tissue")
    # load
    max_displacement_px: Range = Field((6.0, 14.0), description="largest boundary displacement, in pixels")
    n_modes: int = Field(4, ge=1, le=16, description="random sinusoids of the boundary displacement")
    wavelength: Range = Field((1.0, 2.5), description="their wavelengths, in box sides")
    indent_probability: float = Field(0.5, ge=0, le=1, description="chance of an indentation on one edge")
    indent_width: Range = Field((0.015, 0.04), description="indenter half-width (Gaussian sigma) range [m]")
    # intensities (T1-like ordering: white > gray > CSF)
    mean_white: Range = Field((0.75, 0.9), description="white-matter mean intensity range")
    mean_gray: Range = Field((0.45, 0.6), description="gray-matter mean intensity range")
    mean_csf: Range = Field((0.1, 0.2), description="CSF mean intensity range")
    mean_background: Range = Field((0.2, 0.3), description="extracerebral mean intensity range")
    bias_rms: Range = Field((0.05, 0.15), description="RMS of the log bias field")
    texture_rms: Range = Field((0.03, 0.08), description="RMS of the relative texture")
    texture_wavelength_px: Range = Field((4.0, 12.0), description="texture wavelengths, in pixels")
    noise: float = Field(0.01, ge=0, le=0.5, description="Gaussian noise std (intensity units) on both images")
    # numerics
    supersample: int = Field(3, ge=1, le=8, description="sub-pixels per axis averaged per pixel")
    order: int = Field(1, ge=1, le=2, description="Lagrange order of the displacement")
    h_fine: float = Field(0.002, gt=0, description="mesh size at tissue interfaces [m]")
    h_coarse: float = Field(0.006, gt=0, description="mesh size far from interfaces [m]")
    load_steps: int = Field(2, ge=1, le=50, description="load steps of the Newton solve")
    n_landmarks: int = Field(16, ge=0, le=1000, description="landmarks per pair")

    @model_validator(mode="after")
    def _check(self):
        for name, spec in type(self).model_fields.items():
            v = getattr(self, name)
            if spec.annotation == Range and v[0] > v[1]:
                raise ValueError(f"{name}: lower bound {v[0]} above upper bound {v[1]}")
        if self.h_fine > self.h_coarse:
            raise ValueError("h_fine must not exceed h_coarse")
        return self


PRESETS: dict[str, dict[str, Any]] = load_presets("brain-deform")


class BrainDeform(Generator):
    name = "brain-deform"
    version = "1.0.0"
    Config = BrainDeformConfig
    presets = PRESETS
    regen_rtol = 1e-6

    def schema(self, cfg: BrainDeformConfig) -> dict[str, FieldSpec]:
        from phantombench.generators.render import registration_schema

        return registration_schema((cfg.grid, cfg.grid), "0 outside the brain, 1 gray, 2 white, 3 CSF")

    def sample(self, cfg: BrainDeformConfig, rng: np.random.Generator, index: int) -> Sample:
        """phantom -> mesh -> solve -> render -> observe -> attributes (see the module docstring)."""
        t0 = time.perf_counter()
        ph = draw_phantom(cfg, rng)
        lm = mesh_phantom(cfg, ph)
        t1 = time.perf_counter()
        fe = solve(cfg, ph, lm)
        t2 = time.perf_counter()
        pair = render(cfg, ph, fe, rng)
        t3 = time.perf_counter()
        out = observe(cfg, pair, rng)
        seconds = {"mesh": round(t1 - t0, 4), "solve": round(t2 - t1, 4), "render": round(t3 - t2, 4)}
        return Sample(out, attributes(cfg, ph, lm, fe, pair, seconds))

    def card(self, cfg: BrainDeformConfig) -> str:
        return card_text(self.name)


# ------------------------------------------------------------------------------------------------ stages
@dataclass
class Phantom:
    slice_index: int
    image: np.ndarray                         # (h, w) labels with CSF, 1 mm pixels
    materials: dict[int, tuple[float, float]]  # label -> (E [Pa], nu)
    load: Any                                 # BoundaryLoad
    intensity: Any                            # render.IntensityModel


def draw_phantom(cfg: BrainDeformConfig, rng: np.random.Generator) -> Phantom:
    """Anatomy slice, materials, load and intensity model, in that draw order."""
    from scipy import ndimage

    from phantombench.meshes.anatomy import load_brain_slices

    stack = load_brain_slices()
    k = cfg.slice_index if cfg.slice_index is not None else int(rng.integers(len(stack.labels)))
    if k >= len(stack.labels):
        raise ValueError(f"slice_index {k} out of range (anatomy has {len(stack.labels)} slices)")
    image = stack.labels[k].copy()
    image[ndimage.binary_fill_holes(image > 0) & (image == 0)] = CSF  # enclosed background = ventricles
    E_g = _loguniform(rng, cfg.E_gray)
    mats = {GRAY: (E_g, cfg.nu_brain), WHITE: (E_g * rng.uniform(*cfg.white_over_gray), cfg.nu_brain),
            CSF: (_loguniform(rng, cfg.E_csf), cfg.nu_csf),
            BACKGROUND: (_loguniform(rng, cfg.E_background), cfg.nu_background)}
    load = BoundaryLoad.draw(rng, cfg)
    return Phantom(k, image, mats, load, _draw_intensity(cfg, rng))


def _loguniform(rng: np.random.Generator, r: Range) -> float:
    return float(np.exp(rng.uniform(np.log(r[0]), np.log(r[1]))))


def _draw_intensity(cfg: BrainDeformConfig, rng: np.random.Generator):
    from phantombench.generators.render import IntensityModel, PlaneWaves

    px = cfg.size / cfg.grid
    means = np.array([rng.uniform(*cfg.mean_background), rng.uniform(*cfg.mean_gray), rng.uniform(*cfg.mean_white),
                      rng.uniform(*cfg.mean_csf)])
    c = (0.5 * cfg.size, 0.5 * cfg.size)
    bias = PlaneWaves.draw(rng, 6, (0.7 * cfg.size, 2.0 * cfg.size), rng.uniform(*cfg.bias_rms), c)
    tex = PlaneWaves.draw(rng, 32, tuple(px * w for w in cfg.texture_wavelength_px), rng.uniform(*cfg.texture_rms), c)
    return IntensityModel(means, bias, tex)


@dataclass
class BoundaryLoad:
    """Displacement of the box boundary [m]: random sinusoids plus an optional Gaussian indentation (inward, on
    one edge), scaled so that its largest magnitude on the boundary is ``amplitude``."""

    size: float
    amplitude: float
    k: np.ndarray          # (n, 2) wave vectors [rad/m]
    phase: np.ndarray      # (n,)
    vec: np.ndarray        # (n, 2) displacement directions and weights
    indent: tuple[int, float, float] | None  # (edge 0 bottom 1 right 2 top 3 left, centre along it [m], sigma [m])
    scale: float = 1.0

    @classmethod
    def draw(cls, rng: np.random.Generator, cfg: BrainDeformConfig) -> BoundaryLoad:
        n = cfg.n_modes
        ang = rng.uniform(0, 2 * np.pi, n)
        kmag = 2 * np.pi / (cfg.size * rng.uniform(*cfg.wavelength, n))
        k = np.column_stack([np.cos(ang), np.sin(ang)]) * kmag[:, None]
        phase, vec = rng.uniform(0, 2 * np.pi, n), rng.normal(size=(n, 2))
        amp = rng.uniform(*cfg.max_displacement_px) * cfg.size / cfg.grid
        indent = None
        if rng.uniform() < cfg.indent_probability:
            indent = (int(rng.integers(4)), float(rng.uniform(0.3, 0.7) * cfg.size),
                      float(rng.uniform(*cfg.indent_width)))
        load = cls(cfg.size, float(amp), k, phase, vec, indent)
        t = np.linspace(0, 1, 401)[:, None] * cfg.size
        edge = np.vstack([np.hstack([t, 0 * t]), np.hstack([t, 0 * t + cfg.size]), np.hstack([0 * t, t]),
                          np.hstack([0 * t + cfg.size, t])])
        load.scale = amp / float(np.max(np.linalg.norm(load.raw(edge.T), axis=0)))
        return load

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Unscaled displacement (2, N) at points x (>= 2, N)."""
        xy = np.asarray(x)[:2].T - 0.5 * self.size
        g = (np.sin(xy @ self.k.T + self.phase) @ self.vec).T
        if self.indent is not None:
            edge, c, sig = self.indent
            s = xy[:, 0] + 0.5 * self.size if edge in (0, 2) else xy[:, 1] + 0.5 * self.size
            inward = np.array([[0, 1], [-1, 0], [0, -1], [1, 0]][edge], dtype=float)
            bump = np.exp(-0.5 * ((s - c) / sig) ** 2) * 1.5 * float(np.abs(self.vec).sum())
            g = g + inward[:, None] * bump[None, :]
        return g

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.scale * self.raw(x)


def mesh_phantom(cfg: BrainDeformConfig, ph: Phantom):
    """Conforming mesh of the box with the slice embedded at its 1 mm pixel size."""
    from phantombench.meshes.labelmesh import mesh_label_image

    return mesh_label_image(ph.image, cfg.size, cfg.size, pixel_size=1e-3, h_fine=cfg.h_fine, h_coarse=cfg.h_coarse)


@dataclass
class FEResult:
    sol: Any                  # hyperelastic.NeoHookeanSolution
    cell_labels: np.ndarray   # dolfinx cell order
    fmap: Any                 # render.PiecewiseAffineMap


def solve(cfg: BrainDeformConfig, ph: Phantom, lm) -> FEResult:
    """Per-cell Lame pairs from the labels, the boundary displacement on all four sides, the Newton solve."""
    from phantombench.generators import hyperelastic as he
    from phantombench.generators.render import PiecewiseAffineMap

    mesh, _ = lm.to_dolfinx()
    orig = np.asarray(mesh.topology.original_cell_index, dtype=np.int64)
    labels = np.asarray(lm.cell_labels, dtype=np.int64)[orig]
    mu_tab, lam_tab = np.zeros(4), np.zeros(4)
    for r, (E, nu) in ph.materials.items():
        mu_tab[r], lam_tab[r] = he.lame_from_E_nu(E, nu)
    bc = he.Dirichlet(ph.load, where=lambda x: np.ones(x.shape[1], dtype=bool))
    sol = he.solve_neo_hookean(mesh, mu_tab[labels], lam_tab[labels], [bc], order=cfg.order, steps=cfg.load_steps)
    pts, tris, U, parent = sol.linear_map()
    return FEResult(sol, labels, PiecewiseAffineMap(pts, tris, U, labels[parent]))


def grid_of(cfg: BrainDeformConfig):
    from phantombench.generators.raster import Grid

    return Grid.fit(0.0, cfg.size, 0.0, cfg.size, cfg.grid, cfg.grid, include_edges=False)


def render(cfg: BrainDeformConfig, ph: Phantom, fe: FEResult, rng: np.random.Generator) -> dict[str, Any]:
    """Both images, labels, the truth in pixels, materials on the grid, landmarks."""
    from phantombench.generators.hyperelastic import lame_from_E_nu
    from phantombench.generators.render import draw_landmarks, jacobian_determinant, render_pair, to_pixels

    grid = grid_of(cfg)
    pair = render_pair(fe.fmap, ph.intensity, grid, cfg.supersample, outside_label=BACKGROUND)
    disp = to_pixels(pair["u"], grid)
    body = pair["fixed_labels"] > 0
    mu_tab, lam_tab = np.zeros(4), np.zeros(4)
    for r, (E, nu) in ph.materials.items():
        if r != BACKGROUND:
            mu_tab[r], lam_tab[r] = lame_from_E_nu(E, nu)
    lf, lmv = draw_landmarks(rng, body, disp, cfg.n_landmarks)
    pair.update(grid=grid, disp=disp, body=body, mu=mu_tab[pair["fixed_labels"]], lam=lam_tab[pair["fixed_labels"]],
                jac_det=jacobian_determinant(disp), landmarks_fixed=lf, landmarks_moving=lmv)
    return pair


def observe(cfg: BrainDeformConfig, pair: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The contract's fields; both images get independent Gaussian noise of std ``noise``; no bone, no sliding."""
    from phantombench.generators.render import contract_fields

    hw = pair["fixed"].shape
    return contract_fields(pair, np.zeros(hw, np.uint8), np.zeros((2,) + hw, np.float32), cfg.noise, rng)


def attributes(cfg: BrainDeformConfig, ph: Phantom, lm, fe: FEResult, pair: dict[str, Any],
               seconds: dict[str, float]) -> dict[str, Any]:
    """Spacing, label names, materials, load, truth statistics, solver and mesh statistics, timings."""
    from phantombench.generators.hyperelastic import lame_from_E_nu

    g, body, disp = pair["grid"], pair["body"], pair["disp"]
    mag = np.linalg.norm(disp, axis=0)[body]
    names = {BACKGROUND: "extracerebral", GRAY: "gray matter", WHITE: "white matter", CSF: "CSF (ventricles)"}
    return {
        "spacing_mm": [g.dy * 1e3, g.dx * 1e3],
        "label_names": dict(LABEL_NAMES),
        "slice_index": ph.slice_index,
        "materials": {names[r]: {"E_Pa": E, "nu": nu, "mu_Pa": lame_from_E_nu(E, nu)[0],
                                 "lam_Pa": lame_from_E_nu(E, nu)[1]} for r, (E, nu) in ph.materials.items()},
        "load": {"max_boundary_displacement_mm": ph.load.amplitude * 1e3,
                 "indentation": None if ph.load.indent is None else
                 {"edge": ["bottom", "right", "top", "left"][ph.load.indent[0]], "centre_m": ph.load.indent[1],
                  "sigma_m": ph.load.indent[2]}},
        "disp_body_px": {"max": float(mag.max()), "mean": float(mag.mean())} if mag.size else {},
        "jac_det_body": [float(pair["jac_det"][body].min()), float(pair["jac_det"][body].max())] if mag.size else [],
        "min_element_area_ratio": fe.fmap.min_jacobian(),
        "newton_iterations": fe.sol.newton_iterations,
        "load_factors": fe.sol.load_factors,
        "model": "compressible neo-Hookean, plane strain",
        "element_order": cfg.order,
        "mesh": {"n_nodes": int(len(lm.points)), "n_cells": int(len(lm.cells))},
        "noise_std": cfg.noise,
        "seconds": seconds,
    }
