"""The board's statistics and choices: the trivial solver ranks last on every official dataset's main metric,
bootstrap intervals cover and shrink, ties are declared only when the data cannot separate two solvers, and the
page is a pure function of the records."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phantombench import leaderboard as lb
from phantombench.board_stats import DatasetGroup, indistinguishable, interval, rank_group
from phantombench.official import all_official
from phantombench.tasks import get_task

BOARD = Path(__file__).resolve().parent.parent / "leaderboard"


def test_the_trivial_solver_ranks_last_on_every_official_dataset():
    """On the committed records: for each official benchmark dataset, the constant solver is last by the task's
    main metric (verification datasets, such as the homogeneous phantom a nominal constant can hit, excepted)."""
    recs = lb.load_records(BOARD)
    checked = 0
    for od in all_official():
        if od.purpose != "benchmark":
            continue
        rs = [r for r in recs if r.get("official", {}).get("dataset") == od.key and r["task"]["name"] == od.task]
        if not any(r["solver"]["name"] == "constant" for r in rs) or len(rs) < 2:
            continue
        task = get_task(od.task)
        g = rank_group(DatasetGroup("k", rs), task.main_metric, task.metric(task.main_metric).direction)
        assert g.rows[-1].record["solver"]["name"] == "constant", (od.key, [(x.record["solver"]["name"], x.mean)
                                                                           for x in g.rows])
        checked += 1
    assert checked >= 8


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_cases():
    rng = np.random.default_rng(0)
    small, large = rng.normal(10, 2, 10), rng.normal(10, 2, 400)
    lo_s, hi_s = interval(small, 1)
    lo_l, hi_l = interval(large, 1)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert (hi_l - lo_l) < 0.3 * (hi_s - lo_s)                # ~ 1/sqrt(40) narrower
    assert abs((hi_l - lo_l) - 2 * 1.96 * 2 / np.sqrt(400)) < 0.05   # the normal-theory width
    assert interval(np.array([3.0]), 1) is None and interval(small, 1) == interval(small, 1)


def test_paired_ties_separate_only_what_the_data_separate():
    rng = np.random.default_rng(1)
    base = {f"{i:06d}": v for i, v in enumerate(rng.normal(10, 3, 50))}       # case difficulty varies a lot
    shifted = {k: v + 0.5 + rng.normal(0, 0.1) for k, v in base.items()}      # always 0.5 worse: separable
    noisy = {k: v + rng.normal(0, 1.0) for k, v in base.items()}              # no systematic difference
    assert indistinguishable(shifted, base, 7) is False
    assert indistinguishable(noisy, base, 7) is True
    assert indistinguishable({"a": 1.0}, {"a": 2.0}, 7) is None               # one shared case: no verdict


def _rec(rid: str, solver: str, vals: dict[str, float]) -> dict:
    df = pd.DataFrame({"case": list(vals), "status": "ok", "MARE_E": list(vals.values())})
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return {"id": rid, "solver": {"name": solver}, "metrics": {"MARE_E": {"mean": float(np.mean(list(vals.values()))),
                                                                          "n": len(vals)}},
            "_cases": buf.getvalue()}


def test_rank_group_marks_best_tied_and_worse():
    rng = np.random.default_rng(2)
    base = {f"{i:06d}": v for i, v in enumerate(rng.normal(10, 3, 60))}
    g = rank_group(DatasetGroup("d", [
        _rec("a", "a", base),
        _rec("b", "b", {k: v + rng.normal(0, 1.0) for k, v in base.items()}),
        _rec("c", "c", {k: v + 3 for k, v in base.items()}),
    ]), "MARE_E", "lower")
    verdict = {r.record["solver"]["name"]: r.verdict for r in g.rows}
    assert g.rows[-1].record["solver"]["name"] == "c" and verdict["c"] == ""
    assert {verdict["a"], verdict["b"]} == {"best", "tied"}
    assert all(r.ci is not None and r.ci[0] < r.mean < r.ci[1] for r in g.rows)


@pytest.mark.parametrize("page", ["README.md", "index.html"])
def test_the_committed_board_is_rendered_from_its_records(page):
    assert page not in lb.check(BOARD)
