"""The board's statistics: per-case values, bootstrap intervals, ranking and ties within a dataset.

Every record keeps its per-case metrics (``<id>.cases.parquet``). For the task's main metric the board shows the
mean over the test cases with a 95 % percentile-bootstrap interval (2,000 resamples of the cases). Solvers on one
dataset are ranked by the mean; a solver is **tied** with the best when the 95 % paired-bootstrap interval of
its per-case difference to the best (same cases, resampled together) contains zero, i.e. the data cannot tell
them apart. Datasets with a single test case get no interval and no ties ("single case"). Resampling uses a
seed derived from the record ids, so the same records always render the same page.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def _seed(*ids: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(ids).encode()).digest()[:8], "big")


def case_values(r: dict[str, Any], metric: str) -> dict[str, float]:
    """case id -> value of ``metric`` (finite values of the cases that passed) from the record's parquet."""
    src = r.get("_cases")
    if src is None:
        return {}
    import pandas as pd

    try:
        df = pd.read_parquet(io.BytesIO(src) if isinstance(src, bytes) else Path(src))
    except Exception:  # noqa: BLE001 - a record without readable cases shows no interval
        return {}
    if metric not in df.columns:
        return {}
    ok = df[(df["status"] == "ok") & np.isfinite(df[metric].astype(float))]
    return dict(zip(ok["case"].astype(str), ok[metric].astype(float)))


def interval(values: np.ndarray, seed: int) -> tuple[float, float] | None:
    """95 % percentile-bootstrap interval of the mean (None for fewer than two values)."""
    v = np.asarray(values, float)
    if v.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (RESAMPLES, v.size))].mean(axis=1)
    a = (1 - LEVEL) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def indistinguishable(a: dict[str, float], b: dict[str, float], seed: int) -> bool | None:
    """Paired bootstrap on the shared cases: does the 95 % interval of mean(a - b) contain zero? (None: < 2 shared)"""
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        return None
    d = np.array([a[c] - b[c] for c in shared])
    ci = interval(d, seed)
    return ci is not None and ci[0] <= 0.0 <= ci[1]


@dataclass
class Row:
    record: dict[str, Any]
    mean: float | None
    ci: tuple[float, float] | None
    n: int
    rank: int = 0
    verdict: str = ""           # "best", "tied", "" (worse), or "" for single cases below the best


@dataclass
class DatasetGroup:
    key: str
    records: list[dict[str, Any]]
    rows: list[Row] = field(default_factory=list)

    @property
    def single_case(self) -> bool:
        return all(r.n <= 1 for r in self.rows)


def rank_group(group: DatasetGroup, metric: str, direction: str) -> DatasetGroup:
    """Rows sorted best first, with intervals, ranks and verdicts (see the module docstring)."""
    vals = {r["id"]: case_values(r, metric) for r in group.records}
    rows = []
    for r in group.records:
        m = r["metrics"].get(metric, {}).get("mean")
        v = np.array(list(vals[r["id"]].values()))
        rows.append(Row(r, m, interval(v, _seed(r["id"])), int(v.size) or int(r["metrics"].get(metric, {}).get("n") or 0)))
    sign = 1.0 if direction == "lower" else -1.0
    rows.sort(key=lambda x: (x.mean is None, sign * (x.mean if x.mean is not None else 0.0), x.record["solver"]["name"],
                             x.record["id"]))
    for k, row in enumerate(rows, 1):
        row.rank = k
    if rows and rows[0].mean is not None:
        best = rows[0]
        best.verdict = "best"
        for row in rows[1:]:
            if row.mean is None:
                continue
            same = indistinguishable(vals[row.record["id"]], vals[best.record["id"]],
                                     _seed(row.record["id"], best.record["id"]))
            if same is None and row.ci and best.ci:      # no shared cases: overlapping intervals
                same = row.ci[0] <= best.ci[1] and best.ci[0] <= row.ci[1]
            if same:
                row.verdict = "tied"
    group.rows = rows
    return group
