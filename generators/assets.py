"""What each modality keeps as data beside its code: presets and the dataset-card text.

* ``generators/presets/<generator>.json`` -- preset name -> Config overrides (JSON lists become tuples when
  the pydantic Config validates them);
* ``generators/cards/<generator>.md`` -- the markdown paragraphs of the dataset card (a ``str.format``
  template where the generator fills in config values, e.g. ``eit``).

Both ship as package data and are read with :mod:`importlib.resources`, so they work from a wheel too.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

__all__ = ["card_text", "load_presets"]


@cache
def card_text(generator: str) -> str:
    """The dataset-card markdown of ``generator`` (exact file content)."""
    return files(__package__).joinpath("cards", f"{generator}.md").read_text(encoding="utf-8")


def load_presets(generator: str) -> dict[str, dict[str, Any]]:
    """Preset name -> Config overrides of ``generator``, in file order."""
    return json.loads(files(__package__).joinpath("presets", f"{generator}.json").read_text(encoding="utf-8"))
