"""Contract test: every registered part plays by the rules, found through the registry so a new one is covered
the moment its entry point is declared.

* every generator: its tiny dataset (the preset named ``tiny`` if it has one, else its first preset) generates,
  verifies, and holds exactly the fields its schema declares;
* every task: metrics with directions, a main metric among them, registered generators, and on each
  generator's tiny dataset observations that are exactly the declared ones and a truth with every prediction;
* every solver, on every task it declares (any task if it declares none): ``evaluate`` in process at its smallest
  budget (:data:`SMOKE`); every case is scored or fails with a one-line reason, the record's metrics carry
  directions, and ``solve``/``fit`` receive only the task's declared observations -- never a truth field;
* the ``constant`` baseline on every task through the isolated harness (a solver process of its own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from phantombench import registry

GENERATORS = registry.names("generators")
TASKS = registry.names("tasks")
SOLVERS = registry.names("solvers")

# The smallest budget of each solver that trains: a handful of steps, tiny networks, no progress bars, no writes
# outside the test's folder ("{tmp}" is replaced by it). A solver not listed runs with its defaults.
SMOKE: dict[str, dict[str, Any]] = {
    **{name: {"train_time_s": 2.0, "max_epochs": 3, "width": 4, "n_snapshots": 1, "threads": 1}
       for name in ("elunet-p", "elunet-ps", "elunet-ps-w1", "elunet-ps-w2")},
    "pinn-elasticity": {"train_time_s": 2.0, "max_epochs": 3, "hidden": 8, "layers": 2, "n_snapshots": 1,
                        "threads": 1},
    "tv": {"max_iter": 3},
    "cnn-pinn": {"image_size": 16, "width": 4, "depth": 2, "stage1_epochs": 2, "batch_size": 2, "epochs": 3,
                 "pinn_width": 8, "pinn_hidden": 2, "pinn_time_s": 5.0, "fit_time_s": 10.0, "threads": 1,
                 "progress": False, "checkpoint_dir": "{tmp}"},
    "dime-cnn": {"width": 4, "depth": 2, "crop": 32, "batch": 1, "steps": 3, "val_every": 1, "augment": False,
                 "threads": 1, "progress": False, "checkpoint_dir": "{tmp}"},
    **{name: {"enc": [4, 8, 8, 8], "dec": [8, 8, 8, 8, 8, 4, 4], "channels": [4, 8, 16, 32], "steps": 3, "batch": 2,
              "val_every": 1, "threads": 1, "progress": False, "checkpoint_dir": "{tmp}"}
       for name in ("voxelmorph-diffusion", "kheil-diffusion", "kheil-jacobian", "kheil-rigidity", "kheil-sliding",
                    "hypermorph-elastic", "hypermorph-diffusion")},
}
# solvers whose smallest budget is still too slow for the fast test set (run with -m slow)
SLOW: set[str] = set()


def test_smoke_budgets_name_registered_solvers_and_their_parameters():
    """A renamed solver or parameter must not silently fall back to the (long) defaults."""
    from phantombench.solvers.base import load_solver_class

    for name, params in SMOKE.items():
        assert name in SOLVERS, f"SMOKE names {name!r}, which is not registered"
        assert set(params) <= set(load_solver_class(name).defaults), name


def tiny_preset(generator) -> str:
    return "tiny" if "tiny" in generator.presets else next(iter(generator.presets))


@pytest.fixture(scope="module")
def tiny(generated):
    """``tiny(generator, n=1)``: the generator's tiny dataset (n=3 gives train, val and test one case each)."""
    def make(name: str, n: int = 1) -> Path:
        return generated(name, tiny_preset(registry.get_generator(name)), n)
    return make


def _smoke_params(name: str, tmp: Path) -> dict[str, Any]:
    return {k: (str(tmp) if v == "{tmp}" else v) for k, v in SMOKE.get(name, {}).items()}


# ------------------------------------------------------------------------------------------ generators
@pytest.mark.parametrize("name", GENERATORS)
def test_generator_makes_a_verified_dataset(name, tiny):
    from phantombench.store import open_dataset
    from phantombench.verify import verify_dataset

    gen = registry.get_generator(name)
    assert gen.name == name, f"entry point {name!r} names a generator called {gen.name!r}"
    cfg = gen.config(tiny_preset(gen))
    schema = gen.schema(cfg)
    assert schema and all(spec.description for spec in schema.values())
    problems, summary = verify_dataset(tiny(name))
    assert problems == [] and summary["samples"] == 1
    ds = open_dataset(tiny(name))
    assert ds.manifest["generator"]["name"] == name
    sample = ds[0]
    assert set(sample) == set(schema)
    for field, spec in schema.items():
        assert str(sample[field].dtype) == spec.dtype, field
        assert sample[field].ndim == len(spec.shape), field


# ------------------------------------------------------------------------------------------ tasks
@pytest.mark.parametrize("name", TASKS)
def test_task_is_well_formed_on_its_generators_data(name, tiny):
    from phantombench.store import open_dataset
    from phantombench.tasks import get_task

    task = get_task(name)
    assert task.name == name
    metric_names = [m.name for m in task.metrics]
    assert len(set(metric_names)) == len(metric_names) and task.main_metric in metric_names
    assert all(m.direction in ("lower", "higher") for m in task.metrics)
    assert set(task.headline_metrics) <= set(metric_names)
    declared = [o.name for o in task.observations]
    assert len(set(declared)) == len(declared)
    leaks = [o.name for o in task.observations if o.source == "field" and o.key in task.prediction_names]
    assert not leaks, f"observations read the predicted fields: {leaks}"
    for gen in task.generators:
        assert gen in GENERATORS, f"task {name!r} takes data of {gen!r}, which is not registered"
        ds = open_dataset(tiny(gen))
        task.check_dataset(ds)
        obs, truth = task.observation(ds, 0), task.truth(ds, 0)
        assert set(obs) <= set(declared)
        assert set(task.prediction_names) <= set(truth) and "_mask" in truth


# ------------------------------------------------------------------------------------------ solvers
def _spy(monkeypatch, cls, seen: list[dict[str, Any]]) -> None:
    """Record every observation handed to ``solve`` and ``fit`` (through the class, in this process)."""
    solve = cls.solve

    def spy_solve(self, observation):
        seen.append(dict(observation))
        return solve(self, observation)

    monkeypatch.setattr(cls, "solve", spy_solve)
    if cls.has_fit():
        fit = cls.fit

        def spy_fit(self, train, val):
            for split in (train, val):
                seen.extend(dict(obs) for obs, _ in split)
            return fit(self, train, val)

        monkeypatch.setattr(cls, "fit", spy_fit)


def _check_record(ev, task) -> None:
    rec = ev.record
    assert rec["cases"]["evaluated"] == rec["cases"]["n"] >= 1
    for _, row in ev.cases.iterrows():
        if row["status"] == "ok":
            assert np.isfinite(row[task.main_metric]), (row["case"], task.main_metric)
        else:
            assert row["reason"] and "\n" not in row["reason"], row["case"]
    assert set(rec["metrics"]) == {m.name for m in task.metrics}
    assert all(v["direction"] in ("lower", "higher") for v in rec["metrics"].values())


def _check_observations(seen, task, ds_path) -> None:
    """Only declared names, and no array equal to a truth array of the dataset: the predicted fields' truth, and
    the other truth entries except scoring helpers (``_*``) and those the task also observes (MRE frequencies)."""
    from phantombench.store import open_dataset

    declared = {o.name for o in task.observations}
    observed = declared | {o.key for o in task.observations}
    assert seen, "the solver was never called"
    for obs in seen:
        assert set(obs) <= declared, f"undeclared observation(s) {sorted(set(obs) - declared)}"
    ds = open_dataset(ds_path)
    truths = [np.asarray(a) for i in range(len(ds)) for k, a in task.truth(ds, i).items()
              if k in task.prediction_names or not (k.startswith("_") or k in observed)]
    for obs in seen:
        for k, v in obs.items():
            if isinstance(v, np.ndarray) and v.size > 1:
                assert not any(t.shape == v.shape and np.array_equal(t, v) for t in truths), \
                    f"observation {k!r} equals a truth array"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in SOLVERS])
def test_solver_on_every_task_it_declares(name, tiny, tmp_path, monkeypatch):
    from phantombench.evaluate import evaluate
    from phantombench.solvers.base import load_solver_class
    from phantombench.tasks import get_task

    cls = load_solver_class(name)
    assert cls.name == name, f"entry point {name!r} names a solver called {cls.name!r}"
    unknown = set(cls.tasks) - set(TASKS)
    assert not unknown, f"solver {name!r} declares unregistered task(s) {sorted(unknown)}"
    seen: list[dict[str, Any]] = []
    _spy(monkeypatch, cls, seen)
    for task_name in cls.tasks or TASKS:
        task = get_task(task_name)
        seen.clear()
        path = tiny(task.generators[0], n=3 if cls.has_fit() else 1)
        ev = evaluate(name, task, path, params=_smoke_params(name, tmp_path), isolate=False)
        _check_record(ev, task)
        assert ev.record["cases"]["ok"] == ev.record["cases"]["n"], ev.record["cases"]["failures"]
        _check_observations(seen, task, path)


@pytest.mark.parametrize("task_name", TASKS)
def test_constant_through_the_isolated_harness(task_name, tiny):
    from phantombench.evaluate import evaluate
    from phantombench.tasks import get_task

    task = get_task(task_name)
    ev = evaluate("constant", task, tiny(task.generators[0]), isolate=True)
    _check_record(ev, task)
    assert ev.record["solver"]["isolated"] is True and ev.record["cases"]["ok"] == 1


def test_the_observation_check_catches_a_task_that_leaks_truth(tiny, monkeypatch):
    """A task that (wrongly) observes the true modulus: the check above must flag it."""
    import dataclasses

    from phantombench.evaluate import evaluate
    from phantombench.solvers.base import load_solver_class
    from phantombench.tasks import Observed, get_task

    task = get_task("brain-elasticity")
    leaky = dataclasses.replace(task, observations=task.observations + (
        Observed("stiffness", "field", "E", "Pa", "the answer"),))
    seen: list[dict[str, Any]] = []
    _spy(monkeypatch, load_solver_class("constant"), seen)
    path = tiny(task.generators[0])
    evaluate("constant", leaky, path, isolate=False)
    with pytest.raises(AssertionError, match="'stiffness' equals a truth array"):
        _check_observations(seen, leaky, path)
