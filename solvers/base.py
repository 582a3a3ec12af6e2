"""The solver protocol and how solvers are found.

A solver is a class::

    from phantombench.solvers.base import Solver

    class MySolver(Solver):
        name = "my-solver"             # shown on the leaderboard
        version = "1.0.0"              # bump when results change
        tasks = ("brain-elasticity",)  # tasks it can do (empty: any)
        time_budget_s = 60.0           # wall seconds per case for solve(); the harness enforces it
        fit_budget_s = 0.0             # wall seconds for fit() (0: the solver has no fit)
        defaults = {"alpha": 1e-2}     # parameters, overridable with --param alpha=0.1

        def fit(self, train, val):     # optional (learned solvers): train/val are Cases
            ...
        def solve(self, observation):  # required: dict of arrays -> dict of arrays
            return {"E": ..., "nu": ...}

``self.task`` is the :class:`phantombench.tasks.Task` (its ``predictions`` say what to return),
``self.params`` the resolved parameters, ``self.seed`` the run seed and ``self.device`` ``"cuda"`` when
a GPU is present and ``"cpu"`` otherwise (override with ``--device`` or ``PHANTOMBENCH_DEVICE``).
Per-sample optimisers (El-UNet, PINNs) train inside ``solve`` under ``time_budget_s``.

Discovery (:func:`load_solver_class`): a registered name (``constant``: an entry point of the group
``phantombench.solvers``, whether this package's or an installed one's), ``package.module:Class``, or
``path/to/file.py:Class`` -- so a submitter needs no change to this repository. Loading a name imports that
solver's module only.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

ENTRY_POINT_GROUP = "phantombench.solvers"

# every solver, built-in or third-party, is an entry point of this group (pyproject.toml: one line per solver)


class SolverError(ValueError):
    """A solver that cannot be found, loaded or configured."""


def resolve_device(request: str | None = None) -> str:
    """'cuda' if requested or (auto) if torch sees a GPU, else 'cpu'. ``PHANTOMBENCH_DEVICE`` overrides auto."""
    req = (request or os.environ.get("PHANTOMBENCH_DEVICE") or "auto").lower()
    if req == "cpu":
        return "cpu"
    cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        cuda = bool(torch.cuda.is_available())
    if req == "auto":
        return "cuda" if cuda else "cpu"
    if req.startswith("cuda"):
        if not cuda:
            raise SolverError(f"device {req!r} requested but no CUDA device is available")
        return req
    raise SolverError(f"unknown device {req!r}; use auto, cpu or cuda[:k]")


def progress_bar(label: str, enabled: bool = True):
    """A rich progress bar for training loops (``task.fields['info']`` shows running numbers), or a null
    context yielding None when disabled; solvers write it to stderr, which the harness passes through."""
    import contextlib

    if not enabled:
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False)


class Cases(Sequence):
    """A split handed to ``fit``: a sequence of ``(observation, target)`` pairs held in memory.

    ``len(cases)``, ``cases[k]``, slicing and iteration work as for a list. It is data, never a handle on a
    dataset, so a learned solver cannot reach other splits (the test split's truth) through it. ``sources``
    names the datasets the pairs came from (``name@version-fingerprint``), e.g. to tag a checkpoint.

    ``Cases(pairs, sources=...)``; ``Cases(task, dataset, indices)`` reads the pairs of those samples now.
    """

    def __init__(self, *args, sources: list[str] | tuple[str, ...] = ()):
        if len(args) == 3:
            task, ds, indices = args
            pairs = []
            for i in indices:
                g = ds.group(i)
                pairs.append((task.observation(ds, i, g), task.target(ds, i, g)))
            m = ds.manifest
            sources = sources or [f"{m['name']}@{m['version']}-{ds.fingerprint[:12]}"]
        elif len(args) == 1:
            pairs = list(args[0])
        else:
            raise TypeError("Cases(pairs) or Cases(task, dataset, indices)")
        self._pairs = pairs
        self.sources = list(sources)

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return Cases(self._pairs[k], sources=self.sources)
        return self._pairs[k]

    def __iter__(self) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        return iter(self._pairs)


class Solver:
    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    tasks: ClassVar[tuple[str, ...]] = ()
    time_budget_s: ClassVar[float] = 60.0
    fit_budget_s: ClassVar[float] = 0.0
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, task, params: dict[str, Any] | None = None, device: str | None = None, seed: int = 0):
        if self.tasks and task.name not in self.tasks:
            raise SolverError(f"solver {self.name!r} does not do task {task.name!r} (it does: {', '.join(self.tasks)})")
        unknown = sorted(set(params or {}) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise SolverError(f"solver {self.name!r} has no parameter(s) {', '.join(unknown)} (known: {known})")
        self.task = task
        self.params = {**self.defaults, **(params or {})}
        self.seed = int(seed)
        self._device_request = device
        self._device: str | None = None

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self._device_request)
        return self._device

    @classmethod
    def has_fit(cls) -> bool:
        return cls.fit is not Solver.fit

    def fit(self, train: Cases, val: Cases) -> None:  # noqa: B027 - optional hook
        """Learn from the training split (optional)."""

    def solve(self, observation: dict[str, Any]) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__}.solve")


# ------------------------------------------------------------------------------------------ discovery
def _check_class(obj: Any, spec: str) -> type[Solver]:
    if not isinstance(obj, type) or not callable(getattr(obj, "solve", None)):
        raise SolverError(f"{spec}: not a solver class (needs a solve method)")
    if not getattr(obj, "name", ""):
        raise SolverError(f"{spec}: the solver class must set a name")
    if not issubclass(obj, Solver):
        raise SolverError(f"{spec}: subclass phantombench.solvers.base.Solver")
    return obj


def _load_file(path: Path, attr: str, spec: str) -> type[Solver]:
    path = path.resolve()
    if not path.is_file():
        raise SolverError(f"{spec}: no such file {path}")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    modname = f"phantombench_user_{path.stem}_{digest}"
    if modname in sys.modules:
        mod = sys.modules[modname]
    else:
        ispec = importlib.util.spec_from_file_location(modname, path)
        if ispec is None or ispec.loader is None:
            raise SolverError(f"{spec}: cannot import {path}")
        mod = importlib.util.module_from_spec(ispec)
        sys.modules[modname] = mod
        try:
            ispec.loader.exec_module(mod)
        except Exception as e:
            del sys.modules[modname]
            raise SolverError(f"{spec}: importing {path.name} failed: {type(e).__name__}: {e}") from e
    if not hasattr(mod, attr):
        raise SolverError(f"{spec}: {path.name} has no attribute {attr!r}")
    return _check_class(getattr(mod, attr), spec)


def load_solver_class(spec: str) -> type[Solver]:
    """Find a solver class from a name, an entry point, ``module:Class`` or ``file.py:Class``."""
    from phantombench import registry

    spec = spec.strip()
    if ":" in spec:
        target, _, attr = spec.rpartition(":")
        if target.endswith(".py") or os.sep in target or "/" in target:
            return _load_file(Path(target), attr, spec)
        try:
            mod = importlib.import_module(target)
        except ImportError as e:
            raise SolverError(f"{spec}: cannot import module {target!r} ({e})") from e
        if not hasattr(mod, attr):
            raise SolverError(f"{spec}: module {target} has no attribute {attr!r}")
        return _check_class(getattr(mod, attr), spec)
    try:
        ep = registry.entry_point(ENTRY_POINT_GROUP, spec)
    except registry.UnknownName:
        raise SolverError(f"unknown solver {spec!r}; give one of {', '.join(solver_names())}, "
                          "an installed entry point, module:Class or path/to/file.py:Class") from None
    try:
        return _check_class(registry.load(ENTRY_POINT_GROUP, spec), spec)
    except SolverError:
        raise
    except Exception as e:
        raise SolverError(f"{spec}: loading entry point {ep.value} failed: {type(e).__name__}: {e}") from e


def solver_names() -> list[str]:
    """The registered solvers (entry points of ``phantombench.solvers``), sorted."""
    from phantombench import registry

    return sorted(registry.names(ENTRY_POINT_GROUP))
