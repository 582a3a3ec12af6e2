"""Trust guarantees, each tested by trying to break it: a dataset identity that survives last-bit differences
but not other data; verify naming every damaged file; the sandbox hiding the data root, the board, the parent
and the network; replies from the solver that are never unpickled and are refused unread when too large."""

from __future__ import annotations

import json
import pickle
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from phantombench import fingerprint as F
from phantombench import store
from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample
from phantombench.verify import verify_dataset
from phantombench.wire import WireError, decode, encode

PB = str(Path(sys.executable).with_name("phantombench"))


class _Cfg(GeneratorConfig):
    size: int = 12
    amp: float = 2.0


class Toy(Generator):
    """Random fields from the sample's own seed, as a real generator draws them (no FEM: milliseconds)."""

    name, version, Config, presets = "toy", "1.0.0", _Cfg, {"default": {}}
    regen_rtol = 1e-8

    def schema(self, cfg):
        hw = (cfg.size, cfg.size)
        return {"a": FieldSpec(hw, "float64", "Pa", "a"), "c": FieldSpec(hw, "complex128", "m", "c"),
                "lab": FieldSpec(hw, "uint8", "", "labels")}

    def sample(self, cfg, rng, index):
        n = cfg.size
        a = cfg.amp * rng.normal(size=(n, n)) + 1e3
        c = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
        return Sample({"a": a, "c": c, "lab": (rng.random((n, n)) > 0.5).astype(np.uint8)},
                      {"load": float(rng.uniform(1, 2)), "solve_s": time.perf_counter()})   # a run fact, like FE timings


def make(root: Path, n: int = 4, seed: int = 0, sample_seeds: dict[int, int] | None = None,
         tweak=None, **cfg) -> Path:
    """A finished toy dataset; ``sample_seeds`` gives some samples another seed, ``tweak(fields)`` edits arrays."""
    gen = Toy()
    c = gen.config("default", cfg)
    plan = {"generator": gen.name, "generator_version": gen.version, "preset": "default",
            "config": c.model_dump(mode="json"), "seed": seed, "n": n}
    store.prepare(root, plan)
    for i in range(n):
        s = (sample_seeds or {}).get(i, seed)
        smp = gen.sample(c, np.random.default_rng(np.random.SeedSequence(s, spawn_key=(i,))), i)
        if tweak is not None:
            tweak(smp.fields)
        store.write_sample(root, i, smp, {})
    store.finalise(root, gen, c, plan, {"created": "test", "hardware": {}})
    return root


def _fp_on(ref_root: Path, other_root: Path) -> str:
    """Fingerprint of ``other`` on the grid anchored by ``ref`` (what an official check computes)."""
    ref, other = store.open_dataset(ref_root), store.open_dataset(other_root)
    return F.fingerprint(other.manifest, other.sketch(from_data=True), ref.manifest["fingerprint"]["anchors"])


# ------------------------------------------------------------------------------------------------ identity
def test_a_few_ulps_never_change_the_fingerprint_but_change_the_content_hash(tmp_path):
    ref = make(tmp_path / "ref")
    rng = np.random.default_rng(7)

    def ulps(fields):   # what another CPU's BLAS does: some values move by 1-4 ulps either way
        for k in ("a", "c"):
            v = fields[k].view(np.float64)
            idx = rng.random(v.shape) < 0.5
            steps = rng.integers(1, 5, v.shape)
            for _ in range(4):
                v[idx & (steps > 0)] = np.nextafter(v[idx & (steps > 0)], np.inf * np.sign(rng.normal()))
                steps -= 1

    other = make(tmp_path / "other", tweak=ulps)
    m_ref, m_other = (store.open_dataset(p).manifest for p in (ref, other))
    assert m_ref["content_hash"] != m_other["content_hash"]
    assert _fp_on(ref, other) == m_ref["fingerprint"]["value"]


def test_two_generations_with_different_timings_are_one_dataset(tmp_path):
    """Sample attributes record run facts (solve times, Newton iterations): bit-identical arrays generated twice
    must have one fingerprint, whatever those say."""
    a, b = make(tmp_path / "a"), make(tmp_path / "b")
    ma, mb = store.open_dataset(a).manifest, store.open_dataset(b).manifest
    assert ma["content_hash"] == mb["content_hash"]
    assert ma["samples"]["000000"]["attrs"]["solve_s"] != mb["samples"]["000000"]["attrs"]["solve_s"]
    assert ma["fingerprint"]["value"] == mb["fingerprint"]["value"] == _fp_on(a, b)


def test_a_value_on_a_naive_rounding_boundary_does_not_flip_the_identity():
    rtol = 1e-8
    step = F.STEP_RTOL_FACTOR * rtol              # the mean's grid step (rms = 1 sets the scale)
    mean = (12345 + 0.5) * step                   # exactly where plain rounding changes its mind
    below, above = np.nextafter(mean, -np.inf), np.nextafter(np.nextafter(mean, np.inf), np.inf)
    sk = lambda m: {"000000": {"f": [100.0, float(m), 1.0]}}  # noqa: E731
    assert round(below / step) != round(above / step)        # naive quantisation flips on two ulps
    manifest = {"regen_rtol": rtol, "generator": {"name": "g"}, "version": "1"}
    anchor = F.anchors(sk(below), rtol, F.unit_groups(manifest))
    assert F.fingerprint(manifest, sk(above), anchor) == F.fingerprint(manifest, sk(below))


def test_one_sample_with_another_seed_changes_the_fingerprint_and_is_named(tmp_path):
    from phantombench.official import OfficialDataset, OfficialError, official_fingerprint

    ref, other = make(tmp_path / "ref"), make(tmp_path / "other", sample_seeds={2: 99})
    assert _fp_on(ref, other) != store.open_dataset(ref).manifest["fingerprint"]["value"]
    od = OfficialDataset("t", "toy", "default", n=4)
    refs = {od.key: {"fingerprint": store.open_dataset(ref).manifest["fingerprint"]["value"],
                     "anchors": store.open_dataset(ref).manifest["fingerprint"]["anchors"],
                     "samples": F.sample_digests(store.open_dataset(ref).manifest,
                                                 store.open_dataset(ref).sketch(from_data=True))}}
    assert official_fingerprint(od, store.open_dataset(ref), refs) == refs[od.key]["fingerprint"]
    with pytest.raises(OfficialError, match="sample 000002 .and 0 more. differs beyond the tolerance"):
        official_fingerprint(od, store.open_dataset(other), refs)


@pytest.mark.parametrize("change", [{"seed": 1}, {"amp": 2.5}, {"n": 5}])
def test_another_seed_config_or_size_is_another_dataset(tmp_path, change):
    ref = make(tmp_path / "ref")
    n = change.pop("n", 4)
    other = make(tmp_path / "other", n=n, **change)
    fp_ref = store.open_dataset(ref).manifest["fingerprint"]["value"]
    assert store.open_dataset(other).manifest["fingerprint"]["value"] != fp_ref


# ------------------------------------------------------------------------------------------------ verify
def _edit_manifest(root: Path, fn, reseal: bool = False) -> None:
    p = root / store.MANIFEST
    m = json.loads(p.read_text())
    fn(m)
    if reseal:
        m["seal"] = store.manifest_seal(m)
    p.write_text(json.dumps(m))


def _flip(path: Path, at: int = -1) -> None:
    b = bytearray(path.read_bytes())
    b[at] ^= 0x5A
    path.write_bytes(bytes(b))


DAMAGE = {
    "sample entry removed": (lambda r: _edit_manifest(r, lambda m: m["samples"].pop("000001")),
                             "manifest.json: edited after it was written"),
    "entry removed and resealed": (lambda r: _edit_manifest(r, lambda m: m["samples"].pop("000001"), True),
                                   "manifest.json: sample entries do not match n=4"),
    "content hash changed": (lambda r: _edit_manifest(r, lambda m: m.update(content_hash="0" * 64), True),
                             "manifest.json: content_hash does not match"),
    "card edited": (lambda r: (r / "README.md").write_text("# my card\n"), "README.md: sha256 mismatch"),
    "plan edited": (lambda r: (r / "plan.json").write_text((r / "plan.json").read_text().replace('"n": 4', '"n": 3')),
                    "plan.json: disagrees with the manifest on n"),
    "root zarr metadata": (lambda r: _flip(r / "data.zarr" / "zarr.json", 2), "data.zarr/zarr.json: sha256 mismatch"),
    "chunk byte": (lambda r: _flip(next(p for p in (r / "data.zarr" / "000003" / "a" / "c").rglob("*") if p.is_file())),
                   "data.zarr/000003/a/c/"),
    "file added": (lambda r: (r / "data.zarr" / "000003" / "extra.bin").write_bytes(b"x"),
                   "data.zarr/000003/extra.bin: not written by the generator"),
}


@pytest.mark.parametrize("what", sorted(DAMAGE))
def test_verify_names_every_kind_of_damage(tmp_path, what):
    root = make(tmp_path / "ds")
    assert verify_dataset(root)[0] == []
    damage, expected = DAMAGE[what]
    damage(root)
    problems, _ = verify_dataset(root)
    assert any(p.startswith(expected) or expected in p for p in problems), problems


def test_verify_flags_an_all_nan_array(tmp_path):
    root = make(tmp_path / "ds", tweak=lambda f: f["a"].fill(np.nan))
    problems, _ = verify_dataset(root)
    assert any(p.endswith("every value is NaN or infinite") and "/a:" in p for p in problems)


@pytest.mark.parametrize("cmd", ["verify", "info"])
def test_a_manifest_that_is_an_empty_list_gives_one_line(tmp_path, cmd):
    root = make(tmp_path / "ds")
    (root / "manifest.json").write_text("[]")
    r = subprocess.run([PB, cmd, str(root)], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "manifest.json" in r.stderr and len([ln for ln in r.stderr.splitlines() if ln.strip()]) <= 2


# ------------------------------------------------------------------------------------------------ wire
def test_the_wire_format_round_trips_arrays_and_refuses_pickles_and_lies():
    msg = ["ok", 0.25, {"E": np.arange(6.0).reshape(2, 3), "u": np.ones(2, np.complex64), "n": None}]
    back = decode(encode(msg))
    assert back[1] == 0.25 and back[2]["n"] is None
    np.testing.assert_array_equal(back[2]["E"], msg[2]["E"])
    assert back[2]["u"].dtype == np.complex64
    with pytest.raises(WireError):
        encode(["ok", 0.1, {"x": np.array([object()])}])
    with pytest.raises(WireError):
        decode(pickle.dumps(["ok", 0.1, {}]))
    data = bytearray(encode(["ok", 1.0, {"E": np.zeros(4)}]))
    with pytest.raises(WireError):
        decode(bytes(data[:-8]))           # descriptor claims more bytes than sent
    with pytest.raises(WireError):
        decode(bytes(data) + b"\0" * 8)    # bytes nobody accounts for
    evil = encode(["ok", 1.0, {"E": np.zeros(1)}]).replace(b"<f8", b"|O8")
    with pytest.raises(WireError):
        decode(evil)


# ------------------------------------------------------------------------------------------------ sandbox
PROBE = textwrap.dedent("""
    import json, os, socket, sys
    data, board, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    out = {}
    def attempt(name, fn):
        try:
            fn(); out[name] = "succeeded"
        except Exception as e:
            out[name] = type(e).__name__
    attempt("read_data", lambda: open(os.path.join(data, "secret.txt")).read())
    attempt("list_data", lambda: os.listdir(data))
    attempt("write_board", lambda: open(os.path.join(board, "forged.json"), "w").write("{}"))
    attempt("connect", lambda: socket.create_connection(("127.0.0.1", port), timeout=2))
    # more than the jail's own init, this process and its shell means the harness's processes are visible
    attempt("see_processes", lambda: None if len([p for p in os.listdir("/proc") if p.isdigit()]) > 3 else 1 / 0)
    attempt("write_scratch", lambda: open(os.path.join(os.environ["PHANTOMBENCH_SCRATCH"], "ok"), "w").write("1"))
    print(json.dumps(out))
""")


def test_the_sandbox_hides_data_board_parent_and_network(tmp_path):
    from phantombench import sandbox

    assert sandbox.probe(), "bubblewrap must be installed (apt-get install bubblewrap) for the solver sandbox"
    data, board, scratch = tmp_path / "data", tmp_path / "board", tmp_path / "scratch"
    data.mkdir(), board.mkdir()
    (data / "secret.txt").write_text("truth")
    (tmp_path / "probe.py").write_text(PROBE)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0)), srv.listen()
    port = srv.getsockname()[1]
    argv = [sys.executable, str(tmp_path / "probe.py"), str(data), str(board), str(port)]
    cmd = sandbox.command(argv, scratch, [data, board], extra_read=[tmp_path / "probe.py"])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    srv.close()
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["write_scratch"] == "succeeded" and (scratch / "ok").exists()
    for k in ("read_data", "list_data", "write_board", "connect", "see_processes"):
        assert got[k] != "succeeded", (k, got)
    assert list(board.iterdir()) == []


def test_the_sandbox_refuses_a_data_root_it_would_expose(tmp_path):
    from phantombench import sandbox

    inside = sandbox.package_dirs()[0] / "data"
    with pytest.raises(sandbox.SandboxError, match="lies inside"):
        sandbox.command(["true"], tmp_path / "scratch", [inside])


def test_fit_receives_data_not_a_dataset_handle(fake_brain10):
    from phantombench.solvers.base import Cases
    from phantombench.tasks import get_task

    ds = store.open_dataset(fake_brain10)
    cases = Cases(get_task("brain-elasticity"), ds, ds.split("train"))
    assert not any(hasattr(cases, k) for k in ("dataset", "indices", "task"))
    obs, target = cases[0]
    assert isinstance(obs, dict) and set(target) == {"E", "nu"}
    assert len(cases[1:3]) == 2 and cases.sources[0].startswith("brain-slice/synthetic@")


def _brain(root: Path, tweak=None) -> Path:
    """The synthetic brain dataset of the harness tests, optionally with its arrays edited before writing."""
    from tests.bench_helpers import FakeBrain

    gen = FakeBrain()
    c = gen.config("synthetic", {})
    plan = {"generator": gen.name, "generator_version": gen.version, "preset": "synthetic",
            "config": c.model_dump(mode="json"), "seed": 0, "n": 3}
    store.prepare(root, plan)
    for i in range(3):
        smp = gen.sample(c, None, i)
        if tweak is not None:
            tweak(smp.fields)
        store.write_sample(root, i, smp, {})
    store.finalise(root, gen, c, plan, {"created": "test", "hardware": {}})
    return root


def test_the_memoised_data_sketch_follows_every_byte_and_never_the_manifest(tmp_path, monkeypatch):
    import zarr

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = tmp_path / "cache" / "phantombench" / "sketch"
    root = make(tmp_path / "ds")
    first = store.open_dataset(root).sketch(from_data=True)
    assert len(list(cache.glob("*.json"))) == 1

    def no_reading(*a, **k):
        raise AssertionError("arrays decoded although the bytes are unchanged")

    with monkeypatch.context() as m:            # same bytes: the memo answers, nothing is decoded
        m.setattr(store, "read_sample", no_reading)
        assert store.open_dataset(root).sketch(from_data=True) == first
    # a lie in the manifest's own sketches changes nothing: they are not read on this path
    man = json.loads((root / store.MANIFEST).read_text())
    man["samples"]["000002"]["sketch"] = {k: [0.0] * len(v) for k, v in man["samples"]["000002"]["sketch"].items()}
    (root / store.MANIFEST).write_text(json.dumps(man))
    assert store.open_dataset(root).sketch(from_data=True) == first
    # one changed value on disk: a new key, recomputed from the arrays
    zarr.open_group(str(root / "data.zarr" / "000001"), mode="r+")["a"][0, 0] = 5e3
    second = store.open_dataset(root).sketch(from_data=True)
    assert second["000001"]["a"] != first["000001"]["a"] and second["000000"] == first["000000"]
    assert len(list(cache.glob("*.json"))) == 2
    # a damaged memo is not believed
    for f in cache.glob("*.json"):
        f.write_text("{broken")
    assert store.open_dataset(root).sketch(from_data=True) == second


def test_a_regeneration_on_another_machine_lands_in_the_same_board_row(tmp_path):
    from phantombench.evaluate import evaluate
    from phantombench.leaderboard import add_evaluations, load_records
    from phantombench.official import OfficialDataset, official_fingerprint

    def last_bits(fields):   # another CPU: every strain a few ulps off
        for k in ("exx", "eyy", "ux", "uy"):
            fields[k] = np.nextafter(np.nextafter(fields[k], np.inf), np.inf)

    a, b = _brain(tmp_path / "a"), _brain(tmp_path / "b", tweak=last_bits)
    da, db = store.open_dataset(a), store.open_dataset(b)
    assert da.manifest["content_hash"] != db.manifest["content_hash"]
    od = OfficialDataset("brain-elasticity", "brain-slice", "synthetic", n=3)
    sk = da.sketch(from_data=True)
    anchor = F.anchors(sk, da.manifest["regen_rtol"], F.unit_groups(da.manifest))
    refs = {od.key: {"fingerprint": F.fingerprint(da.manifest, sk, anchor), "anchors": anchor}}
    board = tmp_path / "board"
    for ds in (da, db):
        fp = official_fingerprint(od, ds, refs)
        ev = evaluate("constant", "brain-elasticity", ds, fingerprint=fp, out_dir=tmp_path / ds.path.name)
        add_evaluations(board, [ev])
    (rec,) = load_records(board)
    assert rec["dataset"]["fingerprint"] == refs[od.key]["fingerprint"]
    assert rec["dataset"]["content_hash"] == db.manifest["content_hash"]
    assert rec["replaces"]["runs"] == 2 and rec["replaces"]["content_hash"] == da.manifest["content_hash"]
    assert "earlier run" in (board / "README.md").read_text() and "2 runs" in (board / "README.md").read_text()


def test_the_verified_tier_needs_the_secret_and_its_data_are_not_the_public_ones(tmp_path, monkeypatch):
    """The maintainers' procedure with a test secret: generate, pin (no seed, no content hash committed),
    check; without the secret nobody can generate it, and the public seed gives other data."""
    from phantombench import official as off

    public = off.OfficialDataset("brain-elasticity", "brain-slice", "random", n=1, seed=0)
    verified = off.OfficialDataset("brain-elasticity", "brain-slice", "random", n=1, version="v1-verified",
                                   tier="verified")
    monkeypatch.delenv(off.SECRET_ENV, raising=False)
    with pytest.raises(off.OfficialError, match="maintainers' secret"):
        off.ensure(verified, tmp_path)
    assert not (tmp_path / "brain-slice" / "random" / "v1-verified").exists()
    monkeypatch.setenv(off.SECRET_ENV, "test-secret-not-the-real-one")
    seed = off.seed_for(verified)
    assert seed != public.seed and seed == off.seed_for(verified)      # deterministic from the secret
    ds_v, ds_p = off.ensure(verified, tmp_path), off.ensure(public, tmp_path)
    refs_path = tmp_path / "references.json"
    refs = off.pin([verified], tmp_path, refs_path)
    entry = refs[verified.key]
    assert entry["tier"] == "verified" and entry["content_hash"] is None and "seed" not in json.dumps(entry)
    assert off.official_fingerprint(verified, ds_v, refs) == entry["fingerprint"]
    assert ds_v.manifest["content_hash"] != ds_p.manifest["content_hash"]   # the public seed does not give it
    monkeypatch.setenv(off.SECRET_ENV, "a-guess")
    assert off.seed_for(verified) != seed


@pytest.mark.parametrize("content", ["[]", '{"id": "x"', ""])
def test_a_damaged_record_is_named_and_the_board_is_not_half_written(tmp_path, content):
    from tests.bench_helpers import tree_digest

    board = tmp_path / "board"
    bad = board / "records" / "brain-elasticity" / "broken.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(content)
    before = tree_digest(board)
    r = subprocess.run([PB, "leaderboard", "--board", str(board)], capture_output=True, text=True)
    assert r.returncode == 2 and "broken.json" in r.stderr and "Traceback" not in r.stderr
    assert tree_digest(board) == before
    r = subprocess.run([PB, "leaderboard", "--board", str(board), "--remove", "broken"], capture_output=True, text=True)
    assert r.returncode == 0 and not bad.exists()
