"""Generator ``eit``: electrical impedance tomography on a disk with the complete electrode model (P3).

Per sample: draw a conductivity phantom -> cell conductivities on the data mesh -> CEM solve of
every current pattern from one factorisation (:mod:`phantombench.generators.cem`) -> electrode
potentials, measurements ``v``, homogeneous reference ``v_ref``, ``dv_clean`` and the noisy ``dv``
-> ``sigma``, ``dsigma`` and the interior potential of every pattern on a grid over the disk,
plus the mesh.

Public API for solvers (re-exported here):
  * :class:`CEMForward` -- forward operator and adjoint Jacobian on a mesh of the solver's choosing;
  * :func:`electrode_potentials` -- U (patterns x L) for a homogeneous or callable conductivity;
  * :func:`forward_operator` -- a :class:`CEMForward` matching a dataset's config (electrodes,
    contact impedance, protocol), on a coarser mesh;
  * :class:`Protocol`, :func:`make_protocol`, :func:`disk_grid`.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample
from phantombench.generators.cem import (CEMForward, CEMModel, Protocol, disk_grid, electrode_potentials,
                                         make_protocol)
from phantombench.generators.eit_phantoms import sample_phantom
from phantombench.meshes.disk import Electrodes, disk_mesh

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


def electrodes_from_config(cfg: EITConfig | dict) -> Electrodes:
    c = cfg if isinstance(cfg, EITConfig) else EITConfig(**cfg)
    if c.electrode_angles is None:
        return Electrodes.evenly_spaced(c.n_electrodes, c.coverage, c.first_angle, c.direction, c.radius)
    widths = (c.electrode_widths if c.electrode_widths is not None
              else [c.coverage * 2 * np.pi / c.n_electrodes] * c.n_electrodes)
    return Electrodes(tuple(map(float, c.electrode_angles)), tuple(map(float, widths)), float(c.radius))


def protocol_from_config(cfg: EITConfig | dict) -> Protocol:
    c = cfg if isinstance(cfg, EITConfig) else EITConfig(**cfg)
    if c.protocol == "custom":
        meas = None if c.measurement_matrix is None else np.asarray(c.measurement_matrix, dtype=np.float64)
        cur = np.asarray(c.injection, dtype=np.float64)
        if cur.ndim != 2 or cur.shape[1] != c.n_electrodes:
            raise ValueError("injection must be P x n_electrodes")
        return Protocol.custom(cur, meas)
    return make_protocol(c.protocol, c.n_electrodes, exclude_driven=c.exclude_driven,
                         amplitude=c.current_amplitude, drive_skip=c.drive_skip, measurement=c.measurement,
                         phase=c.trig_phase)


def forward_operator(cfg: EITConfig | dict, mesh_size: float = 0.08, electrode_mesh_size: float | None = None,
                     grid_shape: tuple[int, int] | None = None) -> CEMForward:
    """A :class:`CEMForward` with a dataset's electrodes, contact impedance and protocol on a mesh
    of ``mesh_size`` (relative to the radius; keep it coarser than the data mesh)."""
    c = cfg if isinstance(cfg, EITConfig) else EITConfig(**cfg)
    n = c.grid_size if grid_shape is None else None
    return CEMForward(mesh_size=mesh_size, electrodes=electrodes_from_config(c),
                      contact_impedance=c.contact_impedance, protocol=protocol_from_config(c),
                      electrode_mesh_size=electrode_mesh_size, grid_shape=grid_shape or (n, n))


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
_P3 = dict(n_electrodes=16, protocol="trig-p3", measurement="adjacent", background=1.0, object_sigma=(2.0, 6.0),
           snr_db=20.0, grid_size=128)

PRESETS: dict[str, dict[str, Any]] = {
    "cnn-pinn-case1": dict(_P3, phantom="one-circle"),
    "cnn-pinn-case2": dict(_P3, phantom="two-circles"),
    "cnn-pinn-case3": dict(_P3, phantom="circle-triangle"),
    "random": dict(phantom="random", protocol="adjacent", snr_db=40.0, object_radius=(0.08, 0.3)),
}


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
        from phantombench.generators.raster import Sibson, locate_cells

        t0 = time.perf_counter()
        ctx = _context(cfg)
        T: dict[str, float] = {"setup_s": time.perf_counter() - t0}
        ph = sample_phantom(cfg.phantom, rng, radius=cfg.radius, background=cfg.background,
                            object_sigma=cfg.object_sigma, object_radius=cfg.object_radius, margin=cfg.margin,
                            n_objects=cfg.n_objects, random_contrast=cfg.random_contrast,
                            smooth_amplitude=cfg.smooth_amplitude)
        prot = ctx.protocol
        t1 = time.perf_counter()
        if cfg.mesh_mode == "fixed":
            mesh = ctx.mesh
            sig_cells = ph.cell_average(mesh.points, mesh.cells, cfg.cell_subdivisions)
            T["mesh_s"] = 0.0
            t2 = time.perf_counter()
            with ctx.lock:
                model = ctx.model
                model.set_conductivity(sig_cells)
                U, u = model.solve(prot.currents)
            U_ref = ctx.U_ref
            cell_index, sib = ctx.cell_index, ctx.sib
            T["solve_s"] = time.perf_counter() - t2
        else:
            mesh = disk_mesh(ctx.electrodes, cfg.mesh_size, cfg.electrode_mesh_size, grading=cfg.mesh_grading,
                             inclusions=ph.polygons(cfg.mesh_size * cfg.radius))
            sig_cells = ph.cell_values(mesh.points, mesh.cells, mesh.cell_region)
            T["mesh_s"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            model = CEMModel(mesh, cfg.contact_impedance)
            model.set_conductivity(cfg.background)
            U_ref = model.electrode_potentials(prot.currents)
            model.set_conductivity(sig_cells)
            U, u = model.solve(prot.currents)
            T["solve_s"] = time.perf_counter() - t2
            t3 = time.perf_counter()
            cell_index = locate_cells(mesh.points, mesh.cells, ctx.grid)
            sib = Sibson(mesh.points, ctx.grid, mask=cell_index >= 0)
            T["raster_weights_s"] = time.perf_counter() - t3
        t4 = time.perf_counter()
        meas = prot.measure(U)
        meas_ref = prot.measure(U_ref)
        dV = meas - meas_ref
        rms = float(np.sqrt(np.mean(dV ** 2))) if dV.size else 0.0
        if cfg.snr_db is None:
            noise_std = 0.0
            dV_noisy = dV.copy()
        else:
            noise_std = rms * 10.0 ** (-cfg.snr_db / 20.0)
            dV_noisy = dV + noise_std * rng.standard_normal(dV.shape)
        mask = cell_index >= 0
        sigma = np.where(mask, ph(ctx.X, ctx.Y), np.nan)
        pot = sib(u.T)  # (P, H, W)
        pot[:, ~mask] = np.nan
        T["raster_s"] = time.perf_counter() - t4
        fields: dict[str, np.ndarray] = {
            "electrode_potentials": U,
            "v": meas,
            "reference_electrode_potentials": np.array(U_ref, copy=True),
            "v_ref": meas_ref,
            "dv_clean": dV,
            "dv": dV_noisy,
            "currents": prot.currents.copy(),
            "sigma": sigma,
            "dsigma": sigma - cfg.background,
            "mask": mask,
            "potential": pot.astype(np.float32),
        }
        if cfg.store_mesh:
            fields.update({
                "mesh_points": mesh.points.copy(),
                "mesh_cells": mesh.cells.astype(np.int64),
                "mesh_cell_sigma": sig_cells,
                "mesh_point_potential": u.T.astype(np.float32),
            })
        T["total_s"] = time.perf_counter() - t0
        attrs = {
            "phantom": {"family": cfg.phantom, **ph.as_dict()},
            "noise_std_V": noise_std,
            "dv_rms_V": rms,
            "snr_db": cfg.snr_db,
            "n_nodes": int(mesh.n_points),
            "n_cells": int(mesh.n_cells),
            "protocol": prot.name,
            "timings": {k: round(v, 4) for k, v in T.items()},
        }
        return Sample(fields, attrs)

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
        return CARD.format(radius=cfg.radius, layout=layout, zs=zs, protocol=prot.name,
                           protocol_desc=prot.description, P=prot.n_patterns, M=prot.n_measurements, snr=snr,
                           phantom=cfg.phantom, background=cfg.background, osig=cfg.object_sigma,
                           orad=cfg.object_radius, margin=cfg.margin, n=cfg.grid_size, mode=cfg.mesh_mode,
                           h=cfg.mesh_size, he=cfg.electrode_mesh_size, g=cfg.mesh_grading,
                           sub=cfg.cell_subdivisions)


CARD = """\
## Physics

Two-dimensional complete electrode model (CEM) on a disk of radius {radius:g} m:
-div(sigma grad u) = 0 inside; on electrode l, u + z_l sigma du/dn = U_l and the integral of
sigma du/dn over the electrode is the injected current I_l; no current between electrodes; ground
sum_l U_l = 0. Units: sigma in S/m, potentials in V, currents in A per metre of out-of-plane depth
("A" for a unit-thickness slab), contact impedance z in Ohm m^2. P1 finite elements assembled by
DOLFINx, one sparse Cholesky factorisation (MUMPS) per conductivity, all patterns from it.

## Electrodes

{layout}. Contact impedance {zs}. Electrode l sits at angle theta_l; positions in metres are
R (cos theta_l, sin theta_l).

## Protocol

`{protocol}`: {protocol_desc}. {P} current pattern(s), {M} measurements per sample (pattern-major
order: all measurements of pattern 0, then pattern 1, ...). The `currents` field repeats the
injection matrix in every sample.

## Fields

- `electrode_potentials` (patterns x L) and `v` (measurements), their homogeneous reference
  `reference_electrode_potentials`, `v_ref` (sigma = {background:g} S/m everywhere, same mesh),
  `dv_clean` = v - v_ref and the observed `dv`.
- Noise: {snr}.
- `sigma`: the exact phantom at the centres of a {n} x {n} grid tiling [-R, R]^2 (row 0 at the top,
  largest y); `dsigma` = sigma - {background:g} S/m; `mask`: pixel centre inside the meshed disk;
  NaN outside.
- `potential`: interior potential of every pattern on the same grid, exact natural-neighbour
  (Sibson) interpolation of the nodal FE values (the stage-1 target of P3).
- `mesh_*`: the data mesh (vertices, triangles), the conductivity per triangle the FEM used and
  the nodal potentials.

## Phantoms

Family `{phantom}`; background {background:g} S/m. P3 families (`one-circle`, `two-circles`,
`circle-triangle`): object conductivity uniform in {osig} S/m, circle radius (triangle:
circumradius of an equilateral triangle, random rotation) uniform in {orad} x R, centres uniform
over positions keeping a gap of {margin:g} R to the boundary and between objects. The paper
(Yang et al. 2025) gives neither sizes, electrode width nor contact impedance; these are our
choices. Its "four-electrode measurements" with the sin pattern are read as adjacent differences
U[m+1] - U[m] of all 16 electrodes. Family `random`: 1-4 ellipses or star-shaped polygons,
conductivity background x c with c log-uniform in the configured contrast range (conductive and
resistive), and in half the samples a smooth background background x exp(sum of Gaussian bumps).
Each sample's attributes list its objects exactly.

## Numerics and accuracy

Mesh mode `{mode}`: gmsh Delaunay mesh, size {h:g} R in the bulk, {he:g} R at electrode ends,
growing over {g:g} R; nodes on every electrode end. `conforming` (default): one mesh per sample
whose edges follow the objects' boundaries (curves as inscribed polygons with edges about the
bulk size); object cells take the object's conductivity, background cells the background at
their centroid. `fixed`: one mesh for the whole dataset, each triangle's conductivity the
geometric mean of the phantom over {sub}^2 sub-triangle centroids; cut cells smear the
boundaries, which moves dV by 1-5 % against a conforming mesh at the default size (conforming:
below 1 % against a 4x finer conforming mesh).
Verified against an independent semi-analytic CEM solution of the homogeneous disk (boundary
panels, exact Fourier sums; tests/test_eit.py): at the default mesh (~8,900 nodes) the electrode
potentials of the adjacent patterns agree to about 4e-3 (z = 0.01) and 3e-4 (z = 1) of their
maximum, the 208 adjacent measurements to about 1e-3 and 3e-4; the error falls under refinement.
Solvers must build their own (coarser) mesh: see `phantombench.generators.eit.forward_operator`.
"""
