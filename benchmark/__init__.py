"""phantombench: FEM phantoms as versioned datasets, and a benchmark for inverse solvers."""

from phantombench.store import Dataset, open_dataset

__version__ = "0.1.0"
__all__ = ["Dataset", "open_dataset", "__version__"]
