"""Generator ``eit``: electrical impedance tomography on a disk with the complete electrode model (P3).

Pipeline per sample (:meth:`EIT.sample`), one short function per stage:

    draw_phantom      a conductivity phantom of the configured family   (generators/eit_phantoms.py)
    solve_conforming  a disk mesh following the objects (meshes/disk.py), cell conductivities, CEM solves
                      of the reference and the phantom, every pattern from one factorisation
                      (generators/cem.py), raster weights                (generators/raster.py)
    solve_fixed       (mesh_mode "fixed") the same on the config's shared mesh, cut cells averaged
    observe           measurements ``v``, ``v_ref``, ``dv_clean`` and the noisy ``dv`` (generators/noise.py)
    rasterise         ``sigma``, ``dsigma`` and the interior potential of every pattern on the grid
    mesh_fields, attributes

Presets and the dataset card (a format template) are data: ``generators/presets/eit.json``,
``generators/cards/eit.md``.

Public API for solvers (re-exported here):
  * :class:`CEMForward` -- forward operator and adjoint Jacobian on a mesh of the solver's choosing;
  * :func:`electrode_potentials` -- U (patterns x L) for a homogeneous or callable conductivity;
  * :func:`forward_operator` -- a :class:`CEMForward` matching a dataset's config (electrodes,
    contact impedance, protocol), on a coarser mesh (defined in :mod:`phantombench.generators.operators`,
    with :func:`electrodes_from_config` and :func:`protocol_from_config`; solvers get it through
    ``task.forward_operator``);
  * :class:`Protocol`, :func:`make_protocol`, :func:`disk_grid`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from phantombench.generators.assets import card_text, load_presets
from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample
from phantombench.generators.cem import (CEMForward, CEMModel, Protocol, disk_grid, electrode_potentials,
                                         make_protocol)
from phantombench.generators.eit_phantoms import sample_phantom
from phantombench.generators.noise import gaussian_at_snr_db
from phantombench.generators.operators import electrodes_from_config, forward_operator, protocol_from_config
from phantombench.meshes.disk import DiskMesh, disk_mesh

__all__ = ["EIT", "EITConfig", "CEMForward", "CEMModel", "Protocol", "electrode_potentials",
           "forward_operator", "make_protocol", "disk_grid", "electrodes_from_config", "protocol_from_config"]


class EITConfig(GeneratorConfig):
    # geometry and electrodes
    radius: float = Field(1.0, gt=0, description="disk radius [m]")
    n_electrodes: int = Field(16, ge=8, le=64, description="number of electrodes L")
    coverage: float = Field(0.5, gt=0, lt=1, description="fraction of the perimeter covered by electrodes "
                                                         "(evenly spaced layouts)")
    first_angle: float = Field(0.0, description="centre angle of electrode 1 (index 0) [rad], counter-clockwise "
                                                "from the +x axis")
    direction: Literal["ccw", "cw"] = Field("ccw", description="numbering direction of the electrodes")
    electrode_angles: list[float] | None = Field(None, description="custom layout: centre angle of every "
                                                                   "electrode [rad] (overrides the even spacing)")
    electrode_widths: list[float] | None = Field(None, description="custom layout: angular width of every "
                                                                   "electrode [rad]")
    contact_impedance: float | list[float] = Field(0.01, description="contact impedance z_l [Ohm m^2], one value "
                                                                     "or one per electrode")
    # protocol
    protocol: Literal["adjacent", "opposite", "skip", "trig-p3", "trig", "custom"] = Field(
        "adjacent", description="current patterns (see card)")
    drive_skip: int = Field(0, ge=0, description="protocol 'skip': electrodes skipped between the driving pair")
    measurement: Literal["adjacent", "electrodes"] | None = Field(
        None, description="measurements: adjacent differences U[m+1]-U[m] or all electrode potentials; "
                          "None = adjacent for pair drives, electrodes for trig")
    exclude_driven: bool = Field(True, description="pair drives: drop measurements touching a driven electrode "
                                                   "(adjacent, L=16: 208 values; False: 256)")
    current_amplitude: float | None = Field(None, gt=0, description="current amplitude [A]; None = 1 A "
                                            "(pair drives, 'trig') or 1/sqrt(2 pi) A ('trig-p3')")
    trig_phase: float = Field(0.0, description="phase phi of the 'trig-p3' pattern [rad]")
    injection: list[list[float]] | None = Field(None, description="protocol 'custom': currents (P x L) [A]")
    measurement_matrix: list[list[float]] | None = Field(
        None, description="protocol 'custom': measurement weights (M x L), applied to every pattern")
    # phantom
    phantom: Literal["one-circle", "two-circles", "circle-triangle", "random", "homogeneous"] = Field(
        "one-circle", description="phantom family (see card)")
    background: float = Field(1.0, gt=0, description="background conductivity [S/m]")
    object_sigma: tuple[float, float] = Field((2.0, 6.0), description="P3 families: object conductivity range "
                                                                      "(uniform) [S/m]")
    object_radius: tuple[float, float] = Field((0.1, 0.3), description="object size range (radius, "
                                                                       "circumradius, semi-axis) / disk radius")
    margin: float = Field(0.05, ge=0, description="minimum gap between objects and to the boundary / radius")
    n_objects: tuple[int, int] = Field((1, 4), description="random family: number of objects, inclusive range")
    random_contrast: tuple[float, float] = Field((0.1, 10.0), description="random family: object / background "
                                                                          "conductivity, log-uniform")
    smooth_amplitude: float = Field(0.3, ge=0, lt=1, description="random family: smooth background varies within "
                                    "[1/(1+a), 1+a] x background (half the samples)")
    # observation
    snr_db: float | None = Field(20.0, description="SNR of the noisy dv [dB]; None = no noise")
    grid_size: int = Field(128, ge=16, le=1024, description="grid is grid_size x grid_size over [-R, R]^2")
    store_mesh: bool = Field(True, description="store the mesh, cell conductivity and nodal potentials")
    # numerics
    mesh_mode: Literal["conforming", "fixed"] = Field(
        "conforming", description="conforming: a mesh per sample whose edges follow the object boundaries "
                                  "(accurate); fixed: one data mesh per config, cut cells take the geometric "
                                  "mean of the phantom (about 10x faster, dv errors of a few percent)")
    mesh_size: float = Field(0.04, gt=0, le=0.5, description="bulk mesh size / radius")
    electrode_mesh_size: float = Field(0.005, gt=0, le=0.5, description="mesh size at electrode ends / radius")
    mesh_grading: float = Field(0.3, gt=0, description="distance over which the size grows to mesh_size / radius")
    cell_subdivisions: int = Field(4, ge=1, le=16, description="fixed mesh: a cell's sigma is the geometric mean "
                                                               "of the phantom over n^2 sub-triangle centroids")

    @model_validator(mode="after")
    def _check(self):
        for name in ("object_sigma", "object_radius", "n_objects", "random_contrast"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: lower bound {lo} above upper bound {hi}")
        if self.electrode_angles is not None:
            if len(self.electrode_angles) != self.n_electrodes:
                raise ValueError("electrode_angles needs n_electrodes values")
            if self.electrode_widths is not None and len(self.electrode_widths) != self.n_electrodes:
                raise ValueError("electrode_widths needs n_electrodes values")
        elif self.electrode_widths is not None:
            raise ValueError("electrode_widths needs electrode_angles")
        if isinstance(self.contact_impedance, list):
            if len(self.contact_impedance) != self.n_electrodes or min(self.contact_impedance) <= 0:
                raise ValueError("contact_impedance: one positive value per electrode")
        elif self.contact_impedance <= 0:
            raise ValueError("contact_impedance must be positive")
        if self.protocol == "custom" and self.injection is None:
            raise ValueError("protocol 'custom' needs injection (P x L currents)")
        if self.electrode_mesh_size > self.mesh_size:
            raise ValueError("electrode_mesh_size must not exceed mesh_size")
        electrodes_from_config(self)  # layout validity (overlaps)
        protocol_from_config(self)  # protocol validity (zero-sum currents, shapes)
        return self


# --------------------------------------------------------------------------------------------
# Per-process cache of what depends on the config only (fixed data mesh, raster weights, reference)
# --------------------------------------------------------------------------------------------
class _Context:
    def __init__(self, cfg: EITConfig):
        from phantombench.generators.raster import Sibson, locate_cells

        self.lock = threading.Lock()
        self.electrodes = electrodes_from_config(cfg)
        self.protocol = protocol_from_config(cfg)
        self.grid = disk_grid(cfg.radius, cfg.grid_size, cfg.grid_size)
        X, Y = self.grid.centres()
        self.X, self.Y = X, Y
        self.mesh = self.model = self.sib = self.cell_index = self.U_ref = None
        if cfg.mesh_mode == "fixed":
            t0 = time.perf_counter()
            self.mesh = disk_mesh(self.electrodes, cfg.mesh_size, cfg.electrode_mesh_size, grading=cfg.mesh_grading)
            self.model = CEMModel(self.mesh, cfg.contact_impedance)
            self.cell_index = locate_cells(self.mesh.points, self.mesh.cells, self.grid)
            self.sib = Sibson(self.mesh.points, self.grid, mask=self.cell_index >= 0)
            self.model.set_conductivity(cfg.background)
            self.U_ref = self.model.electrode_potentials(self.protocol.currents)
            self.setup_s = time.perf_counter() - t0


_CONTEXTS: dict[str, _Context] = {}
_CONTEXTS_LOCK = threading.Lock()


def _context(cfg: EITConfig) -> _Context:
    key = cfg.model_dump_json()
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get(key)
        if ctx is None:
            if len(_CONTEXTS) > 4:
                _CONTEXTS.clear()
            ctx = _CONTEXTS[key] = _Context(cfg)
        return ctx


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------
PRESETS: dict[str, dict[str, Any]] = load_presets("eit")


class EIT(Generator):
    name = "eit"
    version = "1.0.0"
    Config = EITConfig
    presets = PRESETS
    regen_rtol = 1e-8

    def schema(self, cfg: EITConfig) -> dict[str, FieldSpec]:
        prot = protocol_from_config(cfg)
        P, L, M = prot.n_patterns, cfg.n_electrodes, prot.n_measurements
        n = cfg.grid_size
        s = {
            "electrode_potentials": FieldSpec((P, L), "float64", "V", "electrode potentials U of every current "
                                              "pattern (rows sum to zero)"),
            "v": FieldSpec((M,), "float64", "V", "measurements under the protocol (noise-free)"),
            "reference_electrode_potentials": FieldSpec((P, L), "float64", "V", "U of the homogeneous reference "
                                                        "(sigma = background)"),
            "v_ref": FieldSpec((M,), "float64", "V", "measurements of the homogeneous reference"),
            "dv_clean": FieldSpec((M,), "float64", "V", "v - v_ref (noise-free)"),
            "dv": FieldSpec((M,), "float64", "V", "dv_clean plus Gaussian noise at snr_db (see card)"
                            if cfg.snr_db is not None else "dv_clean (snr_db is None: no noise)"),
            "currents": FieldSpec((P, L), "float64", "A", "current into each electrode per pattern"),
            "sigma": FieldSpec((n, n), "float64", "S/m", "conductivity at pixel centres (exact phantom), NaN "
                               "outside the mask"),
            "dsigma": FieldSpec((n, n), "float64", "S/m", "sigma - background (the change that difference "
                                "imaging recovers), NaN outside the mask"),
            "mask": FieldSpec((n, n), "bool", "", "pixel centre inside the meshed disk"),
            "potential": FieldSpec((P, n, n), "float32", "V", "interior potential of every pattern (Sibson "
                                   "interpolation of the nodal FE solution), NaN outside the mask"),
        }
        if cfg.store_mesh:
            s.update({
                "mesh_points": FieldSpec(("n_nodes", 2), "float64", "m", "mesh vertex coordinates"),
                "mesh_cells": FieldSpec(("n_cells", 3), "int64", "", "triangle vertex indices (counter-clockwise)"),
                "mesh_cell_sigma": FieldSpec(("n_cells",), "float64", "S/m", "conductivity per triangle used by "
                                             "the FEM"),
                "mesh_point_potential": FieldSpec(("n_nodes", P), "float32", "V", "nodal potential of every "
                                                  "pattern"),
            })
        return s

    def sample(self, cfg: EITConfig, rng: np.random.Generator, index: int) -> Sample:
        """phantom -> mesh -> solve -> observe (measurements, noise) -> rasterise -> attributes."""
        t0 = time.perf_counter()
        ctx = _context(cfg)
        T: dict[str, float] = {"setup_s": time.perf_counter() - t0}
        ph = draw_phantom(cfg, rng)
        fw = solve_fixed(cfg, ctx, ph, T) if cfg.mesh_mode == "fixed" else solve_conforming(cfg, ctx, ph, T)
        t4 = time.perf_counter()
        fields, noise = observe(cfg, ctx.protocol, fw, rng)
        fields.update(rasterise(cfg, ctx, ph, fw))
        T["raster_s"] = time.perf_counter() - t4
        if cfg.store_mesh:
            fields.update(mesh_fields(fw))
        T["total_s"] = time.perf_counter() - t0
        return Sample(fields, attributes(cfg, ctx.protocol, ph, fw, noise, T))

    def card(self, cfg: EITConfig) -> str:
        e = electrodes_from_config(cfg)
        prot = protocol_from_config(cfg)
        z = cfg.contact_impedance
        zs = f"{z:g} Ohm m^2 on every electrode" if not isinstance(z, list) else "per electrode: " + ", ".join(
            f"{v:g}" for v in z) + " Ohm m^2"
        layout = (f"{e.n} electrodes evenly spaced, covering {e.coverage:.0%} of the perimeter (each "
                  f"{np.degrees(e.angular_widths[0]):.2f} deg wide); electrode 1 (array index 0) centred at "
                  f"{np.degrees(cfg.first_angle):.1f} deg from the +x axis, numbered "
                  f"{'counter-clockwise' if cfg.direction == 'ccw' else 'clockwise'}"
                  if cfg.electrode_angles is None else
                  f"{e.n} electrodes at user-given centre angles and widths (coverage {e.coverage:.0%}); array "
                  "index 0 is electrode 1")
        snr = ("no noise (dv = dv_clean)" if cfg.snr_db is None else
               f"dv = dv_clean + n, n ~ N(0, s^2) i.i.d. per measurement, s = rms(dv_clean) * 10^(-SNR/20) "
               f"with SNR = {cfg.snr_db:g} dB and the rms over the sample's measurements (so SNR = "
               f"20 log10(rms(dv_clean) / s)); the sample attributes record s (noise_std_V)")
        return card_text(self.name).format(radius=cfg.radius, layout=layout, zs=zs, protocol=prot.name,
                           protocol_desc=prot.description, P=prot.n_patterns, M=prot.n_measurements, snr=snr,
                           phantom=cfg.phantom, background=cfg.background, osig=cfg.object_sigma,
                           orad=cfg.object_radius, margin=cfg.margin, n=cfg.grid_size, mode=cfg.mesh_mode,
                           h=cfg.mesh_size, he=cfg.electrode_mesh_size, g=cfg.mesh_grading,
                           sub=cfg.cell_subdivisions)


# --------------------------------------------------------------------------------------------
# Stages of a sample
# --------------------------------------------------------------------------------------------
@dataclass
class Forward:
    """The CEM solution of one sample on its mesh, and what rasterises it."""

    mesh: DiskMesh
    sigma_cells: np.ndarray     # conductivity per triangle [S/m]
    U: np.ndarray               # electrode potentials (patterns x L) [V]
    u: np.ndarray               # nodal potentials (nodes x patterns) [V]
    U_ref: np.ndarray           # electrode potentials of the homogeneous reference
    cell_index: np.ndarray      # triangle holding each pixel centre (-1 outside)
    sib: Any                    # raster.Sibson of the mesh nodes


def draw_phantom(cfg: EITConfig, rng: np.random.Generator):
    """A conductivity phantom of the configured family (:mod:`phantombench.generators.eit_phantoms`)."""
    return sample_phantom(cfg.phantom, rng, radius=cfg.radius, background=cfg.background,
                          object_sigma=cfg.object_sigma, object_radius=cfg.object_radius, margin=cfg.margin,
                          n_objects=cfg.n_objects, random_contrast=cfg.random_contrast,
                          smooth_amplitude=cfg.smooth_amplitude)


def solve_fixed(cfg: EITConfig, ctx: _Context, ph, T: dict[str, float]) -> Forward:
    """The config's shared data mesh: cut cells take the geometric mean of the phantom; one solve."""
    mesh = ctx.mesh
    sig_cells = ph.cell_average(mesh.points, mesh.cells, cfg.cell_subdivisions)
    T["mesh_s"] = 0.0
    t2 = time.perf_counter()
    with ctx.lock:
        ctx.model.set_conductivity(sig_cells)
        U, u = ctx.model.solve(ctx.protocol.currents)
    T["solve_s"] = time.perf_counter() - t2
    return Forward(mesh, sig_cells, U, u, ctx.U_ref, ctx.cell_index, ctx.sib)


def solve_conforming(cfg: EITConfig, ctx: _Context, ph, T: dict[str, float]) -> Forward:
    """A mesh that follows the objects' boundaries; reference and phantom solves on it; raster weights."""
    from phantombench.generators.raster import Sibson, locate_cells

    t1 = time.perf_counter()
    mesh = disk_mesh(ctx.electrodes, cfg.mesh_size, cfg.electrode_mesh_size, grading=cfg.mesh_grading,
                     inclusions=ph.polygons(cfg.mesh_size * cfg.radius))
    sig_cells = ph.cell_values(mesh.points, mesh.cells, mesh.cell_region)
    T["mesh_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    model = CEMModel(mesh, cfg.contact_impedance)
    model.set_conductivity(cfg.background)
    U_ref = model.electrode_potentials(ctx.protocol.currents)
    model.set_conductivity(sig_cells)
    U, u = model.solve(ctx.protocol.currents)
    T["solve_s"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    cell_index = locate_cells(mesh.points, mesh.cells, ctx.grid)
    sib = Sibson(mesh.points, ctx.grid, mask=cell_index >= 0)
    T["raster_weights_s"] = time.perf_counter() - t3
    return Forward(mesh, sig_cells, U, u, U_ref, cell_index, sib)


def observe(cfg: EITConfig, prot: Protocol, fw: Forward,
            rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Measurements of the phantom and of the reference, their difference and the noisy difference; and
    the noise std and signal rms."""
    meas = prot.measure(fw.U)
    meas_ref = prot.measure(fw.U_ref)
    dV = meas - meas_ref
    dV_noisy, noise_std, rms = gaussian_at_snr_db(dV, cfg.snr_db, rng)
    fields = {"electrode_potentials": fw.U, "v": meas,
              "reference_electrode_potentials": np.array(fw.U_ref, copy=True), "v_ref": meas_ref,
              "dv_clean": dV, "dv": dV_noisy, "currents": prot.currents.copy()}
    return fields, {"noise_std_V": noise_std, "dv_rms_V": rms}


def rasterise(cfg: EITConfig, ctx: _Context, ph, fw: Forward) -> dict[str, np.ndarray]:
    """The exact phantom at the pixel centres and the Sibson-interpolated potential of every pattern."""
    mask = fw.cell_index >= 0
    sigma = np.where(mask, ph(ctx.X, ctx.Y), np.nan)
    pot = fw.sib(fw.u.T)  # (P, H, W)
    pot[:, ~mask] = np.nan
    return {"sigma": sigma, "dsigma": sigma - cfg.background, "mask": mask, "potential": pot.astype(np.float32)}


def mesh_fields(fw: Forward) -> dict[str, np.ndarray]:
    return {"mesh_points": fw.mesh.points.copy(), "mesh_cells": fw.mesh.cells.astype(np.int64),
            "mesh_cell_sigma": fw.sigma_cells, "mesh_point_potential": fw.u.T.astype(np.float32)}


def attributes(cfg: EITConfig, prot: Protocol, ph, fw: Forward, noise: dict[str, float],
               T: dict[str, float]) -> dict[str, Any]:
    return {"phantom": {"family": cfg.phantom, **ph.as_dict()}, **noise, "snr_db": cfg.snr_db, "n_nodes": int(fw.mesh.n_points), "n_cells": int(fw.mesh.n_cells),
            "protocol": prot.name, "timings": {k: round(v, 4) for k, v in T.items()}}


