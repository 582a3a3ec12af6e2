"""Fault tolerance: bad input is one line on stderr, exit 2 and nothing written; a killed generation resumes;
hostile solvers (tests/hostile_solvers.py) are rejected or score like a blind guess, and a rejected submission
leaves the board byte-identical."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import ValidationError

import phantombench
from phantombench.evaluate import EvaluationError, evaluate
from phantombench.generators.base import GeneratorConfig
from tests import hostile_solvers as H
from tests.bench_helpers import make_brain_dataset, tree_digest

HOSTILE = Path(H.__file__).resolve()

BIN = Path(sys.executable).parent / "phantombench"
TASK = "brain-elasticity"
MAIN = "MARE_E"            # the task's main metric (lower is better)
# a coarse, quick variant of the random brain-slice distribution (the same code path as the real presets)
QUICK = {"h_fine": 0.0025, "h_coarse": 0.006, "grid_h": 36, "grid_w": 26, "order": 1}
QUICK_SETS = [a for k, v in QUICK.items() for a in ("--set", f"{k}={v}")]


def cli(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real command line in a fresh process."""
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def invoke(*args: str) -> SimpleNamespace:
    """The same command line in this process (for checks that end before any work starts: no import cost)."""
    from typer.testing import CliRunner

    from phantombench.cli import app

    r = CliRunner().invoke(app, list(args))
    return SimpleNamespace(returncode=r.exit_code, stderr=r.stderr, stdout=r.stdout)


def verified(path: Path) -> list[str]:
    from phantombench.verify import verify_dataset

    return verify_dataset(path)[0]


def one_error_line(r, needle: str, code: int = 2) -> None:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert len(lines) == 1 and needle in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


# =========================================================================================== bad input
def test_out_pointing_at_a_file_is_refused(tmp_path):
    f = tmp_path / "afile"
    f.write_text("mine")
    r = invoke("generate", "brain-slice", "--preset", "random", "--n", "1", "--out", str(f), "-q")
    one_error_line(r, "is a file")
    assert f.read_text() == "mine"
    r = invoke("generate", "brain-slice", "--preset", "random", "--n", "1", "--out", str(f / "sub"), "-q")
    one_error_line(r, "is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_unreachable_scheduler_fails_fast_in_one_line(tmp_path):
    with socket.socket() as s:          # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "never"
    t0 = time.perf_counter()
    r = cli("generate", "brain-slice", "--preset", "random", "--n", "1", "--out", str(out), "-q",
            "--scheduler", f"tcp://127.0.0.1:{port}")
    assert time.perf_counter() - t0 < 30
    one_error_line(r, "cannot reach the dask scheduler")
    assert not out.exists()
    r = cli("generate", "brain-slice", "--preset", "random", "--n", "1", "--out", str(out), "-q",
            "--scheduler", "not-an-address")
    one_error_line(r, "not an address")


@pytest.mark.parametrize("gen, preset, setting", [
    ("eit", "cnn-pinn-case1", "radius=Infinity"),
    ("brain-slice", "elunet-soft", "traction=Infinity"),
    ("brain-slice", "elunet-soft", "traction=nan"),
    ("brain-slice", "elunet-soft", "E_background=-Infinity"),
    ("brain-slice", "random", "E_range=[500, Infinity]"),
    ("eit", "cnn-pinn-case1", "margin=NaN"),
])
def test_non_finite_config_values_are_refused(tmp_path, gen, preset, setting):
    out = tmp_path / "never"
    r = invoke("generate", gen, "--preset", preset, "--n", "1", "--out", str(out), "-q", "--set", setting)
    one_error_line(r, "finite")
    assert setting.split("=")[0] in r.stderr
    assert not out.exists()


def test_every_config_rejects_non_finite_values_anywhere():
    class Cfg(GeneratorConfig):
        x: float = 1.0
        pair: tuple[float, float] = (0.0, 1.0)
        free: dict = {}

    for bad in ({"x": math.inf}, {"x": "nan"}, {"pair": (0.0, -math.inf)}, {"free": {"a": [1.0, math.nan]}}):
        with pytest.raises(ValidationError, match="finite"):
            Cfg(**bad)
    assert Cfg(free={"a": [1.0, 2.0]}).free == {"a": [1.0, 2.0]}


def test_n_is_bounded_before_anything_is_planned(tmp_path):
    out = tmp_path / "never"
    t0 = time.perf_counter()
    r = invoke("generate", "brain-slice", "--preset", "random", "--n", "1000000000", "--out", str(out), "-q")
    assert time.perf_counter() - t0 < 30
    one_error_line(r, "--n must be an integer in [1, 1,000,000]")
    assert not out.exists()


@pytest.fixture(scope="module")
def fake(fake_brain) -> Path:
    return fake_brain


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_evaluate_limit_must_be_positive(fake, tmp_path, limit):
    r = invoke("evaluate", "constant", "-t", TASK, "-d", str(fake), "--limit", limit, "-q", "--out", str(tmp_path / "o"))
    one_error_line(r, "--limit must be at least 1")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda:x", "cpu0"])
def test_unknown_device_is_refused(fake, tmp_path, device):
    r = invoke("evaluate", "constant", "-t", TASK, "-d", str(fake), "--device", device, "-q", "--out", str(tmp_path / "o"))
    one_error_line(r, "--device must be auto, cpu, cuda or cuda:N")
    assert not (tmp_path / "o").exists()
    board = tmp_path / "board"
    r = invoke("submit", "constant", "-t", TASK, "--device", device, "--board", str(board), "--data", str(tmp_path / "d"))
    one_error_line(r, "--device must be")
    assert not board.exists() and not (tmp_path / "d").exists()


def test_folder_with_a_plan_but_no_data_zarr_resumes(tmp_path):
    """A kill after plan.json is written and before data.zarr exists leaves a folder the same command finishes."""
    from phantombench import runner

    out = tmp_path / "torn"
    out.mkdir()
    _, _, plan = runner.resolve("brain-slice", "random", QUICK, 1, 3)
    (out / "plan.json").write_text(json.dumps(plan))
    (out / ".lock").touch()
    r = cli("generate", "brain-slice", "--preset", "random", "--n", "1", "--seed", "3", "--out", str(out),
            "--workers", "0", "-q", *QUICK_SETS)
    assert r.returncode == 0, r.stderr
    assert verified(out) == []


def test_kill_in_the_first_second_then_resume(tmp_path):
    """SIGKILL at 0.4 s and 1.2 s after the start, and the moment plan.json appears; the same command then
    finishes a valid dataset."""
    args = ["generate", "brain-slice", "--preset", "random", "--n", "1", "--seed", "4", "--workers", "0", "-q",
            *QUICK_SETS]
    for k, delay in enumerate((0.4, 1.2, "plan")):
        out = tmp_path / f"k{k}"
        proc = subprocess.Popen([str(BIN), *args, "--out", str(out)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if delay == "plan":
            t0 = time.perf_counter()
            while not (out / "plan.json").exists() and proc.poll() is None and time.perf_counter() - t0 < 60:
                time.sleep(0.001)
        else:
            time.sleep(delay)
        proc.kill()
        proc.wait()
        r = cli(*args, "--out", str(out))
        assert r.returncode == 0, (delay, r.stderr)
        assert verified(out) == [], delay


# =========================================================================================== hostile solvers
@pytest.fixture()
def arena(tmp_path, monkeypatch) -> Path:
    """A working folder holding a small dataset (data/ds) -- the solver process starts from here."""
    make_brain_dataset(tmp_path / "data" / "ds", n=3)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def blind(fake) -> float:
    """The constant baseline's main metric on the fake test split: what a blind guess scores."""
    return evaluate("constant", TASK, fake).record["metrics"][MAIN]["mean"]


def scored(spec: str, ds: Path, **kw) -> dict | None:
    """The record of an evaluation, or None when the harness refused the solver outright."""
    try:
        return evaluate(spec, TASK, ds, **kw).record
    except EvaluationError:
        return None


def assert_blind(record: dict | None, blind: float, what: str) -> None:
    """Rejected, every case failed, or a main metric no better than the blind guess (1 % slack)."""
    if record is None or record["cases"]["ok"] == 0:
        return
    got = record["metrics"][MAIN]["mean"]
    assert got >= 0.99 * blind, f"{what} beat the blind guess: {MAIN} {got:.4g} < constant {blind:.4g}"


def test_the_attacks_work_without_the_defences(arena, tmp_path):
    """Unconfined and handed a dataset handle, the snooping solvers do reach the truth: the defence tests
    below are meaningful."""
    from types import SimpleNamespace

    from phantombench.tasks import get_task

    ds = phantombench.open_dataset(arena / "data" / "ds")
    (test_i,) = ds.split("test")
    key = H.obs_key(ds[test_i])
    assert key in H.steal_truth(("E", "nu"))                      # (a): walking from the working folder
    peeker = H.FitPeeker(get_task(TASK))
    handle = SimpleNamespace(dataset=ds)                           # (c): a split that is a dataset handle
    peeker.fit(handle, handle)
    assert key in peeker.stolen
    copy = tmp_path / "copy"
    shutil.copytree(arena / "data", copy)
    os.chdir(copy)
    H.TruthRewriter(get_task(TASK))                                # (b): a writable data folder
    assert np.all(phantombench.open_dataset(copy / "ds")[test_i]["E"] == H.TruthRewriter.VALUES["E"])


def test_truth_from_disk_scores_like_a_blind_guess(arena, tmp_path, blind):
    r = cli("evaluate", f"{HOSTILE}:TruthFromDisk", "-t", TASK, "-d", "data/ds", "-q", "--out",
            str(tmp_path / "o"), cwd=arena, timeout=300)
    rec = json.loads((tmp_path / "o" / "record.json").read_text()) if r.returncode == 0 else None
    assert rec is not None or r.returncode in (1, 2), r.stderr[-2000:]
    assert_blind(rec, blind, "truth-from-disk")


def test_truth_rewriter_changes_nothing_and_scores_blind(arena, blind):
    ds = arena / "data" / "ds"
    before = tree_digest(ds)
    rec = scored(f"{HOSTILE}:TruthRewriter", ds)
    assert tree_digest(ds) == before, "the solver rewrote dataset files"
    assert not np.all(phantombench.open_dataset(ds)[2]["E"] == H.TruthRewriter.VALUES["E"])
    assert_blind(rec, blind, "truth-rewriter")


def test_fit_peeker_cannot_reach_the_test_truth(arena, blind):
    rec = scored(f"{HOSTILE}:FitPeeker", arena / "data" / "ds")
    assert rec is None or rec["solver"]["has_fit"] is True
    assert_blind(rec, blind, "fit-peeker")


def test_board_forger_leaves_the_board_unchanged(arena, fake):
    board = arena / "leaderboard"
    _seed_board(board, fake)
    before = tree_digest(board)
    rec = scored(f"{HOSTILE}:BoardForger", arena / "data" / "ds")
    assert rec is None or rec["cases"]["ok"] == 0
    assert tree_digest(board) == before, "the solver process wrote into the board"


def test_network_accomplice_is_unreachable(arena, blind):
    ds = phantombench.open_dataset(arena / "data" / "ds")
    table = {H.obs_key(ds[i]): {"E": ds[i]["E"], "nu": ds[i]["nu"]} for i in range(len(ds))}
    port, hits, stop = H.serve_table(table)
    try:
        rec = scored(f"{HOSTILE}:NetworkCheat", arena / "data" / "ds", params={"port": port})
    finally:
        stop()
    assert hits[0] == 0, "the solver process opened a TCP connection to the harness's host"
    assert_blind(rec, blind, "network")


def test_huge_output_is_refused_unread(fake, tmp_path):
    """A 1.2 GB prediction fails its case; the harness process never holds it (peak RSS well below)."""
    # peak RSS of this interpreter from /proc (VmHWM): getrusage's ru_maxrss also carries over the peak of the
    # process that forked it (Linux keeps it across exec), which is the whole test session's when run in a suite
    code = ("import json, re, sys\n"
            "from phantombench.evaluate import evaluate\n"
            f"ev = evaluate({str(HOSTILE) + ':HugeOutput'!r}, {TASK!r}, {str(fake)!r})\n"
            "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
            "print(json.dumps({'rss_mb': hwm / 1024, 'failures': ev.record['cases']['failures']}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(got["failures"]) == 1, got
    assert got["rss_mb"] < 900, f"harness peak RSS {got['rss_mb']:.0f} MB: it read the 1.2 GB reply"


def test_regenerator_wins_on_public_seeds_and_loses_on_the_verified_tier(tmp_path, monkeypatch):
    """Public seeds can be regenerated (the attack works: self-reported tier); a secret seed defeats it."""
    from phantombench import official, runner

    od = official.OfficialDataset(TASK, "brain-slice", "random", n=1, overrides=QUICK, tier="verified")
    monkeypatch.setenv(official.SECRET_ENV, "fault-tolerance-test-secret")
    secret_seed = official.seed_for(od)
    params = {"generator": "brain-slice", "preset": "random", "seed": 5, "n": 1, "overrides": json.dumps(QUICK)}
    results = {}
    for tier, seed in (("public", 5), ("verified", secret_seed)):
        ds = tmp_path / tier
        runner.generate("brain-slice", "random", 1, ds, seed, QUICK, workers=0)
        rec = scored(f"{HOSTILE}:Regenerator", ds, params=params)
        results[tier] = (rec, evaluate("constant", TASK, ds).record["metrics"][MAIN]["mean"])
    rec, _ = results["public"]
    assert rec is not None and rec["metrics"][MAIN]["mean"] < 1e-6      # the public tier is self-reported
    assert_blind(*results["verified"], "regenerator on the verified tier")


# =========================================================================================== submit
def _seed_board(board: Path, fake: Path) -> None:
    """A board with one constant record (a template for the forger) and its rendered pages."""
    from phantombench.leaderboard import add_evaluations

    ev = evaluate("constant", TASK, fake, out_dir=board.parent / "constant-run")
    add_evaluations(board, [ev])


@pytest.fixture(scope="module")
def official_arena(tmp_path_factory) -> Path:
    """data/ with the official elunet-soft dataset and leaderboard/ holding the constant baseline's record."""
    from phantombench.submit import submit

    root = tmp_path_factory.mktemp("official")
    submit("constant", TASK, board=root / "leaderboard", data_root=root / "data", presets=["elunet-soft"], workers=0)
    return root


@pytest.mark.parametrize("cls, reason", [("BoardForger", "board forger"), ("HugeOutput", "refused unread")])
def test_rejected_submission_leaves_the_board_byte_identical(official_arena, tmp_path, monkeypatch, cls, reason):
    from phantombench.submit import SubmitError, submit

    work = tmp_path / "w"
    shutil.copytree(official_arena / "leaderboard", work / "leaderboard")
    (work / "data").symlink_to(official_arena / "data")
    monkeypatch.chdir(work)
    before = tree_digest(work / "leaderboard")
    with pytest.raises(SubmitError, match=f"rejected: .*{reason}"):
        submit(f"{HOSTILE}:{cls}", TASK, board=work / "leaderboard", data_root=work / "data",
               presets=["elunet-soft"])
    assert tree_digest(work / "leaderboard") == before


def test_accepted_cheat_adds_only_its_own_record_and_scores_blind(official_arena, tmp_path, monkeypatch):
    from phantombench.leaderboard import load_records
    from phantombench.submit import SubmitError, submit

    work = tmp_path / "w"
    shutil.copytree(official_arena / "leaderboard", work / "leaderboard")
    (work / "data").symlink_to(official_arena / "data")
    monkeypatch.chdir(work)
    before = tree_digest(work / "leaderboard")
    base = [r for r in load_records(work / "leaderboard") if r["solver"]["name"] == "constant"]
    try:
        evs = submit(f"{HOSTILE}:TruthFromDisk", TASK, board=work / "leaderboard", data_root=work / "data",
                     presets=["elunet-soft"])
    except SubmitError:
        assert tree_digest(work / "leaderboard") == before
        return
    after = tree_digest(work / "leaderboard")
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    rid = evs[0].record["id"]
    assert changed <= {"README.md", "index.html"} | {k for k in after if rid in k}, changed
    assert_blind(evs[0].record, base[0]["metrics"][MAIN]["mean"], "truth-from-disk via submit")
