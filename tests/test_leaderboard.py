"""Leaderboard rendering, submit (accepted, rejected without touching the board, concurrent), and the HTML page in
headless Chromium (loads without console errors, every task table present, sorting works)."""

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from phantombench import leaderboard as lb
from phantombench.evaluate import evaluate
from phantombench.submit import SubmitError, submit
from phantombench.tasks import TASKS
from phantombench.board_render import num as lb_num
from tests.bench_helpers import tree_digest

PB = str(Path(sys.executable).with_name("phantombench"))
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def evaluations(fake_brain, broken_solvers, tmp_path_factory):
    root = tmp_path_factory.mktemp("evals")
    evs = []
    for k, (spec, params) in enumerate([("constant", {}), ("constant", {"value_nu": 0.40}),
                                        (f"{broken_solvers}:Learner", {})]):
        evs.append(evaluate(spec, "brain-elasticity", fake_brain, params=params, isolate=False, out_dir=root / str(k)))
    return evs


def test_render_tables_best_marked_and_deterministic(evaluations, tmp_path):
    board = tmp_path / "board"
    written = lb.add_evaluations(board, evaluations)
    assert len(written) == 3 and all(p.exists() for p in written)
    md = (board / "README.md").read_text()
    for name in TASKS:
        assert f"## {name}" in md
    assert md.count("_No records yet._") == len(TASKS) - 1     # every registered task but brain-elasticity
    rows = [ln for ln in md.splitlines() if re.match(r"^\| \d+ \| (constant|learner)", ln)]
    assert len(rows) == 3
    # ranked by the main metric (MARE_E), best first, bold, with its verdict; the learner is clearly worse
    best = min(r.record["metrics"]["MARE_E"]["mean"] for r in evaluations)
    assert rows[0].startswith("| 1 |") and f"**{lb_num(best)}**" in rows[0] and "| best |" in rows[0]
    assert "Main metric: **MARE_E** ↓" in md
    assert "content sha256 `" + evaluations[0].record["dataset"]["content_hash"] + "`" in md
    assert lb.check(board) == []
    before = tree_digest(board)
    lb.render(board)
    assert tree_digest(board) == before                       # same records, same bytes
    (board / "README.md").write_text(md + "edited by hand\n")
    assert lb.check(board) == ["README.md"]


def test_concurrent_writers_lose_nothing(evaluations, fake_brain, tmp_path):
    board = tmp_path / "board"
    evs = []
    for k in range(6):   # six distinct records (different params -> different ids)
        ev = evaluate("constant", "brain-elasticity", fake_brain, params={"value_nu": 0.30 + 0.01 * k}, isolate=False,
                      out_dir=tmp_path / f"e{k}")
        evs.append(ev)
    threads = [threading.Thread(target=lb.add_evaluations, args=(board, [ev])) for ev in evs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lb.load_records(board)) == 6
    md = (board / "README.md").read_text()
    assert md.count("| constant 1.0.0 |") == 6
    assert lb.check(board) == []


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from phantombench.official import ensure, official

    root = tmp_path_factory.mktemp("data")
    (od,) = official("brain-elasticity", ["elunet-soft"])
    ensure(od, root, workers=0)
    return root


@pytest.fixture(scope="module")
def seeded_board(data_root, tmp_path_factory):
    board = tmp_path_factory.mktemp("lb") / "leaderboard"
    evs = submit("constant", "brain-elasticity", board=board, data_root=data_root, presets=["elunet-soft"])
    assert evs[0].record["official"]["preset"] == "elunet-soft"
    return board


@pytest.mark.parametrize("cls,needle", [("Raises", "RuntimeError: deliberate failure"),
                                        ("Hangs", "timeout"), ("NaNs", "NaN"), ("WrongShape", "wrong shape"),
                                        ("KiloPascal", "more than 100x off")])
def test_broken_submission_leaves_board_byte_identical(seeded_board, data_root, broken_solvers, cls, needle):
    before = tree_digest(seeded_board)
    with pytest.raises(SubmitError) as e:
        submit(f"{broken_solvers}:{cls}", "brain-elasticity", board=seeded_board, data_root=data_root,
               presets=["elunet-soft"])
    msg = str(e.value)
    assert msg.startswith("rejected: ") and "brain-slice/elunet-soft/v1, case 000000" in msg and needle in msg
    assert "\n" not in msg
    assert tree_digest(seeded_board) == before


def test_cli_submit_accepts_and_rejects(seeded_board, data_root, broken_solvers, tmp_path):
    board = tmp_path / "board"
    shutil.copytree(seeded_board, board)
    before = tree_digest(board)
    p = subprocess.run([PB, "submit", f"{broken_solvers}:NaNs", "--task", "brain-elasticity", "--board", str(board),
                        "--data", str(data_root), "--preset", "elunet-soft"], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("rejected: broken-nan on brain-slice/")
    assert tree_digest(board) == before
    # two good submissions at the same time: both records land, pages list both
    cmds = [[PB, "submit", "direct-elasticity", "--task", "brain-elasticity", "--board", str(board), "--data",
             str(data_root), "--preset", "elunet-soft"],
            [PB, "submit", "constant", "--task", "brain-elasticity", "--board", str(board), "--data",
             str(data_root), "--preset", "elunet-soft", "--param", "value_nu=0.4"]]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    outs = [pr.communicate(timeout=300) for pr in procs]
    assert all(pr.returncode == 0 for pr in procs), outs
    assert all("accepted" in o for o, _ in outs)
    recs = lb.load_records(board)
    assert sorted(r["solver"]["name"] for r in recs) == ["constant", "constant", "direct-elasticity"]
    md = (board / "README.md").read_text()
    from phantombench.solvers.direct_elasticity import DirectElasticity

    direct = f"| direct-elasticity {DirectElasticity.version} |"
    assert md.count("| constant 1.0.0 |") == 2 and md.count(direct) == 1
    # the direct inversion is the best MARE_E on the board, and marked so
    row = next(ln for ln in md.splitlines() if direct in ln)
    assert row.startswith("| 1 |") and re.search(r"\| \*\*[0-9.]+\*\*", row)
    p = subprocess.run([PB, "leaderboard", "--board", str(board), "--check"], capture_output=True, text=True)
    assert p.returncode == 0 and "up to date (3 records)" in p.stdout


def _chromium(page: Path, tmp: Path) -> tuple[str, str]:
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
            "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri() + "#selftest"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp)})
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout, p.stderr


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed (CI installs it)")
def test_html_page_in_headless_chromium(evaluations, tmp_path):
    board = tmp_path / "board"
    lb.add_evaluations(board, evaluations)
    page = board / "index.html"
    html = page.read_text()
    assert "<script src" not in html and "<link" not in html          # self-contained
    assert html.count("data:image/png;base64,") == 3 and html.count("<svg") == 1   # thumbnails, one chart
    dom, log = _chromium(page, tmp_path)
    consoles = [ln for ln in log.splitlines() if ":CONSOLE" in ln]
    assert consoles == [], consoles
    m = re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S)
    assert m, dom[-2000:]
    report = m.group(1)
    assert report.startswith("SELFTEST PASS"), report
    for name in TASKS:
        assert f"table {name} rows" in report
        assert f'<table class="board" data-task="{name}"' in dom
    assert "table brain-elasticity rows 3" in report
    # after the self-test clicked through every numeric column, the last one is sorted descending
    assert 'class="desc"' in dom

    # the same harness sees a broken page: a script error and a missing table make the self-test fail
    bad = board / "bad.html"
    bad.write_text(html.replace('data-task="eit"', 'data-task="tie"').replace(
        "</body>", "<script>nosuchfunction();</script></body>"))
    dom, log = _chromium(bad, tmp_path)
    assert any("Uncaught ReferenceError" in ln for ln in log.splitlines())
    report = re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S).group(1)
    assert report.startswith("SELFTEST FAIL") and "missing table eit" in report
