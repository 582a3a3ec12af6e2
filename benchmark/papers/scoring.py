"""Scoring for the paper reproductions: the evaluation harness first, one in-process loop where it cannot go.

:func:`harness` runs a solver through :func:`phantombench.evaluate.evaluate` -- the benchmark's own time limits,
process isolation, validation and records -- on every sample of a dataset (the :data:`~.common.ALL` split) and
keeps every validated prediction, so a paper can compute its own statistics on top (pooled correlations, pixel
subsets); :func:`rows` turns the returned ``Evaluation`` into one dict per case.

:func:`solve_in_process` is the loop for the solver objects a paper must keep in its own process: one whose
training history is part of the report (El-UNet's per-epoch snapshots), or one trained once on data the harness
cannot hand it (the CNN-PINN's stage 1 on three datasets at once) and then reused for several variants. It
validates and scores with the task exactly as the harness does, and returns the same per-case dicts as
:func:`rows`, so a paper aggregates both the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from phantombench.papers.common import ALL, whole


class ScoringError(RuntimeError):
    """A solver failed a case of a paper's table (a reproduction reports numbers for every case or none)."""


def harness(spec: str, task, ds, *, params: dict[str, Any] | None = None, seed: int = 0, device: str | None = None,
            train_dataset=None, split: str = ALL, limit: int | None = None, isolate: bool = True,
            strict: bool = True):
    """Evaluate solver ``spec`` on ``split`` of ``ds`` (default: every sample) with the harness; every
    prediction is kept in ``examples``. With ``strict`` a failed case raises :class:`ScoringError`."""
    from phantombench.evaluate import evaluate

    view = whole(ds) if split == ALL else ds
    n = len(view.split(split)) if limit is None else limit
    ev = evaluate(spec, task, view, split, params=params or {}, device=device, seed=seed, isolate=isolate,
                  train_dataset=train_dataset, figure_cases=n, limit=limit)
    if strict and ev.record["cases"]["failed"]:
        f = ev.record["cases"]["failures"][0]
        raise ScoringError(f"{spec} failed case {f['case']} of {ds.manifest['name']}: {f['reason']}")
    return ev


def rows(ev, task) -> list[dict[str, Any]]:
    """The cases of a strict :func:`harness` run in the form :func:`solve_in_process` returns: ``index`` (in the
    dataset), ``truth``, ``pred`` (validated prediction), ``reason`` (None), ``metrics``, ``solve_s``."""
    names = [m.name for m in task.metrics]
    out = []
    for (_, row), ex in zip(ev.cases.iterrows(), ev.examples, strict=True):
        out.append({"index": int(row["index"]), "truth": ex["truth"], "pred": ex["prediction"], "reason": None,
                    "metrics": {k: float(row[k]) for k in names}, "solve_s": float(row["solve_s"])})
    return out


def solve_in_process(task, solver, cases: Iterable[tuple[dict, dict]]) -> list[dict[str, Any]]:
    """Solve, validate and score each (observation, truth) with ``solver`` in this process; one dict per case:
    ``index`` (position in ``cases``), ``truth``, ``pred`` (validated prediction or None), ``reason`` (None or
    why it failed), ``metrics``, ``solve_s``."""
    out = []
    for k, (obs, truth) in enumerate(cases):
        t0 = time.perf_counter()
        raw = solver.solve(obs)
        dt = time.perf_counter() - t0
        pred, reason = task.validate(raw, truth)
        out.append({"index": k, "truth": truth, "pred": pred if reason is None else None, "reason": reason,
                    "metrics": task.score(pred, truth) if reason is None else {}, "solve_s": dt})
    return out


def require_ok(name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` of :func:`solve_in_process`, or :class:`ScoringError` at the first invalid prediction."""
    for r in rows:
        if r["reason"] is not None:
            raise ScoringError(f"{name} returned an invalid prediction: {r['reason']}")
    return rows
