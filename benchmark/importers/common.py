"""What every importer shares: the convention error, the ``imported`` generator and the dataset writer.

An importer reads external files, checks them against the task's conventions (orientation, sign, units,
spacing) -- converting what it can detect unambiguously from the physics and refusing, with one line that names
the convention and the fix, data that contradict it -- and hands a list of :class:`ImportedSample` to
:func:`write_dataset`. That writes the dataset through the store's own functions (``prepare``,
``write_sample``, ``finalise``), so an imported folder has the same manifest, hashes, fingerprint and card as a
generated one and passes ``verify``. Nothing is written before every sample has been read and checked.

The manifest's generator is the task's generator (the task accepts only its datasets) with version
``import-1`` and preset ``import-<format>``; the card says where the data came from and which conventions were
detected or declared. ``verify --regenerate`` cannot regenerate imported samples (there is no generator to
rerun); the hashes and the fingerprint still vouch for every array.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ConfigDict

from phantombench import store
from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample

IMPORT_VERSION = "import-1"


class ConventionError(ValueError):
    """Data that contradict a convention of the task; ``str(e)`` is one line naming it and the fix."""


class ImportConfig(GeneratorConfig):
    """The declared acquisition and conventions of an import (free keys, JSON values, all finite)."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)


@dataclass
class ImportedSample:
    """One sample to write: arrays (keyed by schema field), attributes, and its source files."""

    fields: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_generator(task_generator: str, fmt: str, schema: dict[str, FieldSpec], card: str,
                   split: str = "test") -> Generator:
    """A generator whose ``name`` is ``task_generator`` and whose schema, card and splits are the import's."""

    class Imported(Generator):
        name = task_generator
        version = IMPORT_VERSION
        Config = ImportConfig
        presets = {f"import-{fmt}": {}}
        regen_rtol = 0.0

        def schema(self, cfg):
            return schema

        def sample(self, cfg, rng, index):
            raise NotImplementedError("imported samples cannot be regenerated: there is no generator to rerun")

        def card(self, cfg):
            return card

        def splits(self, cfg, n):
            if split == "test":
                return {"test": list(range(n))}
            return super().splits(cfg, n)

    Imported.__name__ = Imported.__qualname__ = f"Imported_{fmt.replace('-', '_')}"
    return Imported()


def schema_of(samples: list[ImportedSample], specs: dict[str, tuple[str, str]]) -> dict[str, FieldSpec]:
    """Schema from the first sample's arrays and ``specs`` (name -> (unit, description)); every sample must
    hold the same fields with the same shapes and dtypes."""
    first = samples[0].fields
    for k, s in enumerate(samples[1:], 1):
        if set(s.fields) != set(first):
            raise ConventionError(f"sample {k} holds fields {sorted(s.fields)}, sample 0 {sorted(first)}: every "
                                  "sample of a dataset needs the same fields (import them separately)")
        for name, a in s.fields.items():
            if a.shape != first[name].shape or a.dtype != first[name].dtype:
                raise ConventionError(f"sample {k}: {name} is {a.dtype}{a.shape}, sample 0 has "
                                      f"{first[name].dtype}{first[name].shape}: import them separately")
    return {name: FieldSpec(tuple(a.shape), a.dtype.name, *specs[name]) for name, a in first.items()}


def write_dataset(out: str | Path, task_generator: str, fmt: str, config: dict[str, Any],
                  samples: list[ImportedSample], specs: dict[str, tuple[str, str]], card: str,
                  split: str = "test") -> store.Dataset:
    """Write ``samples`` as a dataset folder through the store; return it opened."""
    from phantombench.provenance import provenance

    out = Path(out)
    if not samples:
        raise ConventionError("nothing to import: no sample was found")
    if out.exists() and any(out.iterdir()):
        raise store.StoreError(f"{out} is not empty; choose another --out (an import never overwrites)")
    schema = schema_of(samples, specs)
    gen = make_generator(task_generator, fmt, schema, card, split)
    cfg = ImportConfig(**config)
    preset = f"import-{fmt}"
    plan = {"generator": gen.name, "generator_version": gen.version, "preset": preset,
            "config": cfg.model_dump(mode="json"), "seed": 0, "n": len(samples)}
    created = not out.exists()
    try:
        with store.writer_lock(out):
            store.prepare(out, plan)
            for i, s in enumerate(samples):
                attrs = {**s.attrs, "source": [{"file": p.name, "sha256": file_digest(p)} for p in s.sources]}
                store.write_sample(out, i, Sample(s.fields, attrs), {})
            store.finalise(out, gen, cfg, plan, provenance(imported_from=fmt))
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return store.open_dataset(out)


def conventions_card(title: str, lines: list[str]) -> str:
    """A card section: where the data came from and each convention (detected or declared)."""
    body = "\n".join(f"- {line}" for line in lines)
    return (f"## Imported data: {title}\n\nThis dataset was imported, not generated: `verify` checks every array's "
            f"hash, `--regenerate` does not apply.\n\n{body}\n")
