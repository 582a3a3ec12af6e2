"""Evaluation from Python: a solver object in process, scored exactly as the harness scores it; predictions saved
beside the metrics; a figure per case; datasets without truth solved and saved without metrics."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

import phantombench
from phantombench.solvers.base import Solver
from phantombench.tasks import get_task

matplotlib.use("Agg")


class Halves(Solver):
    """A learned toy: E = the mean of the training E maps; records what fit saw."""

    name = "halves"
    tasks = ("brain-elasticity",)
    fit_budget_s = 5.0

    def fit(self, train, val):
        self.seen = (len(train), len(val), sorted(train[0][1]))
        self.E = float(np.mean([t["E"].mean() for _, t in train]))

    def solve(self, obs):
        E = np.full(obs["mask"].shape, self.E)
        return {"E": E, "nu": np.full_like(E, 0.4)}


class Flaky(Solver):
    name = "flaky"
    tasks = ()

    def solve(self, obs):
        shape = np.shape(obs["mask"])
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 1:
            raise ValueError("first case fails")
        if self.calls == 2:
            return {"E": np.full(shape, np.nan), "nu": np.zeros(shape)}
        return {"E": np.full(shape, 1000.0), "nu": np.full(shape, 0.3)}


def test_scores_equal_the_harness(fake_brain10, tmp_path):
    from phantombench.evaluate import evaluate
    from phantombench.notebook import evaluate_solver
    from phantombench.solvers.constant import Constant

    task = get_task("brain-elasticity")
    res = evaluate_solver(Constant(task), task, fake_brain10, split="train", limit=4, out_dir=tmp_path / "nb")
    ev = evaluate("constant", task, fake_brain10, split="train", limit=4, isolate=False)
    assert list(res.cases["case"]) == list(ev.cases["case"]) and (res.cases["status"] == "ok").all()
    for m in task.metrics:
        np.testing.assert_array_equal(res.cases[m.name].to_numpy(float), ev.cases[m.name].to_numpy(float))
        assert res.summary[m.name]["mean"] == ev.record["metrics"][m.name]["mean"]
    # predictions beside the metrics, one npz per case
    assert sorted(p.name for p in (tmp_path / "nb" / "predictions").iterdir()) == [f"{c}.npz" for c in res.cases.case]
    assert (tmp_path / "nb" / "cases.parquet").exists()
    summary = json.loads((tmp_path / "nb" / "summary.json").read_text())
    assert summary["metrics"]["MARE_E"]["mean"] == res.summary["MARE_E"]["mean"]
    assert "not a leaderboard" in summary["note"]
    p = res.prediction(res.cases.case[0])
    assert set(p) == {"E", "nu"} and p["E"].dtype == np.float64
    assert "MARE_E" in repr(res)


def test_a_class_is_fitted_on_train_and_val(fake_brain10, tmp_path):
    from phantombench.notebook import evaluate_solver

    ds = phantombench.open_dataset(fake_brain10)
    res = evaluate_solver(Halves, "brain-elasticity", fake_brain10, out_dir=tmp_path / "h")
    assert res.cases["status"].tolist() == ["ok"] * len(ds.split("test")) and res.solver == "halves"
    obj = Halves(get_task("brain-elasticity"))
    res = evaluate_solver(obj, "brain-elasticity", fake_brain10, out_dir=tmp_path / "h2")
    assert obj.seen == (len(ds.split("train")), len(ds.split("val")), ["E", "nu"])
    train_E = np.mean([ds[i]["E"].mean() for i in ds.split("train")])
    assert res.prediction(res.cases.case[0])["E"][0, 0] == pytest.approx(train_E)
    assert evaluate_solver(Halves(get_task("brain-elasticity")), "brain-elasticity", fake_brain10, fit=False,
                           save_predictions=False).out_dir is None


def test_failures_are_rows_and_raw_predictions_are_kept(fake_brain10, tmp_path):
    from phantombench.notebook import evaluate_solver

    task = get_task("brain-elasticity")
    res = evaluate_solver(Flaky(task), task, fake_brain10, split="train", limit=3, out_dir=tmp_path / "f")
    assert res.cases["status"].tolist() == ["failed", "failed", "ok"]
    assert res.cases["reason"][0] == "ValueError: first case fails"
    assert res.cases["reason"][1].startswith("invalid prediction: E: ") and "NaN" in res.cases["reason"][1]
    assert set(res.predictions) == set(res.cases.case[1:])         # the rejected arrays are kept for a look
    assert np.isnan(res.prediction(res.cases.case[1])["E"]).all()
    assert res.summary["MARE_E"]["n"] == 1
    with pytest.raises(KeyError, match="no saved prediction"):
        res.prediction(res.cases.case[0])


def test_plot_predictions(fake_brain10, tmp_path):
    from phantombench.notebook import evaluate_solver, plot_predictions
    from phantombench.solvers.constant import Constant

    task = get_task("brain-elasticity")
    res = evaluate_solver(Constant(task), task, fake_brain10, split="train", limit=2, out_dir=tmp_path / "p")
    fig = plot_predictions(res, res.cases.case[1])
    assert len(fig.axes) == 2 * 3 * 2                              # E and nu: truth, prediction, error (+ colorbars)
    assert "MARE_E" in fig._suptitle.get_text()
    fig.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
    assert plot_predictions(res).axes[0].get_title().startswith(res.cases.case[0])


def test_a_dataset_without_truth_is_solved_and_saved(tmp_path):
    from phantombench.importers import import_dataset
    from phantombench.notebook import evaluate_solver, plot_predictions
    from phantombench.solvers.constant import Constant
    from tests.test_import import write_ktc

    src = write_ktc(tmp_path / "ktc")
    ds = import_dataset("ktc2023", src, "eit", tmp_path / "ds", truth=False)
    task = get_task("eit")
    res = evaluate_solver(Constant, task, ds, out_dir=tmp_path / "nb")
    assert not res.has_truth and res.cases["status"].tolist() == ["solved (no truth)"] and res.summary == {}
    assert res.prediction("000000")["dsigma"].shape == (256, 256)
    assert len(plot_predictions(res).axes) == 2                   # the prediction and its colour bar
    with pytest.raises(Exception, match="lacks field"):
        from phantombench.evaluate import evaluate
        evaluate("constant", "eit", ds, isolate=False)


def test_refusals(fake_brain10):
    from phantombench.notebook import evaluate_solver
    from phantombench.solvers.constant import Constant
    from phantombench.tasks import TaskError

    with pytest.raises(TaskError, match="built for task 'eit', not 'brain-elasticity'"):
        evaluate_solver(Constant(get_task("eit")), "brain-elasticity", fake_brain10)
    with pytest.raises(TaskError, match="takes datasets of generator eit"):
        evaluate_solver(Constant(get_task("eit")), "eit", fake_brain10)
    with pytest.raises(TypeError, match="no solve"):
        evaluate_solver(object(), "brain-elasticity", fake_brain10)
    with pytest.raises(ValueError, match="limit must be at least 1"):
        evaluate_solver(Constant, "brain-elasticity", fake_brain10, limit=0)
