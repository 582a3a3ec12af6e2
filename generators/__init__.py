"""Phantom generators (DOLFINx forward models). Every DOLFINx import of the project is in this package, so the
PETSc option below is set before PETSc can initialise in any process that generates data.

PETSc otherwise installs C signal handlers that turn a SIGPIPE on a closed socket -- an evaluation worker that
died, a dask peer gone -- into an abort of the whole process."""

import os as _os

if "-no_signal_handler" not in _os.environ.get("PETSC_OPTIONS", ""):
    _os.environ["PETSC_OPTIONS"] = (_os.environ.get("PETSC_OPTIONS", "") + " -no_signal_handler").strip()
