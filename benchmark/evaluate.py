"""The evaluation harness: run a solver on a dataset split, validate and score every case, write a record.

The solver runs in a separate process by default (``isolate=True``): the harness sends it observations and
receives predictions, so a case that hangs is killed at its time limit, a crash (even a segfault) costs one
case, and ground truth never enters the solver's address space. After a killed or dead solver process a fresh
one is started (and fitted again, if the solver learns) for the remaining cases. ``isolate=False`` runs the
solver in this process (debugging, profiling); timeouts then use SIGALRM and only interrupt Python code.

A case fails -- with a one-line reason in the per-case table and the record -- when ``solve`` raises, exceeds
its time limit, kills its process, or returns something :meth:`Task.validate` rejects (missing field, wrong
shape or dtype, NaN/inf inside the evaluation mask, values outside the physical bounds or 100x off the expected
unit). The run goes on (``strict=False``) or stops at the first failure (``strict=True``, used by submit).

Outputs in ``out_dir``: ``record.json`` (the result record), ``cases.parquet`` (one row per case: status,
reason, timings, every metric), ``figure.png`` (truth, prediction and error of a few cases) and ``thumb.png``
(the leaderboard thumbnail).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from phantombench.tasks import Task, get_task

RECORD_FORMAT = "phantombench-result/1"
START_TIMEOUT_S = 180.0   # importing and constructing a solver
REASON_MAX = 300


class CaseFailure(Exception):
    """One case failed; ``str(e)`` is the one-line reason."""


class EvaluationError(RuntimeError):
    """The solver could not be started or fitted: no case can run (``str(e)`` is one line)."""


class HostDead(CaseFailure):
    """The solver process is gone (killed at its time limit or crashed): restart before the next case."""


def _one_line(msg: str) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= REASON_MAX else msg[: REASON_MAX - 3] + "..."


def _exc_line(e: BaseException) -> str:
    from phantombench.solvers.base import SolverError

    if isinstance(e, SolverError):
        return _one_line(str(e))
    tb = traceback.extract_tb(e.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return _one_line(f"{type(e).__name__}: {e}{where}")


def _to_numpy(pred: Any) -> Any:
    if isinstance(pred, dict):
        out = {}
        for k, v in pred.items():
            if hasattr(v, "detach"):  # torch tensor, possibly on a GPU
                v = v.detach().cpu().numpy()
            out[k] = v
        return out
    return pred


# =========================================================================================== solver hosts
def _sandbox_choice(requested: bool | None) -> str:
    """'bwrap <version>' or 'none': ``None`` = the sandbox when available, True = required, False = off."""
    if requested is False:
        return "none"
    from phantombench.sandbox import SandboxError, probe

    found = probe()
    if found is None and requested:
        raise SandboxError("a sandbox was required but bubblewrap (bwrap) cannot start here "
                           "(apt-get install bubblewrap; it needs user namespaces or root)")
    return found or "none"


def scratch_folder(spec: str) -> Path:
    """The solver's only writable folder (kept between runs, so checkpoints resume)."""
    base = Path(os.environ.get("PHANTOMBENCH_SCRATCH_ROOT") or
                Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "phantombench" / "scratch")
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in Path(spec).name)[:80] or "solver"
    return base / name


def _solver_info(cls, solver) -> dict[str, Any]:
    # the device as the solver uses it; a solver that never touches torch runs on the CPU (and importing
    # torch only to ask about CUDA would cost seconds per start)
    device = solver._device or (solver.device if "torch" in sys.modules else "cpu")
    src = None
    with contextlib.suppress(Exception):
        import inspect

        f = inspect.getsourcefile(cls)
        if f:
            src = hashlib.sha256(Path(f).read_bytes()).hexdigest()
    info = {"name": cls.name, "version": str(cls.version), "time_budget_s": float(cls.time_budget_s),
            "fit_budget_s": float(cls.fit_budget_s), "has_fit": bool(cls.has_fit()), "params": solver.params,
            "device": device, "class": f"{cls.__module__}.{cls.__qualname__}", "source_sha256": src}
    if device.startswith("cuda"):
        with contextlib.suppress(Exception):
            import torch

            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _construct(spec: str, task_name: str, params: dict, device: str | None, seed: int):
    from phantombench.solvers.base import load_solver_class

    cls = load_solver_class(spec)
    solver = cls(get_task(task_name), params=params, device=device, seed=seed)
    budget = float(cls.time_budget_s)
    task = get_task(task_name)
    if not 0 < budget <= task.max_time_budget_s:
        raise ValueError(f"solver {cls.name!r} declares time_budget_s={budget:g}; task {task_name!r} allows "
                         f"(0, {task.max_time_budget_s:g}] s per case")
    return cls, solver


def _fit(solver, train: list, val: list, sources: list[str]) -> float:
    from phantombench.solvers.base import Cases

    t0 = time.perf_counter()
    solver.fit(Cases(train, sources=sources), Cases(val, sources=sources))
    return time.perf_counter() - t0


def _reply(conn, *msg) -> None:
    """Child to parent: the wire format (:mod:`phantombench.wire`), never a pickle."""
    from phantombench.wire import encode

    conn.send_bytes(encode(list(msg)))


def _serve(conn, solver) -> None:
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        kind = msg[0]
        if kind == "stop":
            return
        try:
            if kind == "fit":
                _reply(conn, "ok", _fit(solver, *msg[1:]), None)
            elif kind == "solve":
                t0 = time.perf_counter()
                pred = solver.solve(msg[1])
                dt = time.perf_counter() - t0
                _reply(conn, "ok", dt, _to_numpy(pred))
        except BaseException as e:  # noqa: BLE001
            try:
                _reply(conn, "error", _exc_line(e))
            except Exception:  # noqa: BLE001 - e.g. a prediction the wire format refuses
                return


def _worker_main(conn) -> None:  # pragma: no cover - runs in a child
    """Child process: construct the solver, then answer fit/solve requests until told to stop."""
    try:
        _, spec, task_name, params, device, seed = conn.recv()
        cls, solver = _construct(spec, task_name, params, device, seed)
        _reply(conn, "ready", _solver_info(cls, solver))
    except BaseException as e:  # noqa: BLE001
        with contextlib.suppress(Exception):
            _reply(conn, "error", _exc_line(e))
        return
    _serve(conn, solver)


class SubprocessHost:
    """The solver in a child process (``python -m phantombench.evaluate --worker FD``), talked to over a socket
    pair: observations go down as pickles, replies come up in the wire format (never unpickled here) and are
    refused unread when longer than the current cap. The child is a fresh interpreter in its own session,
    inside the bubblewrap sandbox (:mod:`phantombench.sandbox`) when one is available and ``private`` names the
    folders it must not see (data root, board); a kill takes anything the solver started with it."""

    CONTROL_BYTES = 1 << 20      # replies other than predictions (ready, fit, errors)

    def __init__(self, spec: str, task_name: str, params: dict, device: str | None, seed: int,
                 sandbox: bool | None = None, private: list[Path] | None = None):
        self.args = (spec, task_name, params, device, seed)
        self.proc: subprocess.Popen | None = None
        self.conn = None
        self.info: dict[str, Any] | None = None
        self.max_bytes = self.CONTROL_BYTES
        self.sandbox = _sandbox_choice(sandbox)
        self.private = [Path(p) for p in private or []]

    def _argv(self, fd: int) -> list[str]:
        argv = [os.path.abspath(sys.executable), "-m", "phantombench.evaluate", "--worker", str(fd)]
        if self.sandbox == "none":
            return argv
        from phantombench import sandbox

        spec = self.args[0]
        extra = [Path(spec.rpartition(":")[0])] if spec.rpartition(":")[0].endswith(".py") else []
        return sandbox.command(argv, scratch_folder(spec), self.private, extra)

    def start(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        from multiprocessing.connection import Connection

        from phantombench.sandbox import SandboxError

        ours, theirs = socket.socketpair()
        try:
            argv = self._argv(theirs.fileno())
        except SandboxError as e:
            ours.close(), theirs.close()
            raise CaseFailure(f"sandbox: {e}") from None
        try:
            self.proc = subprocess.Popen(argv, pass_fds=(theirs.fileno(),),
                                         start_new_session=True, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        try:
            self.conn.send(("init", *self.args))
        except (OSError, ValueError) as e:
            self.kill()
            raise HostDead(f"solver process unreachable ({type(e).__name__})") from None
        kind, payload = self._recv(timeout, "starting the solver")[:2]
        if kind == "error":
            self.close()
            raise CaseFailure(payload)
        if not isinstance(payload, dict) or not {"name", "version", "has_fit"} <= set(payload):
            self.kill()
            raise CaseFailure("the solver process answered the start with a malformed message")
        self.info = {**payload, "sandbox": self.sandbox}
        return self.info

    def _recv(self, timeout: float, what: str, limit: float | None = None):
        """Next message within ``timeout`` s (``limit``: the time limit to name in a timeout message)."""
        assert self.conn is not None and self.proc is not None
        try:
            ready = self.conn.poll(timeout)
        except (EOFError, OSError):
            ready = True
        if not ready:
            self.kill()
            raise HostDead(f"timeout: {what} took longer than {limit if limit is not None else timeout:.3g} s")
        try:
            data = self.conn.recv_bytes(self.max_bytes)
        except (EOFError, OSError) as e:
            if isinstance(e, OSError) and "bad message length" in str(e):
                self.kill()
                raise HostDead(f"reply while {what} exceeds {self.max_bytes / 1e6:.3g} MB (refused unread)") from None
            self._died(what)
        from phantombench.wire import decode

        try:
            msg = decode(data)
        except Exception as e:  # noqa: BLE001 - malformed input from an untrusted process
            self.kill()
            raise HostDead(f"malformed reply while {what}: {_one_line(str(e))}") from None
        if not isinstance(msg, list) or not msg or msg[0] not in ("ok", "error", "ready"):
            self.kill()
            raise HostDead(f"malformed reply while {what}")
        return msg

    def _died(self, what: str):
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        self.kill()
        sig = ""
        signum = -code if code is not None and code < 0 else None
        if code is not None and code > 128 and self.sandbox != "none":
            signum = code - 128          # bwrap exits with 128 + the signal that killed the solver
        if signum:
            with contextlib.suppress(ValueError):
                sig = f" (signal {signal.Signals(signum).name})"
        raise HostDead(f"solver process died while {what}: exit code {code}{sig}") from None

    def fit(self, train: list, val: list, sources: list[str], timeout: float) -> float:
        self.conn.send(("fit", train, val, sources))
        kind, a, _ = (self._recv(timeout, "fitting") + [None, None])[:3]
        if kind == "error":
            raise CaseFailure(f"fit failed: {a}")
        if not isinstance(a, (int, float)):
            raise CaseFailure("fit answered with a malformed message")
        return float(a)

    def send(self, obs: dict[str, Any]) -> None:
        """Hand the solver a case; it starts at once (the harness scores the previous case meanwhile)."""
        try:
            self.conn.send(("solve", obs))
        except (OSError, ValueError) as e:
            self.kill()
            raise HostDead(f"solver process unreachable ({type(e).__name__})") from None
        self._sent = time.perf_counter()

    def receive(self, timeout: float, max_bytes: int | None = None) -> tuple[Any, float]:
        """The prediction of the case sent last; ``timeout`` counts from the send; a reply over ``max_bytes``
        is refused before it is read."""
        self.max_bytes = int(max_bytes or self.CONTROL_BYTES)
        try:
            msg = self._recv(max(timeout - (time.perf_counter() - self._sent), 0.0), "solving", timeout)
        finally:
            self.max_bytes = self.CONTROL_BYTES
        if msg[0] == "error":
            raise CaseFailure(_one_line(str(msg[1])))
        if len(msg) != 3 or not isinstance(msg[1], (int, float)):
            raise CaseFailure("the solver process answered with a malformed message")
        return msg[2], float(msg[1])

    def solve(self, obs: dict[str, Any], timeout: float, max_bytes: int | None = None) -> tuple[Any, float]:
        self.send(obs)
        return self.receive(timeout, max_bytes)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.proc.kill()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        if self.conn is not None:
            self.conn.close()
        self.proc = self.conn = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        if self.alive and self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.send(("stop",))
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(2)
        self.kill()


class _Alarm(Exception):
    pass


@contextlib.contextmanager
def _alarm(seconds: float):
    """SIGALRM-based time limit for the in-process host (main thread only; Python code only)."""
    if threading.current_thread() is not threading.main_thread() or not math.isfinite(seconds):
        yield
        return

    def handler(signum, frame):
        raise _Alarm()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class InProcessHost:
    """The solver in this process (no isolation, no sandbox: for debugging and notebooks, never for the board)."""

    def __init__(self, spec: str, task_name: str, params: dict, device: str | None, seed: int,
                 sandbox: bool | None = None, private: list[Path] | None = None):
        self.args = (spec, task_name, params, device, seed)
        self.solver = None
        self.info = None
        self.alive = False

    def start(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        try:
            cls, self.solver = _construct(*self.args)
        except Exception as e:  # noqa: BLE001
            raise CaseFailure(_exc_line(e)) from e
        self.info = {**_solver_info(cls, self.solver), "sandbox": "none"}
        self.alive = True
        return self.info

    def fit(self, train: list, val: list, sources: list[str], timeout: float) -> float:
        try:
            with _alarm(timeout):
                return _fit(self.solver, train, val, sources)
        except _Alarm:
            raise CaseFailure(f"timeout: fitting took longer than {timeout:.3g} s") from None
        except Exception as e:  # noqa: BLE001
            raise CaseFailure(f"fit failed: {_exc_line(e)}") from e

    def send(self, obs: dict[str, Any]) -> None:
        self._obs = obs

    def receive(self, timeout: float, max_bytes: int | None = None) -> tuple[Any, float]:
        obs, self._obs = self._obs, None
        return self.solve(obs, timeout)

    def solve(self, obs: dict[str, Any], timeout: float, max_bytes: int | None = None) -> tuple[Any, float]:
        t0 = time.perf_counter()
        try:
            with _alarm(timeout):
                pred = self.solver.solve(obs)
        except _Alarm:
            raise CaseFailure(f"timeout: solving took longer than {timeout:.3g} s") from None
        except Exception as e:  # noqa: BLE001
            raise CaseFailure(_exc_line(e)) from e
        return _to_numpy(pred), time.perf_counter() - t0

    def close(self) -> None:
        self.alive = False

    kill = close


# =========================================================================================== evaluation
class _Prefetch:
    """Reads (observation, truth) of the coming cases in a background thread, a few cases ahead."""

    def __init__(self, task: Task, ds, indices: list[int], depth: int = 2):
        import queue

        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(task, ds, list(indices)), daemon=True)
        self.thread.start()

    def _run(self, task, ds, indices) -> None:
        import queue

        for i in indices:
            try:
                g = ds.group(i)
                item = (task.observation(ds, i, g), task.truth(ds, i, g), None)
            except Exception as e:  # noqa: BLE001 - reported as that case's failure
                item = (None, None, _exc_line(e))
            while not self.stop.is_set():
                try:
                    self.q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self.stop.is_set():
                return

    def next(self):
        return self.q.get()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@dataclasses.dataclass
class Evaluation:
    record: dict[str, Any]
    cases: Any                      # pandas.DataFrame
    paths: dict[str, Path]
    examples: list[dict[str, Any]]  # a few cases kept for the figure: id, truth, prediction

    @property
    def failed(self) -> list[dict[str, str]]:
        return self.record["cases"]["failures"]


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]


def record_id(task: str, solver: str, version: str, ds_manifest: dict, params: dict, seed: int, split: str,
              fingerprint: str | None = None, trained_on: str | None = None) -> str:
    """``task__solver@version__dataset@version-<fingerprint[:8]>__split__p<params>__s<seed>``: the same on every
    machine for the same solver settings on the same (within tolerance) data. A solver trained on generated data
    (``trained_on``: that dataset's id) gets ``__t<hash>`` appended: a different row, not a replacement."""
    fp = fingerprint or ds_manifest.get("fingerprint", {}).get("value") or ds_manifest["content_hash"]
    ds = f"{ds_manifest['name'].replace('/', '-')}@{ds_manifest['version']}-{fp[:8]}"
    sid = f"{task}__{solver}@{version}__{ds}__{split}__p{params_hash(params)}__s{seed}"
    if trained_on:
        sid += f"__t{hashlib.sha256(trained_on.encode()).hexdigest()[:8]}"
    return "".join(c if c.isalnum() or c in "._-@" else "-" for c in sid)


def _aggregate(task: Task, rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for m in task.metrics:
        vals = np.array([r.get(m.name, np.nan) for r in rows if r["status"] == "ok"], dtype=float)
        v = vals[np.isfinite(vals)]
        out[m.name] = {
            "mean": float(v.mean()) if v.size else None,
            "std": float(v.std(ddof=1)) if v.size > 1 else (0.0 if v.size else None),
            "median": float(np.median(v)) if v.size else None,
            "min": float(v.min()) if v.size else None,
            "max": float(v.max()) if v.size else None,
            "n": int(v.size), "direction": m.direction, "unit": m.unit,
        }
    return out


def prediction_cap(task: Task, truth: dict[str, np.ndarray]) -> int:
    """Most bytes a prediction reply may take: 4x the predicted fields as complex128, plus 1 MB."""
    n = sum(int(np.asarray(truth[p.name]).size) for p in task.predictions if p.name in truth)
    return 4 * 16 * n + (1 << 20)


def read_pairs(task: Task, ds, indices: list[int]) -> list[tuple[dict, dict]]:
    """(observation, target) of each sample, read in the harness: what ``fit`` receives, as data."""
    out = []
    for i in indices:
        g = ds.group(i)
        out.append((task.observation(ds, i, g), task.target(ds, i, g)))
    return out


def dataset_id(ds) -> str:
    m = ds.manifest
    return f"{m['name']}@{m['version']}-{ds.fingerprint[:12]}"


@dataclasses.dataclass
class _Run:
    """One evaluation in progress: the solver host, the clock, the rows. Built and driven by :func:`evaluate`."""

    task: Task
    ds: Any
    indices: list[int]
    host: Any
    fit_src: Any
    timeout_s: float | None
    time_limit_s: float | None
    strict: bool
    figure_cases: int
    progress: Callable[[int, int, str], None] | None
    t0: float = dataclasses.field(default_factory=time.perf_counter)
    fit_s: float = 0.0
    fit_counts: tuple[int, int] = (0, 0)   # train and val cases handed to fit
    info: dict[str, Any] | None = None
    fatal: str | None = None
    n_done: int = 0
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    examples: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def left(self, limit: float) -> float:
        if self.time_limit_s is None:
            return limit
        rest = self.t0 + float(self.time_limit_s) - time.perf_counter()
        if rest <= 0:
            raise CaseFailure(f"time limit of {self.time_limit_s:g} s for the whole evaluation reached")
        return min(limit, rest)

    def start_and_fit(self) -> dict[str, Any]:
        self.info = self.host.start(self.left(START_TIMEOUT_S))
        if self.info["has_fit"]:
            splits = self.fit_src.manifest["splits"]
            train = read_pairs(self.task, self.fit_src, self.fit_src.split("train") if "train" in splits else [])
            val = read_pairs(self.task, self.fit_src, self.fit_src.split("val") if "val" in splits else [])
            limit = self.timeout_s if self.timeout_s is not None else self.info["fit_budget_s"] * 1.1 + 5.0
            self.fit_counts = (len(train), len(val))
            self.fit_s += self.host.fit(train, val, [dataset_id(self.fit_src)], self.left(limit))
        return self.info

    @property
    def case_timeout(self) -> float:
        return self.timeout_s if self.timeout_s is not None else self.info["time_budget_s"] * 1.1 + 1.0

    def tick(self, row: dict[str, Any]) -> None:
        self.n_done += 1
        if self.progress:
            self.progress(self.n_done, len(self.indices), row["case"])

    def finish(self, row: dict[str, Any], truth: dict[str, np.ndarray], raw: Any) -> None:
        """Validate and score a received prediction (runs while the solver works on the next case)."""
        pred, reason = self.task.validate(raw, truth)
        if reason is not None:
            row["reason"] = _one_line(f"invalid prediction: {reason}")
        else:
            row.update(self.task.score(pred, truth))
            row["status"] = "ok"
            if len(self.examples) < self.figure_cases:
                self.examples.append({"case": row["case"], "truth": truth, "prediction": pred})
        self.tick(row)

    def send(self, row: dict[str, Any], obs, load_error) -> float | None:
        """Hand the case to the solver (restarting it if needed); its time limit, or None if it failed."""
        try:
            if load_error is not None:
                raise CaseFailure(f"reading the case failed: {load_error}")
            if self.fatal is not None:
                raise CaseFailure(self.fatal)
            if not self.host.alive:
                try:
                    self.start_and_fit()
                except CaseFailure as e:
                    self.fatal = _one_line(f"restarting the solver failed: {e}")
                    raise CaseFailure(self.fatal) from None
            limit = self.left(self.case_timeout)
            self.host.send(obs)
            return limit
        except CaseFailure as e:
            row["reason"] = _one_line(str(e))
            return None

    def loop(self) -> None:
        """Case k is sent before case k-1 is scored, so reading and scoring overlap the solve. harness_s of a
        case = the time the solver sat idle for it (wall between two predictions minus its solve time)."""
        prefetch = _Prefetch(self.task, self.ds, self.indices)
        pending = None
        t_mark = time.perf_counter()
        try:
            for i in self.indices:
                row = {"case": self.ds.ids[i], "index": i, "status": "failed", "reason": "",
                       "solve_s": np.nan, "harness_s": np.nan}
                self.rows.append(row)
                obs, truth, load_error = prefetch.next()
                limit = self.send(row, obs, load_error)
                if pending is not None:
                    self.finish(*pending)
                    failed_before, pending = pending[0]["status"] != "ok", None
                    if self.strict and failed_before:
                        self.rows.pop()      # the case just sent is abandoned, not evaluated
                        self.host.kill()
                        break
                if limit is not None:
                    try:
                        raw, row["solve_s"] = self.host.receive(limit, prediction_cap(self.task, truth))
                        pending = (row, truth, raw)
                    except CaseFailure as e:
                        row["reason"] = _one_line(str(e))
                now = time.perf_counter()
                row["harness_s"] = now - t_mark - (row["solve_s"] if np.isfinite(row["solve_s"]) else 0.0)
                t_mark = now
                if pending is None:              # failed before or while solving
                    self.tick(row)
                    if self.strict:
                        break
            if pending is not None:
                self.finish(*pending)
                pending[0]["harness_s"] += time.perf_counter() - t_mark
        finally:
            prefetch.close()
            self.host.close()


def _solver_block(run: _Run, spec: str, params: dict, seed: int, device: str | None, isolate: bool,
                  train_dataset) -> dict[str, Any]:
    s = run.info or {"name": spec, "version": "?", "time_budget_s": None, "fit_budget_s": None, "has_fit": None,
                     "params": params, "device": device, "class": None, "source_sha256": None, "sandbox": "none"}
    block = {"name": s["name"], "version": s["version"], "spec": spec, "class": s["class"],
             "source_sha256": s["source_sha256"], "params": s["params"], "seed": seed, "device": s["device"],
             "time_budget_s": s["time_budget_s"], "fit_budget_s": s["fit_budget_s"], "has_fit": s["has_fit"],
             "case_timeout_s": run.case_timeout if run.info else None, "isolated": isolate,
             "sandbox": s.get("sandbox", "none")}
    if train_dataset is not None:
        m = run.fit_src.manifest
        block["train_dataset"] = {"name": m["name"], "version": m["version"], "content_hash": m["content_hash"],
                                  "fingerprint": run.fit_src.fingerprint}
    return block


def training_block(run: _Run, separate: bool) -> dict[str, Any] | None:
    """What a learned solver was trained on (the board's training-data policy): None for solvers without fit.

    ``source`` is ``test-dataset`` (the train/val splits of the dataset it is tested on) or ``separate`` (another
    dataset, named by its id; ``submit`` checks it was made by the public generator with a seed disjoint from the
    test seeds and says ``generated``)."""
    if not (run.info and run.info.get("has_fit")):
        return None
    m = run.fit_src.manifest
    return {"source": "separate" if separate else "test-dataset", "dataset": dataset_id(run.fit_src),
            "seed": m.get("seed"), "train_cases": run.fit_counts[0],
            "val_cases": run.fit_counts[1], "fit_s": round(run.fit_s, 2)}


def _record(run: _Run, solver_block: dict, split: str, tier: str, fingerprint: str | None) -> dict[str, Any]:
    from phantombench import __version__
    from phantombench.provenance import provenance

    task, ds, rows = run.task, run.ds, run.rows
    ok = [r for r in rows if r["status"] == "ok"]
    failures = [{"case": r["case"], "reason": r["reason"]} for r in rows if r["status"] != "ok"]
    solve_times = np.array([r["solve_s"] for r in ok], float)
    m = ds.manifest
    fp = fingerprint or ds.fingerprint
    prov = provenance()
    if run.info and run.info.get("gpu"):
        prov["hardware"]["gpu"] = run.info["gpu"]
    training = training_block(run, run.fit_src is not run.ds)
    trained_on = training["dataset"] if training and training["source"] == "separate" else None
    return {
        "format": RECORD_FORMAT,
        "id": record_id(task.name, solver_block["name"], solver_block["version"], m, solver_block["params"],
                        solver_block["seed"], split, fp, trained_on),
        "task": {"name": task.name, "version": task.version, "main_metric": task.main_metric},
        "dataset": {"name": m["name"], "version": m["version"], "generator": m.get("generator", {}).get("name"),
                    "preset": m.get("preset"), "fingerprint": fp, "content_hash": m["content_hash"],
                    "tier": tier, "split": split, "n_cases": len(run.indices), "path": str(ds.path)},
        "solver": solver_block,
        "training": training,
        "metrics": _aggregate(task, rows),
        "cases": {"n": len(run.indices), "evaluated": len(rows), "ok": len(ok), "failed": len(failures),
                  "failures": failures},
        "timing": {"fit_s": round(run.fit_s, 4), "solve_s_total": round(float(solve_times.sum()), 4),
                   "solve_s_mean": round(float(solve_times.mean()), 4) if ok else None,
                   "harness_s_per_case": round(float(np.mean([r["harness_s"] for r in ok])), 5) if ok else None,
                   "harness_s_total": round(float(np.nansum([r["harness_s"] for r in rows])), 4),
                   "wall_s": round(time.perf_counter() - run.t0, 3)},
        "suite_version": __version__,
        "provenance": prov,
    }


def evaluate(solver: str, task: str | Task, dataset, split: str = "test", *, params: dict[str, Any] | None = None,
             device: str | None = None, seed: int = 0, out_dir: str | os.PathLike | None = None,
             isolate: bool = True, timeout_s: float | None = None, strict: bool = False,
             train_dataset=None, figure_cases: int = 3, limit: int | None = None, time_limit_s: float | None = None,
             progress: Callable[[int, int, str], None] | None = None, sandbox: bool | None = None,
             private: list[str | os.PathLike] | None = None, tier: str = "public",
             fingerprint: str | None = None) -> Evaluation:
    """Run ``solver`` (a spec: name, entry point, module:Class or file.py:Class) on a dataset split.

    ``timeout_s`` overrides the per-case limit (default: the solver's declared ``time_budget_s`` plus 10 % and
    1 s of grace). ``time_limit_s`` bounds the whole run (start, fit and every case): cases left when it runs
    out fail with "time limit". ``sandbox``: None = the bubblewrap jail when available, True = required,
    False = off; ``private`` adds folders the solver must not see (the dataset folders always are).
    ``fingerprint`` (e.g. the official one, after the data were checked against it) names the dataset in the
    record. Returns an :class:`Evaluation`; writes its files when ``out_dir`` is given.
    """
    from phantombench.store import Dataset, open_dataset

    task = get_task(task) if isinstance(task, str) else task
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    task.check_dataset(ds)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1 (got {limit})")
    indices = ds.split(split)[:limit]
    params = dict(params or {})
    fit_src = ds if train_dataset is None else (train_dataset if isinstance(train_dataset, Dataset)
                                                else open_dataset(train_dataset))
    hidden = [Path(p) for p in private or []] + [ds.path, fit_src.path]
    from phantombench.sandbox import SandboxError

    try:
        host = (SubprocessHost if isolate else InProcessHost)(solver, task.name, params, device, seed, sandbox,
                                                              hidden)
    except SandboxError as e:
        raise EvaluationError(_one_line(str(e))) from None
    run = _Run(task, ds, indices, host, fit_src, timeout_s, time_limit_s, strict, figure_cases, progress)
    try:
        run.start_and_fit()
    except CaseFailure as e:
        host.kill()
        raise EvaluationError(_one_line(str(e))) from None
    import skimage.metrics  # noqa: F401  (one-off import now, not inside the first case's timing)

    run.loop()
    import pandas as pd

    cols = ["case", "index", "status", "reason", "solve_s", "harness_s"] + [m.name for m in task.metrics]
    cases = pd.DataFrame(run.rows).reindex(columns=cols)
    block = _solver_block(run, solver, params, seed, device, isolate, train_dataset)
    ev = Evaluation(_record(run, block, split, tier, fingerprint), cases, {}, run.examples)
    if out_dir is not None:
        write_outputs(ev, task, Path(out_dir))
    return ev


def record_json(record: dict[str, Any]) -> str:
    from phantombench.store import json_default  # (lazy: zarr stays out of the solver worker)

    return json.dumps(record, indent=2, default=json_default, allow_nan=False) + "\n"


def _clean_nan(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean_nan(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_clean_nan(v) for v in o]
    return o


def write_outputs(ev: Evaluation, task: Task, out_dir: Path) -> dict[str, Path]:
    from phantombench.figures import case_figure, thumbnail

    out_dir.mkdir(parents=True, exist_ok=True)
    ev.record = _clean_nan(ev.record)
    p = {"record": out_dir / "record.json", "cases": out_dir / "cases.parquet", "figure": out_dir / "figure.png",
         "thumb": out_dir / "thumb.png"}
    ev.cases.to_parquet(p["cases"], index=False)
    if ev.examples:
        case_figure(task, ev.examples, p["figure"], title=f"{ev.record['solver']['name']} on "
                                                          f"{ev.record['dataset']['name']}")
        thumbnail(task, ev.examples[0], p["thumb"])
    else:
        del p["figure"], p["thumb"]
    p["record"].write_text(record_json(ev.record))
    ev.paths.update(p)
    return p


if __name__ == "__main__":  # pragma: no cover - the solver worker (SubprocessHost)
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        from multiprocessing.connection import Connection

        _worker_main(Connection(int(sys.argv[2])))
    else:
        sys.exit("use `phantombench evaluate`")
