"""The shared training loop (solvers/training.py) on a tiny regression: it learns, validates and keeps the best
weights, resumes a cut run bit-identically (random batches included), refuses or restarts on a foreign
checkpoint, honours step and time budgets, stops on a non-finite loss, and fingerprints data by content."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from phantombench.solvers.training import (Budget, Checkpoint, Trainer, fingerprint, seed_everything,  # noqa: E402
                                           tag_hash)

torch.set_num_threads(1)
X = np.random.default_rng(1).standard_normal((64, 3)).astype(np.float32)
Y = X @ np.array([1.0, -2.0, 0.5], np.float32) + 0.3


def make(steps=30, ckpt=None, seconds=None, cumulative=True, seed=0):
    rng = seed_everything(seed)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    def loss(step):
        i = torch.from_numpy(rng.integers(0, len(X), 8))
        return ((model(Xt[i])[:, 0] - Yt[i]) ** 2).mean()

    def evaluate(train_loss):
        with torch.no_grad():
            return {"val_loss": float(((model(Xt)[:, 0] - Yt) ** 2).mean())}

    tr = Trainer(model, [opt], Budget(steps, seconds, cumulative=cumulative), loss=loss, evaluate=evaluate,
                 eval_every=10, checkpoint=ckpt, rngs={"batches": rng})
    return tr, model


def test_learns_validates_and_keeps_the_best_weights():
    tr, model = make()
    res = tr.run()
    assert res.steps == 30 and res.stopped is None and [r["step"] for r in res.history] == [10, 20, 30]
    assert res.history[-1]["val_loss"] < 0.2 * res.history[0]["train_loss"]
    assert res.best == min(r["val_loss"] for r in res.history)
    with torch.no_grad():
        assert float(((model(torch.from_numpy(X))[:, 0] - torch.from_numpy(Y)) ** 2).mean()) == pytest.approx(res.best)


def test_cut_run_resumes_bit_identically(tmp_path):
    full, m_full = make(ckpt=Checkpoint(tmp_path / "a.pt", {"data": "x"}))
    full.run()
    cut, _ = make(steps=30, seconds=0.0, cumulative=False, ckpt=Checkpoint(tmp_path / "b.pt", {"data": "x"}))
    assert cut.run().steps == 1                       # a per-call time budget still makes one step
    res, m_res = make(ckpt=Checkpoint(tmp_path / "b.pt", {"data": "x"}), seed=5)   # seed ignored: state restored
    out = res.run()
    assert out.resumed_from == 1 and out.steps == 30
    sa, sb = torch.load(tmp_path / "a.pt", weights_only=False), torch.load(tmp_path / "b.pt", weights_only=False)
    for k in sa["state"]["model"]:
        assert torch.equal(sa["state"]["model"][k], sb["state"]["model"][k])


def test_foreign_checkpoint_is_restarted_or_refused(tmp_path):
    path = tmp_path / "c.pt"
    make(steps=5, ckpt=Checkpoint(path, {"data": "x"}))[0].run()
    other, _ = make(steps=5, ckpt=Checkpoint(path, {"data": "y"}))
    assert other.run().resumed_from == 0
    assert torch.load(path, weights_only=False)["tag"] == {"data": "y"}
    with pytest.raises(ValueError, match="another solver or observation"):
        make(steps=5, ckpt=Checkpoint(path, {"data": "z"}, on_mismatch="error"))[0].run()


def test_cumulative_time_budget_and_non_finite_stop():
    tr, _ = make(steps=None, seconds=0.05)
    res = tr.run()
    assert res.stopped == "time" and res.steps > 1 and res.seconds >= 0.05
    model = torch.nn.Linear(1, 1)
    bad = Trainer(model, [torch.optim.SGD(model.parameters(), lr=0.1)], Budget(10),
                  loss=lambda step: model(torch.ones(1, 1)).sum() * float("nan"), unit="epoch")
    assert bad.run().stopped == "non-finite loss at epoch 0"


def test_fingerprint_is_content_and_order_sensitive():
    a = [({"u": np.zeros(3), "config": {"r": 1.0}}, {"t": np.ones(2)}), ({"u": np.ones(3)}, {"t": np.ones(2)})]
    assert fingerprint(a) == fingerprint([(dict(o), dict(t)) for o, t in a])
    assert fingerprint(a) != fingerprint(a[::-1])
    b = [({"u": np.zeros(3, np.float32), "config": {"r": 1.0}}, {"t": np.ones(2)}), a[1]]
    assert fingerprint(a) != fingerprint(b)            # dtype counts
    assert tag_hash({"a": 1, "b": 2}) == tag_hash({"b": 2, "a": 1})
