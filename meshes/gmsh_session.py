"""The one way this package opens gmsh: :func:`gmsh_session`.

gmsh is a process-global library: one set of options, one current model, one mesher random stream,
and it is not thread-safe. Every mesher here therefore meshes inside ``with gmsh_session(...) as gmsh``,
which

* holds one process-wide lock (all meshers share it, so two threads never mesh at once);
* starts from a known state, so a mesh never depends on what ran before in the process:
  ``fresh=False`` (default) initialises gmsh if needed and restores the default options;
  ``fresh=True`` restarts gmsh (finalise + initialise, cheap next to meshing), which also resets the
  mesher's internal pseudo-random stream;
* silences the terminal, sets the given ``Mesh.*`` / ``General.*`` options and adds a model;
* always cleans up: removes its model, finalises gmsh if it started it, and otherwise hands the
  caller's session back (its current model; after ``fresh=True`` a re-initialised, empty session).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["gmsh_session", "GMSH_LOCK"]

GMSH_LOCK = threading.RLock()


@contextlib.contextmanager
def gmsh_session(model: str, options: Mapping[str, float] | None = None, *, fresh: bool = False) -> Iterator[Any]:
    """Yield the ``gmsh`` module with a new model ``model`` current and ``options`` set (see module doc)."""
    import gmsh

    with GMSH_LOCK:
        was_on = gmsh.isInitialized()
        prev_model = gmsh.model.getCurrent() if was_on and not fresh else None
        if fresh and was_on:
            gmsh.finalize()
        if fresh or not was_on:
            gmsh.initialize(readConfigFiles=False, interruptible=False)
        try:
            if not fresh:
                gmsh.option.restoreDefaults()
            gmsh.option.setNumber("General.Terminal", 0)
            gmsh.option.setNumber("General.Verbosity", 0)
            gmsh.model.add(model)
            for key, value in (options or {}).items():
                gmsh.option.setNumber(key, value)
            yield gmsh
        finally:
            _close(gmsh, was_on, fresh, prev_model)


def _close(gmsh, was_on: bool, fresh: bool, prev_model: str | None) -> None:
    """Leave gmsh as the caller had it (see :func:`gmsh_session`)."""
    if fresh or not was_on:
        gmsh.finalize()
        if fresh and was_on:
            gmsh.initialize(readConfigFiles=False, interruptible=False)
        return
    with contextlib.suppress(Exception):
        gmsh.model.remove()
    if prev_model:
        gmsh.model.setCurrent(prev_model)
