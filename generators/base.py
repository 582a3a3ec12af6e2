"""The contract every generator fulfils, so the dataset store can drive any modality.

A generator is a class with
  * ``name``      -- the CLI name (``brain-slice``, ``eit``, ``liver-mre``),
  * ``version``   -- semver of its physics/output; bump it whenever sample values change,
  * ``Config``    -- a pydantic model; every field documented, units in the description,
  * ``presets``   -- preset name -> dict of Config overrides,
  * ``schema(cfg)``  -- field name -> FieldSpec (what every sample holds),
  * ``sample(cfg, rng, index)`` -- one sample as a :class:`Sample`,
  * ``card(cfg)``    -- markdown paragraphs for the dataset card (physics, conventions, caveats),
  * ``regen_rtol``   -- relative tolerance ``verify --regenerate`` uses (FEM solves are
    deterministic up to floating-point summation order of the linear solver).

Sample field naming: grid fields by plain name (``exx``, ``sigma``); the FE mesh as
``mesh_points`` (N, 2) float64 [m], ``mesh_cells`` (M, 3) int64, ``mesh_cell_<name>`` (M,),
``mesh_point_<name>`` (N,) or (N, k). ``export`` turns those into VTU/XDMF.

Generators never touch the disk: the store writes what they return.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator


@dataclass(frozen=True)
class FieldSpec:
    """What one field of a sample is. ``shape`` may hold strings for sizes that vary per sample."""

    shape: tuple[int | str, ...]
    dtype: str
    unit: str
    description: str

    def as_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "unit": self.unit,
                "description": self.description}


@dataclass
class Sample:
    """One generated sample: arrays plus small JSON-able attributes (loads, mesh quality...)."""

    fields: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)


class GeneratorConfig(BaseModel):
    """Base of every generator config: unknown keys are an error, values are validated, and no value
    anywhere in a config (float fields, tuples, lists, nested dicts) may be NaN or infinite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _reject_non_finite(self):
        for name in type(self).model_fields:
            bad = _non_finite(getattr(self, name))
            if bad is not None:
                raise ValueError(f"{name}: {bad} is not a finite number")
        return self


def _non_finite(v: Any) -> float | None:
    """The first NaN or infinite number inside ``v`` (scalars, sequences, dicts, models), else None."""
    if isinstance(v, float | np.floating):
        return None if np.isfinite(v) else float(v)
    if isinstance(v, dict):
        v = list(v.values())
    elif isinstance(v, BaseModel):
        v = [getattr(v, k) for k in type(v).model_fields]
    if isinstance(v, list | tuple):
        for x in v:
            bad = _non_finite(x)
            if bad is not None:
                return bad
    return None


class Generator(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    Config: ClassVar[type[GeneratorConfig]]
    presets: ClassVar[dict[str, dict[str, Any]]]
    regen_rtol: ClassVar[float] = 1e-8

    def config(self, preset: str, overrides: dict[str, Any] | None = None) -> GeneratorConfig:
        """Resolve a preset plus user overrides into a validated config."""
        if preset not in self.presets:
            raise ValueError(
                f"unknown preset {preset!r} for generator {self.name!r}; "
                f"choose one of: {', '.join(sorted(self.presets))}")
        return self.Config(**{**self.presets[preset], **(overrides or {})})

    @abstractmethod
    def schema(self, cfg: GeneratorConfig) -> dict[str, FieldSpec]: ...

    @abstractmethod
    def sample(self, cfg: GeneratorConfig, rng: np.random.Generator, index: int) -> Sample: ...

    def card(self, cfg: GeneratorConfig) -> str:
        return ""

    def splits(self, cfg: GeneratorConfig, n: int) -> dict[str, list[int]]:
        """Default split: 80/10/10 train/val/test by index (test last); a single sample is 'test'."""
        if n <= 2:
            return {"test": list(range(n))}
        n_test = max(1, round(0.1 * n))
        n_val = max(1, round(0.1 * n))
        n_train = n - n_val - n_test
        return {"train": list(range(n_train)),
                "val": list(range(n_train, n_train + n_val)),
                "test": list(range(n_train + n_val, n))}


def sample_rng(dataset_seed: int, index: int) -> np.random.Generator:
    """Independent stream for sample ``index``: never depends on worker count or order."""
    ss = np.random.SeedSequence(entropy=dataset_seed, spawn_key=(index,))
    return np.random.default_rng(ss)
