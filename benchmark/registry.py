"""Where generators are found: the built-in modules, then the ``phantombench.generators`` entry points."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from phantombench.generators.base import Generator

BUILTIN = {
    "brain-slice": "phantombench.generators.brain_slice:BrainSlice",
    "eit": "phantombench.generators.eit:EIT",
    "liver-mre": "phantombench.generators.liver_mre:LiverMRE",
}


def _load(target: str) -> type[Generator]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def generator_names() -> list[str]:
    names = set(BUILTIN)
    names.update(ep.name for ep in entry_points(group="phantombench.generators"))
    return sorted(names)


def get_generator(name: str) -> Generator:
    """Instantiate generator ``name``; ValueError with the known names if there is none."""
    if name in BUILTIN:
        return _load(BUILTIN[name])()
    for ep in entry_points(group="phantombench.generators"):
        if ep.name == name:
            return ep.load()()
    raise ValueError(f"unknown generator {name!r}; choose one of: {', '.join(generator_names())}")
