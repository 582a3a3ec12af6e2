"""phantombench: FEM phantoms as versioned datasets, and a benchmark for inverse solvers.

Importing the package is cheap (the solver worker process imports it first): :func:`open_dataset` and
:class:`Dataset` load the store (zarr) on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Dataset", "open_dataset", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Dataset", "open_dataset"):
        from phantombench import store

        return getattr(store, name)
    raise AttributeError(f"module 'phantombench' has no attribute {name!r}")
