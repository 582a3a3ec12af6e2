"""Forward operators built from a declared acquisition (the physics layer solvers may use).

An EIT observation declares its acquisition in its ``config`` entry (the dataset's resolved config): disk radius,
electrode layout, contact impedance, current protocol, background conductivity. :class:`CEMSetup` reads exactly
those fields (other keys of a generator config pass through untouched), and :func:`forward_operator` builds the
complete-electrode-model operator (:class:`~phantombench.generators.cem.CEMForward`) for them on a mesh the caller
chooses -- a solver picks a coarser mesh than the data's (no inverse crime). The ``eit`` generator validates and
uses the same functions, so a solver's operator and the data share one definition of the geometry.

A task hands this to a solver as ``task.forward_operator(observation, mesh_size=...)``; a solver never imports a
generator pipeline.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from phantombench.generators.cem import CEMForward, Protocol, make_protocol
from phantombench.meshes.disk import Electrodes

__all__ = ["CEMSetup", "as_setup", "electrodes_from_config", "forward_operator", "protocol_from_config"]


class CEMSetup(BaseModel):
    """The acquisition of a CEM experiment on a disk. Defaults equal the ``eit`` generator config's (tested)."""

    model_config = ConfigDict(extra="allow", frozen=True)

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
    protocol: Literal["adjacent", "opposite", "skip", "trig-p3", "trig", "custom"] = Field(
        "adjacent", description="current patterns")
    drive_skip: int = Field(0, ge=0, description="protocol 'skip': electrodes skipped between the driving pair")
    measurement: Literal["adjacent", "electrodes"] | None = Field(
        None, description="measurements: adjacent differences U[m+1]-U[m] or all electrode potentials; "
                          "None = adjacent for pair drives, electrodes for trig")
    exclude_driven: bool = Field(True, description="pair drives: drop measurements touching a driven electrode")
    current_amplitude: float | None = Field(None, gt=0, description="current amplitude [A]; None = 1 A "
                                            "(pair drives, 'trig') or 1/sqrt(2 pi) A ('trig-p3')")
    trig_phase: float = Field(0.0, description="phase phi of the 'trig-p3' pattern [rad]")
    injection: list[list[float]] | None = Field(None, description="protocol 'custom': currents (P x L) [A]")
    measurement_matrix: list[list[float]] | None = Field(
        None, description="protocol 'custom': measurement weights (M x L), applied to every pattern")
    background: float = Field(1.0, gt=0, description="background conductivity [S/m] (the linearisation point "
                                                     "of difference imaging)")
    grid_size: int = Field(128, ge=16, le=1024, description="task grid: grid_size x grid_size over [-R, R]^2")

    @model_validator(mode="after")
    def _check(self):
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
        electrodes_from_config(self)  # layout validity (overlaps)
        protocol_from_config(self)  # protocol validity (zero-sum currents, shapes)
        return self


def as_setup(cfg: CEMSetup | BaseModel | dict[str, Any]) -> CEMSetup:
    """A :class:`CEMSetup` from itself, another config model (e.g. the generator's) or a plain dict."""
    if isinstance(cfg, CEMSetup):
        return cfg
    if isinstance(cfg, BaseModel):
        cfg = cfg.model_dump()
    return CEMSetup(**cfg)


def electrodes_from_config(cfg: CEMSetup | BaseModel | dict[str, Any]) -> Electrodes:
    """The electrode layout a config declares (evenly spaced, or the custom angles and widths)."""
    c = as_setup(cfg)
    if c.electrode_angles is None:
        return Electrodes.evenly_spaced(c.n_electrodes, c.coverage, c.first_angle, c.direction, c.radius)
    widths = (c.electrode_widths if c.electrode_widths is not None
              else [c.coverage * 2 * np.pi / c.n_electrodes] * c.n_electrodes)
    return Electrodes(tuple(map(float, c.electrode_angles)), tuple(map(float, widths)), float(c.radius))


def protocol_from_config(cfg: CEMSetup | BaseModel | dict[str, Any]) -> Protocol:
    """The current patterns and measurements a config declares."""
    c = as_setup(cfg)
    if c.protocol == "custom":
        meas = None if c.measurement_matrix is None else np.asarray(c.measurement_matrix, dtype=np.float64)
        cur = np.asarray(c.injection, dtype=np.float64)
        if cur.ndim != 2 or cur.shape[1] != c.n_electrodes:
            raise ValueError("injection must be P x n_electrodes")
        return Protocol.custom(cur, meas)
    return make_protocol(c.protocol, c.n_electrodes, exclude_driven=c.exclude_driven,
                         amplitude=c.current_amplitude, drive_skip=c.drive_skip, measurement=c.measurement,
                         phase=c.trig_phase)


def forward_operator(cfg: CEMSetup | BaseModel | dict[str, Any], mesh_size: float = 0.08,
                     electrode_mesh_size: float | None = None,
                     grid_shape: tuple[int, int] | None = None) -> CEMForward:
    """A :class:`CEMForward` with a config's electrodes, contact impedance and protocol on a mesh of ``mesh_size``
    (relative to the radius; keep it coarser than the data mesh); ``grid_shape`` defaults to the config's grid."""
    c = as_setup(cfg)
    n = c.grid_size if grid_shape is None else None
    return CEMForward(mesh_size=mesh_size, electrodes=electrodes_from_config(c),
                      contact_impedance=c.contact_impedance, protocol=protocol_from_config(c),
                      electrode_mesh_size=electrode_mesh_size, grid_shape=grid_shape or (n, n))
