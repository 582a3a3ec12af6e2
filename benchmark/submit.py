"""``phantombench submit``: the official evaluation of one solver, onto the leaderboard or not at all.

For every official dataset of the task (:mod:`phantombench.official`, generated if missing) the solver runs in
a child process on the ``test`` split with its per-case time limit and an overall time limit; every prediction
is validated (fields, shape, dtype, finite, physical bounds and unit scale). The first failing case rejects
the whole submission with one line, and nothing on the board changes. Only when every case of every dataset
passed are the records written and the pages re-rendered, under the board lock (concurrent submits serialise).

Before any solver runs, every official dataset is checked against its pinned reference (machine-independent
fingerprint, :mod:`phantombench.official`) and the board's records are read (a damaged one is named). The
solver runs inside the sandbox with the data root and the board hidden; only this process writes the board.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from phantombench.evaluate import Evaluation, EvaluationError, evaluate
from phantombench.official import (DEFAULT_ROOT, OfficialDataset, OfficialError, all_official, ensure, official,
                                   official_fingerprint, seed_for)


class SubmitError(RuntimeError):
    """The submission was rejected; ``str(e)`` is the one line to show."""


def _official_datasets(task: str, presets, data_root, workers, dataset_progress) -> list[tuple[Any, Any, str]]:
    """(definition, dataset, official fingerprint) of each official dataset, generated if missing and checked
    against its pinned reference; any mismatch rejects the submission before a solver runs."""
    out = []
    for od in official(task, presets):
        cb = (lambda d, t, _k=od.key: dataset_progress(_k, d, t)) if dataset_progress else None
        try:
            ds = ensure(od, data_root, workers=workers, progress=cb)
            out.append((od, ds, official_fingerprint(od, ds)))
        except (OfficialError, ValueError) as e:
            raise SubmitError(f"rejected: {e}") from None
    return out


def training_dataset(od: OfficialDataset, n: int, seed: int) -> OfficialDataset:
    """The generated training set of a learned solver for official dataset ``od`` (the training-data policy).

    Same generator, preset and overrides as ``od``; ``n`` samples (90 % train, 10 % val) from dataset seed
    ``seed``, which must differ from the seed of every official dataset of that generator: sample streams of
    different dataset seeds are independent, so no test phantom is among the training phantoms."""
    taken = {seed_for(o) for o in all_official() if o.generator == od.generator}
    if seed in taken:
        raise SubmitError(f"rejected: --train-seed {seed} is the seed of an official {od.generator} dataset; "
                          "choose a seed that no test set uses")
    if n < 2:
        raise SubmitError(f"rejected: --train-n must be at least 2 (got {n})")
    n_val = max(1, n // 10)
    return OfficialDataset(od.task, od.generator, od.preset, n=n, seed=seed, version=f"train-s{seed}-n{n}",
                           overrides=dict(od.overrides), split="train", splits={"train": n - n_val, "val": n_val})


def _generated_training(od, train: tuple[int, int] | None, data_root, workers, dataset_progress):
    if train is None:
        return None
    tod = training_dataset(od, *train)
    cb = (lambda d, t, _k=tod.key: dataset_progress(_k, d, t)) if dataset_progress else None
    try:
        return ensure(tod, data_root, workers=workers, progress=cb)
    except (OfficialError, ValueError) as e:
        raise SubmitError(f"rejected: training data {tod.key}: {e}") from None


def submit(solver: str, task: str, *, board: str | Path = "leaderboard", data_root: str | Path = DEFAULT_ROOT,
           presets: list[str] | None = None, params: dict[str, Any] | None = None, device: str | None = None,
           seed: int = 0, time_limit_s: float | None = None, timeout_s: float | None = None,
           workers: int | None = None, progress: Callable[[str, int, int], None] | None = None,
           dataset_progress: Callable[[str, int, int], None] | None = None,
           sandbox: bool | None = None, train: tuple[int, int] | None = None) -> list[Evaluation]:
    """Evaluate ``solver`` on the official datasets of ``task``; add the records only if every case passed.

    The solver runs in the sandbox (when bubblewrap is available; ``sandbox=True`` requires it) with the data
    root and the board hidden from it. Records carry each dataset's official fingerprint and tier.

    Training data (learned solvers): by default ``fit`` gets the official dataset's train and val splits;
    ``train=(n, seed)`` instead generates ``n`` phantoms with the public generator from a seed disjoint from
    the test seeds (:func:`training_dataset`) and trains on those. The record's ``training`` block says which,
    with the dataset id, the case counts and the fitting time."""
    from phantombench.leaderboard import LeaderboardError, add_evaluations, load_records

    try:
        load_records(Path(board))          # a damaged board is named now, before any solver runs
    except LeaderboardError as e:
        raise SubmitError(f"rejected: {e}") from None
    datasets = _official_datasets(task, presets, data_root, workers, dataset_progress)
    deadline = None if time_limit_s is None else time.perf_counter() + float(time_limit_s)
    evs: list[Evaluation] = []
    with tempfile.TemporaryDirectory(prefix="phantombench-submit-") as tmp:
        for k, (od, ds, fp) in enumerate(datasets):
            cb = (lambda d, t, _c, _k=od.key: progress(_k, d, t)) if progress else None
            train_ds = _generated_training(od, train, data_root, workers, dataset_progress)
            rest = None if deadline is None else max(deadline - time.perf_counter(), 1e-3)
            try:
                ev = evaluate(solver, task, ds, od.split, params=params, device=device, seed=seed,
                              out_dir=Path(tmp) / f"{k}", isolate=True, strict=True, timeout_s=timeout_s,
                              time_limit_s=rest, progress=cb, sandbox=sandbox,
                              private=[Path(data_root), Path(board)], tier=od.tier, fingerprint=fp,
                              train_dataset=train_ds)
            except EvaluationError as e:
                raise SubmitError(f"rejected: {solver} on {od.key}: {e}") from None
            _check_complete(ev, od)
            if train_ds is not None and ev.record.get("training"):
                ev.record["training"]["source"] = "generated"
            ev.record["official"] = {"dataset": od.key, "generator": od.generator, "preset": od.preset, "n": od.n,
                                     "tier": od.tier, **({"seed": od.seed} if od.tier == "public" else {})}
            evs.append(ev)
        try:
            add_evaluations(Path(board), evs)
        except LeaderboardError as e:
            raise SubmitError(f"rejected: {e}") from None
    return evs


def _check_complete(ev: Evaluation, od) -> None:
    rec = ev.record
    if ev.failed:
        f = ev.failed[0]
        raise SubmitError(f"rejected: {rec['solver']['name']} on {od.key}, case {f['case']}: {f['reason']}")
    if rec["cases"]["ok"] != rec["cases"]["n"] or rec["cases"]["n"] == 0:
        raise SubmitError(f"rejected: {rec['solver']['name']} on {od.key}: "
                          f"{rec['cases']['ok']} of {rec['cases']['n']} cases evaluated")
