"""One training loop for every learned solver.

A learned method supplies its model, its loss (or a whole unit of work: an epoch of mini-batches) and, when it
validates, an evaluation callback; :class:`Trainer` does the rest the same way for all of them:

* the optimisation step (zero the gradients, backward, step every optimiser and scheduler), under
  :class:`Precision` (bfloat16 or float16 autocast; a gradient scaler for float16 on CUDA);
* the :class:`Budget`: a number of units and/or seconds of a wall or CPU clock;
* validation every ``eval_every`` units (and at the last one), a history of records, the best weights kept and
  restored at the end;
* checkpoints (:class:`Checkpoint`): written atomically, tagged with the identity of the training data and the
  hyper-parameters (:func:`fingerprint` of the cases, :func:`tag_hash`); a run with the same tag resumes from the
  last one (model, optimisers, schedulers, scaler, random generators, history, elapsed time); a file with another
  tag is started over or refused;
* a rich progress bar on stderr (:func:`phantombench.solvers.base.progress_bar`).

Example (one optimiser step per unit, validated every 100 steps)::

    rng = seed_everything(self.seed)
    model = Net().to(self.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    trainer = Trainer(
        model, [opt], Budget(steps=3000, seconds=3600),
        loss=lambda step: loss_fn(model(*batch(rng))),                # a scalar tensor
        evaluate=lambda train_loss: {"val_loss": val_loss(model)},   # best weights by "val_loss"
        eval_every=100, rngs={"batches": rng},
        checkpoint=Checkpoint(path, tag={"data": fingerprint(train), "params": params}),
        progress="my-solver fit")
    result = trainer.run()          # result.history, result.best, result.steps, result.stopped

Device: the solver's ``self.device`` (CUDA when present, CPU otherwise); the trainer uses the devices the model
and tensors are on. Seeds: :func:`seed_everything` before the model is built; the trainer saves and restores the
random generators it is given, torch's global one and CUDA's.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phantombench.solvers.base import progress_bar

FORMAT = "phantombench-training/1"

__all__ = ["Budget", "Checkpoint", "Precision", "StopTraining", "TensorState", "TrainResult", "Trainer",
           "Fingerprint", "atomic_save", "fingerprint", "seed_everything", "tag_hash", "torch_threads"]


# ------------------------------------------------------------------------------------------ small helpers
def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (CPU and CUDA) and NumPy's global generator; return a NumPy Generator seeded the same way."""
    import torch

    torch.manual_seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    return np.random.default_rng(int(seed))


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's CPU intra-op threads set to ``n`` inside the block (0: leave torch's choice), restored after."""
    import torch

    old = torch.get_num_threads()
    if int(n) > 0:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file next to ``path``, then rename: a reader never sees a half-written file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def _update(h, value: Any) -> None:
    if isinstance(value, Mapping):
        h.update(b"{")
        for k in sorted(value, key=str):
            h.update(str(k).encode() + b":")
            _update(h, value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)) and not all(isinstance(v, (int, float, str, bool)) for v in value):
        h.update(b"[")
        for v in value:
            _update(h, v)
        h.update(b"]")
    elif isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
        a = np.ascontiguousarray(np.asarray(value))
        h.update(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())
    else:
        h.update(json.dumps(value, sort_keys=True, default=str).encode())


class Fingerprint:
    """Accumulates the identity of a split's content: every observation and target (keys, dtypes, shapes,
    values), in order. Feed it the pairs while reading them (:meth:`add`), or use :func:`fingerprint`."""

    def __init__(self):
        self._h = hashlib.sha256()
        self.n = 0

    def add(self, observation: Mapping[str, Any], target: Mapping[str, Any]) -> None:
        _update(self._h, observation)
        _update(self._h, target)
        self.n += 1

    def hexdigest(self) -> str:
        h = self._h.copy()
        h.update(f"n={self.n}".encode())
        return h.hexdigest()


def fingerprint(cases: Iterable) -> str:
    """sha256 of a split handed to ``fit`` (iteration over ``(observation, target)`` pairs): the identity of the
    training data a checkpoint or a weights file belongs to."""
    fp = Fingerprint()
    for obs, target in cases:
        fp.add(obs, target)
    return fp.hexdigest()


def tag_hash(tag: Any, n: int = 16) -> str:
    """A short stable hash of a JSON-able tag (for file and folder names)."""
    return hashlib.sha256(json.dumps(tag, sort_keys=True, default=str).encode()).hexdigest()[:n]


class StopTraining(Exception):
    """Raised by a loss or step callback to end training early (the message is recorded as the reason)."""


class TensorState:
    """A dict of tensors (e.g. trainable loss weights) with ``state_dict``/``load_state_dict`` for checkpoints."""

    def __init__(self, tensors: Mapping[str, Any]):
        self.tensors = tensors

    def state_dict(self) -> dict[str, Any]:
        return {k: t.detach() for k, t in self.tensors.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        import torch

        with torch.no_grad():
            for k, t in self.tensors.items():
                t.copy_(state[k])


# ------------------------------------------------------------------------------------------ configuration
@dataclass
class Budget:
    """When to stop. ``steps``: units of work in total over every run of one checkpoint (None: no limit);
    ``seconds`` of the ``clock`` ("wall" or "cpu": this process's CPU time; None: no limit).

    ``cumulative``: the seconds count the training time of earlier runs resumed from the same checkpoint, and a run
    whose time is already spent does no work; otherwise they count from ``since`` (a clock reading, default: the
    start of this run) and every run does at least one unit. The unit that crosses the limit is the last one."""

    steps: int | None = None
    seconds: float | None = None
    clock: str = "wall"
    cumulative: bool = True
    since: float | None = None

    def timer(self) -> Callable[[], float]:
        if self.clock not in ("wall", "cpu"):
            raise ValueError(f"clock must be 'wall' or 'cpu' (got {self.clock!r})")
        return time.process_time if self.clock == "cpu" else time.perf_counter


@dataclass
class Checkpoint:
    """Where and when training state is saved. ``tag``: JSON-able identity (data fingerprint, hyper-parameters,
    seed, version); a file with another tag is started over (``on_mismatch="restart"``) or refused ("error").
    Saved at every validation, every ``every_s`` seconds (if set) and at the end. ``extra``: (get, set) of
    solver-specific state kept in the file (normalisation constants, histories)."""

    path: str | os.PathLike
    tag: Any
    on_mismatch: str = "restart"
    every_s: float | None = None
    extra: tuple[Callable[[], Any], Callable[[Any], None]] | None = None

    def __post_init__(self):
        self.path = Path(self.path)
        if self.on_mismatch not in ("restart", "error"):
            raise ValueError("on_mismatch must be 'restart' or 'error'")


class Precision:
    """Mixed precision of the forward pass. ``mode``: "off" (float32), "bf16", "fp16", or "auto" (float16 with a
    gradient scaler on CUDA, float32 on the CPU). Losses are computed in float32 by the caller."""

    def __init__(self, mode: str = "off", device: str = "cpu", allowed: tuple[str, ...] = ("off", "auto", "bf16",
                                                                                          "fp16")):
        import torch

        mode = str(mode)
        if mode not in allowed:
            raise ValueError(f"amp must be {' or '.join(repr(a) for a in allowed)} (got {mode!r})")
        self.device_type = torch.device(device).type
        cuda = self.device_type == "cuda"
        self.dtype = (torch.float16 if (mode == "auto" and cuda) or mode == "fp16" else
                      torch.bfloat16 if mode == "bf16" else None)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda and self.dtype is torch.float16)

    def autocast(self):
        import torch

        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)


@dataclass
class TrainResult:
    steps: int                              # units done in total (over every resumed run)
    resumed_from: int                       # units found in the checkpoint
    stopped: str | None                     # "time", or a StopTraining reason; None: all units done
    seconds: float                          # training time over every run (budget clock)
    seconds_this_run: float
    history: list[dict[str, Any]] = field(default_factory=list)   # one record per validation
    best: float = math.inf                  # best value of the selected validation key


# ------------------------------------------------------------------------------------------ the loop
class Trainer:
    """The training loop (see the module docstring). ``loss(step)`` returns a scalar tensor and the trainer
    optimises it; or ``step(trainer, step)`` does a whole unit itself (calling :meth:`optimise` per mini-batch)
    and returns its mean loss. ``evaluate(train_loss)`` returns a dict of numbers, ``select`` its key for the
    best weights (lower is better). ``on_step(step, seconds, loss)`` and ``on_end(result)`` are hooks."""

    def __init__(self, model, optimizers, budget: Budget, *, loss=None, step=None, schedulers=(),
                 evaluate=None, eval_every: int = 1, select: str = "val_loss", checkpoint: Checkpoint | None = None,
                 stateful: Mapping[str, Any] | None = None, rngs: Mapping[str, Any] | None = None,
                 precision: Precision | None = None, progress: str | None = None, on_step=None, on_end=None,
                 unit: str = "step", stop_on_nonfinite: bool = True):
        if (loss is None) == (step is None):
            raise ValueError("give exactly one of loss= and step=")
        self.modules = dict(model) if isinstance(model, Mapping) else {"model": model}
        self.optimizers, self.schedulers = list(optimizers), list(schedulers)
        self.budget, self.loss_fn, self.step_fn = budget, loss, step
        self.evaluate, self.eval_every, self.select = evaluate, max(1, int(eval_every)), select
        self.checkpoint, self.rngs = checkpoint, dict(rngs or {})
        self.precision = precision or Precision("off", _device_of(self.modules))
        self.progress, self.on_step, self.on_end = progress, on_step, on_end
        self.unit, self.stop_on_nonfinite = unit, stop_on_nonfinite
        self.stateful = {**self.modules, **{f"optimizer{i}": o for i, o in enumerate(self.optimizers)},
                         **{f"scheduler{i}": s for i, s in enumerate(self.schedulers)},
                         "scaler": self.precision.scaler, **(stateful or {})}
        self.clock = budget.timer()
        self.step = self.resumed_from = 0
        self.best, self.best_state, self.history = math.inf, None, []
        self.seconds_before = self.seconds = 0.0
        self._t_run: float | None = None

    # ---------------------------------------------------------------- state
    def elapsed(self) -> float:
        """Training seconds over every run (budget clock)."""
        return self.seconds_before + self.clock() - self._t_run

    def restore(self) -> int:
        """Resume from the checkpoint when its tag matches (once; :meth:`run` calls it); start the clock.
        Returns the units found in the checkpoint (0: a fresh start)."""
        if self._t_run is not None:
            return self.resumed_from
        ck = self.checkpoint
        if ck is not None and ck.path.exists():
            import torch

            st = torch.load(ck.path, map_location=_device_of(self.modules), weights_only=False)
            if st.get("format") == FORMAT and st.get("tag") == ck.tag:
                self._load(st)
            elif ck.on_mismatch == "error":
                raise ValueError(f"checkpoint {ck.path} belongs to another solver or observation (or other "
                                 "parameters); delete it or pass another checkpoint path")
        self._t_run = self.clock()
        return self.resumed_from

    def _load(self, st: dict[str, Any]) -> None:
        for k, obj in self.stateful.items():
            obj.load_state_dict(st["state"][k])
        _set_rng_states(self.rngs, st["rng"])
        self.step = self.resumed_from = int(st["step"])
        self.best, self.best_state, self.history = st["best"], st["best_state"], st["history"]
        self.seconds_before = self.seconds = float(st["seconds"])
        if self.checkpoint.extra is not None:
            self.checkpoint.extra[1](st["extra"])

    def save(self, seconds: float | None = None) -> None:
        """Write the checkpoint (atomically); ``seconds``: the training time to record (default: now)."""
        ck = self.checkpoint
        if ck is None:
            return
        atomic_save({"format": FORMAT, "tag": ck.tag, "step": self.step,
                     "seconds": self.elapsed() if seconds is None else seconds,
                     "state": {k: obj.state_dict() for k, obj in self.stateful.items()},
                     "rng": _get_rng_states(self.rngs), "best": self.best, "best_state": self.best_state,
                     "history": self.history, "extra": ck.extra[0]() if ck.extra is not None else None}, ck.path)

    # ---------------------------------------------------------------- steps
    def optimise(self, loss) -> None:
        """One optimiser step on ``loss``: zero the gradients, backward (scaled for float16), step every
        optimiser, update the scaler, step every scheduler."""
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        scaler = self.precision.scaler
        scaler.scale(loss).backward()
        for opt in self.optimizers:
            scaler.step(opt)
        scaler.update()
        for s in self.schedulers:
            s.step()

    def _unit(self) -> float:
        if self.step_fn is not None:
            return float(self.step_fn(self, self.step))
        loss = self.loss_fn(self.step)
        if self.stop_on_nonfinite and not bool(_isfinite(loss)):
            raise StopTraining(f"non-finite loss at {self.unit} {self.step}")
        self.optimise(loss)
        return float(loss.detach())

    def _validate(self, train_loss: float) -> dict[str, Any]:
        rec = {"step": self.step, "train_loss": train_loss, **self.evaluate(train_loss),
               "seconds": self.elapsed()}
        self.history.append(rec)
        if rec[self.select] < self.best:
            self.best = rec[self.select]
            self.best_state = {k: {n: t.detach().cpu().clone() for n, t in m.state_dict().items()}
                               for k, m in self.modules.items()}
        self.save()
        return rec

    def _time_up(self) -> bool:
        b = self.budget
        if b.seconds is None:
            return False
        spent = self.elapsed() if b.cumulative else self.clock() - (self._t_run if b.since is None else b.since)
        return spent >= float(b.seconds)

    # ---------------------------------------------------------------- the loop
    def run(self) -> TrainResult:
        """Train until the budget is spent; returns the :class:`TrainResult` with the best weights loaded."""
        self.restore()
        total, stopped = self.budget.steps, None
        run_loss, run_n, last_save = 0.0, 0, self.seconds_before
        with progress_bar(self.progress or "", bool(self.progress)) as prog:
            tid = prog.add_task("fit", total=total, completed=self.step, info="") if prog is not None else None
            while total is None or self.step < total:
                if self.budget.cumulative and self._time_up():
                    stopped = "time"
                    break
                try:
                    value = self._unit()
                except StopTraining as e:
                    stopped = str(e)
                    break
                self.step += 1
                run_loss, run_n = run_loss + value, run_n + 1
                if self.on_step is not None:
                    self.on_step(self.step, self.elapsed(), value)
                out_of_time = self._time_up()
                if self.evaluate is not None and (self.step % self.eval_every == 0 or self.step == total
                                                  or out_of_time):
                    rec = self._validate(run_loss / max(run_n, 1))
                    run_loss, run_n, last_save = 0.0, 0, rec["seconds"]
                    if prog is not None:
                        prog.update(tid, info=_describe(rec))
                elif self.checkpoint is not None and self.checkpoint.every_s is not None:
                    now = self.elapsed()
                    if now - last_save >= float(self.checkpoint.every_s):
                        self.save(now)
                        last_save = now
                if prog is not None:
                    prog.update(tid, completed=self.step)
                if out_of_time:
                    stopped = "time"
                    break
        return self._finish(stopped)

    def _finish(self, stopped: str | None) -> TrainResult:
        self.seconds = self.elapsed()
        res = TrainResult(self.step, self.resumed_from, stopped, self.seconds, self.seconds - self.seconds_before,
                          self.history, self.best)
        if self.on_end is not None:
            self.on_end(res)
        self.save(self.seconds)
        if self.best_state is not None:
            for k, m in self.modules.items():
                m.load_state_dict(self.best_state[k])
        return res


# ------------------------------------------------------------------------------------------ internals
def _device_of(modules: Mapping[str, Any]) -> str:
    for m in modules.values():
        for p in m.parameters():
            return str(p.device)
    return "cpu"


def _isfinite(loss) -> bool:
    import torch

    return bool(torch.isfinite(loss).all())


def _describe(rec: Mapping[str, Any]) -> str:
    return " ".join(f"{k.replace('_loss', '')} {rec[k]:.4g}" for k in ("train_loss", "val_loss") if k in rec)


def _get_rng_states(rngs: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    for k, g in rngs.items():
        out[k] = copy.deepcopy(g.bit_generator.state) if isinstance(g, np.random.Generator) else g.get_state()
    return out


def _set_rng_states(rngs: Mapping[str, Any], states: Mapping[str, Any]) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    for k, g in rngs.items():
        if isinstance(g, np.random.Generator):
            g.bit_generator.state = states[k]
        else:
            g.set_state(states[k])
