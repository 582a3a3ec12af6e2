"""Importers: external data (real measurements, other groups' releases) as datasets of a task.

``import_dataset(format, src, task, out, **options)`` reads ``src`` in ``format``, checks and converts its
conventions to the task's (refusing contradictions with one :class:`ConventionError` line) and writes a dataset
folder through the store (same manifest, card and ``verify`` as a generated one). Formats:

* ``ktc2023`` (task ``eit``): the Kuopio Tomography Challenge 2023 tank files (:mod:`.ktc`); options ``level``,
  ``order``, ``truth``, ``truth_row0``, ``contrast``, ``split``;
* ``elunet`` (task ``brain-elasticity``): El-UNet's released 142 x 100 text grids (:mod:`.elunet`); options
  ``rows``, ``spacing``, ``youngs_unit``, ``truth``, ``split``.

The command line is ``phantombench import FORMAT SRC --task T --out DIR [--option k=v]``.
"""

from __future__ import annotations

import os
from typing import Any

from phantombench.importers.common import ConventionError

__all__ = ["FORMATS", "ConventionError", "import_dataset"]

# format -> (task, module, function)
FORMATS: dict[str, tuple[str, str, str]] = {
    "ktc2023": ("eit", "phantombench.importers.ktc", "import_ktc"),
    "elunet": ("brain-elasticity", "phantombench.importers.elunet", "import_elunet"),
}


def import_dataset(fmt: str, src: str | os.PathLike, task: str | None = None, out: str | os.PathLike = ".",
                   **options: Any):
    """Import ``src`` (format ``fmt``) as a dataset of ``task`` in ``out``; return the opened dataset."""
    import importlib
    import inspect

    if fmt not in FORMATS:
        raise ConventionError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    want, module, func = FORMATS[fmt]
    if task is not None and task != want:
        raise ConventionError(f"format {fmt} holds data of task {want!r}, not {task!r}; pass --task {want}")
    if not os.path.exists(src):
        raise FileNotFoundError(f"{src}: no such file or folder")
    fn = getattr(importlib.import_module(module), func)
    known = [p for p in inspect.signature(fn).parameters if p not in ("src", "out")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConventionError(f"format {fmt} has no option(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return fn(src, out, **options)
