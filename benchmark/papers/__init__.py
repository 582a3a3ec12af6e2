"""Paper reproductions (``phantombench reproduce <paper>``): one module per paper, each exposing one
:class:`~phantombench.papers.common.Paper` object named ``PAPER``; shared helpers in :mod:`.common` (datasets,
statistics, report output) and :mod:`.scoring` (the evaluation harness, and the one in-process loop).

Papers are entry points of the group ``phantombench.papers`` (see :mod:`phantombench.registry`); the built-in
ones are also listed here, so a checkout whose installed metadata predates the entry points still finds them.
"""

from __future__ import annotations

import importlib

BUILTIN: dict[str, str] = {
    "elunet": "phantombench.papers.elunet:PAPER",
    "dime": "phantombench.papers.dime:PAPER",
    "cnn-pinn-eit": "phantombench.papers.cnn_pinn_eit:PAPER",
}


def _registered() -> list[str]:
    from phantombench import registry

    try:
        return registry.names("papers")
    except ValueError:      # a registry without the papers group
        return []


def paper_names() -> list[str]:
    """The reproducible papers: the built-in ones, then any other registered ``phantombench.papers`` entry."""
    return list(BUILTIN) + [n for n in _registered() if n not in BUILTIN]


def get_paper(name: str):
    """The :class:`~phantombench.papers.common.Paper` called ``name`` (ValueError naming the known ones)."""
    if name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    if name in _registered():
        from phantombench import registry

        return registry.load("papers", name)
    raise ValueError(f"unknown paper {name!r}; reproducible: {', '.join(sorted(paper_names()))}")
