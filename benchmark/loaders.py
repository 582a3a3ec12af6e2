"""Datasets as training data: a PyTorch ``Dataset`` and an xarray view of a sample.

:class:`PhantomDataset` reads one split of a dataset folder, sample by sample, for ``torch.utils.data.DataLoader``::

    from torch.utils.data import DataLoader
    from phantombench.loaders import PhantomDataset

    loader = DataLoader(PhantomDataset("data/brain-slice/random/v1", fields=["exx", "eyy", "E"]), batch_size=4)
    for batch in loader: ...        # batch["exx"]: (4, H, W) float32, batch["mask"]: (4, H, W) bool

* Workers: the object holds the folder's path and manifest only; each worker process opens the zarr store itself
  on first use (nothing unpicklable crosses the fork or spawn; zarr restarts its I/O loop in a forked child).
* Missing values: grid fields are NaN outside the domain (and a liver's real and imaginary parts may disagree on
  which pixels are NaN). One validity mask per sample -- the dataset's ``mask`` field, where it has one, and
  finite in *every* selected grid field -- is applied to all of them alike: outside it each field holds ``nan_to``;
  the mask itself is returned as ``"mask"`` (``return_mask``).
* Normalisation (``normalize=True``): ``(x - mean) / std`` per field, with the mean and std of the field's valid
  pixels over the dataset's ``train`` split (the requested split when there is none). They are computed once and
  cached in ``~/.cache/phantombench/stats/<fingerprint>.json`` (``$XDG_CACHE_HOME`` honoured) -- never inside the
  dataset folder, whose every file ``verify`` checks. ``PhantomDataset.stats`` holds them (to undo the scaling).
* ``task="brain-elasticity"``: items are the ``(observation, target)`` pairs a solver's ``fit`` receives
  (:meth:`Task.observation`, :meth:`Task.target`), arrays as tensors of the same dtype; entries that are not numbers
  or arrays (an EIT acquisition ``config``) become JSON strings so that the default collate works. NaN becomes
  ``nan_to`` unless it is None; no normalisation.

:func:`to_xarray` returns one sample's grid fields as an ``xarray.Dataset`` with coordinates ``x``, ``y`` in metres
and each field's unit and description as attributes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from phantombench.store import Dataset, open_dataset

STATS_FORMAT = "phantombench-stats/1"


# =========================================================================================== statistics
def stats_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "phantombench" / "stats"


def _grid_shape(ds: Dataset) -> tuple[int, int] | None:
    """The (H, W) of the dataset's ``mask`` field, else of its first 2-D field with integer sizes."""
    schema = ds.manifest["schema"]
    for name in ["mask", *schema]:
        shape = schema.get(name, {}).get("shape", [])
        if len(shape) >= 2 and all(isinstance(s, int) for s in shape[-2:]) and not name.startswith("mesh_"):
            return tuple(shape[-2:])
    return None


def is_grid_field(ds: Dataset, name: str) -> bool:
    shape = ds.manifest["schema"][name]["shape"]
    hw = _grid_shape(ds)
    return hw is not None and len(shape) >= 2 and tuple(shape[-2:]) == hw and not name.startswith("mesh_")


def valid_mask(ds: Dataset, arrays: dict[str, np.ndarray], mask: np.ndarray | None) -> np.ndarray | None:
    """Where every grid field of ``arrays`` is finite (all leading components), inside ``mask`` if given."""
    hw = _grid_shape(ds)
    if hw is None:
        return None
    ok = np.ones(hw, bool) if mask is None else np.asarray(mask, bool).copy()
    for name, a in arrays.items():
        if is_grid_field(ds, name) and a.dtype.kind in "fc":
            ok &= np.isfinite(a).reshape(-1, *hw).all(axis=0)
    return ok


def _sample_values(ds: Dataset, i: int, names: list[str]) -> dict[str, np.ndarray]:
    has_mask = "mask" in ds.manifest["schema"]
    arrays = ds.read(i, [*names, *(["mask"] if has_mask and "mask" not in names else [])])
    ok = valid_mask(ds, {k: arrays[k] for k in names}, arrays.get("mask"))
    out = {}
    for k in names:
        a = arrays[k]
        out[k] = a[..., ok] if ok is not None and is_grid_field(ds, k) else a[np.isfinite(a)]
    return out


def compute_stats(ds: Dataset, names: list[str], indices: list[int]) -> dict[str, dict[str, float]]:
    """Mean and std of each field's valid values over ``indices`` (float64 running sums)."""
    acc = {k: [0, 0.0, 0.0] for k in names}
    for i in indices:
        for k, v in _sample_values(ds, i, names).items():
            v = np.asarray(v, np.float64).ravel()
            acc[k][0] += v.size
            acc[k][1] += float(v.sum())
            acc[k][2] += float(np.square(v).sum())
    out = {}
    for k, (n, s, s2) in acc.items():
        mean = s / n if n else 0.0
        var = max(s2 / n - mean * mean, 0.0) if n else 0.0
        out[k] = {"mean": mean, "std": float(np.sqrt(var)) or 1.0, "n": n}
    return out


def field_stats(ds: Dataset, names: list[str], split: str = "train") -> dict[str, dict[str, float]]:
    """Per-field mean/std over ``split`` (computed once per dataset fingerprint, cached outside the dataset)."""
    splits = ds.manifest["splits"]
    use = split if split in splits else next(iter(splits))
    key = f"{use}|mask={'mask' in ds.manifest['schema']}|joint={','.join(sorted(names))}"
    path = stats_cache_dir() / f"{ds.fingerprint}.json"
    cache: dict[str, Any] = {}
    if path.exists():
        try:
            cache = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            cache = {}
    if cache.get("format") != STATS_FORMAT:
        cache = {"format": STATS_FORMAT, "dataset": ds.manifest["name"], "entries": {}}
    if key not in cache["entries"]:
        cache["entries"][key] = compute_stats(ds, names, ds.split(use))
        from phantombench.store import write_atomic

        write_atomic(path, json.dumps(cache, indent=1).encode())
    return cache["entries"][key]


# =========================================================================================== torch
def _tensor(v: Any, nan_to: float | None):
    import torch

    if isinstance(v, np.ndarray) or isinstance(v, np.generic):
        a = np.asarray(v)
        if nan_to is not None and a.dtype.kind in "fc":
            a = np.where(np.isnan(a), nan_to, a)
        return torch.from_numpy(np.ascontiguousarray(a))
    if isinstance(v, bool | int | float):
        return torch.from_numpy(np.asarray(v))      # float64 / int64 / bool, as numpy holds the number
    if isinstance(v, str):
        return v
    return json.dumps(v, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


class PhantomDataset:
    """One split of a dataset as a map-style ``torch.utils.data.Dataset`` (see the module docstring).

    ``fields``: the schema fields to return (default: every grid field); ``transform(item) -> item`` runs last."""

    def __init__(self, path_or_ds: str | os.PathLike | Dataset, split: str = "train",
                 fields: list[str] | None = None, task: Any = None, transform: Callable | None = None,
                 nan_to: float | None = 0.0, return_mask: bool = True, normalize: bool = True):
        ds = path_or_ds if isinstance(path_or_ds, Dataset) else open_dataset(path_or_ds)
        self.path, self.manifest = ds.path, ds.manifest
        self.indices = ds.split(split)
        self.split, self.transform, self.nan_to, self.return_mask = split, transform, nan_to, return_mask
        self.task = self._task(task, ds)
        self.fields = list(fields) if fields is not None else [k for k in ds.manifest["schema"]
                                                              if is_grid_field(ds, k) and k != "mask"]
        if self.task is None:
            ds.select(self.fields)  # unknown names: one KeyError naming the schema
        floats = [k for k in self.fields if ds.manifest["schema"][k]["dtype"].startswith(("float", "complex"))]
        self.stats = field_stats(ds, floats) if normalize and self.task is None and floats else {}
        self._ds: Dataset | None = None

    @staticmethod
    def _task(task: Any, ds: Dataset):
        if task is None:
            return None
        from phantombench.tasks import get_task

        t = get_task(task) if isinstance(task, str) else task
        t.check_dataset(ds)
        return t

    @property
    def dataset(self) -> Dataset:
        """The store handle of this process (opened lazily, so each DataLoader worker opens its own)."""
        if self._ds is None:
            self._ds = Dataset(self.path, self.manifest)
        return self._ds

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ds": None}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        i = self.indices[k]
        item = self._pair(i) if self.task is not None else self._fields(i)
        return self.transform(item) if self.transform is not None else item

    def _pair(self, i: int):
        ds = self.dataset
        g = ds.group(i)
        obs, tgt = self.task.observation(ds, i, g), self.task.target(ds, i, g)
        return ({k: _tensor(v, self.nan_to) for k, v in obs.items()},
                {k: _tensor(v, self.nan_to) for k, v in tgt.items()})

    def _fields(self, i: int) -> dict[str, Any]:
        import torch

        ds = self.dataset
        has_mask = "mask" in self.manifest["schema"]
        arrays = ds.read(i, self.fields + (["mask"] if has_mask and "mask" not in self.fields else []))
        ok = valid_mask(ds, {k: arrays[k] for k in self.fields}, arrays.get("mask"))
        out: dict[str, Any] = {}
        for k in self.fields:
            a = arrays[k]
            if k in self.stats:
                a = (a.astype(np.float64) - self.stats[k]["mean"]) / self.stats[k]["std"]
            if a.dtype.kind in "fc":
                a = a.astype(np.complex64 if a.dtype.kind == "c" else np.float32)
                fill = np.nan if self.nan_to is None else self.nan_to
                if ok is not None and is_grid_field(ds, k):
                    a = np.where(ok, a, fill)
                elif self.nan_to is not None:
                    a = np.where(np.isnan(a), fill, a)
            out[k] = torch.from_numpy(np.ascontiguousarray(a))
        if self.return_mask and ok is not None:
            out["mask"] = torch.from_numpy(ok)
        return out

    def denormalize(self, name: str, x):
        """Undo the normalisation of field ``name`` (tensor or array)."""
        s = self.stats.get(name)
        return x if s is None else x * s["std"] + s["mean"]


# =========================================================================================== xarray
def grid_coordinates(ds: Dataset, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x (W,), y (H,))`` in metres, ``y`` decreasing (row 0 at the top)."""
    attrs, cfg = ds.attrs(i), ds.manifest.get("config", {})
    H, W = _grid_shape(ds) or (0, 0)
    g = attrs.get("grid")
    if isinstance(g, dict) and {"x0", "y_top", "dx", "dy"} <= set(g):
        x0, yt, dx, dy = g["x0"], g["y_top"], g["dx"], g["dy"]
    elif "grid_spacing_m" in attrs:                  # brain-slice: centres on the rectangle's edges
        dy, dx = attrs["grid_spacing_m"]
        x0, yt = 0.0, (H - 1) * dy
    elif "radius" in cfg:                            # eit: pixels tiling [-R, R]^2
        R = float(cfg["radius"])
        dx, dy = 2 * R / W, 2 * R / H
        x0, yt = -R + dx / 2, R - dy / 2
    else:
        raise ValueError(f"{ds.path}: sample {i} declares no grid geometry (attrs grid or grid_spacing_m, or a "
                         "config radius)")
    return x0 + np.arange(W) * dx, yt - np.arange(H) * dy


def to_xarray(ds: Dataset | str | os.PathLike, i: int, fields: list[str] | None = None):
    """Sample ``i``'s grid fields as an ``xarray.Dataset`` on coordinates ``y``, ``x`` [m] (leading axes named
    ``<field>_dim<k>``); units and descriptions from the schema as attributes."""
    try:
        import xarray as xr
    except ImportError:
        raise ImportError("to_xarray needs xarray: pip install xarray") from None

    ds = ds if isinstance(ds, Dataset) else open_dataset(ds)
    names = fields or [k for k in ds.manifest["schema"] if is_grid_field(ds, k)]
    arrays = ds.read(i, names)
    x, y = grid_coordinates(ds, i)
    data_vars = {}
    for k, a in arrays.items():
        spec = ds.manifest["schema"][k]
        if not is_grid_field(ds, k):
            raise ValueError(f"{k} is not a grid field (shape {spec['shape']})")
        dims = [f"{k}_dim{j}" for j in range(a.ndim - 2)] + ["y", "x"]
        data_vars[k] = xr.DataArray(a, dims=dims, attrs={"units": spec["unit"], "description": spec["description"]})
    out = xr.Dataset(data_vars, coords={"x": ("x", x, {"units": "m"}), "y": ("y", y, {"units": "m"})})
    out.attrs.update({"dataset": ds.manifest["name"], "sample": ds.ids[i], "fingerprint": ds.fingerprint})
    return out
