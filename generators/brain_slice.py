"""Generator ``brain-slice``: quasi-static plane-stress elastography of a coronal brain slice (P1, El-UNet).

Pipeline per sample: MNI152 coronal label slice -> (optional smooth random perturbation, stiff
inclusions painted into the label image) -> conforming gmsh mesh -> DOLFINx plane-stress solve ->
fields on the 142 x 100 grid (natural-neighbour or exact FE evaluation) plus the mesh itself.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample

BACKGROUND, GRAY, WHITE, INCLUSION = 0, 1, 2, 3
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


_ELUNET = dict(E_gray=1500.0, E_white=2000.0, nu_background=0.35, nu_gray=0.40, nu_white=0.45)

PRESETS: dict[str, dict[str, Any]] = {
    "elunet-soft": dict(_ELUNET, E_background=1000.0, traction=33.0, slice_index=6),
    "elunet-stiff": dict(_ELUNET, E_background=5000.0, traction=53.0, slice_index=6),
    "elunet-noisy": dict(_ELUNET, E_background=1000.0, traction=33.0, slice_index=6, strain_noise=0.10),
    "random": dict(slice_index=None, perturb_amplitude=0.003, random_materials=True, n_inclusions=(0, 2),
                   max_nominal_strain=(0.005, 0.04), strain_noise=0.0),
}

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
    def _materials(self, cfg: BrainSliceConfig, rng: np.random.Generator) -> dict[int, tuple[float, float]]:
        if not cfg.random_materials:
            return {BACKGROUND: (cfg.E_background, cfg.nu_background), GRAY: (cfg.E_gray, cfg.nu_gray),
                    WHITE: (cfg.E_white, cfg.nu_white)}
        lo, hi = np.log(cfg.E_range)
        return {r: (float(np.exp(rng.uniform(lo, hi))), float(rng.uniform(*cfg.nu_range)))
                for r in (BACKGROUND, GRAY, WHITE)}

    def sample(self, cfg: BrainSliceConfig, rng: np.random.Generator, index: int) -> Sample:
        import time

        from phantombench.generators import elasticity, raster
        from phantombench.meshes.anatomy import load_brain_slices
        from phantombench.meshes.labelmesh import mesh_label_image

        t0 = time.perf_counter()
        stack = load_brain_slices()
        labels_all = stack.labels
        k = cfg.slice_index if cfg.slice_index is not None else int(rng.integers(len(labels_all)))
        if k >= len(labels_all):
            raise ValueError(f"slice_index {k} out of range (anatomy has {len(labels_all)} slices)")
        image = labels_all[k].copy()
        mats = self._materials(cfg, rng)

        # stiff inclusions are painted into the label image so that the mesh conforms to them
        n_inc = int(rng.integers(cfg.n_inclusions[0], cfg.n_inclusions[1] + 1))
        inclusions = []
        if n_inc:
            image, inclusions = _paint_inclusions(image, cfg, rng, n_inc)
        if inclusions:
            mats[INCLUSION] = (float(rng.uniform(*cfg.inclusion_E)), cfg.inclusion_nu)

        if cfg.max_nominal_strain is not None:
            e_min = min(E for E, _ in mats.values())
            traction = float(rng.uniform(*cfg.max_nominal_strain) * e_min)
        else:
            traction = cfg.traction

        perturb = rng if cfg.perturb_amplitude > 0 else None
        mesh_res = mesh_label_image(image, cfg.width, cfg.height, brain_width_fraction=cfg.brain_width_fraction,
                                    h_fine=cfg.h_fine, h_coarse=cfg.h_coarse, perturb=perturb,
                                    perturb_amplitude=cfg.perturb_amplitude)
        t_mesh = time.perf_counter()

        cell_lab = np.asarray(mesh_res.cell_labels, dtype=np.int64)
        E_tab = np.array([mats.get(r, mats[BACKGROUND])[0] for r in range(4)])
        nu_tab = np.array([mats.get(r, mats[BACKGROUND])[1] for r in range(4)])
        cell_E, cell_nu = E_tab[cell_lab], nu_tab[cell_lab]

        sol = elasticity.solve_plane_stress(mesh_res, cell_E, cell_nu, traction, order=cfg.order)
        t_solve = time.perf_counter()

        grid = raster.Grid.fit(0.0, cfg.width, 0.0, cfg.height, cfg.grid_h, cfg.grid_w, include_edges=True)
        pts, cells = sol.vertices, sol.cells
        nodal = sol.nodal_fields()
        names = ["ux", "uy", "exx", "eyy", "exy", "sxx", "syy", "sxy"]
        if cfg.raster == "sibson":
            sib = raster.Sibson(pts, grid)
            stacked = sib(np.column_stack([nodal[n] for n in names]))
            fields = {n: stacked[j] for j, n in enumerate(names)}
            mask = sib.inside
        else:
            fields = sol.fe_grid(grid)
            mask = np.isfinite(fields["ux"])
        cidx = raster.locate_cells(pts, cells, grid)
        cell_lam = cell_E * cell_nu / (1 - cell_nu**2)
        cell_mu = cell_E / (2 * (1 + cell_nu))
        for n, v in (("E", cell_E), ("nu", cell_nu), ("lam", cell_lam), ("mu", cell_mu)):
            fields[n] = raster.cell_to_grid(v, cidx)
        lab_grid = raster.cell_to_grid(cell_lab.astype(float), cidx)
        t_raster = time.perf_counter()

        max_strain = float(max(np.nanmax(np.abs(fields[c])) for c in ("exx", "eyy", "exy")))
        out: dict[str, np.ndarray] = {n: np.asarray(fields[n], dtype=np.float64) for n in GRID_FIELDS}
        if cfg.strain_noise > 0:
            for c in ("exx", "eyy", "exy"):
                clean = out[c]
                rms = float(np.sqrt(np.nanmean(clean**2)))
                out[f"{c}_clean"] = clean
                out[c] = clean + rng.normal(0.0, cfg.strain_noise * rms, clean.shape)
        out["labels"] = np.nan_to_num(lab_grid, nan=0).astype(np.uint8)
        out["mask"] = np.asarray(mask, dtype=bool)
        out["mesh_points"] = np.asarray(pts, dtype=np.float64)
        out["mesh_cells"] = np.asarray(cells, dtype=np.int64)
        out["mesh_cell_labels"] = cell_lab.astype(np.uint8)
        out["mesh_cell_E"] = cell_E.astype(np.float64)
        out["mesh_cell_nu"] = cell_nu.astype(np.float64)
        for n in names:
            out[f"mesh_point_{n}"] = np.asarray(nodal[n], dtype=np.float64)
        attrs = {
            "slice_index": k,
            "mni_y_mm": float(stack.y_mm[k]),
            "traction_Pa": traction,
            "materials": {REGION_NAMES[r]: {"E_Pa": E, "nu": nu} for r, (E, nu) in mats.items()},
            "inclusions": inclusions,
            "max_abs_strain": max_strain,
            "mesh_quality": mesh_res.quality,
            "element_order": cfg.order,
            "grid_spacing_m": [grid.dy, grid.dx],
            "top_traction_integral_N_per_m": sol.traction_top_integral(),
            "bottom_reaction_N_per_m": sol.reaction_bottom(),
            "seconds": {"mesh": round(t_mesh - t0, 4), "solve": round(t_solve - t_mesh, 4),
                        "raster": round(t_raster - t_solve, 4)},
        }
        return Sample(out, attrs)

    def card(self, cfg: BrainSliceConfig) -> str:
        return CARD_NOTES


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


CARD_NOTES = """\
## Physics

2D plane stress, linear isotropic elasticity, static equilibrium without body force, solved with DOLFINx
(Lagrange displacement of the order in the config, P2 by default from a convergence study; sparse
Cholesky with MUMPS). E and nu are constant per region (DG0). Loads:
uniform compressive normal traction on the top edge (`traction_Pa` in the sample attributes), frictionless bottom
(u_y = 0 on y = 0, u_x free) with the rigid x-translation removed by pinning u_x at the bottom-left corner (its
reaction is zero to solver precision), free sides. Plane-stress Lame parameters: mu = E / (2 (1 + nu)),
lam = E nu / (1 - nu^2). Sign convention: tension positive, y up, so the top moves down (uy < 0) and eyy < 0.

## Anatomy

Coronal slices of the MNI ICBM152 2009a (symmetric) gray/white-matter probability maps, labelled by the larger
probability; see `meshes/anatomy/LICENSE-MNI152.txt` for the template's notice. The slice is scaled uniformly to
80 % of the rectangle width and centred in a hydrogel-like background; contours are smoothed before meshing.

## Materials and the El-UNet discrepancy

The `elunet-*` presets use the pairing of Poisson's ratios found in the El-UNet authors' released example data:
background 0.35, gray matter 0.40, white matter 0.45 (E: white 2 kPa, gray 1.5 kPa, background 1 kPa soft /
5 kPa stiff; top traction 33 Pa soft, 53 Pa stiff). The paper's printed Table 1 pairs them the other way round
(white 0.35, gray 0.40, background 0.45); pass `--set nu_white=0.35 --set nu_background=0.45` for that variant.
`elunet-noisy` adds Gaussian noise to the strain images: std = 10 % of each component's RMS over the grid; the
noise-free strains are stored as `*_clean`.

## From the mesh to the grid

The grid spans the rectangle with pixel centres ON its edges (spacing width/(W-1), height/(H-1), as the
El-UNet finite differences assume); row 0 is the top edge. Displacements are nodal values. Strains and stresses
reach the vertices by averaging, for each vertex, the strain of every adjacent triangle evaluated at that vertex
(exact per element), weighted by triangle area; each triangle's stress comes from its own material before
averaging, so interface vertices carry an average of both sides. Vertex values are then interpolated by exact
natural-neighbour (Sibson) interpolation (`raster = "sibson"`), which reproduces linear fields exactly; the
alternative `raster = "fe"` evaluates the FE strain and stress exactly at each pixel centre inside its triangle.
E, nu, lam, mu and labels are looked up in the triangle holding each pixel centre, so they take exactly the
region values.
"""
