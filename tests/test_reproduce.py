"""`phantombench reproduce elunet`: the report's tables are filled for every row, figures and raw numbers written."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from phantombench.cli import app

MODELS = ("P El-UNet", "PS El-UNet", "PS-W1 El-UNet", "PS-W2 El-UNet", "dense PINN", "direct inversion (reference)")
NUM = re.compile(r"^\d+(\.\d+)?( ± \d+(\.\d+)?)?$")


def table_rows(md: str, header_start: str) -> list[list[str]]:
    lines = md.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith(header_start))
    rows = []
    for ln in lines[i + 2:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip().strip("|").split("|")])
    return rows


def check_report(out, repeats: int) -> dict:
    md = (out / "elunet.md").read_text()
    rows = table_rows(md, "| model | paper's finding")
    assert [r[0] for r in rows] == list(MODELS)
    for r in rows:
        assert r[1], r                                   # the paper's column
        assert len(r) == 2 + 6 + 1
        for cell in r[2:8]:                              # ours: MARE E / nu per case, all numbers
            assert NUM.match(cell), (r[0], cell)
    findings = table_rows(md, "| finding | paper | ours |")
    assert len(findings) == 5
    for f in findings:
        assert all(f[:4]), f
        assert re.match(r"\*\*(supported|not supported|partly \(\d+ of \d+\)|not testable)\*\*", f[3]), f
    for case in ("soft", "noisy", "stiff"):
        assert (out / f"elunet_maps_{case}.png").stat().st_size > 10_000
        assert (out / f"elunet_curves_{case}.png").stat().st_size > 10_000
    res = json.loads((out / "elunet.json").read_text())
    assert res["repeats"] == repeats
    for case in ("soft", "noisy", "stiff"):
        for key in ("P", "PS", "W1", "W2", "PINN"):
            m = res["cases"][case]["models"][key]
            assert len(m["runs"]) == repeats and not m["summary"]["failed"]
            cv = m["runs"][0]["curve"]
            assert cv["epoch"][0] == 0 and cv["epoch"][-1] == m["runs"][0]["epochs"] > 0
            assert len(cv["MARE_E"]) == len(cv["epoch"]) >= 2
            # the report's number is the final snapshot's error (the same model, scored twice)
            assert m["summary"]["MARE_E"]["mean"] == pytest.approx(cv["MARE_E"][-1], rel=1e-4)
    return res


def test_reproduce_elunet_tiny_budget_fills_every_row(tmp_path):
    out = tmp_path / "papers"
    r = CliRunner().invoke(app, ["reproduce", "elunet", "--budget", "smoke", "--seconds", "1", "--data",
                                 str(tmp_path / "data"), "--out", str(out), "--threads", "1"])
    assert r.exit_code == 0, r.output
    res = check_report(out, repeats=1)
    assert res["train_time_s"] == 1.0 and res["width"] == 8
    # direct inversion is far better than a homogeneous guess on the soft case (a number that could be wrong)
    assert res["cases"]["soft"]["models"]["direct"]["summary"]["MARE_E"]["mean"] < 10
    # the loss diagnosis: on the rasterised data the truth's FD equilibrium residual sits on the ~20 % of pixels
    # next to a material jump (measured: 94 % of it on 19 % of the pixels, soft case)
    pl = res["cases"]["soft"]["p_loss"]
    assert 0.1 < pl["interface_pixels"] < 0.3 and pl["truth_interface_share"] > 0.8
    assert pl["truth"] > 1.0 and set(pl["models"]) == {"P", "PS", "W1", "W2", "PINN", "direct"}
    md = (out / "elunet.md").read_text()
    assert "## Is the loss's minimiser the truth?" in md


def test_reproduce_rejects_bad_arguments(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["reproduce", "nope", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "unknown paper" in r.output
    r = runner.invoke(app, ["reproduce", "elunet", "--budget", "huge", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--budget" in r.output
    # budgets are per paper: only cnn-pinn-eit has 'medium'
    r = runner.invoke(app, ["reproduce", "dime", "--budget", "medium", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "smoke, paper" in r.output
    from phantombench.papers.cnn_pinn_eit import BUDGETS
    assert "medium" in BUDGETS and BUDGETS["medium"].n_train_per_case >= 10 * BUDGETS["smoke"].n_train_per_case
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_reproduce_elunet_smoke_budget(tmp_path):
    """The CI run of the real smoke budget (15 s per model per case; a few minutes)."""
    out = tmp_path / "papers"
    r = CliRunner().invoke(app, ["reproduce", "elunet", "--budget", "smoke", "--data", str(tmp_path / "data"),
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = check_report(out, repeats=1)
    # the homogeneous start is beaten by training: PS-W1 lowers MARE(E) on the soft case
    cv = res["cases"]["soft"]["models"]["W1"]["runs"][0]["curve"]["MARE_E"]
    assert cv[-1] < 0.7 * cv[0]


@pytest.mark.parametrize("name", ["elunet", "dime", "cnn-pinn-eit"])
def test_committed_reports_re_render_from_their_json(name):
    """Each committed report is exactly what its paper's ``render`` makes of the JSON stored beside it (a report
    is never edited by hand, and a change to a renderer shows up here)."""
    from pathlib import Path

    from phantombench.papers import get_paper

    papers = Path(__file__).resolve().parents[1] / "leaderboard" / "papers"
    res = json.loads((papers / f"{name}.json").read_text())
    assert get_paper(name).render(res) == (papers / f"{name}.md").read_text()


def test_elunet_findings_recomputed_from_the_json_match_the_report():
    from pathlib import Path

    from phantombench.papers.elunet_report import findings

    res = json.loads((Path(__file__).resolve().parents[1] / "leaderboard" / "papers" / "elunet.json").read_text())
    assert findings(res) == res["findings"]


def test_papers_are_registered_and_declare_their_budgets():
    from phantombench.papers import get_paper, paper_names

    assert {"elunet", "dime", "cnn-pinn-eit"} <= set(paper_names())
    for name in ("elunet", "dime", "cnn-pinn-eit"):
        p = get_paper(name)
        assert p.name == name and list(p.budgets)[:1] == ["smoke"] and "paper" in p.budgets
        with pytest.raises(ValueError, match="--budget must be one of"):
            p.check_budget("huge")


def test_shared_statistics_and_cells():
    from phantombench.papers.common import clean, pm, stats

    st = stats([1.0, 3.0, None, float("nan")])
    assert st == {"mean": 2.0, "std": pytest.approx(2 ** 0.5), "n": 2}
    assert stats([None]) == {"mean": None, "std": None, "n": 0}
    assert stats([4.0])["std"] is None
    # the three reports' cells: El-UNet (default), DIME, CNN-PINN
    assert pm(st) == "2.0 ± 1.4" and pm(stats([])) == "failed"
    assert pm(stats([4.0]), "{:.3f}", sep=" +- ", missing="--") == "4.000" and pm(None, missing="--") == "--"
    assert pm(stats([4.0]), "{:.4f}", no_std="n/a (1 run)") == "4.0000 ± n/a (1 run)"
    assert clean({1: [float("inf"), np.float32(0.5), np.int64(3)]}) == {"1": [None, 0.5, 3]}


def test_whole_adds_an_all_split_without_touching_the_others(tmp_path):
    from phantombench.papers.common import ALL, whole
    from phantombench.store import Dataset

    ds = Dataset(tmp_path, {"n": 3, "splits": {"train": ["000000"], "test": ["000002"]}})
    w = whole(ds)
    assert w.split(ALL) == [0, 1, 2] and w.split("test") == [2] and ALL not in ds.manifest["splits"]
