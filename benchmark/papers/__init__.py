"""Paper reproductions (``phantombench reproduce <paper>``): one module per paper, each exposing one
:class:`~phantombench.papers.common.Paper` object named ``PAPER``; shared helpers in :mod:`.common` (datasets,
statistics, report output) and :mod:`.scoring` (the evaluation harness, and the one in-process loop).

A paper is an entry point of the group ``phantombench.papers`` (see :mod:`phantombench.registry`): this
package's three in its ``pyproject.toml``, a third party's in its own.
"""

from __future__ import annotations

from phantombench import registry


def paper_names() -> list[str]:
    """The registered papers, in declaration order."""
    return registry.names("papers")


def get_paper(name: str):
    """The :class:`~phantombench.papers.common.Paper` registered as ``name`` (a ValueError naming the known
    ones if there is none)."""
    return registry.load("papers", name)
