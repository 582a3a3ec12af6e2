"""Classical EIT baselines (solvers/eit_classical.py): algebra, the TV solvers against each other, and
reconstructions of small P3 datasets through the evaluation harness."""

from __future__ import annotations

import mpi4py.MPI  # noqa: F401  (before dolfinx)
import numpy as np
import pytest

from phantombench.solvers import eit_classical as ec
from phantombench.tasks import get_task

TASK = get_task("eit")


@pytest.fixture(scope="module")
def datasets(generated):
    # noise-free P3 case 1 and the 20 dB one (same phantoms: the noise is drawn after the phantom)
    return {"clean": generated("eit", "cnn-pinn-case1", 4, 0, snr_db=None, store_mesh=False),
            "noisy": generated("eit", "cnn-pinn-case1", 4, 0, store_mesh=False)}


def _cases(path):
    from phantombench.store import open_dataset

    ds = open_dataset(path)
    return [(TASK.observation(ds, i), TASK.truth(ds, i)) for i in range(len(ds))]


# ------------------------------------------------------------------------------------------ algebra
def test_gauss_newton_step_equals_normal_equations():
    rng = np.random.default_rng(1)
    J = rng.standard_normal((7, 30))
    dv = rng.standard_normal(7)
    R = rng.uniform(0.5, 2.0, 30)
    lam = 0.3
    x = ec.gauss_newton_step(J, dv, R, lam)
    lam_abs = lam * np.trace((J / R) @ J.T) / 7
    ref = np.linalg.solve(J.T @ J + lam_abs * np.diag(R), J.T @ dv)
    np.testing.assert_allclose(x, ref, rtol=1e-9, atol=1e-12)


def test_noser_prior_exponent():
    J = np.array([[1.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(ec.noser_prior(J, 1.0), [2.0, 4.0, 2.0])  # zero column -> smallest positive
    np.testing.assert_allclose(ec.noser_prior(J, 0.5), np.sqrt([2.0, 4.0, 2.0]))


def test_interior_edges_two_triangles():
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    cells = np.array([[0, 1, 2], [0, 2, 3]])
    pairs, length = ec.interior_edges(cells, pts)
    assert sorted(pairs[0].tolist()) == [0, 1] and len(pairs) == 1
    np.testing.assert_allclose(length, [np.sqrt(2.0)])


def test_tv_pdipm_matches_chambolle_pock():
    """Two independent TV solvers reach the same minimum of the same objective on a real Jacobian."""
    op = ec.linearised_operator(ec.eit_config({"dv": np.zeros(16)}), 0.15, (64, 64))
    s = np.linalg.norm(op.J, 2)
    Js = op.J / s
    rng = np.random.default_rng(0)
    x_true = np.where(np.hypot(*(op.fwd.cell_centroids - [0.3, 0.2]).T) < 0.3, 1.0, 0.0)
    b = Js @ x_true + 0.01 * rng.standard_normal(len(Js))
    alpha = 0.1 * np.linalg.norm(b)
    ip = ec.tv_pdipm(Js, b, op.edges, op.edge_length, alpha)
    cp = ec.tv_chambolle_pock(Js, b, op.edges, op.edge_length, alpha, max_iter=60000, tol=1e-7)
    assert ip.iterations < 60
    assert abs(ip.primal - cp.primal) / cp.primal < 1e-3
    # and both beat the trivial points x = 0 and the minimum-norm least-squares solution
    x_mn = np.linalg.lstsq(Js, b, rcond=None)[0]
    for x in (np.zeros_like(x_true), x_mn):
        r = Js @ x - b
        P = 0.5 * r @ r + alpha * op.edge_length @ np.abs(x[op.edges[:, 0]] - x[op.edges[:, 1]])
        assert ip.primal < P


def test_config_fallback_and_override():
    cfg = ec.eit_config({"dv": np.zeros(16)})
    assert cfg["protocol"] == "trig-p3" and cfg["measurement"] == "adjacent" and cfg["background"] == 1.0
    cfg = ec.eit_config({"dv": np.zeros(208)})
    assert cfg["protocol"] == "adjacent"
    cfg = ec.eit_config({"dv": np.zeros(16), "config": {"protocol": "trig-p3", "measurement": "adjacent",
                                                         "background": 2.0}})
    assert cfg["background"] == 2.0
    with pytest.raises(ValueError, match="no default protocol"):
        ec.eit_config({"dv": np.zeros(11)})


# ------------------------------------------------------------------------------------------ reconstructions
def test_noser_recovers_inclusion_noise_free(datasets):
    """NOSER (p = 0.5) on noise-free P3 case 1: measured mean CC 0.60 (cases 0.70, 0.60, 0.65, 0.45) on seed 0;
    asserted > 0.45 on the mean and > 0.3 on every case."""
    solver = ec.NOSER(TASK)
    cc = [TASK.metric("CC").fn(solver.solve(obs), t) for obs, t in _cases(datasets["clean"])]
    assert np.mean(cc) > 0.45, cc
    assert min(cc) > 0.3, cc


def test_baselines_beat_constant_through_the_harness(datasets):
    """Every baseline beats the constant (dsigma = 0) solver on the task's main metric (CC) and on RIE, on P3
    case 1 at 20 dB, run through the evaluation harness."""
    from phantombench.evaluate import evaluate

    recs = {}
    for spec in ("constant", "phantombench.solvers.eit_classical:NOSER", "phantombench.solvers.eit_classical:Tikhonov",
                 "phantombench.solvers.eit_classical:TotalVariation"):
        # the classical solvers learn nothing: score every case of the 4-sample set (train split: 2 cases,
        # val 1, test 1)
        ev = evaluate(spec, TASK, datasets["noisy"], split="train", isolate=False, figure_cases=0)
        assert ev.record["cases"]["failed"] == 0, ev.record["cases"]["failures"]
        recs[ev.record["solver"]["name"]] = ev.record["metrics"]
    assert recs["constant"]["CC"]["mean"] == 0.0
    for name in ("noser", "tikhonov", "tv"):
        assert recs[name]["CC"]["mean"] > recs["constant"]["CC"]["mean"] + 0.1, (name, recs[name]["CC"])
        assert recs[name]["RIE"]["mean"] < recs["constant"]["RIE"]["mean"], (name, recs[name]["RIE"])


def _gradient_concentration(img, mask, frac=0.1) -> float:
    """Share of the image's total gradient magnitude carried by the ``frac`` of mask pixels with the largest
    gradient (1 = all variation on thin edges; ~frac for a uniform ramp)."""
    gy, gx = np.gradient(np.where(mask, img, np.nan))
    g = np.hypot(gx, gy)[mask]
    g = np.sort(g[np.isfinite(g)])[::-1]
    k = max(1, int(frac * len(g)))
    return float(g[:k].sum() / g.sum())


def test_tv_edges_sharper_than_tikhonov(datasets):
    """On the piecewise-constant one-circle phantoms TV puts its variation on thin edges: the 10 % of pixels
    with the largest gradient carry > 90 % of TV's total gradient (measured 0.98-0.99) and < 70 % of
    Tikhonov's (measured ~0.52)."""
    tv, tik = ec.TotalVariation(TASK), ec.Tikhonov(TASK)
    for obs, t in _cases(datasets["clean"])[:2]:
        c_tv = _gradient_concentration(tv.solve(obs)["dsigma"], t["_mask"])
        c_tik = _gradient_concentration(tik.solve(obs)["dsigma"], t["_mask"])
        assert c_tv > 0.9 and c_tik < 0.7 and c_tv > c_tik + 0.25, (c_tv, c_tik)


def test_solvers_return_task_grid_with_nan_outside(datasets):
    obs, t = _cases(datasets["noisy"])[0]
    out = ec.NOSER(TASK, params={"p": 1.0}).solve(obs)["dsigma"]
    assert out.shape == t["dsigma"].shape
    assert np.isfinite(out[t["_mask"]]).all()
    assert np.isnan(out[~np.asarray(obs["mask"], bool)]).all()
    pred, reason = TASK.validate({"dsigma": out}, t)
    assert reason is None


# ------------------------------------------------------------------------------------------ reproduce
def _fake_report(methods):
    st = {k: {"mean": 0.5, "std": 0.01, "n": 2} for k in ("SSIM", "CC", "RIE")}
    return {
        "budget": "smoke", "budget_spec": {"note": "n"}, "repeats": 2,
        "timings": {"total_s": 1.0}, "provenance": {"hardware": {"cpu": "x", "cores": 2}, "git_commit": "c"},
        "device": "cpu",
        "datasets": {"test": {c: {"n": 3, "name": "eit/x", "version": "1", "content_hash": "h", "snr_db": 20.0}
                              for c in (1, 2, 3)}, "train": [], "n_train": 1, "n_val": 1},
        "results": {m: {c: {"stats": st} for c in (1, 2, 3)} for m in methods},
        "hyperparameters": {}, "selection": {}, "stage1": [], "solve_time_s": {},
    }


def test_reproduce_table_has_both_columns_for_every_table2_row():
    from phantombench.papers.cnn_pinn_eit import METHODS, PAPER_ROW
    from phantombench.papers.cnn_pinn_eit_report import render

    md = render(_fake_report(METHODS))
    for c in (1, 2, 3):
        block = md.split(f"## Case {c}:")[1].split("##")[0]
        rows = [r for r in block.splitlines() if r.startswith("| ") and not r.startswith("| method")]
        assert {r.split("|")[1].strip() for r in rows} == {m for m in METHODS if m in PAPER_ROW}
        for r in rows:
            cells = [x.strip() for x in r.split("|")[2:-1]]
            assert len(cells) == 6 and all(x and x != "—" for x in cells), r
    assert "Tikhonov" in md.split("## Not in Table II")[1]


def test_reproduce_smoke_writes_the_report(tmp_path):
    """The whole smoke protocol (datasets, baselines, stage-1 training, PINN per case): about 2.5 min on 2 cores,
    run in the fast set because it is what `phantombench reproduce cnn-pinn-eit` promises CI."""
    from phantombench.papers.cnn_pinn_eit import run as run_cnn_pinn_eit

    path = run_cnn_pinn_eit("smoke", data_root=tmp_path / "data", out_dir=tmp_path / "out", log=lambda *_: None)
    md = path.read_text()
    assert (tmp_path / "out" / "cnn-pinn-eit.png").stat().st_size > 10_000
    for c in (1, 2, 3):
        block = md.split(f"## Case {c}:")[1].split("##")[0]
        rows = [r for r in block.splitlines() if r.startswith("| ") and not r.startswith("| method")]
        assert len(rows) == 4
        for r in rows:
            cells = [x.strip() for x in r.split("|")[2:-1]]
            assert all("±" in x for x in cells[0::2]) and all(float(x) > -1 for x in cells[1::2])
    assert "zero image (reference)" in md.split("## Not in Table II")[1]


def test_regularisation_chosen_on_validation_cases(datasets):
    """noser-val: fit picks lam from its grid by the mean RIE over the validation pairs it receives, and that pick
    is the grid's minimiser of RIE computed independently here with the plain solver."""
    from phantombench import open_dataset
    from phantombench.solvers.base import Cases

    ds = open_dataset(datasets["noisy"])
    idx = list(range(len(ds)))
    s = ec.NOSERChosen(TASK, params={"grid": [1e-1, 1e-3], "mesh_size": 0.15})
    s.fit(Cases([]), Cases(TASK, ds, idx))
    rie = {}
    for lam in (1e-1, 1e-3):
        plain = ec.NOSER(TASK, params={"lam": lam, "mesh_size": 0.15})
        vals = []
        for i in idx:
            truth = TASK.truth(ds, i)
            pred, _ = TASK.validate(plain.solve(TASK.observation(ds, i)), truth)
            vals.append(TASK.score(pred, truth)["RIE"])
        rie[lam] = float(np.mean(vals))
    assert s.chosen["value"] == min(rie, key=rie.get) == s.params["lam"]
    assert s.chosen["scores"] == pytest.approx(rie, rel=1e-9)
