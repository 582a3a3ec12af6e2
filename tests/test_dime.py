"""DIME-style CNN: encoding round trips, scaling invariances, a smoke training run that lowers the loss and beats
the untrained network, checkpoint resume, and weights that carry the fingerprint of their training data."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from phantombench import metrics as M  # noqa: E402
from phantombench.solvers import dime as Dm  # noqa: E402
from phantombench.solvers.training import fingerprint  # noqa: E402
from phantombench.tasks import get_task  # noqa: E402

TASK = get_task("mre")
SMALL = {"width": 8, "depth": 3, "crop": 48, "batch": 4, "threads": 1, "progress": False, "features": "raw+wave"}


@pytest.fixture(scope="module")
def liver(generated, tmp_path_factory):
    """The dataset, and a folder for checkpoints."""
    from phantombench.store import open_dataset

    return open_dataset(generated("liver-mre", "dime-liver-antiplane", 4, 21)), tmp_path_factory.mktemp("dime")


def Cases(task, ds, indices):
    """A split as fit() receives it: a sequence of (observation, target) pairs."""
    return [(task.observation(ds, i), task.target(ds, i)) for i in indices]


def test_target_decode_round_trip_and_unit():
    rng = np.random.default_rng(0)
    g = rng.uniform(300, 15000, (16, 16))
    phi = rng.uniform(0.05, 0.8, (16, 16))
    mask = np.ones((16, 16), bool)
    unit = Dm.modulus_unit(60.0, (0.0015, 0.0015), 1000.0)
    assert unit == pytest.approx(1000 * 3600 * 0.0015**2)
    t = Dm.make_target(g, phi, unit, mask)
    g2, phi2 = Dm.decode(t, unit)
    assert np.allclose(g2, g, rtol=1e-5) and np.allclose(phi2, phi, atol=1e-6)


def test_input_scaling_invariances():
    """The local scaling makes the input independent of the wave amplitude and of a global phase rotation of
    the complex field (up to that rotation), and the wave features see the local wavenumber."""
    y, x = np.mgrid[0:64, 0:64]
    k = 2 * np.pi / 16                       # 16-pixel wavelength
    u = (np.exp(-1j * k * x - 0.02 * x))[None]
    mask = np.ones((64, 64), bool)
    a = Dm.make_input(u, mask, "local", 4.0, "raw+wave")
    b = Dm.make_input(1e-4 * u * np.exp(1j * 0.7), mask, "local", 4.0, "raw+wave")
    assert a.shape == (6, 64, 64)
    za, zb = a[0] + 1j * a[1], b[0] + 1j * b[1]
    assert np.allclose(zb[8:-8, 8:-8], za[8:-8, 8:-8] * np.exp(1j * 0.7), atol=1e-4)
    assert np.allclose(a[2:], b[2:], atol=1e-4)
    # local RMS amplitude ~ 1 although |u| decays by e^-1.3 across the image
    assert np.abs(za[20:44, 20:44]).mean() == pytest.approx(1.0, abs=0.05)
    # feature 0: log local wavenumber (rad/pixel) + 0.93; np.gradient gives sin(k)/k of the true k
    kg = np.exp(a[3, 32, 32] - 0.93)
    assert kg == pytest.approx(np.hypot(np.sin(k), 0.02), rel=0.05)


def test_unet_shapes_any_size():
    net = Dm.build_unet(3, 2, width=4, depth=3).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 50, 37))
    assert tuple(out.shape) == (1, 2, 50, 37)


def _score(solver, ds, idx):
    """Mean MARE (%) and Pearson r of |G*| over the liver."""
    vals = []
    for i in idx:
        obs, truth = TASK.observation(ds, i), TASK.truth(ds, i)
        pred, reason = TASK.validate(solver.solve(obs), truth)
        assert reason is None, reason
        m = truth["_mask"]
        vals.append((M.mare(pred["abs_G"], truth["abs_G"], m), M.pearson(pred["abs_G"], truth["abs_G"], m)))
    return tuple(np.mean(vals, axis=0))


def test_smoke_training_lowers_loss_and_beats_untrained(liver):
    ds, root = liver
    tr, va = ds.split("train"), ds.split("val")
    held = ds.split("test")
    # untrained: fit with zero steps keeps the initial weights (and still writes weights with the dataset id)
    untrained = Dm.DIME(TASK, params={**SMALL, "steps": 0, "checkpoint_dir": str(root / "ck0")}, seed=0)
    untrained.fit(Cases(TASK, ds, tr), Cases(TASK, ds, va))
    trained = Dm.DIME(TASK, params={**SMALL, "steps": 150, "val_every": 50, "lr": 3e-3,
                                    "checkpoint_dir": str(root / "ck1")}, seed=0)
    trained.fit(Cases(TASK, ds, tr), Cases(TASK, ds, va))
    h = trained.history
    assert len(h) == 3 and h[-1]["step"] == 150
    assert h[-1]["train_loss"] < 0.8 * h[0]["train_loss"]
    assert min(x["val_loss"] for x in h) < h[0]["val_loss"]
    (m0, r0), (m1, r1) = _score(untrained, ds, held + va), _score(trained, ds, held + va)
    print("untrained MARE %.1f r %.3f; trained MARE %.1f r %.3f" % (m0, r0, m1, r1))
    assert m1 < 0.6 * m0, (m0, m1)   # the main metric (MARE of |G*| over the liver) improves
    assert r1 > r0, (r0, r1)
    # weights carry the dataset they came from, and reload to the same predictions
    blob = torch.load(trained.meta["weights"], weights_only=False)
    assert blob["meta"]["dataset"]["train"] == {"fingerprint": fingerprint(Cases(TASK, ds, tr)), "n": len(tr)}
    assert blob["meta"]["dataset"]["val"]["fingerprint"] != blob["meta"]["dataset"]["train"]["fingerprint"]
    again = Dm.DIME(TASK, params={"weights": trained.meta["weights"], "progress": False})
    obs = TASK.observation(ds, held[0])
    assert np.allclose(again.solve(obs)["abs_G"], trained.solve(obs)["abs_G"], rtol=1e-5)


def test_checkpoint_resume_matches_uninterrupted(liver):
    ds, root = liver
    tr, va = ds.split("train"), ds.split("val")
    p = {**SMALL, "width": 4, "depth": 2, "crop": 32, "batch": 2, "steps": 8, "val_every": 4, "features": "raw"}
    full = Dm.DIME(TASK, params={**p, "checkpoint_dir": str(root / "ck_full")}, seed=3)
    full.fit(Cases(TASK, ds, tr), Cases(TASK, ds, va))
    # interrupted: a tiny time cap stops it after its first step (a checkpoint is written), then resume
    cut = Dm.DIME(TASK, params={**p, "checkpoint_dir": str(root / "ck_cut"), "max_fit_s": 1e-9}, seed=3)
    cut.fit(Cases(TASK, ds, tr), Cases(TASK, ds, va))
    assert cut.meta["stopped_early"] and cut.meta["steps_done"] == 1
    res = Dm.DIME(TASK, params={**p, "checkpoint_dir": str(root / "ck_cut")}, seed=3)
    res.fit(Cases(TASK, ds, tr), Cases(TASK, ds, va))
    assert res.meta["resumed_from_step"] == 1 and res.meta["steps_done"] == 8
    # the last states (not the best-on-validation ones: the cut run validated once more, at step 1)
    sa = torch.load(root / "ck_full" / "checkpoint.pt", weights_only=False)["state"]["model"]
    sb = torch.load(root / "ck_cut" / "checkpoint.pt", weights_only=False)["state"]["model"]
    assert all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-5) for k in sa)
    # a finished checkpoint is reused: no further steps
    again = Dm.DIME(TASK, params={**p, "checkpoint_dir": str(root / "ck_full")}, seed=3)
    again.fit(Cases(TASK, ds, tr), Cases(TASK, ds, va))
    assert again.meta["resumed_from_step"] == 8


def test_untrained_solve_without_weights_fails_clearly():
    s = Dm.DIME(TASK, params={"progress": False})
    with pytest.raises(RuntimeError, match="not trained"):
        s.solve({"u": np.zeros((1, 1, 8, 8), complex), "frequencies": [60.0], "mask": np.ones((8, 8), bool)})


def test_reproduce_dime_tiny_run_fills_every_row(tmp_path):
    """`reproduce dime` end to end at the smoke budget with 40 training steps: every table row has the paper's
    column and ours filled with numbers, the figures are written, and the signal-pixel diagnostic is reported."""
    import re

    from phantombench.papers.dime import run as run_dime

    md = run_dime("smoke", steps=40, data_root=tmp_path / "data", out_dir=tmp_path / "out",
                  work_dir=tmp_path / "work", workers=0, log=lambda *_: None).read_text()   # one process
    rows = [r for r in md.split("## Table")[1].split("\n## ")[0].splitlines()
            if r.startswith("| ") and not r.startswith("| method")]
    assert [r.split("|")[1].strip() for r in rows] == ["DIME-style CNN (ours)", "AHI", "DIME-style CNN (ours)", "AHI",
                                                       "MDEV"]
    num = re.compile(r"^-?\d+\.\d+( \+- \d+\.\d+| \+- n/a)?$")
    for r in rows:
        cells = [c.strip() for c in r.split("|")[1:-1]]
        assert cells[2] and cells[3], r                       # the paper's columns
        assert all(num.match(c) for c in cells[4:]), r        # ours: r, R^2 (per phantom, pooled), MARE
    assert "the CNN's per-phantom r is" in md and "of the scored liver pixels carry a wave" in md
    for f in ("dime.png", "dime_training.png", "dime.json"):
        assert (tmp_path / "out" / f).stat().st_size > 1000
    import json

    res = json.loads((tmp_path / "out" / "dime.json").read_text())
    frac = res["baselines"]["test_dime"]["AHI"]["signal_fraction"]
    assert 0.0 < frac <= 1.0
    assert res["runs"][0]["steps_done"] == 40
    # the data statements come from the data read: its field model, and the measured amplitudes and ceiling
    facts, ceil = res["data_facts"], res["ceiling"]
    assert (facts["model"] == "plane_strain") == ("2D in-plane (plane-strain) waves" in md)
    assert (facts["model"] == "antiplane") == ("out-of-plane" in md)
    lo, _, hi = facts["liver_u_rel"]
    assert 0.0 < lo <= hi and f"median |U| is {100 * lo:.2g}-{100 * hi:.2g} % of the driver amplitude" in md
    assert 0.0 < ceil["mean"]["r_sigma_0.5"] < ceil["mean"]["r_sigma_0.25"] < 1.0
    assert f"sigma = lambda/4 {ceil['mean']['r_sigma_0.25']:.3f}, sigma = lambda/2" in md
    assert res["runs"][0]["field"] == ("pseudo" if facts["components"] == 2 else "scalar")


def _scaling_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "dime_scaling.py"
    spec = importlib.util.spec_from_file_location("dime_scaling", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scaling_study_trend_and_extrapolation_are_what_the_runs_say():
    """scripts/dime_scaling.py: the log2 fit recovers a known line, the step count where it reaches a level is
    2^((r - a) / b), a flat or falling curve never reaches it, and the page quotes the runs' own numbers."""
    S = _scaling_script()
    steps = [1000, 2000, 4000, 8000]
    r = [0.6 + 0.05 * np.log2(s / 1000) for s in steps]
    t = S.log_trend(steps, r)
    assert t["b"] == pytest.approx(0.05, abs=1e-9) and t["a"] == pytest.approx(0.6 - 0.05 * np.log2(1000), abs=1e-9)
    assert S.steps_to_reach(t, 0.8) == pytest.approx(16000, rel=1e-6)
    assert S.steps_to_reach(S.log_trend([1000, 2000], [0.8, 0.79]), 0.95) == float("inf")
    with pytest.raises(ValueError):
        S.log_trend([4000, 4000], [0.7, 0.8])
    runs = [{"n_train": 200, "n_train_split": 160, "n_val": 20, "steps": s, "fit_s": s / 4, "r": v,
             "r_pooled": v + 0.1, "MARE": 10.0, "r_body": 0.97, "final_train_loss": 0.2, "final_val_loss": 0.21}
            for s, v in zip(steps, r)]
    runs.append({**runs[-1], "n_train": 400, "n_train_split": 320, "n_val": 40, "r": 0.9})
    runs.append({**runs[-1], "seed": 1, "r": 0.88})     # a second seed: a repeat, not a point of the comparison
    res = S.analyse(runs, {"r_sigma_0.125": 0.885})
    assert res["last_doubling"]["b"] == pytest.approx(0.05) and res["data"] == [
        {"n_train": 400, "steps": 8000, "r": 0.9, "r_base": pytest.approx(0.75)}]
    (rep,) = res["repeats"]
    assert rep["seeds"] == [0, 1] and rep["mean"] == pytest.approx(0.89) and rep["std"] == pytest.approx(0.02 / 2 ** 0.5)
    page = S.render({"runs": runs, **res, "ceiling": {"r_sigma_0.125": 0.885}, "goal_r": 0.95, "n_train": 200})
    assert "| 200 (160 / 20) | 8000 | 0 | 2000 | 0.750 |" in page and "0.050 log2(steps)" in page
    assert f"{S.steps_to_reach(t, 0.95):,.0f} steps" in page and "400 training phantoms give r 0.900 against 0.750" in page
    assert "seeds 0, 1 give r 0.900 / 0.880 (mean 0.890, std 0.014)" in page


def test_scaling_study_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """Malformed --steps, a report with fewer than two finished runs, or --attribute with no trained run: exit 2,
    one message, no report files."""
    S = _scaling_script()
    out = tmp_path / "out"
    out.mkdir()
    for argv in (["--steps", "1k,2"], ["--steps", "0"], ["--report", "--work", str(tmp_path / "w")],
                 ["--attribute", "--work", str(tmp_path / "w")]):
        monkeypatch.setattr("sys.argv", ["dime_scaling.py", "--out", str(out), *argv])
        with pytest.raises(SystemExit) as e:
            S.main()
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "error:" in err and ("--steps" in err or "two or more step counts" in err
                                    or "no finished run with its weights" in err)
    assert list(out.iterdir()) == []


def test_scaling_study_attribution_finds_the_region_that_holds_the_error():
    """where_r_is_lost: a prediction wrong only in a lesion (half its contrast) and in a vessel (not seen) is
    exact once both are replaced by the truth, not before; the lesion's recovery is 0.5 and its diameter is
    measured in its own wavelength; recovery_by_size puts it in its bin."""
    from phantombench.meshes.abdomen import HEPATIC_VESSEL, LESION

    S = _scaling_script()
    yy, xx = np.mgrid[:96, :96]
    liver = (yy - 48) ** 2 + (xx - 48) ** 2 < 40 ** 2
    labels = np.zeros((96, 96), int)
    lesion = (yy - 40) ** 2 + (xx - 56) ** 2 < 8 ** 2
    labels[lesion] = LESION
    labels[60:63, 20:50] = HEPATIC_VESSEL
    truth = np.where(lesion, 10e3, np.where(labels == HEPATIC_VESSEL, 6e3, 2e3)) + 50.0 * np.sin(xx / 7.0)
    pred = np.where(lesion, truth - 4e3, np.where(labels == HEPATIC_VESSEL, truth - 4e3, truth))
    lam = np.full((96, 96), 40.0)
    a = S.where_r_is_lost(pred, truth, labels, liver, lam)
    assert a["r"] < 0.98 and a["r_true_lesions"] < 0.999 and a["r_true_vessels"] < 0.999
    assert a["r_true_lesions_vessels"] == pytest.approx(1.0, abs=1e-12)
    assert a["r_true_rim"] == pytest.approx(a["r"], abs=1e-3)        # the error is inside, not at the boundary
    (les,) = a["lesions"]
    assert les["area_px"] == int(lesion.sum()) and les["recovery"] == pytest.approx(0.5, abs=0.02)
    assert les["d_over_lambda"] == pytest.approx(2 * np.sqrt(lesion.sum() / np.pi) / 40.0, rel=1e-9)
    bins = S.recovery_by_size(a["lesions"] + [{"d_over_lambda": 0.7, "recovery": 0.9}])
    assert [b["n"] for b in bins] == [0, 1, 1] and bins[1]["median_recovery"] == pytest.approx(0.5, abs=0.02)
    assert bins[0]["median_recovery"] is None and bins[2]["min_recovery"] == 0.9
