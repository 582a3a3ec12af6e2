"""One registry for every pluggable part: generators, tasks, official datasets, solvers and paper reproductions.

Each part is an entry point of an installed distribution, one line per part in its ``pyproject.toml``::

    [project.entry-points."phantombench.solvers"]
    my-solver = "my_package.module:MySolver"

The groups (:data:`GROUPS`) and what their entry points name:

* ``phantombench.generators`` -- a :class:`~phantombench.generators.base.Generator` subclass,
* ``phantombench.tasks``      -- a :class:`~phantombench.tasks.Task` instance,
* ``phantombench.official``   -- a tuple of :class:`~phantombench.official.OfficialDataset` (one entry per task,
  named after the task),
* ``phantombench.solvers``    -- a :class:`~phantombench.solvers.base.Solver` subclass,
* ``phantombench.papers``     -- a paper reproduction (see ``phantombench.papers``).

So a third party adds any part by installing a package that declares it; nothing in this repository changes.
Entry points load lazily: :func:`load` imports the one module that defines the part asked for, never the others
(the solver worker process loads its solver alone). Listings and loaded objects are cached per process;
a name that is not in the cached listing triggers one fresh scan before :class:`UnknownName` is raised, so a
distribution installed after the first look-up is still found.

This module imports nothing from the project: every layer may use it.
"""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any

PREFIX = "phantombench."
GROUPS: dict[str, str] = {
    "generators": "generator",
    "tasks": "task",
    "official": "official dataset list",
    "solvers": "solver",
    "papers": "paper",
}

_lock = threading.Lock()
_listing: dict[str, dict[str, EntryPoint]] = {}
_loaded: dict[tuple[str, str], Any] = {}


class RegistryError(ValueError):
    """A registry look-up that failed (unknown group or name)."""


class UnknownName(RegistryError, LookupError):
    """No part of that name is registered in the group; the message names the known ones."""


def group_name(group: str) -> str:
    """The full entry-point group of ``group`` (``"solvers"`` or ``"phantombench.solvers"``)."""
    short = group.removeprefix(PREFIX)
    if short not in GROUPS:
        raise RegistryError(f"unknown registry group {group!r}; the groups are: "
                            f"{', '.join(PREFIX + g for g in GROUPS)}")
    return PREFIX + short


def _scan(full: str) -> dict[str, EntryPoint]:
    """name -> entry point of ``full``, in declaration order; the first distribution declaring a name wins."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=full):
        found.setdefault(ep.name, ep)
    return found


def _entries(group: str, refresh: bool = False) -> dict[str, EntryPoint]:
    full = group_name(group)
    with _lock:
        if refresh or full not in _listing:
            _listing[full] = _scan(full)
        return _listing[full]


def names(group: str) -> list[str]:
    """The registered names of ``group``, in the order their distribution declares them."""
    return list(_entries(group))


def entry_point(group: str, name: str) -> EntryPoint:
    """The entry point of ``name`` in ``group`` (UnknownName, naming the known ones, if there is none)."""
    eps = _entries(group)
    if name not in eps:
        eps = _entries(group, refresh=True)
    if name not in eps:
        kind = GROUPS[group_name(group).removeprefix(PREFIX)]
        known = ", ".join(eps) or "none registered"
        raise UnknownName(f"unknown {kind} {name!r}; choose one of: {known}")
    return eps[name]


def load(group: str, name: str) -> Any:
    """The object registered as ``name`` in ``group``, imported on first use and cached.

    Raises :class:`UnknownName` for a name nobody registered; an error raised while importing the part's module
    propagates with its own type and a note naming the entry point."""
    full = group_name(group)
    key = (full, name)
    if key in _loaded:
        return _loaded[key]
    ep = entry_point(full, name)
    try:
        obj = ep.load()
    except Exception as e:
        e.add_note(f"while loading the entry point {name} = {ep.value} (group {full})")
        raise
    with _lock:
        _loaded[key] = obj
    return obj


def load_all(group: str) -> dict[str, Any]:
    """Every part of ``group`` loaded (name -> object): imports all of their modules."""
    return {name: load(group, name) for name in names(group)}


def clear_cache() -> None:
    """Forget listings and loaded objects (after installing or removing a distribution in this process)."""
    with _lock:
        _listing.clear()
        _loaded.clear()


# ------------------------------------------------------------------------------------------ generators
def generator_names() -> list[str]:
    """Names of the registered generators."""
    return names("generators")


def get_generator(name: str):
    """A new instance of generator ``name`` (UnknownName, a ValueError naming the known ones, if none)."""
    return load("generators", name)()
