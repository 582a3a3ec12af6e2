"""Generator ``abdomen-breathing``: axial abdominal registration pairs with bone and organs sliding along the wall.

Pipeline per sample (:meth:`AbdomenBreathing.sample`):

    draw_phantom  random axial slice (meshes/abdomen.py: wall, fat, liver with vessels and lesions, spleen,
                  vertebral body, great vessels), rib cross-sections in the wall, the thin sliding layer inside
                  the cavity wall, per-tissue materials, the breathing load, the intensity model
    mesh_phantom  conforming gmsh mesh of all regions, the layer included     (meshes/abdomen.py)
    solve         compressible neo-Hookean plane strain; vertebral body held fixed; the anterior wall displaced
                  outward; a diaphragm-like body force pushing the cavity contents  (generators/hyperelastic.py)
    render        fixed and moving images from one intensity model, the truth in pixels, bone and interface masks
                  with the interface normals                                  (generators/render.py)
    observe       Gaussian noise on both images
    attributes    materials, load, slip statistics, solver and mesh statistics, timings

Sliding model: a thin layer (``layer_mm``) between the wall and the cavity contents whose shear modulus is
``slip_ratio`` times that of the viscera while its bulk stiffness is the viscera's, so the contents slip
tangentially along the wall and stay in normal contact with it (tests/test_deform.py checks the model against the
analytic two-block problem and on samples).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from phantombench.generators.assets import card_text, load_presets
from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample
from phantombench.meshes import abdomen as ab

Range = tuple[float, float]
NAMES = {**{k: v for k, v in ab.LABELS.items() if k != ab.OUTSIDE}, ab.RIB: "rib",
         ab.SLIDING_LAYER: "sliding layer (peritoneal interface)"}
N_LABELS = max(NAMES) + 1
BONE = (ab.SPINE, ab.RIB)
CONTENTS = (ab.VISCERA, ab.LIVER, ab.HEPATIC_VESSEL, ab.LESION, ab.SPLEEN, ab.GREAT_VESSEL)
# Young's modulus range [Pa] and Poisson ratio per soft tissue; bone and the layer are set from the config
SOFT = {ab.FAT: ((1000.0, 3000.0), 0.45), ab.WALL: ((8000.0, 15000.0), 0.45),
        ab.VISCERA: ((1500.0, 3000.0), 0.45), ab.LIVER: ((2000.0, 4000.0), 0.45),
        ab.HEPATIC_VESSEL: ((1000.0, 2000.0), 0.45), ab.LESION: ((4000.0, 12000.0), 0.45),
        ab.SPLEEN: ((2000.0, 4000.0), 0.45), ab.GREAT_VESSEL: ((1000.0, 2000.0), 0.45)}
# mean intensity per label (jittered per sample): fat and vessels bright, bone and muscle dark
MEANS = np.array([0.02, 0.9, 0.35, 0.5, 0.6, 0.8, 0.3, 0.45, 0.55, 0.85, 0.15, 0.75])


class AbdomenBreathingConfig(GeneratorConfig):
    grid_h: int = Field(112, ge=16, le=1024, description="image rows (anterior at the top)")
    grid_w: int = Field(144, ge=16, le=1024, description="image columns")
    margin_mm: float = Field(20.0, ge=0, description="margin around the body in the image (above the largest wall "
                                                      "expansion, so the moving body stays in view) [mm]")
    layer_mm: float = Field(1.5, gt=0, le=4, description="sliding-layer thickness (halved if the organs are closer "
                                                         "to the wall) [mm]")
    slip_ratio: float = Field(1e-4, gt=0, le=0.1, description="layer shear modulus / viscera shear modulus")
    E_bone: float = Field(1e8, gt=0, description="Young's modulus of the vertebral body and the ribs [Pa]")
    nu_bone: float = Field(0.3, gt=0, lt=0.5, description="Poisson ratio of bone")
    wall_expansion_mm: Range = Field((5.0, 15.0), description="outward displacement of the anterior skin [mm]")
    push: Range = Field((4000.0, 12000.0), description="diaphragm-like body force on the cavity contents [N/m^3]")
    push_angle_deg: Range = Field((50.0, 130.0), description="its direction (90 = anterior, 180 = patient's right)")
    mean_jitter: float = Field(0.05, ge=0, le=0.3, description="uniform jitter of the class means")
    bias_rms: Range = Field((0.05, 0.15), description="RMS of the log bias field")
    texture_rms: Range = Field((0.03, 0.08), description="RMS of the relative texture")
    texture_wavelength_px: Range = Field((4.0, 12.0), description="texture wavelengths, in pixels")
    noise: float = Field(0.01, ge=0, le=0.5, description="Gaussian noise std (intensity units) on both images")
    supersample: int = Field(3, ge=1, le=8, description="sub-pixels per axis averaged per pixel")
    h_tissue: float = Field(0.009, gt=0, description="mesh size in the soft tissues [m]")
    h_interface: float = Field(0.003, gt=0, description="mesh size at the sliding layer and the bone [m]")
    load_steps: int = Field(2, ge=1, le=50, description="load steps of the Newton solve")
    n_landmarks: int = Field(16, ge=0, le=1000, description="landmarks per pair")

    @model_validator(mode="after")
    def _check(self):
        for name in ("wall_expansion_mm", "push", "push_angle_deg", "bias_rms", "texture_rms",
                     "texture_wavelength_px"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: lower bound {lo} above upper bound {hi}")
        return self


PRESETS: dict[str, dict[str, Any]] = load_presets("abdomen-breathing")


class AbdomenBreathing(Generator):
    name = "abdomen-breathing"
    version = "1.0.0"
    Config = AbdomenBreathingConfig
    presets = PRESETS
    regen_rtol = 1e-6

    def schema(self, cfg: AbdomenBreathingConfig) -> dict[str, FieldSpec]:
        from phantombench.generators.render import registration_schema

        doc = ", ".join(f"{k} {v}" for k, v in NAMES.items())
        return registration_schema((cfg.grid_h, cfg.grid_w), "0 outside the body, " + doc)

    def sample(self, cfg: AbdomenBreathingConfig, rng: np.random.Generator, index: int) -> Sample:
        """phantom -> mesh -> solve -> render -> observe -> attributes (see the module docstring)."""
        t0 = time.perf_counter()
        ph = draw_phantom(cfg, rng)
        mesh = mesh_phantom(cfg, ph)
        t1 = time.perf_counter()
        fe = solve(cfg, ph, mesh)
        t2 = time.perf_counter()
        pair = render(cfg, ph, fe, rng)
        t3 = time.perf_counter()
        out = observe(cfg, pair, rng)
        seconds = {"mesh": round(t1 - t0, 4), "solve": round(t2 - t1, 4), "render": round(t3 - t2, 4)}
        return Sample(out, attributes(cfg, ph, mesh, fe, pair, seconds))

    def card(self, cfg: AbdomenBreathingConfig) -> str:
        return card_text(self.name)


# ------------------------------------------------------------------------------------------------ stages
@dataclass
class Phantom:
    anatomy: ab.AbdomenPhantom
    ribs: list
    layer_inner: np.ndarray     # inner curve of the sliding layer [mm]
    layer_mm: float
    materials: dict[int, tuple[float, float]]  # label -> (mu, lam) [Pa]
    expansion: float            # [m]
    push: np.ndarray            # body force vector [N/m^3]
    intensity: Any
    grid: Any


def draw_phantom(cfg: AbdomenBreathingConfig, rng: np.random.Generator) -> Phantom:
    """Anatomy, ribs, layer, materials, load, grid and intensity model, in that draw order."""
    from phantombench.generators.hyperelastic import lame_from_E_nu

    anat = ab.sample_abdomen(rng)
    ribs = ab.draw_ribs(rng, anat)
    gap = min(ab.containment_clearance(anat.cavity, o.curve) for o in [anat.liver] + anat.organs)
    layer = min(cfg.layer_mm, 0.5 * gap)
    mats = {lab: lame_from_E_nu(float(np.exp(rng.uniform(*np.log(r)))), nu) for lab, (r, nu) in SOFT.items()}
    for lab in BONE:
        mats[lab] = lame_from_E_nu(cfg.E_bone, cfg.nu_bone)
    mu_v, lam_v = mats[ab.VISCERA]
    mats[ab.SLIDING_LAYER] = (cfg.slip_ratio * mu_v, lam_v)
    expansion = rng.uniform(*cfg.wall_expansion_mm) * 1e-3
    ang = np.deg2rad(rng.uniform(*cfg.push_angle_deg))
    push = rng.uniform(*cfg.push) * np.array([np.cos(ang), np.sin(ang)])
    grid = _grid(cfg, anat)
    return Phantom(anat, ribs, ab.inset_curve(anat.cavity, layer), layer, mats, float(expansion), push,
                   _draw_intensity(cfg, rng, grid), grid)


def _grid(cfg: AbdomenBreathingConfig, anat: ab.AbdomenPhantom):
    """A grid of square pixels holding the body plus the margin, centred on it (coordinates in m)."""
    from phantombench.generators.raster import Grid

    x0, x1, y0, y1 = (v * 1e-3 for v in anat.bbox())
    m = cfg.margin_mm * 1e-3
    px = max((x1 - x0 + 2 * m) / cfg.grid_w, (y1 - y0 + 2 * m) / cfg.grid_h)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    return Grid(cx - 0.5 * (cfg.grid_w - 1) * px, cy + 0.5 * (cfg.grid_h - 1) * px, px, px, cfg.grid_h, cfg.grid_w)


def _draw_intensity(cfg: AbdomenBreathingConfig, rng: np.random.Generator, grid):
    from phantombench.generators.render import IntensityModel, PlaneWaves

    means = np.clip(MEANS + rng.uniform(-cfg.mean_jitter, cfg.mean_jitter, len(MEANS)), 0.01, None)
    means[0] = MEANS[0]
    size = grid.dx * max(grid.H, grid.W)
    c = (grid.x0 + 0.5 * (grid.W - 1) * grid.dx, grid.y_top - 0.5 * (grid.H - 1) * grid.dy)
    bias = PlaneWaves.draw(rng, 6, (0.7 * size, 2.0 * size), rng.uniform(*cfg.bias_rms), c)
    tex = PlaneWaves.draw(rng, 32, tuple(grid.dx * w for w in cfg.texture_wavelength_px),
                          rng.uniform(*cfg.texture_rms), c)
    return IntensityModel(means, bias, tex)


def mesh_phantom(cfg: AbdomenBreathingConfig, ph: Phantom):
    h = {lab: cfg.h_tissue for lab in range(N_LABELS)}
    for lab in (ab.SLIDING_LAYER, ab.RIB, ab.SPINE):
        h[lab] = cfg.h_interface
    return ab.mesh_abdomen_sliding(ph.anatomy, h, ph.ribs, ph.layer_inner)


@dataclass
class FEResult:
    sol: Any
    cell_labels: np.ndarray
    fmap: Any


def solve(cfg: AbdomenBreathingConfig, ph: Phantom, mres) -> FEResult:
    """Spine fixed, anterior skin expanded radially (sin-weighted, zero posteriorly), contents pushed."""
    from phantombench.generators import hyperelastic as he
    from phantombench.generators.render import PiecewiseAffineMap

    mesh = mres.mesh
    n = mesh.topology.index_map(2).size_local
    labels = np.zeros(n, dtype=np.int64)
    labels[mres.cell_tags.indices] = mres.cell_tags.values
    mu_tab, lam_tab = np.zeros(N_LABELS), np.zeros(N_LABELS)
    for lab, (mu, lam) in ph.materials.items():
        mu_tab[lab], lam_tab[lab] = mu, lam
    c = ph.anatomy.cavity.mean(axis=0) * 1e-3

    def skin(x):
        r = x[:2] - c[:, None]
        rn = np.maximum(np.linalg.norm(r, axis=0), 1e-12)
        w = np.maximum(r[1] / rn, 0.0) ** 2  # 1 at the anterior midline, 0 from the flanks backwards
        return ph.expansion * w * r / rn

    bcs = [he.Dirichlet(lambda x: np.zeros((2, x.shape[1])), cells=np.flatnonzero(labels == ab.SPINE)),
           he.Dirichlet(skin, where=lambda x: np.ones(x.shape[1], dtype=bool))]
    force = np.where(np.isin(labels, CONTENTS)[:, None], ph.push[None, :], 0.0)
    sol = he.solve_neo_hookean(mesh, mu_tab[labels], lam_tab[labels], bcs, body_force=force, order=1,
                               steps=cfg.load_steps)
    pts, tris, U, parent = sol.linear_map()
    return FEResult(sol, labels, PiecewiseAffineMap(pts, tris, U, labels[parent]))


def render(cfg: AbdomenBreathingConfig, ph: Phantom, fe: FEResult, rng: np.random.Generator) -> dict[str, Any]:
    """Both images, labels, the truth in pixels, materials, bone and interface masks, landmarks."""
    from phantombench.generators.render import draw_landmarks, jacobian_determinant, render_pair, to_pixels

    grid = ph.grid
    pair = render_pair(fe.fmap, ph.intensity, grid, cfg.supersample, outside_label=ab.OUTSIDE)
    disp = to_pixels(pair["u"], grid, pair["in_mesh"])
    body = pair["fixed_labels"] > 0
    mu_tab, lam_tab = np.zeros(N_LABELS), np.zeros(N_LABELS)
    for lab, (mu, lam) in ph.materials.items():
        mu_tab[lab], lam_tab[lab] = mu, lam
    mask, normals = interface_mask(ph, grid, pair["fixed_labels"])
    lf, lmv = draw_landmarks(rng, body & (mask == 0), disp, cfg.n_landmarks)
    pair.update(grid=grid, disp=disp, body=body, mu=mu_tab[pair["fixed_labels"]], lam=lam_tab[pair["fixed_labels"]],
                jac_det=jacobian_determinant(disp), landmarks_fixed=lf, landmarks_moving=lmv, mask=mask,
                normals=normals)
    return pair


def mid_layer(ph: Phantom) -> tuple[np.ndarray, np.ndarray]:
    """Points (n, 2) [m] on the middle of the sliding layer and the outward unit normals there."""
    mid = 0.5 * (ph.anatomy.cavity + ph.layer_inner) * 1e-3
    return mid, ab.outward_normals(ab.ccw(mid))


def interface_mask(ph: Phantom, grid, fixed_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mask: 1 on bone, 2 on pixels whose centre lies within one pixel of the sliding interface (every pixel a
    central difference across the interface touches); normals (rows, cols) of the interface there."""
    from scipy.spatial import cKDTree

    mid, nrm = mid_layer(ph)
    dense = np.repeat(mid, 4, axis=0) + np.repeat(np.roll(mid, -1, axis=0) - mid, 4, axis=0) * \
        np.tile(np.arange(4) / 4, len(mid))[:, None]
    nd = np.repeat(nrm, 4, axis=0)
    d, k = cKDTree(dense).query(grid.points())
    band = (d <= max(grid.dx, grid.dy) + 0.5 * ph.layer_mm * 1e-3).reshape(grid.shape)
    mask = np.where(np.isin(fixed_labels, BONE), 1, 0).astype(np.uint8)
    mask[band] = 2
    n = nd[k].reshape(grid.H, grid.W, 2)
    normals = np.stack([-n[..., 1], n[..., 0]]) * band[None]
    return mask, normals.astype(np.float32)


def observe(cfg: AbdomenBreathingConfig, pair: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    from phantombench.generators.render import contract_fields

    return contract_fields(pair, pair["mask"], pair["normals"], cfg.noise, rng)


def attributes(cfg: AbdomenBreathingConfig, ph: Phantom, mres, fe: FEResult, pair: dict[str, Any],
               seconds: dict[str, float]) -> dict[str, Any]:
    """Spacing, label names, materials, load, truth and slip statistics, solver and mesh statistics, timings."""
    g, body, disp = pair["grid"], pair["body"], pair["disp"]
    mag = np.linalg.norm(disp, axis=0)[body]
    free = body & (pair["mask"] == 0)
    return {
        "spacing_mm": [g.dy * 1e3, g.dx * 1e3],
        "label_names": {str(k): v for k, v in NAMES.items()},
        "materials": {NAMES[k]: {"mu_Pa": mu, "lam_Pa": lam} for k, (mu, lam) in ph.materials.items()},
        "layer_mm": ph.layer_mm,
        "n_ribs": len(ph.ribs),
        "load": {"wall_expansion_mm": ph.expansion * 1e3, "push_N_per_m3": ph.push.tolist()},
        "slip_mm": slip_stats(ph, fe),
        "disp_body_px": {"max": float(mag.max()), "mean": float(mag.mean())},
        "jac_det_free": [float(pair["jac_det"][free].min()), float(pair["jac_det"][free].max())],
        "min_element_area_ratio": fe.fmap.min_jacobian(),
        "newton_iterations": fe.sol.newton_iterations,
        "load_factors": fe.sol.load_factors,
        "model": "compressible neo-Hookean, plane strain; sliding by a thin low-shear layer",
        "mesh": {"n_nodes": int(mres.n_nodes), "n_cells": int(mres.n_triangles)},
        "noise_std": cfg.noise,
        "seconds": seconds,
    }


def slip_stats(ph: Phantom, fe: FEResult) -> dict[str, float]:
    """Slip and gap across the layer [mm], from material points 0.1 mm outside it on either side
    (X+ in the wall, X- in the contents, along the reference normal): the tangential jump (u(X+) - u(X-)) . t, and
    the normal gap: the distance from the deformed X+ to the deformed inner polyline minus its reference value
    (a measure free of the curvature effect a tangential slip along a curved wall has on (u+ - u-) . n)."""
    from scipy.spatial import cKDTree

    mid, n = mid_layer(ph)
    off = (0.5 * ph.layer_mm + 0.1) * 1e-3
    up, um = np.split(fe.fmap.at_points(np.vstack([mid + off * n, mid - off * n])), 2)
    ok = np.isfinite(up).all(axis=1) & np.isfinite(um).all(axis=1)
    t = np.column_stack([-n[:, 1], n[:, 0]])
    jt = np.abs(np.sum((up - um) * t, axis=1))[ok] * 1e3
    inner = (mid - off * n + um)[ok]
    dense = (inner[:, None, :] + np.linspace(0, 1, 8, endpoint=False)[None, :, None]
             * (np.roll(inner, -1, axis=0) - inner)[:, None, :]).reshape(-1, 2)
    gap = np.abs(cKDTree(dense).query((mid + off * n + up)[ok])[0] - 2 * off) * 1e3
    return {"tangential_mean": float(jt.mean()), "tangential_max": float(jt.max()),
            "gap_mean": float(gap.mean()), "gap_max": float(gap.max())}
