"""The dataset store and the CLI: atomic, resumable, verifiable, clear on bad input, same result on any cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import phantombench
from phantombench.store import DATA, MANIFEST, PARTIAL, StoreError

BIN = Path(sys.executable).parent / "phantombench"
# a coarse, quick variant of the random training distribution (same code path as the real presets)
QUICK = ["--set", "h_fine=0.0025", "--set", "h_coarse=0.006", "--set", "grid_h=36", "--set", "grid_w=26",
         "--set", "order=1"]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def soft(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "soft"
    r = cli("generate", "brain-slice", "--preset", "elunet-soft", "--n", "1", "--out", str(out), "--workers", "0")
    assert r.returncode == 0, r.stderr
    return out


def test_dataset_layout_manifest_and_card(soft):
    ds = phantombench.open_dataset(soft)
    m = ds.manifest
    assert len(ds) == 1 and m["name"] == "brain-slice/elunet-soft"
    assert m["generator"]["version"] == m["version"]
    for key in ("config", "seed", "splits", "counts", "schema", "content_hash", "samples", "provenance"):
        assert key in m
    prov = m["provenance"]
    assert prov["packages"]["dolfinx-solver-real"] and prov["packages"]["gmsh"] and prov["packages"]["numpy"]
    s = ds[0]
    assert set(s) == set(m["schema"])
    for name, spec in m["schema"].items():
        assert str(s[name].dtype) == spec["dtype"], name
        fixed = [d for d in spec["shape"] if isinstance(d, int)]
        if len(fixed) == len(spec["shape"]):
            assert list(s[name].shape) == spec["shape"], name
    q = m["samples"]["000000"]["attrs"]["mesh_quality"]
    assert q["min_angle_deg"] > 15 and q["n_cells"] == len(s["mesh_cells"])
    card = (soft / "README.md").read_text()
    assert "elunet-soft" in card and "| `exy` |" in card and "Table 1" in card
    assert not (soft / PARTIAL).exists()


def test_info_and_verify_ok(soft):
    r = cli("info", str(soft))
    assert r.returncode == 0 and "brain-slice/elunet-soft" in r.stdout and "exx" in r.stdout
    r = cli("verify", str(soft), "--regenerate", "1")
    assert r.returncode == 0, r.stderr
    assert "match their sha256" in r.stdout and "agree within" in r.stdout


def test_verify_names_the_corrupt_array(soft, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(soft, bad)
    chunk = next(p for p in (bad / DATA / "000000" / "eyy").rglob("*") if p.is_file() and p.name != "zarr.json")
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    r = cli("verify", str(bad))
    assert r.returncode == 1
    assert "000000/eyy" in r.stderr


@pytest.mark.parametrize("args, needle", [
    (["generate", "brain-slice", "--preset", "nope", "--n", "1"], "unknown preset"),
    (["generate", "no-such-gen", "--preset", "x", "--n", "1"], "unknown generator"),
    (["generate", "brain-slice", "--preset", "random", "--n", "1", "--set", "E_range=[5000, 10]"], "E_range"),
    (["generate", "brain-slice", "--preset", "random", "--n", "1", "--set", "bogus=1"], "bogus"),
    (["generate", "brain-slice", "--preset", "random", "--n", "1", "--seed", "-3"], "--seed"),
    (["generate", "brain-slice", "--preset", "random", "--n", "0"], "--n"),
])
def test_bad_input_one_line_nothing_written(tmp_path, args, needle):
    out = tmp_path / "never"
    r = cli(*args, "--out", str(out))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not out.exists()


def test_bad_paths(tmp_path, soft):
    r = cli("info", str(tmp_path / "missing"))
    assert r.returncode == 2 and "not a folder" in r.stderr
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("mine")
    r = cli("generate", "brain-slice", "--preset", "elunet-soft", "--n", "1", "--out", str(tmp_path / "junk"))
    assert r.returncode == 2 and "not empty" in r.stderr
    assert sorted(p.name for p in (tmp_path / "junk").iterdir()) == [".lock", "x.txt"] or \
        sorted(p.name for p in (tmp_path / "junk").iterdir()) == ["x.txt"]
    # the same folder asked for a different dataset
    r = cli("generate", "brain-slice", "--preset", "elunet-stiff", "--n", "1", "--out", str(soft))
    assert r.returncode == 2 and "different dataset" in r.stderr
    with pytest.raises(StoreError):
        phantombench.open_dataset(tmp_path / "junk")


def test_show_and_export(soft, tmp_path):
    import meshio

    png = tmp_path / "fig.png"
    r = cli("show", str(soft), "--sample", "0", "--out", str(png))
    assert r.returncode == 0, r.stderr
    assert png.stat().st_size > 20_000
    import pyvista as pv

    s = phantombench.open_dataset(soft)[0]
    for fmt in ("vtu", "xdmf"):       # both open in pyvista (ParaView's readers), the way users look at them
        target = tmp_path / "out" / f"s.{fmt}"
        r = cli("export", str(soft), "--sample", "0", "--format", fmt, "--out", str(target))
        assert r.returncode == 0, r.stderr
        mesh = pv.read(target)
        mesh = mesh[0] if isinstance(mesh, pv.MultiBlock) else mesh
        assert mesh.n_points == len(s["mesh_points"])
        np.testing.assert_array_equal(mesh.point_data["uy"], s["mesh_point_uy"])
        np.testing.assert_array_equal(mesh.cell_data["E"], s["mesh_cell_E"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s.h5", "s.vtu", "s.xdmf"]   # nothing staged left
    assert meshio.read(tmp_path / "out" / "s.vtu").points.shape[0] == len(s["mesh_points"])
    r = cli("show", str(soft), "--sample", "5", "--out", str(png))
    assert r.returncode == 2 and "out of range" in r.stderr


def _hashes(path: Path) -> dict:
    return {sid: rec["sha256"] for sid, rec in json.loads((path / MANIFEST).read_text())["samples"].items()}


def test_kill9_then_resume_completes_without_torn_or_duplicate_samples(tmp_path):
    out = tmp_path / "killed"
    args = ["generate", "brain-slice", "--preset", "random", "--n", "6", "--out", str(out), "--workers", "0",
            "--seed", "11", "--quiet", *QUICK]
    proc = subprocess.Popen([str(BIN), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline:
        done = list((out / DATA).glob("0*")) if (out / DATA).exists() else []
        if len(done) >= 2:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / MANIFEST).exists()
    with pytest.raises(StoreError, match="incomplete"):
        phantombench.open_dataset(out)
    n_before = len(list((out / DATA).glob("0*")))
    assert 2 <= n_before < 6
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    ds = phantombench.open_dataset(out)
    assert sorted(p.name for p in (out / DATA).iterdir() if p.is_dir()) == [f"{i:06d}" for i in range(6)]
    assert not (out / PARTIAL).exists()
    assert cli("verify", str(out)).returncode == 0
    # the resumed dataset equals one generated in one go
    ref = tmp_path / "oneshot"
    assert cli("generate", "brain-slice", "--preset", "random", "--n", "6", "--out", str(ref), "--workers", "0",
               "--seed", "11", "--quiet", *QUICK).returncode == 0
    assert _hashes(ref) == _hashes(out)
    assert ds.manifest["content_hash"] == phantombench.open_dataset(ref).manifest["content_hash"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dask_scheduler_and_worker_give_identical_samples(tmp_path):
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    dask = Path(sys.executable).parent / "dask"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sched = subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    worker = subprocess.Popen([str(dask), "worker", addr, "--nthreads", "1", "--nworkers", "2",
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        from dask.distributed import Client

        with Client(addr, timeout="30s") as c:  # both worker processes registered before we generate
            c.wait_for_workers(2, timeout=60)
        common = ["generate", "brain-slice", "--preset", "random", "--n", "4", "--seed", "5", "--quiet", *QUICK]
        r = cli(*common, "--out", str(tmp_path / "remote"), "--scheduler", addr)
        assert r.returncode == 0, r.stderr
        m = json.loads((tmp_path / "remote" / MANIFEST).read_text())
        assert m["provenance"]["scheduler"] == addr and m["provenance"]["workers"] == 2
    finally:
        worker.terminate()
        sched.terminate()
        worker.wait(30)
        sched.wait(30)
    for w in ("0", "1", "2"):
        r = cli(*common, "--out", str(tmp_path / f"w{w}"), "--workers", w)
        assert r.returncode == 0, r.stderr
    ref = _hashes(tmp_path / "w0")
    assert _hashes(tmp_path / "w1") == ref
    assert _hashes(tmp_path / "w2") == ref
    assert _hashes(tmp_path / "remote") == ref


def test_version_and_presets_table():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"phantombench {phantombench.__version__}"
    r = cli("presets", "brain-slice", "--fields")
    assert r.returncode == 0, r.stderr
    assert "elunet-stiff" in r.stdout and "E_background=5000.0" in r.stdout     # what the preset changes
    assert "traction" in r.stdout and "Pa" in r.stdout                         # a field with its description
    r = cli("presets", "eit", "--json")
    cfg = json.loads(r.stdout)
    assert r.returncode == 0 and cfg["cnn-pinn-case1"]["n_electrodes"] == 16
    r = cli("presets", "nosuch")
    assert r.returncode == 2 and "nosuch" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args, needle", [
    (["--task", "mre", "--preset", "elunet-soft"], "no official mre dataset with preset elunet-soft"),
    (["--preset", "nope"], "no official dataset with preset nope"),
])
def test_official_unknown_preset_is_one_line_and_generates_nothing(tmp_path, args, needle):
    root = tmp_path / "data"
    r = cli("official", *args, "--generate", "--root", str(root))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not root.exists()
