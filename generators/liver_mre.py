"""Generator ``liver-mre``: time-harmonic MR elastography of an axial abdominal slice (P2, DIME / MDEV).

Pipeline per sample: random anatomy from the committed liver template (``meshes/abdomen.py``) or a
homogeneous box -> random viscoelastic materials (fibrosis field, lesions, soft damped vessels) ->
element sizes from the points-per-wavelength rule -> gmsh mesh -> DOLFINx real 2x2-block solve of
the complex time-harmonic wave equation per frequency (``generators/waves.py``) -> natural-neighbour
rasterisation -> complex Gaussian noise -> MRE wave images at N phase offsets.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample

Range = tuple[float, float]

# gmsh's triangles come out with mean edge ~ the requested size and longest edges up to ~1.3x it;
# asking for SIZE_FACTOR * h keeps every cell's mean edge within the points-per-wavelength rule
SIZE_FACTOR = 0.8

# tissue classes that get their own material draw (labels from meshes/abdomen.py)
_TISSUES = ("fat", "muscle", "viscera", "spleen", "vessel", "bone")


class LiverMREConfig(GeneratorConfig):
    # ---------------------------------------------------------------- physics
    model: Literal["antiplane", "plane_strain"] = Field(
        "antiplane", description="antiplane: scalar out-of-plane shear waves; plane_strain: in-plane vector "
                                 "waves, nearly incompressible, Taylor-Hood u-p")
    frequencies: tuple[float, ...] = Field((60.0,), min_length=1, description="driving frequencies [Hz]")
    random_frequency: Range | None = Field(
        None, description="if set, one frequency per sample drawn uniformly from this range [Hz] "
                          "(replaces `frequencies`)")
    rheology: Literal["voigt", "constant_damping", "springpot"] = Field(
        "springpot", description="frequency law of G*: voigt (G' const, G'' ~ f), constant_damping "
                                 "(G* const), springpot (constant phase, |G*| ~ f^alpha)")
    f_ref: float = Field(60.0, gt=0, description="frequency at which the material values below hold [Hz]")
    rho: float = Field(1000.0, gt=0, description="density of every tissue [kg/m^3]")
    bulk_modulus: float = Field(2.2e9, gt=0, description="bulk modulus K (plane_strain only) [Pa]")
    absorbing_boundary: bool = Field(
        False, description="abdomen: first-order absorbing (impedance) skin instead of traction-free "
                           "(the box always absorbs at its bottom)")
    # ---------------------------------------------------------------- discretisation
    degree: int = Field(2, ge=1, le=3, description="Lagrange degree of the displacement (plane strain: >= 2)")
    points_per_wavelength: float = Field(
        10.0, ge=4, description="nodes per shortest local shear wavelength: h = degree * lambda_min / ppw")
    h_max: float = Field(0.006, gt=0, description="largest element size [m]")
    raster: Literal["sibson", "fe"] = Field(
        "sibson", description="nodal natural-neighbour (Sibson) interpolation of the FE nodes, or exact FE "
                              "evaluation at pixel centres")
    # ---------------------------------------------------------------- geometry
    geometry: Literal["abdomen", "box"] = Field(
        "abdomen", description="abdomen: anatomy-informed slice; box: homogeneous rectangle, driven "
                               "over its whole top edge, absorbing bottom (a plane shear wave)")
    box_size: Range = Field((0.096, 0.144), description="box width, height [m]")
    randomize_anatomy: bool = Field(True, description="random deformation, thicknesses, vessel subset, driver")
    n_lesions: tuple[int, int] = Field((0, 3), description="number of liver lesions, inclusive range")
    lesion_radius: Range = Field((0.005, 0.025), description="lesion radius range [m]")
    # ---------------------------------------------------------------- materials (at f_ref)
    homogeneous_g: tuple[float, float] = Field((2000.0, 500.0), description="box: (G', G'') at f_ref [Pa]")
    liver_g: Range = Field((1500.0, 2500.0), description="healthy liver G' range [Pa]")
    fibrosis_probability: float = Field(0.5, ge=0, le=1, description="probability that a sample is fibrotic")
    fibrosis_g: Range = Field((2500.0, 6000.0), description="fibrotic liver mean G' range [Pa]")
    fibrosis_g_max: float = Field(8000.0, gt=0, description="ceiling of the fibrotic liver G' field [Pa]")
    fibrosis_heterogeneity: Range = Field(
        (0.1, 0.3), description="std of log G' of the fibrosis random field (fibrotic samples)")
    healthy_heterogeneity: Range = Field((0.0, 0.08), description="std of log G' in healthy livers")
    fibrosis_correlation: Range = Field((0.012, 0.035), description="correlation length of the field [m]")
    liver_ratio: Range = Field((0.2, 0.4), description="liver loss ratio G''/G' range")
    lesion_g: Range = Field((5000.0, 15000.0), description="lesion G' range [Pa]")
    lesion_ratio: Range = Field((0.1, 0.35), description="lesion G''/G' range")
    fat_g: Range = Field((1000.0, 2000.0), description="subcutaneous fat G' [Pa]")
    fat_ratio: Range = Field((0.1, 0.3), description="fat G''/G'")
    muscle_g: Range = Field((2500.0, 4500.0), description="abdominal wall muscle G' [Pa]")
    muscle_ratio: Range = Field((0.2, 0.4), description="muscle G''/G'")
    viscera_g: Range = Field((1500.0, 3000.0), description="other viscera G' [Pa]")
    viscera_ratio: Range = Field((0.2, 0.5), description="viscera G''/G'")
    spleen_g: Range = Field((3500.0, 6000.0), description="spleen G' [Pa]")
    spleen_ratio: Range = Field((0.25, 0.4), description="spleen G''/G'")
    vessel_g: Range = Field((300.0, 600.0), description="vessel (blood-filled lumen) G' [Pa]: soft")
    vessel_ratio: Range = Field((0.8, 1.2), description="vessel G''/G': highly damped")
    bone_g: Range = Field((1.0e5, 1.0e5), description="vertebral body G' [Pa] (a stiff stand-in)")
    bone_ratio: Range = Field((0.05, 0.05), description="vertebral body G''/G'")
    # ---------------------------------------------------------------- driver and acquisition
    driver_amplitude: float = Field(2.0e-5, gt=0, description="prescribed driver displacement amplitude [m]")
    driver_direction: Literal["normal", "tangential"] = Field(
        "normal", description="plane_strain: driver motion along the skin normal or tangent (box: tangential "
                              "always, a shear wave)")
    driver_angle: Range = Field(
        (105.0, 150.0), description="driver centre, angle about the cavity centre [deg]: 90 anterior midline, "
                                    "180 the patient's right side (over the liver)")
    driver_width: Range = Field((0.10, 0.16), description="driver arc length range [m] (a large passive pad)")
    n_phase_offsets: int = Field(8, ge=3, le=64, description="MRE phase offsets per period (wave images)")
    snr: float | None = Field(30.0, gt=0, description="amplitude SNR of the complex noise (None: no noise)")
    # ---------------------------------------------------------------- grid
    grid_h: int = Field(256, ge=8, le=2048, description="grid rows")
    grid_w: int = Field(256, ge=8, le=2048, description="grid columns")
    pixel_size: float = Field(0.0015, gt=0, description="pixel spacing [m] (square pixels)")

    @model_validator(mode="after")
    def _check(self):
        for name, f in type(self).model_fields.items():
            v = getattr(self, name)
            if name in ("homogeneous_g", "box_size"):
                continue
            if f.annotation in (Range, tuple[int, int]) or name in ("random_frequency",):
                if v is not None and v[0] > v[1]:
                    raise ValueError(f"{name}: lower bound {v[0]} above upper bound {v[1]}")
        if self.model == "plane_strain" and self.degree < 2:
            raise ValueError("plane_strain needs degree >= 2 (Taylor-Hood)")
        if min(self.frequencies) <= 0 or (self.random_frequency and self.random_frequency[0] <= 0):
            raise ValueError("frequencies must be positive")
        if self.homogeneous_g[0] <= 0 or self.homogeneous_g[1] < 0:
            raise ValueError("homogeneous_g needs G' > 0, G'' >= 0")
        return self

    @property
    def n_freq(self) -> int:
        return 1 if self.random_frequency is not None else len(self.frequencies)

    @property
    def n_comp(self) -> int:
        return 1 if self.model == "antiplane" else 2


PRESETS: dict[str, dict[str, Any]] = {
    "homogeneous": dict(geometry="box", frequencies=(60.0,), snr=None, grid_h=96, grid_w=64,
                        rheology="constant_damping", randomize_anatomy=False),
    "dime-liver": dict(geometry="abdomen", frequencies=(60.0,), snr=30.0),
    "mdev-liver": dict(geometry="abdomen", frequencies=(30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0),
                       n_phase_offsets=4, snr=30.0),
    "random": dict(geometry="abdomen", random_frequency=(30.0, 90.0), n_lesions=(0, 5),
                   fibrosis_probability=0.5, snr=20.0, lesion_radius=(0.004, 0.03),
                   driver_angle=(80.0, 170.0), driver_width=(0.05, 0.18)),
}


def _fourier_field(rng: np.random.Generator, ell: float, n_modes: int = 96):
    """Stationary Gaussian random field with covariance exp(-r^2 / (2 ell^2)), unit variance
    (random Fourier features); returns a function of (n, 2) points [m]."""
    k = rng.normal(size=(n_modes, 2)) / ell
    b = rng.uniform(0, 2 * np.pi, n_modes)
    a = np.sqrt(2.0 / n_modes)

    def f(p: np.ndarray) -> np.ndarray:
        return a * np.cos(np.asarray(p)[:, :2] @ k.T + b).sum(axis=1)

    return f


class LiverMRE(Generator):
    name = "liver-mre"
    version = "1.0.0"
    Config = LiverMREConfig
    presets = PRESETS
    regen_rtol = 1e-5

    # -------------------------------------------------------------------------------- schema
    def schema(self, cfg: LiverMREConfig) -> dict[str, FieldSpec]:
        F, C, N = cfg.n_freq, cfg.n_comp, cfg.n_phase_offsets
        hw = (cfg.grid_h, cfg.grid_w)
        comp = "component z (out of plane)" if C == 1 else "components (x, y)"
        noise = f"SNR {cfg.snr:g}" if cfg.snr else "no noise (snr = None)"
        s = {
            "frequencies": FieldSpec((F,), "float64", "Hz", "driving frequency of each first-harmonic field"),
            "u_re": FieldSpec((F, C, *hw), "float32", "m",
                              f"noise-free complex displacement (first temporal harmonic), real part; {comp}"),
            "u_im": FieldSpec((F, C, *hw), "float32", "m", "noise-free complex displacement, imaginary part"),
            "u_noisy_re": FieldSpec((F, C, *hw), "float32", "m", f"observed displacement, real part ({noise})"),
            "u_noisy_im": FieldSpec((F, C, *hw), "float32", "m", f"observed displacement, imaginary part ({noise})"),
            "wave_images": FieldSpec((F, C, N, *hw), "float32", "m",
                                     f"MRE wave images Re[U_obs exp(i 2 pi n / {N})], n = 0..{N - 1}"),
            "g_storage": FieldSpec((F, *hw), "float32", "Pa", "storage modulus G' (ground truth, per frequency)"),
            "g_loss": FieldSpec((F, *hw), "float32", "Pa", "loss modulus G'' (ground truth)"),
            "g_abs": FieldSpec((F, *hw), "float32", "Pa", "|G*| = sqrt(G'^2 + G''^2)"),
            "phase_angle": FieldSpec((F, *hw), "float32", "rad", "phi = atan2(G'', G')"),
            "labels": FieldSpec(hw, "uint8", "", "region label, see the card (0 outside)"),
            "mask": FieldSpec(hw, "bool", "", "pixel centre inside the body (mesh)"),
            "liver_mask": FieldSpec(hw, "bool", "", "pixel centre inside the liver outline (incl. its vessels, "
                                                    "lesions)"),
            "mesh_points": FieldSpec(("n_nodes", 2), "float64", "m", "mesh vertex coordinates"),
            "mesh_cells": FieldSpec(("n_cells", 3), "int64", "", "triangle vertex indices"),
            "mesh_cell_labels": FieldSpec(("n_cells",), "uint8", "", "region label per triangle"),
            "mesh_cell_g_storage": FieldSpec(("n_cells", F), "float64", "Pa", "G' per triangle and frequency"),
            "mesh_cell_g_loss": FieldSpec(("n_cells", F), "float64", "Pa", "G'' per triangle and frequency"),
            "mesh_point_u_re": FieldSpec(("n_nodes", F * C), "float64", "m",
                                         "noise-free displacement at the vertices, real part; column f*C + c"),
            "mesh_point_u_im": FieldSpec(("n_nodes", F * C), "float64", "m", "same, imaginary part"),
        }
        return s

    # -------------------------------------------------------------------------------- materials
    def _draw_materials(self, cfg: LiverMREConfig, rng: np.random.Generator) -> dict[str, Any]:
        u = lambda r: float(rng.uniform(*r))  # noqa: E731
        mats = {t: (u(getattr(cfg, f"{t}_g")), u(getattr(cfg, f"{t}_ratio"))) for t in _TISSUES}
        fibrotic = bool(rng.uniform() < cfg.fibrosis_probability)
        if fibrotic:
            g_mean, sig = u(cfg.fibrosis_g), u(cfg.fibrosis_heterogeneity)
        else:
            g_mean, sig = u(cfg.liver_g), u(cfg.healthy_heterogeneity)
        ell = u(cfg.fibrosis_correlation)
        field = _fourier_field(rng, ell)
        lo = cfg.liver_g[0] * 0.9
        hi = cfg.fibrosis_g_max if fibrotic else cfg.liver_g[1] * 1.1

        def liver_storage(p):
            return np.clip(g_mean * np.exp(sig * field(p) - 0.5 * sig**2), lo, hi)

        return {"tissue": mats, "liver": {"fibrotic": fibrotic, "mean_g": g_mean, "log_std": sig,
                                           "correlation_length": ell, "ratio": u(cfg.liver_ratio),
                                           "clip": (lo, hi)},
                "liver_storage": liver_storage}

    # -------------------------------------------------------------------------------- sampling
    def sample(self, cfg: LiverMREConfig, rng: np.random.Generator, index: int) -> Sample:
        import mpi4py.MPI  # noqa: F401  (before dolfinx)

        from phantombench.generators import raster, waves
        from phantombench.meshes import abdomen as ab

        t0 = time.perf_counter()
        r_anat, r_mat, r_noise, r_freq = rng.spawn(4)
        if cfg.random_frequency is not None:
            freqs = np.array([r_freq.uniform(*cfg.random_frequency)])
        else:
            freqs = np.asarray(cfg.frequencies, dtype=float)
        f_max = float(freqs.max())
        deg, ppw = cfg.degree, cfg.points_per_wavelength
        rheo = cfg.rheology

        def lam_min(gs, ratio):
            """Shortest shear wavelength over the frequencies for G'(f_ref) = gs, G''/G' = ratio."""
            gs = np.atleast_1d(np.asarray(gs, float))
            out = np.inf
            for f in freqs:
                g1, g2 = waves.complex_modulus(gs, gs * ratio, f, cfg.f_ref, rheo)
                out = min(out, float(np.min(waves.shear_wavelength(g1, g2, f, cfg.rho))))
            return out

        info: dict[str, Any] = {}
        mats: dict[str, Any] = {}
        if cfg.geometry == "box":
            gs0, gl0 = cfg.homogeneous_g
            h = min(float(waves.mesh_size(lam_min(gs0, gl0 / gs0), deg, ppw)) * SIZE_FACTOR, cfg.h_max)
            mres = ab.mesh_box(cfg.box_size[0], cfg.box_size[1], h, label=ab.LIVER)
            h_by_label = {ab.LIVER: h}
            centre = (0.0, 0.0)
        else:
            params = ab.AnatomyParams(
                n_lesions=cfg.n_lesions, lesion_radius=(cfg.lesion_radius[0] * 1e3, cfg.lesion_radius[1] * 1e3),
                driver_angle_deg=cfg.driver_angle,
                driver_width=(cfg.driver_width[0] * 1e3, cfg.driver_width[1] * 1e3),
                deform=cfg.randomize_anatomy)
            ph = ab.sample_abdomen(r_anat, params)
            info["anatomy"] = ph.info
            mats = self._draw_materials(cfg, r_mat)
            tis = mats["tissue"]
            lesion_mats = [(float(r_mat.uniform(*cfg.lesion_g)), float(r_mat.uniform(*cfg.lesion_ratio)))
                           for _ in ph.lesions]
            mats["lesions"] = lesion_mats
            # shortest wavelength per region -> element size
            lv = ph.liver.curve
            gx, gy = np.meshgrid(np.arange(lv[:, 0].min(), lv[:, 0].max(), 2.0),
                                 np.arange(lv[:, 1].min(), lv[:, 1].max(), 2.0))
            probe = np.column_stack([gx.ravel(), gy.ravel()])
            probe = probe[ab.inside(lv, probe)] * 1e-3
            liver_g_probe = mats["liver_storage"](probe)
            lam = {ab.FAT: lam_min(*tis["fat"]), ab.WALL: lam_min(*tis["muscle"]),
                   ab.VISCERA: lam_min(*tis["viscera"]), ab.SPLEEN: lam_min(*tis["spleen"]),
                   ab.SPINE: lam_min(*tis["bone"]), ab.HEPATIC_VESSEL: lam_min(*tis["vessel"]),
                   ab.GREAT_VESSEL: lam_min(*tis["vessel"]),
                   ab.LIVER: lam_min(liver_g_probe, mats["liver"]["ratio"]),
                   ab.LESION: min([lam_min(g, r) for g, r in lesion_mats], default=np.inf)}
            h_by_label = {k: min(float(waves.mesh_size(v, deg, ppw)) * SIZE_FACTOR if np.isfinite(v) else cfg.h_max,
                                 cfg.h_max) for k, v in lam.items()}
            # geometric resolution of small structures: >= 4 elements across
            for lab, structs in ((ab.HEPATIC_VESSEL, ph.vessels), (ab.LESION, ph.lesions),
                                 (ab.GREAT_VESSEL, [o for o in ph.organs if o.label == ab.GREAT_VESSEL])):
                for s_ in structs:
                    r_eq = 2 * abs(ab.signed_area(s_.curve)) / ab.perimeter(s_.curve) * 1e-3
                    h_by_label[lab] = min(h_by_label[lab], r_eq / 2)
            h_by_label[ab.OUTSIDE] = cfg.h_max
            mres = ab.mesh_abdomen(ph, h_by_label)
            x0, x1, y0, y1 = ph.bbox()
            centre = (0.5 * (x0 + x1) * 1e-3, 0.5 * (y0 + y1) * 1e-3)
        t_mesh = time.perf_counter()

        # ---- cellwise materials at f_ref
        msh = mres.mesh
        tdim = msh.topology.dim
        n_cells = msh.topology.index_map(tdim).size_local
        cell_lab = np.zeros(n_cells, dtype=np.int64)
        cell_lab[mres.cell_tags.indices] = mres.cell_tags.values
        geo_x = msh.geometry.x[:, :2]
        geo_cells = np.asarray(msh.geometry.dofmaps[0] if isinstance(msh.geometry.dofmaps, list)
                               else msh.geometry.dofmap, dtype=np.int64)[:n_cells]
        mid = geo_x[geo_cells].mean(axis=1)
        gs_ref = np.zeros(n_cells)
        ratio = np.zeros(n_cells)
        if cfg.geometry == "box":
            gs_ref[:] = cfg.homogeneous_g[0]
            ratio[:] = cfg.homogeneous_g[1] / cfg.homogeneous_g[0]
        else:
            tis = mats["tissue"]
            for lab, key in ((ab.FAT, "fat"), (ab.WALL, "muscle"), (ab.VISCERA, "viscera"), (ab.SPLEEN, "spleen"),
                             (ab.SPINE, "bone"), (ab.HEPATIC_VESSEL, "vessel"), (ab.GREAT_VESSEL, "vessel")):
                sel = cell_lab == lab
                gs_ref[sel], ratio[sel] = tis[key]
            sel = cell_lab == ab.LIVER
            gs_ref[sel] = mats["liver_storage"](mid[sel])
            ratio[sel] = mats["liver"]["ratio"]
            # lesions: the cell belongs to the lesion whose curve holds its midpoint
            sel = np.flatnonzero(cell_lab == ab.LESION)
            for s_, (g, r) in zip(ph.lesions, mats["lesions"]):
                ins = ab.inside(s_.curve * 1e-3, mid[sel])
                gs_ref[sel[ins]], ratio[sel[ins]] = g, r
            if np.any(gs_ref <= 0):
                raise RuntimeError("a cell got no material")
        gl_ref = gs_ref * ratio

        # ---- solver and boundary data
        ft = mres.facet_tags
        driver = ft.indices[ft.values == ab.FACET_DRIVER]
        if cfg.geometry == "box":
            absorbing = ft.indices[ft.values == ab.FACET_ABSORB]
        else:
            absorbing = ft.indices[ft.values == ab.FACET_FREE] if cfg.absorbing_boundary else None
        solver = waves.HarmonicWaveSolver(msh, model=cfg.model, degree=deg, absorbing_facets=absorbing,
                                          bulk_modulus=cfg.bulk_modulus)
        solver.set_density(cfg.rho)
        A = cfg.driver_amplitude
        if cfg.model == "antiplane":
            bcs = [waves.Dirichlet(driver, A + 0j)]
            drive_dir = None
        else:
            if cfg.geometry == "box":
                dvec = np.array([1.0, 0.0])
                sides = ft.indices[ft.values == ab.FACET_FREE]
                extra = [waves.Dirichlet(sides, 0.0, component=1)]
            else:
                nrm = ab.outward_normals(ph.skin)
                i0, i1 = ph.driver
                idx = np.arange(i0, i1 if i1 > i0 else i1 + len(ph.skin)) % len(ph.skin)
                nd = nrm[idx].mean(axis=0)
                nd /= np.linalg.norm(nd)
                dvec = -nd if cfg.driver_direction == "normal" else np.array([-nd[1], nd[0]])
                extra = []
            drive_dir = dvec.tolist()
            bcs = [waves.Dirichlet(driver, (A * dvec[0] + 0j, A * dvec[1] + 0j))] + extra

        F, C = len(freqs), cfg.n_comp
        gs_f = np.zeros((n_cells, F))
        gl_f = np.zeros((n_cells, F))
        sols, fe_funcs, powers, t_solve = [], [], [], {"assemble": 0.0, "solve": 0.0}
        for j, f in enumerate(freqs):
            g1, g2 = waves.complex_modulus(gs_ref, gl_ref, f, cfg.f_ref, rheo)
            gs_f[:, j], gl_f[:, j] = g1, g2
            sol = solver.solve(float(f), bcs, g1, g2)
            for k in t_solve:
                t_solve[k] += sol.timings[k]
            pw = solver.power()
            pw["balance_rel_error"] = ((pw["driver"] - pw["dissipated"] - pw["radiated"])
                                       / max(abs(pw["driver"]), 1e-300))
            powers.append(pw)
            sols.append(sol.u)
            if cfg.raster == "fe":
                fe_funcs.append(solver.displacement_functions())
        dof_pts = sol.dof_points
        n_unknowns = sol.n_unknowns
        # vertex values of the P2 field (P2 vertex dofs are the vertex values)
        Vu = solver.Vu
        vdofs = np.asarray(Vu.dofmap.list)[:n_cells, :3]
        vert_dof = np.empty(len(geo_x), dtype=np.int64)
        vert_dof[geo_cells.ravel()] = vdofs.ravel()
        t_sol = time.perf_counter()

        # ---- rasterise
        Hh, Ww, px = cfg.grid_h, cfg.grid_w, cfg.pixel_size
        grid = raster.Grid(centre[0] - 0.5 * (Ww - 1) * px, centre[1] + 0.5 * (Hh - 1) * px, px, px, Hh, Ww)
        cidx = raster.locate_cells(geo_x, geo_cells, grid)
        mask = cidx >= 0
        lab_grid = raster.cell_to_grid(cell_lab.astype(np.uint8), cidx, fill=0).astype(np.uint8)
        if cfg.raster == "sibson":
            sib = raster.Sibson(dof_pts, grid, mask=mask)
            U = np.stack([s_ for s_ in sols], axis=1).reshape(len(dof_pts), F * C)
            Ug = sib(U).reshape(F, C, Hh, Ww)
        else:
            cells_fe = raster.fe_locate(msh, grid)
            Ug = np.empty((F, C, Hh, Ww), dtype=complex)
            for j, (fr, fi) in enumerate(fe_funcs):
                re = raster.fe_evaluate(fr, grid, cells=cells_fe)
                im = raster.fe_evaluate(fi, grid, cells=cells_fe)
                Ug[j] = (re + 1j * im).reshape(C, Hh, Ww)
            Ug[:, :, ~mask] = np.nan
        gsg = raster.cell_to_grid(gs_f, cidx)   # (F, H, W)
        glg = raster.cell_to_grid(gl_f, cidx)
        t_ras = time.perf_counter()

        # ---- noise and wave images (SNR referred to the liver, where inversions are scored)
        liver_mask = np.isin(lab_grid, (ab.LIVER, ab.HEPATIC_VESSEL, ab.LESION)) & mask
        ref = liver_mask if liver_mask.any() else mask
        noisy = Ug.copy()
        sigmas = []
        for j in range(F):
            amp = np.abs(Ug[j][:, ref])
            rms = float(np.sqrt(np.mean(amp**2))) if amp.size else 0.0
            sigma = rms / cfg.snr if cfg.snr else 0.0
            sigmas.append(sigma)
            if sigma > 0:
                nz = r_noise.normal(size=(2, C, int(mask.sum()))) * (sigma / np.sqrt(2))
                noisy[j][:, mask] += nz[0] + 1j * nz[1]
        theta = 2 * np.pi * np.arange(cfg.n_phase_offsets) / cfg.n_phase_offsets
        waves_img = np.real(noisy[:, :, None] * np.exp(1j * theta)[None, None, :, None, None])

        # ---- vertex values
        mesh_u = np.stack([u_[vert_dof] for u_ in sols], axis=1)  # (n_nodes, F, C)
        mesh_u = mesh_u.reshape(len(geo_x), F * C)

        f32 = np.float32
        gabs = np.hypot(gsg, glg)
        out = {
            "frequencies": freqs.astype(np.float64),
            "u_re": Ug.real.astype(f32), "u_im": Ug.imag.astype(f32),
            "u_noisy_re": noisy.real.astype(f32), "u_noisy_im": noisy.imag.astype(f32),
            "wave_images": waves_img.astype(f32),
            "g_storage": gsg.astype(f32), "g_loss": glg.astype(f32), "g_abs": gabs.astype(f32),
            "phase_angle": np.arctan2(glg, gsg).astype(f32),
            "labels": lab_grid, "mask": mask,
            "liver_mask": liver_mask,
            "mesh_points": np.ascontiguousarray(geo_x, dtype=np.float64),
            "mesh_cells": geo_cells.astype(np.int64),
            "mesh_cell_labels": cell_lab.astype(np.uint8),
            "mesh_cell_g_storage": gs_f, "mesh_cell_g_loss": gl_f,
            "mesh_point_u_re": np.ascontiguousarray(mesh_u.real), "mesh_point_u_im": np.ascontiguousarray(mesh_u.imag),
        }
        # achieved points per wavelength per cell: p * lambda_cell / edge (mean edge; longest edge too)
        e = np.stack([np.linalg.norm(geo_x[geo_cells[:, i]] - geo_x[geo_cells[:, (i + 1) % 3]], axis=1)
                      for i in range(3)], axis=1)
        lam_cells = np.min([waves.shear_wavelength(gs_f[:, j], gl_f[:, j], freqs[j], cfg.rho) for j in range(F)],
                           axis=0)
        ppw_cells = deg * lam_cells / e.mean(axis=1)
        ppw_long = deg * lam_cells / e.max(axis=1)
        t_end = time.perf_counter()
        attrs: dict[str, Any] = {
            "frequencies_Hz": freqs.tolist(),
            "model": cfg.model,
            "rheology": rheo,
            "n_unknowns": int(n_unknowns),
            "mesh": {"n_nodes": int(len(geo_x)), "n_cells": int(n_cells),
                     "h_target_m": {ab.LABELS[k]: float(v) for k, v in h_by_label.items() if k != ab.OUTSIDE}},
            "points_per_wavelength": {"target": ppw, "achieved_min": float(ppw_cells.min()),
                                      "achieved_p05": float(np.percentile(ppw_cells, 5)),
                                      "longest_edge_min": float(ppw_long.min()),
                                      "longest_edge_p05": float(np.percentile(ppw_long, 5)),
                                      "rule": "h = degree * lambda_min / ppw per region (lambda at the highest "
                                              "frequency); achieved: degree * lambda_cell / mean edge, worst "
                                              "cell (and with the longest edge)"},
            "power_balance_W_per_m": powers,
            "noise_sigma_m": sigmas,
            "driver": {"amplitude_m": A, "direction": drive_dir, "n_facets": int(len(driver))},
            "grid": {"x0": grid.x0, "y_top": grid.y_top, "dx": grid.dx, "dy": grid.dy, "H": Hh, "W": Ww},
            "seconds": {"mesh": round(t_mesh - t0, 4), "assemble": round(t_solve["assemble"], 4),
                        "solve": round(t_solve["solve"], 4), "solve_total": round(t_sol - t_mesh, 4),
                        "raster": round(t_ras - t_sol, 4), "total": round(t_end - t0, 4)},
        }
        if cfg.geometry == "abdomen":
            attrs["anatomy"] = info["anatomy"]
            lv = mats["liver"]
            attrs["materials_at_f_ref"] = {
                "f_ref_Hz": cfg.f_ref,
                **{t: {"g_storage_Pa": g, "loss_ratio": r} for t, (g, r) in mats["tissue"].items()},
                "liver": {"fibrotic": lv["fibrotic"], "mean_g_storage_Pa": lv["mean_g"], "log_std": lv["log_std"],
                          "correlation_length_m": lv["correlation_length"], "loss_ratio": lv["ratio"]},
                "lesions": [{"g_storage_Pa": g, "loss_ratio": r} for g, r in mats["lesions"]],
            }
        else:
            attrs["materials_at_f_ref"] = {"f_ref_Hz": cfg.f_ref, "g_storage_Pa": cfg.homogeneous_g[0],
                                           "g_loss_Pa": cfg.homogeneous_g[1]}
        solver.destroy()
        return Sample(out, attrs)

    # -------------------------------------------------------------------------------- card
    def card(self, cfg: LiverMREConfig) -> str:
        return CARD_NOTES


CARD_NOTES = """\
## Physics

Steady-state time-harmonic motion, `u(x, t) = Re[U(x) exp(+i w t)]`, w = 2 pi f, in a linear viscoelastic
solid with complex shear modulus `G* = G' + i G''` (G'' >= 0) and density rho (1000 kg/m^3). Complex shear
wavenumber `k = w sqrt(rho / G*)` (Re k > 0, Im k < 0): wavelength `2 pi / Re k`, amplitude attenuation
`-Im k` [Np/m]. Models (`model`):

* `antiplane` (default): out-of-plane displacement U_z of an axial slice, `div(G* grad U) + rho w^2 U = 0`
  (component axis C = 1).
* `plane_strain`: in-plane displacement (U_x, U_y) (C = 2) of a nearly incompressible solid (bulk modulus
  `bulk_modulus`, default that of water). Mixed displacement-pressure Taylor-Hood P2-P1 with
  `p = -lambda* div u`, `lambda* = K - 2 G*/3`: inf-sup stable and free of volumetric locking, because the
  bulk modulus only enters through `1/lambda*`, which tends to zero in the incompressible limit.

Rheology (`rheology`), material values are given at `f_ref` (60 Hz): `springpot` (constant phase angle,
|G*| ~ f^alpha with alpha = 2 phi / pi), `voigt` (G' constant, G'' ~ f) or `constant_damping` (G* independent
of f). Complex fields are solved on the real DOLFINx build as real/imaginary 2x2 blocks, written as a real
symmetric (indefinite) block form and factorised by MUMPS (LDL^T). The driver is a prescribed displacement of
amplitude `driver_amplitude` and phase 0 on an arc of the anterior skin over the liver (antiplane: U_z;
plane strain: along the mean inward skin normal, or tangential); the rest of the skin is traction-free
(`absorbing_boundary = true`: first-order impedance `t = -i w sqrt(rho G*) U`). The `box` geometry
(`homogeneous` preset) is driven over its whole top edge with an absorbing bottom and free sides, so its
exact solution is the plane wave `A exp(-i k d)` at depth d.

Power balance (sample attribute `power_balance_W_per_m`, per metre of out-of-plane depth): driver power from
the consistent reaction forces, `1/2 w Im sum r_j conj(U_j)`, equals the dissipated power
`1/2 w int G'' |grad U|^2` plus the power leaving through absorbing boundaries.

## Discretisation: points-per-wavelength rule

Element size per region: `h = degree * lambda_min / points_per_wavelength` (degree-2 elements, 10 points per
wavelength: h = lambda_min / 5; a P2 edge carries 2 nodal intervals), where `lambda_min` is the shortest shear
wavelength of that region's materials at the highest frequency of the sample. gmsh is asked for 0.8 h (its
triangles come out with mean edges about the requested size and longest edges up to ~1.3x it), interfaces
take the smaller neighbour size, small structures (vessels, lesions) get at least 4 elements across, and
`h_max` (6 mm) caps everything. Achieved values are stored per sample in `points_per_wavelength`:
`achieved_min` = min over cells of `degree * lambda_cell / mean edge` (>= 10 by construction in practice,
about 10.4), `longest_edge_min` the same with the longest edge (about 8.9).

## Anatomy and materials

Axial slice at the level of the portal vein, from the committed template
`meshes/anatomy/abdomen_axial_portal.json`: a hand-digitised approximation of an axial CT slice at that level,
drawn for this project from general anatomical knowledge (not traced from any patient image or atlas).
Per sample: smooth random liver deformation, wall and fat thicknesses, a random subset of jittered
intrahepatic portal/hepatic vessel cross-sections, lesions inside the liver, one global smooth
diffeomorphism, and the driver position. Labels: 0 outside, 1 subcutaneous fat, 2 abdominal wall muscle,
3 other viscera, 4 liver, 5 intrahepatic vessel, 6 lesion, 7 spleen, 8 vertebral body, 9 aorta/IVC.
Materials at f_ref are drawn per sample from the config ranges: healthy liver G' 1.5-2.5 kPa; fibrotic
livers (probability `fibrosis_probability`) a log-normal smooth random field (Gaussian covariance,
correlation length 12-35 mm) with mean 2.5-6 kPa clipped at 8 kPa; lesions 5-15 kPa; vessels soft (0.3-0.6
kPa) and highly damped (G''/G' ~ 1); fat, muscle, viscera, spleen as in the config; vertebral body 100 kPa
(a stiff stand-in). Ground truth G', G'', |G*| and phase angle are cellwise, looked up in the triangle
holding each pixel centre (per frequency, after the rheology law).

Caveat (measured, `dime-liver`): a single anterior driver in 2D with realistic damping gives waves that decay
strongly with depth: over the liver, the median |U| is about 1-3 % of the driver amplitude and the 10th
percentile 0.04-0.6 %, so the deepest liver sits near the noise floor at SNR 30 (as in vivo at depth).

## Grid, noise and wave images

Grid `grid_h x grid_w` pixels of `pixel_size` (default 256 x 256 at 1.5 mm = 384 mm field of view), centred on
the body's bounding box (`grid` attribute: x0, y_top, dx, dy). Axes: x = image right = patient's left, y =
anterior (row 0 at the top). Displacements are interpolated from the P2 nodes by exact natural-neighbour
(Sibson) interpolation (`raster = "fe"`: exact FE evaluation). Values outside the body are NaN.
Noise: complex Gaussian, independent per pixel and component, real and imaginary parts each N(0, sigma^2/2),
`sigma = rms_liver(|U|) / snr` per frequency: SNR is the ratio of the RMS noise-free displacement magnitude
over the liver (`liver_mask`; the whole body where there is no liver) to the RMS noise magnitude; noise is
added over the whole body (`noise_sigma_m` in the attributes). Wave images: `Re[U_noisy exp(i 2 pi n / N)]`,
n = 0..N-1 (N = `n_phase_offsets`); their first temporal harmonic (DFT over n, times 2/N) returns `U_noisy`
exactly.
"""
