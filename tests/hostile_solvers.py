"""Hostile solvers: each tries to win without solving, the way a dishonest submission would.

Loaded as ``tests/hostile_solvers.py:Class`` by the fault-tolerance tests and ``scripts/campaign.py``. Every one
falls back to the :class:`Constant` baseline when its trick fails, so "the defence held" reads as "it scored
like a blind guess" (or the harness rejected it). Each class docstring says what it attempts and which defence
should beat it.

Safety: the solvers that write (the truth rewriter, the board forger) only ever touch folders inside the
system temporary directory, so running them unconfined (no sandbox on this machine) can damage a test's
scratch data at worst, never a real dataset or the repository's leaderboard.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import pickle
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from phantombench.solvers.constant import Constant

WALK_DEPTH = 6            # how deep the solvers look for dataset folders below each starting point
WALK_BUDGET_S = 4.0       # and for how long in all
KEY_FIELDS = ("exx", "dv", "u")   # an observation array that identifies a case (brain, EIT, MRE)


# =========================================================================================== shared tricks
def obs_key(arrays: dict[str, Any]) -> str | None:
    """A digest identifying a case from its observation (or from a stored sample holding the same field)."""
    for name in KEY_FIELDS:
        if name in arrays and arrays[name] is not None:
            a = np.ascontiguousarray(np.asarray(arrays[name]))
            return hashlib.sha256(a.astype(np.complex128 if a.dtype.kind == "c" else np.float64).tobytes()).hexdigest()
    return None


def in_temp(path: Path) -> bool:
    """True for folders inside the system temporary directory: the only place the writing solvers touch."""
    tmp = Path(tempfile.gettempdir()).resolve()
    try:
        return tmp in Path(path).resolve().parents
    except OSError:
        return False


def _proc_chain() -> list[int]:
    """This process's ancestors (parent first), read from /proc."""
    chain, pid = [], os.getppid()
    while pid > 1 and len(chain) < 8:
        chain.append(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return chain


def starting_points(wide: bool = True) -> list[Path]:
    """Where a snooping solver looks, most promising first: its own working folder, its ancestors' working
    folders and the paths in their command lines (relative ones taken from their working folder), their
    environments and open files, its own environment, and (``wide``) home and the temporary directory."""
    first: list[Path] = [Path.cwd()]
    found: list[Path] = []

    def add(s: str, base: Path, into: list[Path]) -> None:
        for part in s.replace("=", " ").split():
            if part.startswith("-") or len(part) > 4096:
                continue
            into.append(base / part)   # (an absolute part replaces base)

    for pid in _proc_chain():
        proc = Path(f"/proc/{pid}")
        try:
            cwd = Path(os.readlink(proc / "cwd"))
            first.append(cwd)
            for arg in (proc / "cmdline").read_bytes().split(b"\0")[1:]:
                add(arg.decode(errors="ignore"), cwd, first)
            for var in (proc / "environ").read_bytes().split(b"\0"):
                add(var.decode(errors="ignore"), cwd, found)
            for fd in (proc / "fd").iterdir():
                add(os.readlink(fd), cwd, found)
        except OSError:
            continue
    for v in os.environ.values():
        add(v, Path.cwd(), found)
    if wide:
        found += [Path.home(), Path(tempfile.gettempdir())]
    out, seen = [], set()
    for p in first + found:
        for q in (p, *p.parents[: 3 if wide else 0]):
            try:
                q = q.resolve()
                ok = q not in seen and q.is_dir() and q != Path("/")
            except OSError:
                continue
            if ok:
                seen.add(q)
                out.append(q)
    return out


SKIP_DIRS = {"proc", "sys", "node_modules", "site-packages", "__pycache__", "venv", "lib", "lib64", "include",
             "share", "bin"}


def find_folders(marker: str, also: str, deadline: float, wide: bool = True) -> list[Path]:
    """Folders holding both ``marker`` and ``also`` (e.g. manifest.json and data.zarr) near the starting points."""
    hits: list[Path] = []
    for root in starting_points(wide):
        for dirpath, dirnames, filenames in os.walk(root):
            if time.monotonic() > deadline:
                return hits
            depth = len(Path(dirpath).relative_to(root).parts)
            if depth >= WALK_DEPTH:
                dirnames[:] = []
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS
                           and not d.endswith(".zarr")]
            if marker in filenames and also in set(dirnames) | set(filenames) | set(os.listdir(dirpath)):
                p = Path(dirpath).resolve()
                if p not in hits:
                    hits.append(p)
    return hits


def find_datasets(budget_s: float = WALK_BUDGET_S, wide: bool = True) -> list[Path]:
    return find_folders("manifest.json", "data.zarr", time.monotonic() + budget_s, wide)


def read_samples(ds: Path, names: tuple[str, ...], deadline: float = float("inf")) -> dict[str, dict[str, np.ndarray]]:
    """case key -> {name: stored array} for every sample of a dataset folder (zarr read directly)."""
    import zarr

    out = {}
    for sdir in sorted((ds / "data.zarr").iterdir()):
        if time.monotonic() > deadline:
            break
        if not (sdir / "zarr.json").exists():
            continue
        try:
            g = zarr.open_group(str(sdir), mode="r")
            arrays = {k: np.asarray(g[k][...]) for k in (*KEY_FIELDS, *names) if k in g}
        except Exception:  # noqa: BLE001 - a damaged or foreign folder: skip it
            continue
        key = obs_key(arrays)
        if key is not None:
            out[key] = {k: arrays[k] for k in names if k in arrays}
    return out


def steal_truth(prediction_names: tuple[str, ...]) -> dict[str, dict[str, np.ndarray]]:
    """Every stored truth this process can reach on disk, keyed by case."""
    table: dict[str, dict[str, np.ndarray]] = {}
    deadline = time.monotonic() + 4 * WALK_BUDGET_S
    for ds in find_datasets():
        for key, fields in read_samples(ds, prediction_names, deadline).items():
            if set(prediction_names) <= set(fields):
                table[key] = fields
    return table


class _Cheat(Constant):
    """Base: answer from a table of stolen truths (case key -> fields), else the constant blind guess."""

    version = "0"
    time_budget_s = 30.0

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.stolen: dict[str, dict[str, np.ndarray]] = {}
        self.hits = 0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.task.predictions)

    def solve(self, observation):
        hit = self.stolen.get(obs_key(observation))
        if hit is not None and all(n in hit for n in self.names):
            self.hits += 1
            return {n: np.asarray(hit[n], dtype=np.float64).copy() for n in self.names}
        return super().solve(observation)


# =========================================================================================== (a) .. (g)
class TruthFromDisk(_Cheat):
    """(a) Finds the data root -- the harness's command line (``/proc/<ppid>/cmdline``), its working folder,
    environment and open files, its own working folder, home, the temporary directory, walking down to every
    ``manifest.json`` -- matches the observation against the stored samples and returns the stored truth.
    Beaten by the sandbox: the solver sees neither the harness process nor the data root."""

    name = "hostile-truth-from-disk"

    def solve(self, observation):
        if not self.stolen:
            self.stolen = steal_truth(self.names)
        return super().solve(observation)


class TruthRewriter(_Cheat):
    """(b) On construction overwrites the truth arrays of every dataset it can reach (zarr chunks, through
    zarr so the files stay well formed) with a constant, then predicts that constant everywhere.
    Beaten by the sandbox (the data root is not mounted, let alone writable); the dataset's hashes
    (``verify``) would name every rewritten chunk."""

    name = "hostile-truth-rewriter"
    VALUES = {"E": 1234.0, "nu": 0.3, "dsigma": 0.0, "abs_G": 2000.0, "phi": 0.3}

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        import zarr

        self.rewritten = 0
        for ds in find_datasets(wide=False):   # only near the harness (its command line, its folder)
            if not in_temp(ds):
                continue
            for sdir in sorted((ds / "data.zarr").iterdir()):
                try:
                    g = zarr.open_group(str(sdir), mode="r+")
                    for n in self.names:
                        if n in g:
                            g[n][...] = self.VALUES.get(n, 1.0)
                            self.rewritten += 1
                except Exception:  # noqa: BLE001 - read-only or foreign: keep going
                    continue

    def solve(self, observation):
        shape = np.shape(observation["mask"])
        return {n: np.full(shape, self.VALUES.get(n, 1.0)) for n in self.names}


class FitPeeker(_Cheat):
    """(c) In ``fit`` tries to reach the test split's truth through what it was handed: ``train.dataset``,
    ``train.sources`` and every attribute that looks like a path or a dataset, then every object in its
    process (``gc.get_objects()``) and the callers' frames (``sys._getframe``) for dataset handles or paths.
    Beaten by ``fit`` receiving data (plain (observation, target) pairs), not a dataset handle."""

    name = "hostile-fit-peeker"
    fit_budget_s = 30.0

    def fit(self, train, val):
        folders: set[Path] = set()
        for cases in (train, val):
            for attr in ("dataset", "ds", "path", "root", "sources", "indices", "__dict__"):
                self._collect(getattr(cases, attr, None), folders, depth=0)
        for obj in gc.get_objects():
            if _looks_like_dataset(obj):
                self._collect(vars(obj)["path"], folders, depth=0)
        f = sys._getframe()
        while f is not None:
            for v in list(f.f_locals.values()):
                self._collect(v, folders, depth=1)
            f = f.f_back
        for ds in folders:
            for key, fields in read_samples(ds, self.names).items():
                if set(self.names) <= set(fields):
                    self.stolen[key] = fields

    def _collect(self, v: Any, folders: set[Path], depth: int) -> None:
        if depth > 2 or v is None:
            return
        if isinstance(v, (str, os.PathLike)) and len(str(v)) < 4096:
            for cand in (str(v), str(v).split("@")[0]):
                p = Path(cand)
                try:
                    if p.is_absolute() and (p / "manifest.json").is_file():
                        folders.add(p.resolve())
                except OSError:
                    pass
        elif _looks_like_dataset(v):
            self._collect(vars(v)["path"], folders, depth + 1)
        elif isinstance(v, dict):
            for x in list(v.values())[:200]:
                self._collect(x, folders, depth + 1)
        elif isinstance(v, (list, tuple)):
            for x in list(v)[:200]:
                self._collect(x, folders, depth + 1)


def _looks_like_dataset(obj: Any) -> bool:
    """A dataset handle (``manifest`` and ``path`` in its instance dict; no attribute magic triggered)."""
    try:
        d = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return False
    return isinstance(d, dict) and "manifest" in d and "path" in d


class BoardForger(Constant):
    """(d) Writes a record JSON claiming a perfect score into ``<board>/records/<task>/`` of every board it
    finds (``--board`` in the harness's command line, ``./leaderboard``, folders with ``records/``), re-renders
    the pages with :func:`phantombench.leaderboard.render`, then raises so the submission is rejected.
    Beaten by the sandbox (the board is not mounted) and parent-only board writes."""

    name = "hostile-board-forger"
    version = "0"
    time_budget_s = 30.0

    def solve(self, observation):
        from phantombench.leaderboard import render

        boards = find_folders("README.md", "records", time.monotonic() + WALK_BUDGET_S, wide=False)
        forged = 0
        for board in boards:
            if not in_temp(board) or not (board / "index.html").exists():
                continue
            target = board / "records" / self.task.name
            target.mkdir(parents=True, exist_ok=True)
            template = next(iter(sorted(target.glob("*.json"))), None)
            rec = json.loads(template.read_text()) if template else {}
            if not rec:
                continue
            rec["id"] = f"{self.task.name}__forged@9.9.9__{rec['id'].split('__', 2)[-1]}"
            rec["solver"] = {**rec.get("solver", {}), "name": "forged", "version": "9.9.9"}
            for st in rec.get("metrics", {}).values():
                if isinstance(st, dict) and st.get("mean") is not None:
                    st["mean"] = 0.0 if st.get("direction") == "lower" else 1.0
            (target / f"{rec['id']}.json").write_text(json.dumps(rec, indent=2))
            render(board)
            forged += 1
        raise RuntimeError(f"board forger: forged {forged} board(s), now failing on purpose")


class NetworkCheat(_Cheat):
    """(e) Opens a TCP connection to an accomplice (``--param port=P`` on 127.0.0.1, the harness's host) and
    receives a table of truths from it; returns a perfect prediction only when that worked.
    Beaten by the sandbox's empty network namespace (only its own loopback)."""

    name = "hostile-network"
    defaults = {**Constant.defaults, "port": 0, "host": "127.0.0.1"}

    def solve(self, observation):
        if not self.stolen and int(self.params["port"] or 0) > 0:
            self.stolen = fetch_table(str(self.params["host"]), int(self.params["port"]))
        return super().solve(observation)


def fetch_table(host: str, port: int, timeout: float = 2.0) -> dict:
    """The accomplice protocol: connect, read an 8-byte length and a pickled table."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            buf = b""
            while len(buf) < 8 or len(buf) < 8 + struct.unpack("<Q", buf[:8])[0]:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
            return pickle.loads(buf[8:]) if len(buf) > 8 else {}
    except (OSError, pickle.UnpicklingError, EOFError):
        return {}


def serve_table(table: dict, ready: Any = None) -> tuple[int, list[int], Any]:
    """Start an accomplice on 127.0.0.1 (a thread) handing ``table`` to whoever connects.

    Returns (port, connection counter list, stop function)."""
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    hits = [0]
    payload = pickle.dumps(table)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            hits[0] += 1
            with conn:
                conn.sendall(struct.pack("<Q", len(payload)) + payload)
        srv.close()

    threading.Thread(target=loop, daemon=True).start()

    def close():
        stop.set()

    return srv.getsockname()[1], hits, close


class HugeOutput(Constant):
    """(f) Returns a 1.2 GB prediction array, hoping the harness reads it into memory (or runs out of it).
    Beaten by the harness refusing a reply larger than the task's declared prediction size before reading it."""

    name = "hostile-huge-output"
    version = "0"
    time_budget_s = 60.0
    BYTES = 1_200_000_000

    def solve(self, observation):
        out = super().solve(observation)
        first = self.task.predictions[0].name
        out[first] = np.zeros(self.BYTES // 8, dtype=np.float64)   # lazily zeroed: cheap until sent
        return out


class Regenerator(_Cheat):
    """(g) Regenerates the test cases from their public recipe (generator, preset, overrides, seed, n: what
    ``phantombench official`` publishes) with phantombench's own generators, in its process, and returns the
    regenerated truth of the matching case. No sandbox can stop this (the code is public); only the verified
    tier (a secret seed) beats it -- and only for presets whose truth depends on the seed."""

    name = "hostile-regenerator"
    time_budget_s = 300.0
    defaults = {**Constant.defaults, "generator": "brain-slice", "preset": "random", "seed": 0, "n": 1,
                "overrides": "{}"}

    def solve(self, observation):
        if not self.stolen:
            from phantombench.runner import make_sample

            gen, preset = str(self.params["generator"]), str(self.params["preset"])
            from phantombench.registry import get_generator

            ov = self.params["overrides"] or {}
            cfg = get_generator(gen).config(preset, json.loads(ov) if isinstance(ov, str) else dict(ov))
            for i in range(int(self.params["n"])):
                fields = make_sample(gen, cfg.model_dump(mode="json"), int(self.params["seed"]), i).fields
                key = obs_key(fields)
                if key is not None:
                    self.stolen[key] = {n: fields[n] for n in self.names if n in fields}
        return super().solve(observation)


ALL = (TruthFromDisk, TruthRewriter, FitPeeker, BoardForger, NetworkCheat, HugeOutput, Regenerator)
