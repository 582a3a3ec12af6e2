"""Loaders: slicing and field selection on the store's Dataset, the torch PhantomDataset (workers, NaN policy,
normalisation statistics cached outside the dataset folder, task pairs equal to fit's), the xarray view."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from phantombench import store
from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample
from tests.bench_helpers import tree_digest, write_dataset


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------ a dataset with NaN outside
class _Cfg(GeneratorConfig):
    n: int = 12


class Wavy(Generator):
    """Liver-like fields: u_re and u_im NaN outside a disk, u_im also NaN on one pixel inside it."""

    name = "wavy"
    version = "0.0.0-test"
    Config = _Cfg
    presets = {"t": {}}

    def schema(self, cfg):
        hw = (cfg.n, cfg.n)
        return {"u_re": FieldSpec(hw, "float32", "m", "real part"), "u_im": FieldSpec(hw, "float32", "m", "imag"),
                "mask": FieldSpec(hw, "bool", "", "inside"), "freq": FieldSpec((2,), "float64", "Hz", "f")}

    def sample(self, cfg, rng, index):
        yy, xx = np.mgrid[0:cfg.n, 0:cfg.n]
        mask = (yy - cfg.n / 2 + 0.5) ** 2 + (xx - cfg.n / 2 + 0.5) ** 2 < (cfg.n / 2.5) ** 2
        re = np.where(mask, np.sin(xx + index), np.nan).astype(np.float32)
        im = np.where(mask, np.cos(yy - index), np.nan).astype(np.float32)
        im[cfg.n // 2, cfg.n // 2] = np.nan
        return Sample({"u_re": re, "u_im": im, "mask": mask, "freq": np.array([30.0, 60.0 + index])},
                      {"grid": {"x0": 0.0, "y_top": 0.011, "dx": 0.001, "dy": 0.001, "H": cfg.n, "W": cfg.n}})


def _write(gen, root: Path, n: int) -> Path:
    return write_dataset(gen, root, "t", n)


@pytest.fixture(scope="module")
def wavy(tmp_path_factory) -> Path:
    return _write(Wavy(), tmp_path_factory.mktemp("wavy") / "ds", 10)


# ------------------------------------------------------------------------------ store: slices and fields
def test_slices_and_field_selection(fake_brain10, tmp_path):
    ds = store.open_dataset(fake_brain10)
    two = ds[0:2]
    assert isinstance(two, list) and len(two) == 2 and np.array_equal(two[1]["E"], ds[1]["E"])
    assert [d["E"][0, 0] for d in ds[[3, 1]]] == [ds[3]["E"][0, 0], ds[1]["E"][0, 0]]
    assert list(ds[1, ["exx", "eyy"]]) == ["exx", "eyy"]
    assert [list(d) for d in ds[2:4, ["uy"]]] == [["uy"], ["uy"]] and list(ds[-1, "E"]) == ["E"]
    assert list(ds.select(fields=["exx"])[0]) == ["exx"]
    assert [list(s) for s in ds.select(["nu"])[4:6]] == [["nu"], ["nu"]]
    with pytest.raises(KeyError, match="no field.*nope.*the schema has exx"):
        ds.select(["nope"])
    # only the asked arrays are opened: with E's chunk gone, the strains still read, the whole sample does not
    copy = tmp_path / "copy"
    shutil.copytree(fake_brain10, copy)
    shutil.rmtree(copy / "data.zarr" / "000000" / "E" / "c")
    damaged = store.open_dataset(copy)
    assert np.array_equal(damaged[0, ["exx"]]["exx"], ds[0]["exx"])
    assert list(damaged.read(0, "exx")) == ["exx"]
    assert not np.array_equal(damaged[0]["E"], ds[0]["E"])   # zarr fills the lost chunk when E is read


# ------------------------------------------------------------------------------ torch
def test_nan_outside_the_mask_is_one_policy_for_every_field(wavy):
    from phantombench.loaders import PhantomDataset

    pd = PhantomDataset(wavy, fields=["u_re", "u_im"], normalize=False, nan_to=-7.0)
    item = pd[0]
    mask = item["mask"].numpy()
    raw = store.open_dataset(wavy)[pd.indices[0]]
    c = raw["u_re"].shape[0] // 2
    assert raw["mask"][c, c] and not mask[c, c]          # u_im's extra NaN masks u_re there too
    assert mask.sum() == raw["mask"].sum() - 1
    for k in ("u_re", "u_im"):
        a = item[k].numpy()
        assert a.dtype == np.float32 and np.isfinite(a).all()
        assert (a[~mask] == -7.0).all() and np.array_equal(a[mask], raw[k][mask])
    assert float(item["u_re"][c, c]) == -7.0 and np.isfinite(raw["u_re"][c, c])
    assert "mask" not in PhantomDataset(wavy, fields=["u_re"], return_mask=False, normalize=False)[0]


def test_normalisation_statistics_cached_outside_the_dataset(wavy, tmp_path):
    from phantombench.loaders import PhantomDataset, stats_cache_dir

    before = tree_digest(wavy)
    pd = PhantomDataset(wavy, fields=["u_re", "u_im", "freq"])
    ds = store.open_dataset(wavy)
    vals = np.concatenate([ds[i]["u_re"][ds[i]["mask"] & np.isfinite(ds[i]["u_im"])]
                           for i in ds.split("train")]).astype(np.float64)
    assert pd.stats["u_re"]["mean"] == pytest.approx(vals.mean(), rel=1e-9)
    assert pd.stats["u_re"]["std"] == pytest.approx(vals.std(), rel=1e-9)
    item = pd[1]
    m = item["mask"].numpy()
    assert item["u_re"].numpy()[m].mean() == pytest.approx(
        (ds[pd.indices[1]]["u_re"][m].mean() - vals.mean()) / vals.std(), rel=1e-5)
    assert np.allclose(pd.denormalize("u_re", item["u_re"].numpy()[m]), ds[pd.indices[1]]["u_re"][m], atol=1e-6)
    cache = stats_cache_dir() / f"{ds.fingerprint}.json"
    assert str(cache).startswith(str(tmp_path)) and json.loads(cache.read_text())["entries"]
    assert tree_digest(wavy) == before                  # nothing written into the dataset folder
    from phantombench.verify import verify_dataset
    assert verify_dataset(wavy)[0] == []
    # a second instance reads the cache (a damaged cache entry would show up as different numbers)
    data = json.loads(cache.read_text())
    key = next(iter(data["entries"]))
    data["entries"][key]["u_re"]["mean"] = 123.0
    cache.write_text(json.dumps(data))
    assert PhantomDataset(wavy, fields=["u_re", "u_im", "freq"]).stats["u_re"]["mean"] == 123.0


def test_dataloader_workers_and_pickling(fake_brain10):
    from torch.utils.data import DataLoader

    from phantombench.loaders import PhantomDataset

    pd = PhantomDataset(fake_brain10, fields=["exx", "E"])
    pd[0]
    assert pickle.loads(pickle.dumps(pd))._ds is None  # workers open the store themselves
    batches = list(DataLoader(pd, batch_size=3, num_workers=2))
    one = list(DataLoader(pd, batch_size=3, num_workers=0))
    assert len(batches) == 3 and batches[0]["exx"].shape == (3, 24, 16)
    for a, b in zip(batches, one):
        assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_task_items_are_fit_pairs(fake_brain10):
    from phantombench.loaders import PhantomDataset
    from phantombench.solvers.base import Cases
    from phantombench.tasks import get_task

    task = get_task("brain-elasticity")
    ds = store.open_dataset(fake_brain10)
    cases = Cases(task, ds, ds.split("train"))
    pd = PhantomDataset(fake_brain10, task="brain-elasticity", nan_to=None)
    assert len(pd) == len(cases)
    for (obs, tgt), (o, t) in zip(cases, (pd[k] for k in range(len(pd)))):
        assert set(o) == set(obs) and set(t) == set(tgt)
        for k, v in obs.items():
            got = o[k].numpy()
            assert got.dtype == np.asarray(v).dtype and np.array_equal(got, v), k
        for k, v in tgt.items():
            assert np.array_equal(t[k].numpy(), v), k


def test_training_loop_in_three_lines(fake_brain10):
    import torch
    from torch.utils.data import DataLoader

    from phantombench.loaders import PhantomDataset

    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    opt = torch.optim.Adam(model.parameters(), lr=5e-2)
    losses = []
    for _epoch in range(8):
        # --- the three lines: strain eyy -> strain exx (normalised fields, loss inside the mask) ---
        for b in DataLoader(PhantomDataset(fake_brain10, fields=["eyy", "exx"]), batch_size=4, shuffle=True):
            loss = torch.nn.functional.mse_loss(model(b["eyy"][:, None])[:, 0][b["mask"]], b["exx"][b["mask"]])
            opt.zero_grad(), loss.backward(), opt.step(), losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ------------------------------------------------------------------------------ xarray
def test_xarray_view_has_metric_coordinates_and_units(fake_brain, wavy):
    from phantombench.loaders import to_xarray

    ds = store.open_dataset(fake_brain)
    xa = to_xarray(ds, 0)
    assert xa["E"].attrs["units"] == "Pa" and xa.x.attrs["units"] == "m"
    assert xa.x.values[1] - xa.x.values[0] == pytest.approx(0.001)
    assert xa.y.values[0] == pytest.approx(23 * 0.001) and xa.y.values[-1] == 0.0   # row 0 = top
    assert np.array_equal(xa["exx"].values, ds[0]["exx"])
    assert float(xa["E"].sel(x=0.008, y=0.012, method="nearest")) == ds[0]["E"][11, 8]
    w = to_xarray(wavy, 2, fields=["u_re"])
    assert list(w.data_vars) == ["u_re"] and w.y.values[0] == pytest.approx(0.011)
    with pytest.raises(ValueError, match="not a grid field"):
        to_xarray(wavy, 0, fields=["freq"])


def test_task_mode_and_xarray_on_an_eit_dataset(tmp_path):
    from torch.utils.data import DataLoader

    from phantombench.importers import import_dataset
    from phantombench.loaders import PhantomDataset, to_xarray
    from tests.test_import import R, write_ktc

    ds = import_dataset("ktc2023", write_ktc(tmp_path / "ktc"), "eit", tmp_path / "ds")
    pd = PhantomDataset(ds, split="test", task="eit")
    obs, tgt = next(iter(DataLoader(pd, batch_size=1)))
    assert json.loads(obs["config"][0]) == ds.manifest["config"]       # the acquisition, as a JSON string
    assert obs["dv"].shape == (1, 76 * 31) and obs["currents"].dtype.is_floating_point
    assert tgt["dsigma"].shape == (1, 256, 256) and not tgt["dsigma"].isnan().any()   # NaN -> nan_to = 0
    xa = to_xarray(ds, 0, fields=["dsigma", "mask"])
    dx = 2 * R / 256
    assert xa.x.values[0] == pytest.approx(-R + dx / 2) and xa.y.values[0] == pytest.approx(R - dx / 2)
    assert xa["dsigma"].attrs["units"] == "S/m"
