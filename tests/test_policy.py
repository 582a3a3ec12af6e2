"""Split counts of a dataset plan and the training-data policy of the board (``submit --train-n``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from phantombench import runner, store
from phantombench.official import OfficialDataset, official

LEARNER = '''
import numpy as np
from phantombench.solvers.base import Solver


class MeanLearner(Solver):
    """Predicts the mean training target: a learned solver in its simplest form."""
    name = "mean-learner"
    version = "0.0.1"
    tasks = ("brain-elasticity",)

    def fit(self, train, val):
        self.mean = {k: np.mean([np.asarray(t[k]) for _, t in train], axis=0) for k in train[0][1]}

    def solve(self, observation):
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.mean.items()}
'''


# ------------------------------------------------------------------------------------------- split counts
def test_split_counts_are_parsed_and_checked():
    assert runner.parse_split_counts("train=16, val=2,test=50") == {"train": 16, "val": 2, "test": 50}
    for bad in ("train=16,val", "train=-1", "train=1,train=2", "=3"):
        with pytest.raises(ValueError, match="--split"):
            runner.parse_split_counts(bad)
    with pytest.raises(ValueError, match="add up to 5, not --n 6"):
        runner.resolve("brain-slice", "elunet-soft", None, 6, 0, {"train": 3, "test": 2})


def test_plan_split_counts_decide_the_manifest_splits(tmp_path):
    m = runner.generate("kheil", "kheil-rigid-2d", 7, tmp_path / "k", 0, {"size": 48}, workers=0,
                        splits={"train": 2, "val": 1, "test": 4})
    assert m["counts"] == {"train": 2, "val": 1, "test": 4}
    assert store.open_dataset(tmp_path / "k").split("test") == [3, 4, 5, 6]
    # the same samples under the generator's own rule (1/6 test): the data agree, the splits do not
    m2 = runner.generate("kheil", "kheil-rigid-2d", 7, tmp_path / "k2", 0, {"size": 48}, workers=0)
    assert m2["counts"]["test"] == 1 and m2["content_hash"] == m["content_hash"]
    od = OfficialDataset("registration", "kheil", "kheil-rigid-2d", n=7, overrides={"size": 48},
                         splits={"train": 2, "val": 1, "test": 4})
    assert od.plan_matches(m) is None
    assert od.plan_matches(m2) == "splits"


def test_random_families_have_at_least_50_test_cases():
    """Official random families are large enough for intervals to separate solvers; fixed cases stay single."""
    for task in ("brain-elasticity", "eit", "mre", "registration"):
        for od in official(task):
            test = (od.splits or {}).get("test")
            if od.n == 1:
                continue                      # a paper's fixed case (or an exact verification phantom)
            if od.generator == "liver-mre" and od.preset == "mdev-liver":
                continue                      # seven solves per sample: see the dataset definition
            if test is None and od.generator == "kheil":
                test = round(od.n / 6)
            assert test is not None and test >= 50, od.key


# ------------------------------------------------------------------------------------------- training policy
@pytest.fixture(scope="module")
def soft_root(tmp_path_factory) -> Path:
    from phantombench.official import ensure

    root = tmp_path_factory.mktemp("data")
    (od,) = official("brain-elasticity", ["elunet-soft"])
    ensure(od, root, workers=0)
    return root


def test_generated_training_data_is_recorded_and_disjoint(soft_root, tmp_path):
    from phantombench.submit import submit

    learner = tmp_path / "learner.py"
    learner.write_text(LEARNER)
    board = tmp_path / "leaderboard"
    ev = submit(f"{learner}:MeanLearner", "brain-elasticity", board=board, data_root=soft_root,
                presets=["elunet-soft"], workers=0, train=(4, 3))[0]
    t = ev.record["training"]
    assert (t["source"], t["seed"], t["train_cases"], t["val_cases"]) == ("generated", 3, 3, 1)
    assert t["fit_s"] >= 0 and ev.record["id"].endswith(
        f"__t{__import__('hashlib').sha256(t['dataset'].encode()).hexdigest()[:8]}")
    gen = store.open_dataset(soft_root / "brain-slice" / "elunet-soft" / "train-s3-n4")
    assert gen.manifest["seed"] == 3 and gen.manifest["counts"] == {"train": 3, "val": 1}
    (record,) = sorted((board / "records").rglob("*.json"))
    assert json.loads(record.read_text())["training"]["source"] == "generated"


def test_official_training_is_recorded_with_its_counts(fake_brain10, tmp_path):
    from phantombench.evaluate import evaluate

    learner = tmp_path / "learner.py"
    learner.write_text(LEARNER)
    ev = evaluate(f"{learner}:MeanLearner", "brain-elasticity", fake_brain10, isolate=False)
    counts = store.open_dataset(fake_brain10).manifest["counts"]
    t = ev.record["training"]
    assert (t["source"], t["train_cases"], t["val_cases"]) == ("test-dataset", counts["train"], counts["val"])
    assert ev.record["id"].endswith("__s0")   # no training suffix
    assert evaluate("constant", "brain-elasticity", fake_brain10, isolate=False).record["training"] is None


def test_generated_training_phantoms_are_not_test_phantoms(tmp_path):
    from phantombench.official import ensure
    from phantombench.submit import training_dataset

    od = OfficialDataset("registration", "kheil", "kheil-rigid-2d", n=12, overrides={"size": 48})
    test = ensure(od, tmp_path, workers=0)
    tod = training_dataset(od, 10, 5)
    assert (tod.key, tod.splits) == ("kheil/kheil-rigid-2d/train-s5-n10", {"train": 9, "val": 1})
    gen = ensure(tod, tmp_path, workers=0)
    moving = [test.read(i, ["moving"])["moving"] for i in test.split("test")]
    for i in range(10):
        g = gen.read(i, ["moving"])["moving"]
        assert min(float(np.abs(g - t).max()) for t in moving) > 0.1


def test_a_training_seed_of_a_test_set_is_refused(soft_root, tmp_path):
    from phantombench.submit import SubmitError, submit

    with pytest.raises(SubmitError, match="seed of an official brain-slice dataset"):
        submit("constant", "brain-elasticity", board=tmp_path / "lb", data_root=soft_root,
               presets=["elunet-soft"], workers=0, train=(4, 0))
    assert not (tmp_path / "lb").exists()
