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


def _fit(solver, dataset_path: str, train_idx: list[int], val_idx: list[int]) -> float:
    from phantombench.solvers.base import Cases
    from phantombench.store import open_dataset

    ds = open_dataset(dataset_path)
    t0 = time.perf_counter()
    solver.fit(Cases(solver.task, ds, train_idx), Cases(solver.task, ds, val_idx))
    return time.perf_counter() - t0


def _worker_main(conn) -> None:  # pragma: no cover - runs in a child
    """Child process: construct the solver, then answer fit/solve requests until told to stop."""
    try:
        _, spec, task_name, params, device, seed = conn.recv()
        cls, solver = _construct(spec, task_name, params, device, seed)
        conn.send(("ready", _solver_info(cls, solver)))
    except BaseException as e:  # noqa: BLE001
        conn.send(("error", _exc_line(e)))
        return
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
                conn.send(("ok", _fit(solver, *msg[1:]), None))
            elif kind == "solve":
                t0 = time.perf_counter()
                pred = solver.solve(msg[1])
                dt = time.perf_counter() - t0
                conn.send(("ok", dt, _to_numpy(pred)))
        except BaseException as e:  # noqa: BLE001
            try:
                conn.send(("error", _exc_line(e)))
            except Exception:  # noqa: BLE001 - e.g. unpicklable prediction
                return


class SubprocessHost:
    """The solver in a child process (``python -m phantombench.evaluate --worker FD``), talked to over a socket
    pair with pickled messages. The child is a fresh interpreter (the caller's ``__main__`` is never re-imported)
    in its own session, so a kill takes anything the solver started with it."""

    def __init__(self, spec: str, task_name: str, params: dict, device: str | None, seed: int):
        self.args = (spec, task_name, params, device, seed)
        self.proc: subprocess.Popen | None = None
        self.conn = None
        self.info: dict[str, Any] | None = None

    def start(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "phantombench.evaluate", "--worker",
                                          str(theirs.fileno())], pass_fds=(theirs.fileno(),),
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
        self.info = payload
        return payload

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
            return self.conn.recv()
        except (EOFError, OSError):
            try:
                code = self.proc.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            self.kill()
            sig = ""
            if code is not None and code < 0:
                with contextlib.suppress(ValueError):
                    sig = f" (signal {signal.Signals(-code).name})"
            raise HostDead(f"solver process died while {what}: exit code {code}{sig}") from None

    def fit(self, dataset_path: str, train: list[int], val: list[int], timeout: float) -> float:
        self.conn.send(("fit", dataset_path, train, val))
        kind, a, _ = self._recv(timeout, "fitting")
        if kind == "error":
            raise CaseFailure(f"fit failed: {a}")
        return float(a)

    def send(self, obs: dict[str, Any]) -> None:
        """Hand the solver a case; it starts at once (the harness scores the previous case meanwhile)."""
        try:
            self.conn.send(("solve", obs))
        except (OSError, ValueError) as e:
            self.kill()
            raise HostDead(f"solver process unreachable ({type(e).__name__})") from None
        self._sent = time.perf_counter()

    def receive(self, timeout: float) -> tuple[Any, float]:
        """The prediction of the case sent last; ``timeout`` counts from the send."""
        msg = self._recv(max(timeout - (time.perf_counter() - self._sent), 0.0), "solving", timeout)
        if msg[0] == "error":
            raise CaseFailure(msg[1])
        return msg[2], float(msg[1])

    def solve(self, obs: dict[str, Any], timeout: float) -> tuple[Any, float]:
        self.send(obs)
        return self.receive(timeout)

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
    """The solver in this process (no isolation)."""

    def __init__(self, spec: str, task_name: str, params: dict, device: str | None, seed: int):
        self.args = (spec, task_name, params, device, seed)
        self.solver = None
        self.info = None
        self.alive = False

    def start(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        try:
            cls, self.solver = _construct(*self.args)
        except Exception as e:  # noqa: BLE001
            raise CaseFailure(_exc_line(e)) from e
        self.info = _solver_info(cls, self.solver)
        self.alive = True
        return self.info

    def fit(self, dataset_path: str, train: list[int], val: list[int], timeout: float) -> float:
        try:
            with _alarm(timeout):
                return _fit(self.solver, dataset_path, train, val)
        except _Alarm:
            raise CaseFailure(f"timeout: fitting took longer than {timeout:.3g} s") from None
        except Exception as e:  # noqa: BLE001
            raise CaseFailure(f"fit failed: {_exc_line(e)}") from e

    def send(self, obs: dict[str, Any]) -> None:
        self._obs = obs

    def receive(self, timeout: float) -> tuple[Any, float]:
        obs, self._obs = self._obs, None
        return self.solve(obs, timeout)

    def solve(self, obs: dict[str, Any], timeout: float) -> tuple[Any, float]:
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


def record_id(task: str, solver: str, version: str, ds_manifest: dict, params: dict, seed: int, split: str) -> str:
    ds = f"{ds_manifest['name'].replace('/', '-')}@{ds_manifest['version']}-{ds_manifest['content_hash'][:8]}"
    sid = f"{task}__{solver}@{version}__{ds}__{split}__p{params_hash(params)}__s{seed}"
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


def evaluate(solver: str, task: str | Task, dataset, split: str = "test", *, params: dict[str, Any] | None = None,
             device: str | None = None, seed: int = 0, out_dir: str | os.PathLike | None = None,
             isolate: bool = True, timeout_s: float | None = None, strict: bool = False,
             train_dataset=None, figure_cases: int = 3, limit: int | None = None, time_limit_s: float | None = None,
             progress: Callable[[int, int, str], None] | None = None) -> Evaluation:
    """Run ``solver`` (a spec: name, entry point, module:Class or file.py:Class) on a dataset split.

    ``timeout_s`` overrides the per-case limit (default: the solver's declared ``time_budget_s`` plus 10 % and
    1 s of grace). ``time_limit_s`` bounds the whole run (start, fit and every case): cases left when it runs
    out fail with "time limit". Returns an :class:`Evaluation`; writes its files when ``out_dir`` is given.
    """
    from phantombench import __version__
    from phantombench.provenance import provenance
    from phantombench.store import Dataset, open_dataset

    task = get_task(task) if isinstance(task, str) else task
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    task.check_dataset(ds)
    indices = ds.split(split)
    if limit is not None:
        indices = indices[:limit]
    params = dict(params or {})
    t_wall = time.perf_counter()
    deadline = None if time_limit_s is None else t_wall + float(time_limit_s)

    def left(limit: float) -> float:
        if deadline is None:
            return limit
        rest = deadline - time.perf_counter()
        if rest <= 0:
            raise CaseFailure(f"time limit of {time_limit_s:g} s for the whole evaluation reached")
        return min(limit, rest)

    Host = SubprocessHost if isolate else InProcessHost
    host = Host(solver, task.name, params, device, seed)
    fit_s = 0.0
    fit_src = ds if train_dataset is None else (train_dataset if isinstance(train_dataset, Dataset)
                                                else open_dataset(train_dataset))

    def start_and_fit() -> dict[str, Any]:
        nonlocal fit_s
        info = host.start(left(START_TIMEOUT_S))
        if info["has_fit"]:
            tr = fit_src.split("train") if "train" in fit_src.manifest["splits"] else []
            va = fit_src.split("val") if "val" in fit_src.manifest["splits"] else []
            limit_fit = (timeout_s if timeout_s is not None else info["fit_budget_s"] * 1.1 + 5.0)
            fit_s += host.fit(str(fit_src.path), tr, va, left(limit_fit))
        return info

    fatal: str | None = None
    try:
        info = start_and_fit()
    except CaseFailure as e:
        host.kill()
        raise EvaluationError(_one_line(str(e))) from None

    rows: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    import skimage.metrics  # noqa: F401  (one-off import now, not inside the first case's timing)

    case_timeout = timeout_s if timeout_s is not None else info["time_budget_s"] * 1.1 + 1.0
    total = len(indices)
    n_done = 0

    def finish(row: dict[str, Any], truth: dict[str, np.ndarray], raw: Any) -> None:
        """Validate and score a received prediction (runs while the solver works on the next case)."""
        nonlocal n_done
        pred, reason = task.validate(raw, truth)
        if reason is not None:
            row["reason"] = _one_line(f"invalid prediction: {reason}")
        else:
            row.update(task.score(pred, truth))
            row["status"] = "ok"
            if len(examples) < figure_cases:
                examples.append({"case": row["case"], "truth": truth, "prediction": pred})
        n_done += 1
        if progress:
            progress(n_done, total, row["case"])

    # Pipeline: a thread reads the next cases ahead; case k is sent to the solver before case k-1 is scored,
    # so reading and scoring overlap the solve. harness_s of a case = the time the solver sat idle for it
    # (wall between two received predictions minus the solver's own solve time).
    prefetch = _Prefetch(task, ds, indices)
    pending: tuple[dict, dict, Any] | None = None
    t_mark = time.perf_counter()
    try:
        for i in indices:
            row: dict[str, Any] = {"case": ds.ids[i], "index": i, "status": "failed", "reason": "",
                                   "solve_s": np.nan, "harness_s": np.nan}
            rows.append(row)
            obs, truth, load_error = prefetch.next()
            sent = False
            try:
                if load_error is not None:
                    raise CaseFailure(f"reading the case failed: {load_error}")
                if fatal is not None:
                    raise CaseFailure(fatal)
                if not host.alive:
                    try:
                        start_and_fit()
                    except CaseFailure as e:
                        fatal = _one_line(f"restarting the solver failed: {e}")
                        raise CaseFailure(fatal) from None
                limit = left(case_timeout)
                host.send(obs)
                sent = True
            except CaseFailure as e:
                row["reason"] = _one_line(str(e))
            if pending is not None:
                finish(*pending)
                failed_before = pending[0]["status"] != "ok"
                pending = None
                if strict and failed_before:
                    rows.pop()      # the case just sent is abandoned, not evaluated
                    host.kill()
                    break
            if sent:
                try:
                    raw, solve_s = host.receive(limit)
                    row["solve_s"] = solve_s
                    pending = (row, truth, raw)
                except CaseFailure as e:
                    row["reason"] = _one_line(str(e))
            now = time.perf_counter()
            row["harness_s"] = now - t_mark - (row["solve_s"] if np.isfinite(row["solve_s"]) else 0.0)
            t_mark = now
            if pending is None:              # failed before or while solving
                n_done += 1
                if progress:
                    progress(n_done, total, row["case"])
                if strict:
                    break
        if pending is not None:
            finish(*pending)
            pending[0]["harness_s"] += time.perf_counter() - t_mark
    finally:
        prefetch.close()
        host.close()
    wall = time.perf_counter() - t_wall

    import pandas as pd

    cols = ["case", "index", "status", "reason", "solve_s", "harness_s"] + [m.name for m in task.metrics]
    cases = pd.DataFrame(rows).reindex(columns=cols)
    failures = [{"case": r["case"], "reason": r["reason"]} for r in rows if r["status"] != "ok"]
    ok = [r for r in rows if r["status"] == "ok"]
    sinfo = info or {"name": solver, "version": "?", "time_budget_s": None, "fit_budget_s": None,
                     "has_fit": None, "params": params, "device": device, "class": None, "source_sha256": None}
    solve_times = np.array([r["solve_s"] for r in ok], float)
    harness = np.array([r["harness_s"] for r in ok], float)
    harness_total = float(np.nansum([r["harness_s"] for r in rows]))
    m = ds.manifest
    prov = provenance()
    if sinfo.get("gpu"):
        prov["hardware"]["gpu"] = sinfo["gpu"]
    record = {
        "format": RECORD_FORMAT,
        "id": record_id(task.name, sinfo["name"], sinfo["version"], m, sinfo["params"], seed, split),
        "task": {"name": task.name, "version": task.version, "main_metric": task.main_metric},
        "dataset": {"name": m["name"], "version": m["version"], "generator": m.get("generator", {}).get("name"),
                    "preset": m.get("preset"), "content_hash": m["content_hash"], "split": split,
                    "n_cases": total, "path": str(ds.path)},
        "solver": {"name": sinfo["name"], "version": sinfo["version"], "spec": solver, "class": sinfo["class"],
                   "source_sha256": sinfo["source_sha256"], "params": sinfo["params"], "seed": seed,
                   "device": sinfo["device"], "time_budget_s": sinfo["time_budget_s"],
                   "fit_budget_s": sinfo["fit_budget_s"], "has_fit": sinfo["has_fit"],
                   "case_timeout_s": case_timeout, "isolated": isolate,
                   **({"train_dataset": {"name": fit_src.manifest["name"], "version": fit_src.manifest["version"],
                                         "content_hash": fit_src.manifest["content_hash"]}}
                      if train_dataset is not None else {})},
        "metrics": _aggregate(task, rows),
        "cases": {"n": total, "evaluated": len(rows), "ok": len(ok), "failed": len(failures), "failures": failures},
        "timing": {"fit_s": round(fit_s, 4),
                   "solve_s_total": round(float(solve_times.sum()), 4),
                   "solve_s_mean": round(float(solve_times.mean()), 4) if ok else None,
                   "harness_s_per_case": round(float(np.mean(harness)), 5) if ok else None,
                   "harness_s_total": round(harness_total, 4),
                   "wall_s": round(wall, 3)},
        "suite_version": __version__,
        "provenance": prov,
    }
    paths: dict[str, Path] = {}
    ev = Evaluation(record, cases, paths, examples)
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
