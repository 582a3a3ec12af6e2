"""phantombench: FEM phantoms as versioned datasets, and a benchmark for inverse solvers."""

import os as _os

# PETSc (imported by DOLFINx) otherwise installs C signal handlers that turn a SIGPIPE on a closed
# socket -- an evaluation worker that died, a dask peer gone -- into an abort of the whole process.
if "-no_signal_handler" not in _os.environ.get("PETSC_OPTIONS", ""):
    _os.environ["PETSC_OPTIONS"] = (_os.environ.get("PETSC_OPTIONS", "") + " -no_signal_handler").strip()

from phantombench.store import Dataset, open_dataset  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Dataset", "open_dataset", "__version__"]
