"""Evaluation from Python (notebooks, experiments): a solver *object* run in this process.

::

    from phantombench.notebook import evaluate_solver, plot_predictions

    res = evaluate_solver(MySolver(task, params={"lam": 1e-2}), "eit", "data/eit/random/v1", limit=5)
    res.summary["CC"]            # {"mean": ..., "median": ..., "std": ..., "n": ...}
    res.cases                    # one row per case: status, reason, solve_s, every metric
    fig = plot_predictions(res, res.cases.case[0])

Each case is read, solved, checked and scored exactly as the harness does it -- :meth:`Task.observation`,
:meth:`Task.truth`, :meth:`Task.validate` and :meth:`Task.score`, and ``fit`` receives the pairs of
:func:`phantombench.evaluate.read_pairs` -- but without process isolation, sandbox or time limits, so nothing
here is a leaderboard result: ``phantombench evaluate`` / ``submit`` stay the way to submit. A dataset without
truth (e.g. imported observations) is solved and its predictions saved, with no metrics.

Written to ``out_dir``: ``cases.parquet``, ``summary.json`` and ``predictions/<case>.npz`` (the validated
prediction arrays, or the raw ones of a rejected prediction when they are arrays).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phantombench.evaluate import dataset_id, read_pairs
from phantombench.store import Dataset, open_dataset
from phantombench.tasks import Task, TaskError, get_task


@dataclass
class NotebookResult:
    """What :func:`evaluate_solver` found: per-case table, per-metric summary, where predictions lie."""

    task: Task
    dataset: Dataset
    split: str
    solver: str
    cases: Any                                    # pandas.DataFrame
    summary: dict[str, dict[str, Any]]
    out_dir: Path | None
    predictions: dict[str, Path] = field(default_factory=dict)
    has_truth: bool = True
    fit_s: float = 0.0

    def prediction(self, case: str) -> dict[str, np.ndarray]:
        """The saved prediction arrays of ``case`` (a sample id such as ``"000007"``)."""
        if case not in self.predictions:
            raise KeyError(f"no saved prediction for case {case!r} (saved: {', '.join(self.predictions) or 'none'})")
        with np.load(self.predictions[case]) as z:
            return {k: z[k] for k in z.files}

    def __repr__(self) -> str:
        head = (f"{self.solver} on {self.dataset.manifest['name']} ({self.split}, {len(self.cases)} cases, "
                f"{int((self.cases['status'] == 'ok').sum())} ok)")
        rows = [f"  {m}: {s['mean']:.4g} (median {s['median']:.4g}, n {s['n']})" for m, s in self.summary.items()
                if s["mean"] is not None]
        return "\n".join([head, *rows])


def _solver(solver: Any, task: Task, params: dict | None, seed: int, device: str | None):
    """An object passes through (its ``task`` must be this one); a class is constructed for the task."""
    if isinstance(solver, type):
        return solver(task, params=params, device=device, seed=seed)
    if params:
        raise ValueError("params go to the constructor: pass the class, or construct the object yourself")
    if not callable(getattr(solver, "solve", None)):
        raise TypeError(f"{type(solver).__name__} has no solve(observation) method")
    own = getattr(getattr(solver, "task", None), "name", task.name)
    if own != task.name:
        raise TaskError(f"the solver object was built for task {own!r}, not {task.name!r}")
    return solver


def _has_truth(task: Task, ds: Dataset) -> bool:
    """True if the dataset holds the task's truth; a dataset that lacks only truth can still be solved."""
    try:
        task.check_dataset(ds)
        return True
    except TaskError:
        schema = ds.manifest["schema"]
        missing = [o.key for o in task.observations if o.source == "field" and not o.optional and o.key not in schema]
        if missing or ds.manifest.get("generator", {}).get("name") not in task.generators:
            raise
        return False


def _fit(obj: Any, task: Task, ds: Dataset) -> float:
    from phantombench.solvers.base import Cases, Solver

    fit = getattr(obj, "fit", None)
    if fit is None or (isinstance(obj, Solver) and not type(obj).has_fit()):
        return 0.0
    splits = ds.manifest["splits"]
    if "train" not in splits:
        return 0.0
    src = [dataset_id(ds)]
    train = Cases(read_pairs(task, ds, ds.split("train")), sources=src)
    val = Cases(read_pairs(task, ds, ds.split("val") if "val" in splits else []), sources=src)
    t0 = time.perf_counter()
    fit(train, val)
    return time.perf_counter() - t0


def _to_arrays(pred: Any) -> dict[str, np.ndarray]:
    if not isinstance(pred, dict):
        return {}
    out = {}
    for k, v in pred.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        if isinstance(v, np.ndarray):
            out[str(k)] = v
    return out


def _case(obj: Any, task: Task, ds: Dataset, i: int, truthful: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Solve, validate and score one case: (table row, prediction arrays to save)."""
    g = ds.group(i)
    row: dict[str, Any] = {"case": ds.ids[i], "index": i, "status": "failed", "reason": "", "solve_s": np.nan}
    obs = task.observation(ds, i, g)
    t0 = time.perf_counter()
    try:
        raw = obj.solve(obs)
    except Exception as e:  # noqa: BLE001 - a failing case is a row, as in the harness
        row["reason"] = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        return row, {}
    row["solve_s"] = time.perf_counter() - t0
    if not truthful:
        arrays = _to_arrays(raw)
        missing = [p for p in task.prediction_names if p not in arrays]
        row.update(status="failed" if missing else "solved (no truth)",
                   reason=f"prediction lacks {', '.join(missing)}" if missing else "")
        return row, arrays
    truth = task.truth(ds, i, g)
    pred, reason = task.validate(raw, truth)
    if reason is not None:
        row["reason"] = f"invalid prediction: {reason}"
        return row, _to_arrays(raw)
    row.update(task.score(pred, truth))
    row["status"] = "ok"
    return row, pred


def _summary(task: Task, cases) -> dict[str, dict[str, Any]]:
    out = {}
    ok = cases[cases["status"] == "ok"]
    for m in task.metrics:
        v = ok[m.name].to_numpy(dtype=float) if m.name in ok else np.array([])
        v = v[np.isfinite(v)]
        out[m.name] = {"mean": float(v.mean()) if v.size else None, "median": float(np.median(v)) if v.size else None,
                       "std": float(v.std(ddof=1)) if v.size > 1 else (0.0 if v.size else None), "n": int(v.size),
                       "direction": m.direction, "unit": m.unit}
    return out


def evaluate_solver(solver: Any, task: str | Task, dataset: str | os.PathLike | Dataset, split: str = "test",
                    limit: int | None = None, save_predictions: bool = True, *,
                    out_dir: str | os.PathLike | None = None,
                    params: dict | None = None, seed: int = 0, device: str | None = None,
                    fit: bool = True) -> NotebookResult:
    """Run ``solver`` (an object with ``solve``, or a Solver class) on ``split`` of ``dataset`` in this process.

    ``fit``: call ``solver.fit`` on the dataset's train/val pairs first (when it has one). ``out_dir`` (default
    ``./notebook-results/<task>__<solver>__<dataset>__<split>``) receives the table, the summary and, with
    ``save_predictions``, one ``.npz`` per case."""
    import pandas as pd

    task = get_task(task) if isinstance(task, str) else task
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    truthful = _has_truth(task, ds)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1 (got {limit})")
    obj = _solver(solver, task, params, seed, device)
    name = getattr(obj, "name", "") or type(obj).__name__
    fit_s = _fit(obj, task, ds) if fit else 0.0
    rows, preds = [], {}
    for i in ds.split(split)[:limit]:
        row, arrays = _case(obj, task, ds, i, truthful)
        rows.append(row)
        preds[row["case"]] = arrays
    cols = ["case", "index", "status", "reason", "solve_s"] + ([m.name for m in task.metrics] if truthful else [])
    cases = pd.DataFrame(rows).reindex(columns=cols)
    res = NotebookResult(task, ds, split, name, cases, _summary(task, cases) if truthful else {}, None,
                         has_truth=truthful, fit_s=fit_s)
    if save_predictions or out_dir is not None:
        _write(res, preds if save_predictions else {}, out_dir)
    return res


def _write(res: NotebookResult, preds: dict[str, dict[str, np.ndarray]], out_dir) -> None:
    m = res.dataset.manifest
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in
                   f"{res.task.name}__{res.solver}__{m['name']}-{res.dataset.fingerprint[:8]}__{res.split}")
    out = Path(out_dir) if out_dir is not None else Path("notebook-results") / safe
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    res.cases.to_parquet(out / "cases.parquet", index=False)
    summary = {"task": res.task.name, "solver": res.solver, "dataset": m["name"],
               "fingerprint": res.dataset.fingerprint,
               "split": res.split, "has_truth": res.has_truth, "fit_s": res.fit_s, "metrics": res.summary,
               "note": "in-process evaluation (phantombench.notebook): not a leaderboard record"}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for case, arrays in preds.items():
        if arrays:
            p = out / "predictions" / f"{case}.npz"
            np.savez_compressed(p, **arrays)
            res.predictions[case] = p
    res.out_dir = out


def plot_predictions(result: NotebookResult, case: str | int | None = None):
    """A matplotlib Figure of one case: per predicted field, truth | prediction | error (prediction alone
    without truth). ``case``: a sample id, a row number of ``result.cases``, or None for the first case."""
    import matplotlib.pyplot as plt

    case = (result.cases["case"].iloc[case if isinstance(case, int) else 0]
            if case is None or isinstance(case, int) else str(case))
    pred = result.prediction(case)
    ds, task = result.dataset, result.task
    truth = task.truth(ds, ds.ids.index(case)) if result.has_truth else None
    names = [p for p in task.predictions if p.name in pred]
    ncol = 3 if truth is not None else 1
    fig, axes = plt.subplots(len(names), ncol, figsize=(3.2 * ncol + 0.8, 2.9 * len(names)), squeeze=False,
                             constrained_layout=True)
    for r, p in enumerate(names):
        q = np.real(np.asarray(pred[p.name], dtype=np.complex128 if np.iscomplexobj(pred[p.name]) else float))
        unit = f" [{p.unit}]" if p.unit not in ("", "1") else ""
        panels = [(f"{case} prediction {p.name}{unit}", q, "viridis")]
        if truth is not None:
            mask = truth["_mask"]
            g = np.where(mask, np.real(truth[p.name]), np.nan)
            q = np.where(mask, q, np.nan)
            panels = [(f"{case} truth {p.name}{unit}", g, "viridis"), (f"prediction {p.name}", q, "viridis"),
                      (f"error{unit}", q - g, "RdBu_r")]
        fin = panels[0][1][np.isfinite(panels[0][1])]
        lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 1.0)
        for c, (title, img, cmap) in enumerate(panels):
            if cmap == "RdBu_r":
                e = img[np.isfinite(img)]
                lim = float(np.abs(e).max()) if e.size and np.abs(e).max() > 0 else 1.0
                im = axes[r, c].imshow(img, cmap=cmap, vmin=-lim, vmax=lim)
            else:
                im = axes[r, c].imshow(img, cmap=cmap, vmin=lo, vmax=hi)
            axes[r, c].set_title(title, fontsize=8)
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            fig.colorbar(im, ax=axes[r, c], shrink=0.8)
    row = result.cases[result.cases["case"] == case].iloc[0]
    main = task.main_metric
    extra = f", {main} {row[main]:.4g}" if result.has_truth and main in row and np.isfinite(row[main]) else ""
    fig.suptitle(f"{result.solver} on {ds.manifest['name']} case {case}{extra}", fontsize=9)
    return fig
