"""Generator ``brain-slice``: quasi-static plane-stress elastography of a coronal brain slice (P1, El-UNet).

Pipeline per sample (:meth:`BrainSlice.sample`), one short function per stage:

    draw_phantom  MNI152 coronal label slice, region materials, stiff inclusions painted into the label
                  image, the top load                                   (anatomy: meshes/anatomy)
    mesh_phantom  conforming gmsh mesh of the rectangle, optionally with smoothly perturbed interfaces
                                                                        (meshes/labelmesh.py)
    solve         DOLFINx plane-stress solve                            (generators/elasticity.py)
    rasterise     fields on the 142 x 100 grid: natural-neighbour (Sibson) or exact FE evaluation, cellwise
                  materials and labels                                  (generators/raster.py)
    observe       Gaussian strain noise                                 (generators/noise.py)
    attributes    load, materials, mesh quality, equilibrium checks

Presets and the dataset card are data: ``generators/presets/brain-slice.json``, ``generators/cards/brain-slice.md``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from phantombench.generators.assets import card_text, load_presets
from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample
from phantombench.meshes.anatomy import BACKGROUND, GRAY, WHITE

INCLUSION = WHITE + 1  # the label of stiff inclusions painted into the slice
REGION_NAMES = {BACKGROUND: "background", GRAY: "gray matter", WHITE: "white matter", INCLUSION: "inclusion"}


class BrainSliceConfig(GeneratorConfig):
    # geometry and grid
    width: float = Field(0.0766, gt=0, description="background rectangle width (x) [m]")
    height: float = Field(0.1088, gt=0, description="background rectangle height (y, load direction) [m]")
    grid_h: int = Field(142, ge=8, le=2048, description="grid rows (y, load direction)")
    grid_w: int = Field(100, ge=8, le=2048, description="grid columns (x)")
    slice_index: int | None = Field(None, ge=0, description="anatomy slice; None = drawn at random per sample")
    brain_width_fraction: float = Field(0.8, gt=0.2, lt=0.98, description="brain width / rectangle width")
    perturb_amplitude: float = Field(0.0, ge=0, le=0.01, description="smooth random shape perturbation [m]")
    # materials: fixed values, or ranges drawn per sample when random_materials is true
    E_background: float = Field(1000.0, gt=0, description="Young's modulus of the background [Pa]")
    E_gray: float = Field(1500.0, gt=0, description="Young's modulus of gray matter [Pa]")
    E_white: float = Field(2000.0, gt=0, description="Young's modulus of white matter [Pa]")
    nu_background: float = Field(0.35, gt=0, lt=0.5, description="Poisson's ratio of the background")
    nu_gray: float = Field(0.40, gt=0, lt=0.5, description="Poisson's ratio of gray matter")
    nu_white: float = Field(0.45, gt=0, lt=0.5, description="Poisson's ratio of white matter")
    random_materials: bool = Field(False, description="draw E and nu per region from the ranges below")
    E_range: tuple[float, float] = Field((500.0, 20000.0), description="E range, log-uniform [Pa]")
    nu_range: tuple[float, float] = Field((0.30, 0.49), description="nu range, uniform")
    n_inclusions: tuple[int, int] = Field((0, 0), description="number of stiff inclusions, inclusive range")
    inclusion_radius: tuple[float, float] = Field((0.004, 0.01), description="inclusion radius range [m]")
    inclusion_E: tuple[float, float] = Field((5000.0, 20000.0), description="inclusion E range [Pa]")
    inclusion_nu: float = Field(0.30, gt=0, lt=0.5, description="inclusion Poisson's ratio")
    # load
    traction: float = Field(33.0, gt=0, description="uniform compressive normal traction on the top edge [Pa]; "
                                                     "ignored if max_nominal_strain is set")
    max_nominal_strain: tuple[float, float] | None = Field(
        None, description="draw the traction so that traction / min(E) lies in this range (random load)")
    # observation noise (on the strain images only)
    strain_noise: float = Field(0.0, ge=0, le=1, description="Gaussian strain noise, std as a fraction of each "
                                                             "component's RMS over the grid")
    # numerics
    order: int = Field(2, ge=1, le=3, description="Lagrange order of the displacement")
    h_fine: float = Field(0.0008, gt=0, description="mesh size at tissue interfaces [m]")
    h_coarse: float = Field(0.003, gt=0, description="mesh size far from interfaces [m]")
    raster: Literal["sibson", "fe"] = Field("sibson", description="nodal natural-neighbour interpolation, or "
                                                                    "exact FE evaluation at pixel centres")

    @model_validator(mode="after")
    def _check(self):
        for name in ("E_range", "nu_range", "n_inclusions", "inclusion_radius", "inclusion_E"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: lower bound {lo} above upper bound {hi}")
        if self.nu_range[1] >= 0.5:
            raise ValueError("nu_range must stay below 0.5")
        if self.h_fine > self.h_coarse:
            raise ValueError("h_fine must not exceed h_coarse")
        return self


PRESETS: dict[str, dict[str, Any]] = load_presets("brain-slice")

NODAL_FIELDS = ("ux", "uy", "exx", "eyy", "exy", "sxx", "syy", "sxy")  # vertex values of the FE solution
GRID_FIELDS = {
    "ux": ("m", "horizontal displacement"),
    "uy": ("m", "vertical displacement (y up; the top moves down under compression)"),
    "exx": ("1", "normal strain xx"),
    "eyy": ("1", "normal strain yy"),
    "exy": ("1", "tensor shear strain (engineering shear / 2)"),
    "sxx": ("Pa", "normal stress xx (plane stress)"),
    "syy": ("Pa", "normal stress yy"),
    "sxy": ("Pa", "shear stress xy"),
    "E": ("Pa", "Young's modulus (cellwise, exact region values)"),
    "nu": ("1", "Poisson's ratio (cellwise)"),
    "lam": ("Pa", "plane-stress Lame lambda = E nu / (1 - nu^2)"),
    "mu": ("Pa", "shear modulus mu = E / (2 (1 + nu))"),
}


class BrainSlice(Generator):
    name = "brain-slice"
    version = "1.0.0"
    Config = BrainSliceConfig
    presets = PRESETS
    regen_rtol = 1e-7

    # -------------------------------------------------------------------------------- schema
    def schema(self, cfg: BrainSliceConfig) -> dict[str, FieldSpec]:
        hw = (cfg.grid_h, cfg.grid_w)
        s = {k: FieldSpec(hw, "float64", u, d) for k, (u, d) in GRID_FIELDS.items()}
        if cfg.strain_noise > 0:
            s["exx"] = FieldSpec(hw, "float64", "1", f"observed strain xx ({cfg.strain_noise:.0%} Gaussian noise)")
            s["eyy"] = FieldSpec(hw, "float64", "1", f"observed strain yy ({cfg.strain_noise:.0%} Gaussian noise)")
            s["exy"] = FieldSpec(hw, "float64", "1", f"observed tensor shear ({cfg.strain_noise:.0%} noise)")
            for k in ("exx", "eyy", "exy"):
                s[f"{k}_clean"] = FieldSpec(hw, "float64", "1", f"noise-free {k}")
        s["labels"] = FieldSpec(hw, "uint8", "", "0 background, 1 gray matter, 2 white matter, 3 inclusion")
        s["mask"] = FieldSpec(hw, "bool", "", "pixel centre inside the domain")
        s["mesh_points"] = FieldSpec(("n_nodes", 2), "float64", "m", "mesh vertex coordinates")
        s["mesh_cells"] = FieldSpec(("n_cells", 3), "int64", "", "triangle vertex indices")
        s["mesh_cell_labels"] = FieldSpec(("n_cells",), "uint8", "", "region label per triangle")
        s["mesh_cell_E"] = FieldSpec(("n_cells",), "float64", "Pa", "Young's modulus per triangle")
        s["mesh_cell_nu"] = FieldSpec(("n_cells",), "float64", "1", "Poisson's ratio per triangle")
        for k in ("ux", "uy", "exx", "eyy", "exy", "sxx", "syy", "sxy"):
            s[f"mesh_point_{k}"] = FieldSpec(("n_nodes",), "float64", GRID_FIELDS[k][0],
                                             f"{k} at mesh vertices (nodal average, see card)")
        return s

    # -------------------------------------------------------------------------------- sampling
    def sample(self, cfg: BrainSliceConfig, rng: np.random.Generator, index: int) -> Sample:
        """phantom -> mesh -> solve -> rasterise -> observe -> attributes (see the module docstring)."""
        t0 = time.perf_counter()
        ph = draw_phantom(cfg, rng)
        mesh = mesh_phantom(cfg, ph, rng)
        t_mesh = time.perf_counter()
        fe = solve(cfg, ph, mesh)
        t_solve = time.perf_counter()
        grid_fields = rasterise(cfg, fe)
        t_raster = time.perf_counter()
        out = observe(cfg, grid_fields, rng)
        out.update(mesh_fields(fe))
        seconds = {"mesh": round(t_mesh - t0, 4), "solve": round(t_solve - t_mesh, 4),
                   "raster": round(t_raster - t_solve, 4)}
        return Sample(out, attributes(cfg, ph, mesh, fe, grid_fields, seconds))

    def card(self, cfg: BrainSliceConfig) -> str:
        return card_text(self.name)


# ------------------------------------------------------------------------------------ stages
@dataclass
class Phantom:
    """One drawn brain slice: the label image to mesh, the materials per region, the load."""

    slice_index: int
    mni_y_mm: float
    image: np.ndarray                                # (H, W) labels, inclusions painted in
    materials: dict[int, tuple[float, float]]        # label -> (E [Pa], nu)
    inclusions: list[dict[str, float]]
    traction: float                                  # [Pa], > 0 compresses


@dataclass
class FESolution:
    """The plane-stress solution with the per-cell data the later stages need (mesh cell order)."""

    sol: Any                                         # elasticity.PlaneStressSolution
    cell_labels: np.ndarray
    cell_E: np.ndarray
    cell_nu: np.ndarray
    nodal: dict[str, np.ndarray]                     # vertex values of FIELD_NAMES


def draw_phantom(cfg: BrainSliceConfig, rng: np.random.Generator) -> Phantom:
    """Anatomy slice, region materials, inclusions (and their material) and the load, in that draw order."""
    from phantombench.meshes.anatomy import load_brain_slices

    stack = load_brain_slices()
    k = cfg.slice_index if cfg.slice_index is not None else int(rng.integers(len(stack.labels)))
    if k >= len(stack.labels):
        raise ValueError(f"slice_index {k} out of range (anatomy has {len(stack.labels)} slices)")
    image = stack.labels[k].copy()
    mats = _draw_materials(cfg, rng)
    # stiff inclusions are painted into the label image so that the mesh conforms to them
    n_inc = int(rng.integers(cfg.n_inclusions[0], cfg.n_inclusions[1] + 1))
    inclusions: list[dict[str, float]] = []
    if n_inc:
        image, inclusions = _paint_inclusions(image, cfg, rng, n_inc)
    if inclusions:
        mats[INCLUSION] = (float(rng.uniform(*cfg.inclusion_E)), cfg.inclusion_nu)
    if cfg.max_nominal_strain is not None:
        e_min = min(E for E, _ in mats.values())
        traction = float(rng.uniform(*cfg.max_nominal_strain) * e_min)
    else:
        traction = cfg.traction
    return Phantom(k, float(stack.y_mm[k]), image, mats, inclusions, traction)


def _draw_materials(cfg: BrainSliceConfig, rng: np.random.Generator) -> dict[int, tuple[float, float]]:
    """(E, nu) per region: the config's values, or E log-uniform and nu uniform in the configured ranges."""
    if not cfg.random_materials:
        return {BACKGROUND: (cfg.E_background, cfg.nu_background), GRAY: (cfg.E_gray, cfg.nu_gray),
                WHITE: (cfg.E_white, cfg.nu_white)}
    lo, hi = np.log(cfg.E_range)
    return {r: (float(np.exp(rng.uniform(lo, hi))), float(rng.uniform(*cfg.nu_range)))
            for r in (BACKGROUND, GRAY, WHITE)}


def mesh_phantom(cfg: BrainSliceConfig, ph: Phantom, rng: np.random.Generator):
    """Conforming mesh of the rectangle with the slice embedded (interfaces perturbed if configured)."""
    from phantombench.meshes.labelmesh import mesh_label_image

    perturb = rng if cfg.perturb_amplitude > 0 else None
    return mesh_label_image(ph.image, cfg.width, cfg.height, brain_width_fraction=cfg.brain_width_fraction,
                            h_fine=cfg.h_fine, h_coarse=cfg.h_coarse, perturb=perturb,
                            perturb_amplitude=cfg.perturb_amplitude)


def solve(cfg: BrainSliceConfig, ph: Phantom, mesh) -> FESolution:
    """Cellwise E and nu from the labels (regions without a material take the background's), then the solve."""
    from phantombench.generators import elasticity

    cell_lab = np.asarray(mesh.cell_labels, dtype=np.int64)
    mats = ph.materials
    E_tab = np.array([mats.get(r, mats[BACKGROUND])[0] for r in range(4)])
    nu_tab = np.array([mats.get(r, mats[BACKGROUND])[1] for r in range(4)])
    cell_E, cell_nu = E_tab[cell_lab], nu_tab[cell_lab]
    sol = elasticity.solve_plane_stress(mesh, cell_E, cell_nu, ph.traction, order=cfg.order)
    return FESolution(sol, cell_lab, cell_E, cell_nu, sol.nodal_fields())


def rasterise(cfg: BrainSliceConfig, fe: FESolution) -> dict[str, Any]:
    """Grid fields (Sibson from the vertex values, or exact FE), cellwise materials and labels, the mask."""
    from phantombench.generators import raster

    grid = raster.Grid.fit(0.0, cfg.width, 0.0, cfg.height, cfg.grid_h, cfg.grid_w, include_edges=True)
    pts, cells = fe.sol.vertices, fe.sol.cells
    if cfg.raster == "sibson":
        sib = raster.Sibson(pts, grid)
        stacked = sib(np.column_stack([fe.nodal[n] for n in NODAL_FIELDS]))
        fields = {n: stacked[j] for j, n in enumerate(NODAL_FIELDS)}
        mask = sib.inside
    else:
        fields = fe.sol.fe_grid(grid)
        mask = np.isfinite(fields["ux"])
    cidx = raster.locate_cells(pts, cells, grid)
    cell_lam = fe.cell_E * fe.cell_nu / (1 - fe.cell_nu**2)
    cell_mu = fe.cell_E / (2 * (1 + fe.cell_nu))
    for n, v in (("E", fe.cell_E), ("nu", fe.cell_nu), ("lam", cell_lam), ("mu", cell_mu)):
        fields[n] = raster.cell_to_grid(v, cidx)
    return {"fields": fields, "labels": raster.cell_to_grid(fe.cell_labels.astype(float), cidx), "mask": mask,
            "grid": grid}


def observe(cfg: BrainSliceConfig, grid_fields: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The grid fields as stored; with ``strain_noise`` the strains are observed with noise (clean kept)."""
    from phantombench.generators.noise import relative_gaussian

    fields = grid_fields["fields"]
    out: dict[str, np.ndarray] = {n: np.asarray(fields[n], dtype=np.float64) for n in GRID_FIELDS}
    if cfg.strain_noise > 0:
        for c in ("exx", "eyy", "exy"):
            out[f"{c}_clean"] = out[c]
            out[c] = relative_gaussian(out[c], cfg.strain_noise, rng)
    out["labels"] = np.nan_to_num(grid_fields["labels"], nan=0).astype(np.uint8)
    out["mask"] = np.asarray(grid_fields["mask"], dtype=bool)
    return out


def mesh_fields(fe: FESolution) -> dict[str, np.ndarray]:
    """The FE mesh with its cell materials and vertex fields."""
    out = {"mesh_points": np.asarray(fe.sol.vertices, dtype=np.float64),
           "mesh_cells": np.asarray(fe.sol.cells, dtype=np.int64),
           "mesh_cell_labels": fe.cell_labels.astype(np.uint8),
           "mesh_cell_E": fe.cell_E.astype(np.float64),
           "mesh_cell_nu": fe.cell_nu.astype(np.float64)}
    for n in NODAL_FIELDS:
        out[f"mesh_point_{n}"] = np.asarray(fe.nodal[n], dtype=np.float64)
    return out


def attributes(cfg: BrainSliceConfig, ph: Phantom, mesh, fe: FESolution, grid_fields: dict[str, Any],
               seconds: dict[str, float]) -> dict[str, Any]:
    """Per-sample attributes: anatomy, load, materials, inclusions, peak strain, mesh quality, equilibrium."""
    fields, grid = grid_fields["fields"], grid_fields["grid"]
    return {
        "slice_index": ph.slice_index,
        "mni_y_mm": ph.mni_y_mm,
        "traction_Pa": ph.traction,
        "materials": {REGION_NAMES[r]: {"E_Pa": E, "nu": nu} for r, (E, nu) in ph.materials.items()},
        "inclusions": ph.inclusions,
        "max_abs_strain": float(max(np.nanmax(np.abs(fields[c])) for c in ("exx", "eyy", "exy"))),
        "mesh_quality": mesh.quality,
        "element_order": cfg.order,
        "grid_spacing_m": [grid.dy, grid.dx],
        "top_traction_integral_N_per_m": fe.sol.traction_top_integral(),
        "bottom_reaction_N_per_m": fe.sol.reaction_bottom(),
        "seconds": seconds,
    }


def _paint_inclusions(image: np.ndarray, cfg: BrainSliceConfig, rng: np.random.Generator,
                      n: int) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Paint ``n`` discs of label INCLUSION inside the brain (radius in metres, scaled to the image)."""
    from scipy import ndimage

    img = image.copy()
    brain = img > 0
    rows, cols = np.nonzero(brain)
    h, w = img.shape
    # the mesher scales the brain's bounding box to brain_width_fraction * width
    scale = (cfg.brain_width_fraction * cfg.width) / max(1, (cols.max() - cols.min() + 1))
    inside = ndimage.distance_transform_edt(brain)
    yy, xx = np.mgrid[0:h, 0:w]
    placed = []
    for _ in range(n):
        r_px = rng.uniform(*cfg.inclusion_radius) / scale
        ok = np.argwhere(inside > r_px + 2)
        if len(ok) == 0:
            break
        cy, cx = ok[rng.integers(len(ok))]
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r_px**2] = INCLUSION
        placed.append({"row_px": int(cy), "col_px": int(cx), "radius_m": float(r_px * scale)})
    return img, placed
