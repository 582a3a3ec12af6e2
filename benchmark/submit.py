"""``phantombench submit``: the official evaluation of one solver, onto the leaderboard or not at all.

For every official dataset of the task (:mod:`phantombench.official`, generated if missing) the solver runs in
a child process on the ``test`` split with its per-case time limit and an overall time limit; every prediction
is validated (fields, shape, dtype, finite, physical bounds and unit scale). The first failing case rejects
the whole submission with one line, and nothing on the board changes. Only when every case of every dataset
passed are the records written and the pages re-rendered, under the board lock (concurrent submits serialise).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from phantombench.evaluate import Evaluation, EvaluationError, evaluate
from phantombench.official import DEFAULT_ROOT, ensure, official


class SubmitError(RuntimeError):
    """The submission was rejected; ``str(e)`` is the one line to show."""


def submit(solver: str, task: str, *, board: str | Path = "leaderboard", data_root: str | Path = DEFAULT_ROOT,
           presets: list[str] | None = None, params: dict[str, Any] | None = None, device: str | None = None,
           seed: int = 0, time_limit_s: float | None = None, timeout_s: float | None = None,
           workers: int | None = None, progress: Callable[[str, int, int], None] | None = None,
           dataset_progress: Callable[[str, int, int], None] | None = None) -> list[Evaluation]:
    """Evaluate ``solver`` on the official datasets of ``task``; add the records only if every case passed."""
    ods = official(task, presets)
    datasets = []
    for od in ods:
        cb = (lambda d, t, _k=od.key: dataset_progress(_k, d, t)) if dataset_progress else None
        datasets.append((od, ensure(od, data_root, workers=workers, progress=cb)))
    import time

    deadline = None if time_limit_s is None else time.perf_counter() + float(time_limit_s)
    evs: list[Evaluation] = []
    with tempfile.TemporaryDirectory(prefix="phantombench-submit-") as tmp:
        for k, (od, ds) in enumerate(datasets):
            cb = (lambda d, t, _c, _k=od.key: progress(_k, d, t)) if progress else None
            rest = None if deadline is None else max(deadline - time.perf_counter(), 1e-3)
            try:
                ev = evaluate(solver, task, ds, od.split, params=params, device=device, seed=seed,
                              out_dir=Path(tmp) / f"{k}", isolate=True, strict=True, timeout_s=timeout_s,
                              time_limit_s=rest, progress=cb)
            except EvaluationError as e:
                raise SubmitError(f"rejected: {solver} on {od.key}: {e}") from None
            rec = ev.record
            if ev.failed:
                f = ev.failed[0]
                raise SubmitError(f"rejected: {rec['solver']['name']} on {od.key}, case {f['case']}: {f['reason']}")
            if rec["cases"]["ok"] != rec["cases"]["n"] or rec["cases"]["n"] == 0:
                raise SubmitError(f"rejected: {rec['solver']['name']} on {od.key}: "
                                  f"{rec['cases']['ok']} of {rec['cases']['n']} cases evaluated")
            rec["official"] = {"dataset": od.key, "generator": od.generator, "preset": od.preset, "n": od.n,
                               "seed": od.seed}
            evs.append(ev)
        from phantombench.leaderboard import add_evaluations

        add_evaluations(Path(board), evs)
    return evs
