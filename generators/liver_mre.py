"""Generator ``liver-mre``: time-harmonic MR elastography of an axial abdominal slice (P2, DIME / MDEV).

Pipeline per sample (:meth:`LiverMRE.sample`), one short function per stage:

    draw_frequencies  the driving frequencies (fixed, or one drawn per sample)
    draw_phantom      random anatomy from the committed liver template (meshes/abdomen.py) or a homogeneous
                      box; random viscoelastic materials at f_ref (fibrosis field, lesions, soft damped vessels)
    element_sizes     target element size per region from the points-per-wavelength rule
    mesh_phantom      gmsh mesh (meshes/abdomen.py), its arrays, G' and G''/G' per cell
    make_solver       DOLFINx real 2x2-block solver of the complex wave equation (generators/waves.py), driver
    solve             one solve per frequency, G*(f) from the rheology law, power balance
    rasterise         natural-neighbour (Sibson) or exact FE displacements, cellwise moduli on the grid
                                                                        (generators/raster.py)
    observe           complex Gaussian noise in metres from MR phase noise (or at a relative SNR), MRE wave images
                      at N phase offsets (generators/noise.py, generators/mre_quality.py)
    sample_fields, attributes

Presets and the dataset card are data: ``generators/presets/liver-mre.json``, ``generators/cards/liver-mre.md``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from phantombench.generators.assets import card_text, load_presets
from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample

Range = tuple[float, float]

# gmsh's triangles come out with mean edges about the requested size and longest edges somewhat above it;
# asking for SIZE_FACTOR * h keeps every cell's mean edge within the points-per-wavelength rule (the achieved
# values are stored per sample, attribute points_per_wavelength)
SIZE_FACTOR = 0.8

# tissue classes that get their own material draw (labels from meshes/abdomen.py)
_TISSUES = ("fat", "muscle", "viscera", "spleen", "vessel", "bone")


class LiverMREConfig(GeneratorConfig):
    # ---------------------------------------------------------------- physics
    model: Literal["antiplane", "plane_strain"] = Field(
        "plane_strain", description="plane_strain: in-plane vector waves of a nearly incompressible solid "
                                    "(Taylor-Hood u-p; the compressional near field reaches deep and mode-converts "
                                    "to shear waves); antiplane: scalar out-of-plane shear waves (fast, but they "
                                    "decay before reaching the liver, see the card)")
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
    driver_amplitude: float = Field(1.0e-4, gt=0, description="prescribed driver displacement amplitude [m] "
                                                                "(100 um)")
    driver_direction: Literal["normal", "tangential"] = Field(
        "normal", description="plane_strain: driver motion along the skin normal or tangent (box: tangential "
                              "always, a shear wave)")
    driver_angle: Range = Field(
        (115.0, 150.0), description="driver centre, angle about the cavity centre [deg]: 90 anterior midline, "
                                    "180 the patient's right side; default: the anterior right lower chest wall "
                                    "over the right liver lobe")
    driver_width: Range = Field((0.10, 0.16), description="driver arc length range [m] (a large passive pad)")
    driver2_angle: Range | None = Field(
        None, description="optional second driver (same width, amplitude and phase), angle range [deg]")
    support_width: float | None = Field(
        0.20, gt=0, description="supine on the table: posterior skin arc of this length [m] is clamped "
                                "(None: the whole skin except the drivers is traction-free)")
    n_phase_offsets: int = Field(8, ge=3, le=64, description="MRE phase offsets per period (wave images)")
    noise_model: Literal["phase", "relative"] = Field(
        "phase", description="phase: displacement noise in metres from MR phase noise (1 / magnitude SNR) "
                             "over the encoding efficiency, varying with the magnitude image; relative: "
                             "sigma = rms_liver(|U|) / snr")
    snr: float | None = Field(30.0, gt=0, description="relative model: amplitude SNR of the complex noise "
                                                      "(None: no noise)")
    magnitude_snr: float | None = Field(
        20.0, gt=0, description="phase model: mean magnitude SNR of one wave image over the liver (None: no noise)")
    encoding_efficiency: float = Field(
        0.067, gt=0, description="phase model: motion-encoding efficiency [rad/um] (phase per displacement)")
    coil_depth: float = Field(0.08, gt=0, description="phase model: receive-coil sensitivity decay depth below "
                                                      "the skin [m]")
    coil_floor: float = Field(0.3, ge=0, le=1, description="phase model: relative coil sensitivity deep inside")
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
            if f.annotation in (Range, tuple[int, int]) or name in ("random_frequency", "driver2_angle"):
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


PRESETS: dict[str, dict[str, Any]] = load_presets("liver-mre")


def _fourier_field(rng: np.random.Generator, ell: float, n_modes: int = 96):
    """Stationary Gaussian random field with covariance exp(-r^2 / (2 ell^2)), unit variance
    (random Fourier features); returns a function of (n, 2) points [m]."""
    k = rng.normal(size=(n_modes, 2)) / ell
    b = rng.uniform(0, 2 * np.pi, n_modes)
    a = np.sqrt(2.0 / n_modes)

    def f(p: np.ndarray) -> np.ndarray:
        return a * np.cos(np.asarray(p)[:, :2] @ k.T + b).sum(axis=1)

    return f


def _noise_text(cfg: LiverMREConfig) -> str:
    if cfg.noise_model == "relative":
        return f"SNR {cfg.snr:g}" if cfg.snr else "no noise (snr = None)"
    if not cfg.magnitude_snr:
        return "no noise (magnitude_snr = None)"
    return (f"phase noise, liver magnitude SNR {cfg.magnitude_snr:g}, encoding {cfg.encoding_efficiency:g} "
            "rad/um")


class LiverMRE(Generator):
    name = "liver-mre"
    version = "2.0.0"
    Config = LiverMREConfig
    presets = PRESETS
    regen_rtol = 1e-5

    # -------------------------------------------------------------------------------- schema
    def schema(self, cfg: LiverMREConfig) -> dict[str, FieldSpec]:
        F, C, N = cfg.n_freq, cfg.n_comp, cfg.n_phase_offsets
        hw = (cfg.grid_h, cfg.grid_w)
        comp = "component z (out of plane)" if C == 1 else "components (x, y)"
        noise = _noise_text(cfg)
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

    # -------------------------------------------------------------------------------- sampling
    def sample(self, cfg: LiverMREConfig, rng: np.random.Generator, index: int) -> Sample:
        """phantom -> mesh -> solve -> rasterise -> observe -> attributes (see the module docstring)."""
        import mpi4py.MPI  # noqa: F401  (before dolfinx)

        t0 = time.perf_counter()
        r_anat, r_mat, r_noise, r_freq = rng.spawn(4)
        freqs = draw_frequencies(cfg, r_freq)
        ph = draw_phantom(cfg, r_anat, r_mat)
        mesh = mesh_phantom(cfg, ph, element_sizes(cfg, ph, freqs))
        t_mesh = time.perf_counter()
        solver, driver = make_solver(cfg, mesh, ph)
        fe = solve(cfg, solver, driver, mesh, freqs)
        t_sol = time.perf_counter()
        img = rasterise(cfg, mesh, fe)
        t_ras = time.perf_counter()
        obs = observe(cfg, img, r_noise)
        out = sample_fields(mesh, fe, img, obs)
        seconds = {"mesh": round(t_mesh - t0, 4), "assemble": round(fe.timings["assemble"], 4),
                   "solve": round(fe.timings["solve"], 4), "solve_total": round(t_sol - t_mesh, 4),
                   "raster": round(t_ras - t_sol, 4), "total": round(time.perf_counter() - t0, 4)}
        attrs = attributes(cfg, ph, mesh, fe, driver, img, obs, seconds)
        solver.destroy()
        return Sample(out, attrs)

    # -------------------------------------------------------------------------------- card
    def card(self, cfg: LiverMREConfig) -> str:
        return card_text(self.name)


# ------------------------------------------------------------------------------------ stages
@dataclass
class Phantom:
    """The drawn slice (``anatomy`` None for the box) and its materials at f_ref (empty for the box)."""

    geometry: str
    anatomy: Any                     # meshes.abdomen.AbdomenPhantom | None
    materials: dict[str, Any]        # _draw_materials() plus "lesions": [(G', G''/G')]


@dataclass
class Mesh:
    """The mesh, its plain arrays and the cellwise materials at f_ref."""

    mres: Any                        # meshes.abdomen.MeshResult (dolfinx mesh and tags)
    h_by_label: dict[int, float]     # target element size per region [m]
    centre: tuple[float, float]      # grid centre [m]
    points: np.ndarray               # (N, 2) vertex coordinates [m]
    cells: np.ndarray                # (M, 3) int64
    labels: np.ndarray               # (M,) region label
    g_ref: np.ndarray                # (M,) G' at f_ref [Pa]
    ratio: np.ndarray                # (M,) G''/G'


@dataclass
class Driver:
    """The prescribed-displacement driver and the boundary conditions it makes."""

    bcs: list
    facets: np.ndarray
    amplitude: float
    direction: list[float] | None    # plane strain: unit motion direction


@dataclass
class WaveFields:
    """The FE solutions, one per frequency, with the per-cell moduli and the power balance."""

    freqs: np.ndarray
    u: list[np.ndarray]              # dof values per frequency (complex), (n_dofs,) or (n_dofs, C)
    fe_funcs: list                   # raster == "fe": (real, imaginary) dolfinx functions per frequency
    powers: list[dict[str, float]]
    g_storage: np.ndarray            # (M, F) G' per cell and frequency
    g_loss: np.ndarray               # (M, F) G''
    dof_points: np.ndarray
    n_unknowns: int
    vertex_dof: np.ndarray           # dof of each mesh vertex (P2 vertex dofs are the vertex values)
    timings: dict[str, float]


def draw_frequencies(cfg: LiverMREConfig, r_freq: np.random.Generator) -> np.ndarray:
    if cfg.random_frequency is not None:
        return np.array([r_freq.uniform(*cfg.random_frequency)])
    return np.asarray(cfg.frequencies, dtype=float)


def draw_phantom(cfg: LiverMREConfig, r_anat: np.random.Generator, r_mat: np.random.Generator) -> Phantom:
    """Box: nothing to draw. Abdomen: the anatomy (r_anat), then tissue, liver and lesion materials (r_mat)."""
    from phantombench.meshes import abdomen as ab

    if cfg.geometry == "box":
        return Phantom("box", None, {})
    params = ab.AnatomyParams(
        n_lesions=cfg.n_lesions, lesion_radius=(cfg.lesion_radius[0] * 1e3, cfg.lesion_radius[1] * 1e3),
        driver_angle_deg=cfg.driver_angle, driver_width=(cfg.driver_width[0] * 1e3, cfg.driver_width[1] * 1e3),
        deform=cfg.randomize_anatomy, driver2_angle_deg=cfg.driver2_angle,
        support_width=None if cfg.support_width is None else cfg.support_width * 1e3)
    anatomy = ab.sample_abdomen(r_anat, params)
    mats = _draw_materials(cfg, r_mat)
    mats["lesions"] = [(float(r_mat.uniform(*cfg.lesion_g)), float(r_mat.uniform(*cfg.lesion_ratio)))
                       for _ in anatomy.lesions]
    return Phantom("abdomen", anatomy, mats)


def _draw_materials(cfg: LiverMREConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Tissue (G', G''/G') at f_ref, and the liver: healthy or fibrotic, a clipped log-normal random field."""
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


def _lambda_min(cfg: LiverMREConfig, freqs: np.ndarray, gs, ratio) -> float:
    """Shortest shear wavelength over the frequencies for G'(f_ref) = gs, G''/G' = ratio."""
    from phantombench.generators import waves

    gs = np.atleast_1d(np.asarray(gs, float))
    out = np.inf
    for f in freqs:
        g1, g2 = waves.complex_modulus(gs, gs * ratio, f, cfg.f_ref, cfg.rheology)
        out = min(out, float(np.min(waves.shear_wavelength(g1, g2, f, cfg.rho))))
    return out


def _size(cfg: LiverMREConfig, lam: float) -> float:
    """Element size for the shortest wavelength ``lam``: degree * lam / ppw, times SIZE_FACTOR, capped."""
    from phantombench.generators import waves

    if not np.isfinite(lam):
        return cfg.h_max
    return min(float(waves.mesh_size(lam, cfg.degree, cfg.points_per_wavelength)) * SIZE_FACTOR, cfg.h_max)


def element_sizes(cfg: LiverMREConfig, ph: Phantom, freqs: np.ndarray) -> dict[int, float]:
    """Target size per region from the points-per-wavelength rule; small structures get >= 4 elements across."""
    from phantombench.meshes import abdomen as ab

    lam = lambda g, r: _lambda_min(cfg, freqs, g, r)  # noqa: E731
    if ph.geometry == "box":
        gs0, gl0 = cfg.homogeneous_g
        return {ab.LIVER: _size(cfg, lam(gs0, gl0 / gs0))}
    an, mats = ph.anatomy, ph.materials
    tis = mats["tissue"]
    lv = an.liver.curve  # the liver's random field sampled on a 2 mm probe grid
    gx, gy = np.meshgrid(np.arange(lv[:, 0].min(), lv[:, 0].max(), 2.0),
                         np.arange(lv[:, 1].min(), lv[:, 1].max(), 2.0))
    probe = np.column_stack([gx.ravel(), gy.ravel()])
    probe = probe[ab.inside(lv, probe)] * 1e-3
    lams = {ab.FAT: lam(*tis["fat"]), ab.WALL: lam(*tis["muscle"]), ab.VISCERA: lam(*tis["viscera"]),
            ab.SPLEEN: lam(*tis["spleen"]), ab.SPINE: lam(*tis["bone"]), ab.HEPATIC_VESSEL: lam(*tis["vessel"]),
            ab.GREAT_VESSEL: lam(*tis["vessel"]),
            ab.LIVER: lam(mats["liver_storage"](probe), mats["liver"]["ratio"]),
            ab.LESION: min([lam(g, r) for g, r in mats["lesions"]], default=np.inf)}
    h_by_label = {k: _size(cfg, v) for k, v in lams.items()}
    for lab, structs in ((ab.HEPATIC_VESSEL, an.vessels), (ab.LESION, an.lesions),
                         (ab.GREAT_VESSEL, [o for o in an.organs if o.label == ab.GREAT_VESSEL])):
        for s_ in structs:
            r_eq = 2 * abs(ab.signed_area(s_.curve)) / ab.perimeter(s_.curve) * 1e-3
            h_by_label[lab] = min(h_by_label[lab], r_eq / 2)
    h_by_label[ab.OUTSIDE] = cfg.h_max
    return h_by_label


def mesh_phantom(cfg: LiverMREConfig, ph: Phantom, h_by_label: dict[int, float]) -> Mesh:
    """gmsh mesh (box, or the nested abdomen loops), its arrays, and G' and G''/G' at f_ref per cell."""
    from phantombench.meshes import abdomen as ab

    if ph.geometry == "box":
        mres = ab.mesh_box(cfg.box_size[0], cfg.box_size[1], h_by_label[ab.LIVER], label=ab.LIVER)
        centre = (0.0, 0.0)
    else:
        mres = ab.mesh_abdomen(ph.anatomy, h_by_label)
        x0, x1, y0, y1 = ph.anatomy.bbox()
        centre = (0.5 * (x0 + x1) * 1e-3, 0.5 * (y0 + y1) * 1e-3)
    msh = mres.mesh
    n_cells = msh.topology.index_map(msh.topology.dim).size_local
    cell_lab = np.zeros(n_cells, dtype=np.int64)
    cell_lab[mres.cell_tags.indices] = mres.cell_tags.values
    geo_x = msh.geometry.x[:, :2]
    geo_cells = np.asarray(msh.geometry.dofmaps[0] if isinstance(msh.geometry.dofmaps, list)
                           else msh.geometry.dofmap, dtype=np.int64)[:n_cells]
    g_ref, ratio = _cell_materials(cfg, ph, cell_lab, geo_x[geo_cells].mean(axis=1))
    return Mesh(mres, h_by_label, centre, geo_x, geo_cells, cell_lab, g_ref, ratio)


def _cell_materials(cfg: LiverMREConfig, ph: Phantom, cell_lab: np.ndarray,
                    mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(G' at f_ref, G''/G') per cell: tissues by label, the liver's field at the cell midpoint, each lesion
    cell the lesion whose curve holds its midpoint."""
    from phantombench.meshes import abdomen as ab

    gs_ref = np.zeros(len(cell_lab))
    ratio = np.zeros(len(cell_lab))
    if ph.geometry == "box":
        gs_ref[:] = cfg.homogeneous_g[0]
        ratio[:] = cfg.homogeneous_g[1] / cfg.homogeneous_g[0]
        return gs_ref, ratio
    mats = ph.materials
    tis = mats["tissue"]
    for lab, key in ((ab.FAT, "fat"), (ab.WALL, "muscle"), (ab.VISCERA, "viscera"), (ab.SPLEEN, "spleen"),
                     (ab.SPINE, "bone"), (ab.HEPATIC_VESSEL, "vessel"), (ab.GREAT_VESSEL, "vessel")):
        sel = cell_lab == lab
        gs_ref[sel], ratio[sel] = tis[key]
    sel = cell_lab == ab.LIVER
    gs_ref[sel] = mats["liver_storage"](mid[sel])
    ratio[sel] = mats["liver"]["ratio"]
    sel = np.flatnonzero(cell_lab == ab.LESION)
    for s_, (g, r) in zip(ph.anatomy.lesions, mats["lesions"]):
        ins = ab.inside(s_.curve * 1e-3, mid[sel])
        gs_ref[sel[ins]], ratio[sel[ins]] = g, r
    if np.any(gs_ref <= 0):
        raise RuntimeError("a cell got no material")
    return gs_ref, ratio


def make_solver(cfg: LiverMREConfig, mesh: Mesh, ph: Phantom):
    """The harmonic wave solver (absorbing facets: the box bottom, or the skin if configured) and the driver(s):
    antiplane U_z = A; plane strain A along each arc's mean inward skin normal or its tangent (box:
    tangential, with the sides' vertical motion held); the table contact (``support_width``) is clamped."""
    from phantombench.generators import waves
    from phantombench.meshes import abdomen as ab

    ft = mesh.mres.facet_tags
    tagged = lambda tag: ft.indices[ft.values == tag]  # noqa: E731
    driver = tagged(ab.FACET_DRIVER)
    if cfg.geometry == "box":
        absorbing = tagged(ab.FACET_ABSORB)
    else:
        absorbing = tagged(ab.FACET_FREE) if cfg.absorbing_boundary else None
    solver = waves.HarmonicWaveSolver(mesh.mres.mesh, model=cfg.model, degree=cfg.degree,
                                      absorbing_facets=absorbing, bulk_modulus=cfg.bulk_modulus)
    solver.set_density(cfg.rho)
    A = cfg.driver_amplitude
    support = tagged(ab.FACET_SUPPORT)
    arcs = [(driver, ph.anatomy.driver if ph.anatomy is not None else None)]
    if ph.anatomy is not None and ph.anatomy.driver2 is not None:
        arcs.append((tagged(ab.FACET_DRIVER2), ph.anatomy.driver2))
    if cfg.model == "antiplane":
        bcs = [waves.Dirichlet(f, A + 0j) for f, _ in arcs]
        bcs += [waves.Dirichlet(support, 0j)] if len(support) else []
        return solver, Driver(bcs, np.concatenate([f for f, _ in arcs]), A, None)
    if cfg.geometry == "box":
        dirs = [np.array([1.0, 0.0])]
        extra = [waves.Dirichlet(tagged(ab.FACET_FREE), 0.0, component=1)]
    else:
        dirs = [_arc_direction(cfg, ph.anatomy.skin, arc) for _, arc in arcs]
        extra = [waves.Dirichlet(support, (0j, 0j))] if len(support) else []
    bcs = [waves.Dirichlet(f, (A * d[0] + 0j, A * d[1] + 0j)) for (f, _), d in zip(arcs, dirs)] + extra
    return solver, Driver(bcs, np.concatenate([f for f, _ in arcs]), A, dirs[0].tolist())


def _arc_direction(cfg: LiverMREConfig, skin: np.ndarray, arc: tuple[int, int]) -> np.ndarray:
    """Unit motion direction of a driver arc: its mean inward skin normal, or the tangent."""
    from phantombench.meshes import abdomen as ab

    i0, i1 = arc
    idx = np.arange(i0, i1 if i1 > i0 else i1 + len(skin)) % len(skin)
    nd = ab.outward_normals(skin)[idx].mean(axis=0)
    nd /= np.linalg.norm(nd)
    return -nd if cfg.driver_direction == "normal" else np.array([-nd[1], nd[0]])


def solve(cfg: LiverMREConfig, solver, driver: Driver, mesh: Mesh, freqs: np.ndarray) -> WaveFields:
    """One solve per frequency with G*(f) from the rheology law; power balance of each."""
    from phantombench.generators import waves

    n_cells, F = len(mesh.labels), len(freqs)
    gs_f, gl_f = np.zeros((n_cells, F)), np.zeros((n_cells, F))
    gl_ref = mesh.g_ref * mesh.ratio
    sols, fe_funcs, powers, timings = [], [], [], {"assemble": 0.0, "solve": 0.0}
    for j, f in enumerate(freqs):
        g1, g2 = waves.complex_modulus(mesh.g_ref, gl_ref, f, cfg.f_ref, cfg.rheology)
        gs_f[:, j], gl_f[:, j] = g1, g2
        sol = solver.solve(float(f), driver.bcs, g1, g2)
        for k in timings:
            timings[k] += sol.timings[k]
        pw = solver.power()
        pw["balance_rel_error"] = ((pw["driver"] - pw["dissipated"] - pw["radiated"])
                                   / max(abs(pw["driver"]), 1e-300))
        powers.append(pw)
        sols.append(sol.u)
        if cfg.raster == "fe":
            fe_funcs.append(solver.displacement_functions())
    vdofs = np.asarray(solver.Vu.dofmap.list)[:n_cells, :3]
    vert_dof = np.empty(len(mesh.points), dtype=np.int64)
    vert_dof[mesh.cells.ravel()] = vdofs.ravel()
    return WaveFields(freqs, sols, fe_funcs, powers, gs_f, gl_f, sol.dof_points, sol.n_unknowns, vert_dof,
                      timings)


def rasterise(cfg: LiverMREConfig, mesh: Mesh, fe: WaveFields) -> dict[str, Any]:
    """Grid centred on the body: displacements (Sibson from the dofs, or exact FE; NaN outside), cellwise
    moduli per frequency, labels and the body mask."""
    from phantombench.generators import raster

    Hh, Ww, px = cfg.grid_h, cfg.grid_w, cfg.pixel_size
    F, C = len(fe.freqs), cfg.n_comp
    cx, cy = mesh.centre
    grid = raster.Grid(cx - 0.5 * (Ww - 1) * px, cy + 0.5 * (Hh - 1) * px, px, px, Hh, Ww)
    cidx = raster.locate_cells(mesh.points, mesh.cells, grid)
    mask = cidx >= 0
    lab_grid = raster.cell_to_grid(mesh.labels.astype(np.uint8), cidx, fill=0).astype(np.uint8)
    if cfg.raster == "sibson":
        sib = raster.Sibson(fe.dof_points, grid, mask=mask)
        U = np.stack([s_ for s_ in fe.u], axis=1).reshape(len(fe.dof_points), F * C)
        Ug = sib(U).reshape(F, C, Hh, Ww)
    else:
        cells_fe = raster.fe_locate(mesh.mres.mesh, grid)
        Ug = np.empty((F, C, Hh, Ww), dtype=complex)
        for j, (fr, fi) in enumerate(fe.fe_funcs):
            re = raster.fe_evaluate(fr, grid, cells=cells_fe)
            im = raster.fe_evaluate(fi, grid, cells=cells_fe)
            Ug[j] = (re + 1j * im).reshape(C, Hh, Ww)
        Ug[:, :, ~mask] = np.nan
    return {"grid": grid, "mask": mask, "labels": lab_grid, "U": Ug,
            "g_storage": raster.cell_to_grid(fe.g_storage, cidx), "g_loss": raster.cell_to_grid(fe.g_loss, cidx)}


def observe(cfg: LiverMREConfig, img: dict[str, Any], r_noise: np.random.Generator) -> dict[str, Any]:
    """Complex noise added over the body (phase model: per-pixel sigma in metres; relative model: sigma at
    the SNR referred to the liver, the whole body where there is no liver); the wave images at the phase
    offsets. ``sigma_map`` (F, H, W): the per-part noise standard deviation."""
    from phantombench.generators import mre_quality as mq
    from phantombench.generators.noise import (complex_gaussian_at_snr, complex_gaussian_map,
                                               phase_offset_images)
    from phantombench.meshes import abdomen as ab

    mask, U = img["mask"], img["U"]
    liver_mask = np.isin(img["labels"], (ab.LIVER, ab.HEPATIC_VESSEL, ab.LESION)) & mask
    ref = liver_mask if liver_mask.any() else mask
    if cfg.noise_model == "relative":
        noisy, sigmas = complex_gaussian_at_snr(U, mask, ref, cfg.snr, r_noise)
        sig = np.array(sigmas)[:, None, None] / np.sqrt(2) * np.ones((1, *mask.shape))
    elif cfg.magnitude_snr:
        labels = img["labels"] if cfg.geometry == "abdomen" else np.where(mask, ab.LIVER, 0)
        mag = mq.magnitude_image(labels, mask, cfg.pixel_size, cfg.coil_depth, cfg.coil_floor)
        s1 = mq.phase_noise_sigma(mag, ref, cfg.magnitude_snr, cfg.encoding_efficiency * 1e6, cfg.n_phase_offsets)
        sig = np.repeat(s1[None], U.shape[0], axis=0)
        noisy = complex_gaussian_map(U, mask, sig, r_noise)
        sigmas = [float(np.sqrt(2 * np.mean(s1[ref] ** 2)))] * U.shape[0]
    else:
        noisy, sig, sigmas = U.copy(), np.zeros((U.shape[0], *mask.shape)), [0.0] * U.shape[0]
    return {"liver_mask": liver_mask, "noisy": noisy, "sigmas": sigmas, "sigma_map": sig,
            "wave_images": phase_offset_images(noisy, cfg.n_phase_offsets)}


def sample_fields(mesh: Mesh, fe: WaveFields, img: dict[str, Any], obs: dict[str, Any]) -> dict[str, np.ndarray]:
    """The stored arrays (see ``LiverMRE.schema``)."""
    f32 = np.float32
    Ug, noisy, gsg, glg = img["U"], obs["noisy"], img["g_storage"], img["g_loss"]
    mesh_u = np.stack([u_[fe.vertex_dof] for u_ in fe.u], axis=1)  # (n_nodes, F, C)
    mesh_u = mesh_u.reshape(len(mesh.points), -1)
    return {
        "frequencies": fe.freqs.astype(np.float64),
        "u_re": Ug.real.astype(f32), "u_im": Ug.imag.astype(f32),
        "u_noisy_re": noisy.real.astype(f32), "u_noisy_im": noisy.imag.astype(f32),
        "wave_images": obs["wave_images"].astype(f32),
        "g_storage": gsg.astype(f32), "g_loss": glg.astype(f32), "g_abs": np.hypot(gsg, glg).astype(f32),
        "phase_angle": np.arctan2(glg, gsg).astype(f32),
        "labels": img["labels"], "mask": img["mask"],
        "liver_mask": obs["liver_mask"],
        "mesh_points": np.ascontiguousarray(mesh.points, dtype=np.float64),
        "mesh_cells": mesh.cells.astype(np.int64),
        "mesh_cell_labels": mesh.labels.astype(np.uint8),
        "mesh_cell_g_storage": fe.g_storage, "mesh_cell_g_loss": fe.g_loss,
        "mesh_point_u_re": np.ascontiguousarray(mesh_u.real), "mesh_point_u_im": np.ascontiguousarray(mesh_u.imag),
    }


def _achieved_ppw(cfg: LiverMREConfig, mesh: Mesh, fe: WaveFields) -> dict[str, Any]:
    """Achieved points per wavelength per cell: degree * lambda_cell / edge (mean edge; longest edge too)."""
    from phantombench.generators import waves

    p, c = mesh.points, mesh.cells
    e = np.stack([np.linalg.norm(p[c[:, i]] - p[c[:, (i + 1) % 3]], axis=1) for i in range(3)], axis=1)
    lam_cells = np.min([waves.shear_wavelength(fe.g_storage[:, j], fe.g_loss[:, j], fe.freqs[j], cfg.rho)
                        for j in range(len(fe.freqs))], axis=0)
    ppw_cells = cfg.degree * lam_cells / e.mean(axis=1)
    ppw_long = cfg.degree * lam_cells / e.max(axis=1)
    return {"target": cfg.points_per_wavelength, "achieved_min": float(ppw_cells.min()),
            "achieved_p05": float(np.percentile(ppw_cells, 5)),
            "longest_edge_min": float(ppw_long.min()),
            "longest_edge_p05": float(np.percentile(ppw_long, 5)),
            "rule": "h = degree * lambda_min / ppw per region (lambda at the highest "
                    "frequency); achieved: degree * lambda_cell / mean edge, worst "
                    "cell (and with the longest edge)"}


def attributes(cfg: LiverMREConfig, ph: Phantom, mesh: Mesh, fe: WaveFields, driver: Driver,
               img: dict[str, Any], obs: dict[str, Any], seconds: dict[str, float]) -> dict[str, Any]:
    from phantombench.meshes import abdomen as ab

    grid = img["grid"]
    attrs: dict[str, Any] = {
        "frequencies_Hz": fe.freqs.tolist(),
        "model": cfg.model,
        "rheology": cfg.rheology,
        "n_unknowns": int(fe.n_unknowns),
        "mesh": {"n_nodes": int(len(mesh.points)), "n_cells": int(len(mesh.cells)),
                 "h_target_m": {ab.LABELS[k]: float(v) for k, v in mesh.h_by_label.items() if k != ab.OUTSIDE}},
        "points_per_wavelength": _achieved_ppw(cfg, mesh, fe),
        "power_balance_W_per_m": fe.powers,
        "noise_sigma_m": obs["sigmas"],
        "noise_model": _noise_text(cfg),
        "wave_quality": _quality(cfg, ph, fe, img, obs),
        "driver": {"amplitude_m": driver.amplitude, "direction": driver.direction,
                   "n_facets": int(len(driver.facets))},
        "grid": {"x0": grid.x0, "y_top": grid.y_top, "dx": grid.dx, "dy": grid.dy, "H": grid.H, "W": grid.W},
        "seconds": seconds,
    }
    if ph.geometry == "abdomen":
        attrs["anatomy"] = ph.anatomy.info
        attrs["materials_at_f_ref"] = _materials_attrs(cfg, ph.materials)
    else:
        attrs["materials_at_f_ref"] = {"f_ref_Hz": cfg.f_ref, "g_storage_Pa": cfg.homogeneous_g[0],
                                       "g_loss_Pa": cfg.homogeneous_g[1]}
    return attrs


def _quality(cfg: LiverMREConfig, ph: Phantom, fe: WaveFields, img: dict[str, Any],
             obs: dict[str, Any]) -> list[dict[str, float]]:
    """Per frequency: liver pixels >= 10x noise, OSS-SNR, wavelengths across the liver along the driver's
    inward normal (box: its longest side)."""
    from phantombench.generators import mre_quality as mq
    from phantombench.generators import waves

    axis = None
    if ph.anatomy is not None:
        from phantombench.meshes import abdomen as ab

        i0, i1 = ph.anatomy.driver
        skin = ph.anatomy.skin
        idx = np.arange(i0, i1 if i1 > i0 else i1 + len(skin)) % len(skin)
        axis = -ab.outward_normals(skin)[idx].mean(axis=0)
    out = []
    for j, f in enumerate(fe.freqs):
        with np.errstate(invalid="ignore", divide="ignore"):  # NaN / 0 outside the body
            lam = waves.shear_wavelength(img["g_storage"][j], img["g_loss"][j], f, cfg.rho)
        q = mq.wave_quality(img["U"][j], obs["noisy"][j], obs["sigma_map"][j], obs["liver_mask"], cfg.pixel_size,
                            lam, axis)
        out.append({"frequency_Hz": float(f), **q})
    return out


# clinical 60 Hz liver MRE stiffness (|G*|) bands and their usual reading (Venkatesh, Yin & Ehman 2013, see the card)
_STAGE_BANDS = ((2500.0, "normal"), (2930.0, "normal or inflammation"), (3500.0, "stage 1-2 fibrosis"),
                (4000.0, "stage 2-3 fibrosis"), (5000.0, "stage 3-4 fibrosis"))


def fibrosis_stage(stiffness: float) -> str:
    """The clinical reading of a mean liver stiffness |G*| at 60 Hz [Pa]."""
    for upper, name in _STAGE_BANDS:
        if stiffness < upper:
            return name
    return "stage 4 fibrosis or cirrhosis"


def _materials_attrs(cfg: LiverMREConfig, mats: dict[str, Any]) -> dict[str, Any]:
    lv = mats["liver"]
    return {
        "f_ref_Hz": cfg.f_ref,
        **{t: {"g_storage_Pa": g, "loss_ratio": r} for t, (g, r) in mats["tissue"].items()},
        "liver": {"fibrotic": lv["fibrotic"], "mean_g_storage_Pa": lv["mean_g"], "log_std": lv["log_std"],
                  "stage_by_mean_stiffness": fibrosis_stage(lv["mean_g"] * np.hypot(1.0, lv["ratio"])),
                  "correlation_length_m": lv["correlation_length"], "loss_ratio": lv["ratio"]},
        "lesions": [{"g_storage_Pa": g, "loss_ratio": r} for g, r in mats["lesions"]],
    }
