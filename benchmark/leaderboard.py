"""The leaderboard: result records in, ``README.md`` and one self-contained ``index.html`` out.

Layout of a board folder (default ``leaderboard/``)::

    records/<task>/<record id>.json           result records (the data; committed)
    records/<task>/<record id>.png            thumbnail: truth | prediction of the first case
    records/<task>/<record id>.cases.parquet  per-case metrics
    README.md, index.html                     rendered from the records, never edited by hand
    SUBMITTING.md                             how to submit, and the trust model

Rendering is a pure function of the records (sorted, no clock), so the same records give the same bytes.
Writers (submit, ``phantombench leaderboard``) hold an exclusive ``flock`` on the board folder while they add
records and render, so concurrent submits serialise and none is lost; files are replaced atomically.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import html
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from phantombench.tasks import TASKS, get_task

RECORDS = "records"


# =========================================================================================== storage
class LeaderboardError(ValueError):
    """A board that cannot be read or written as asked (one line, naming the file)."""


LOCK_TIMEOUT_S = float(os.environ.get("PHANTOMBENCH_BOARD_LOCK_TIMEOUT", 600))


@contextlib.contextmanager
def board_lock(board: Path, timeout: float | None = None) -> Iterator[None]:
    """Exclusive lock on the board folder itself (no lock file, so the folder's content stays unchanged).
    A second writer waits up to ``timeout`` s (default ``PHANTOMBENCH_BOARD_LOCK_TIMEOUT``, 600) for it."""
    import time

    board.mkdir(parents=True, exist_ok=True)
    fd = os.open(board, os.O_RDONLY)
    limit = time.monotonic() + (LOCK_TIMEOUT_S if timeout is None else timeout)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > limit:
                    raise LeaderboardError(f"{board} stayed locked by another writer (submit or leaderboard) "
                                           "longer than the timeout; try again when it has finished") from None
                time.sleep(0.2)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def record_files(board: Path, task: str, record_id: str) -> dict[str, Path]:
    d = Path(board) / RECORDS / task
    return {"record": d / f"{record_id}.json", "thumb": d / f"{record_id}.png",
            "cases": d / f"{record_id}.cases.parquet"}


RECORD_KEYS = ("id", "task", "dataset", "solver", "metrics", "cases", "timing", "provenance")


def _read_record(p: Path) -> dict[str, Any]:
    try:
        r = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LeaderboardError(f"{p}: unreadable record ({type(e).__name__}); remove it or restore it from git") \
            from None
    if not isinstance(r, dict) or any(k not in r for k in RECORD_KEYS):
        raise LeaderboardError(f"{p}: not a result record (missing {', '.join(k for k in RECORD_KEYS if not isinstance(r, dict) or k not in r)}); remove it or restore it from git")
    if not isinstance(r["dataset"], dict) or not isinstance(r["task"], dict) or "name" not in r["task"]:
        raise LeaderboardError(f"{p}: malformed record (task or dataset)")
    return r


def load_records(board: Path) -> list[dict[str, Any]]:
    """Every record of the board; a damaged one raises :class:`LeaderboardError` naming its file."""
    recs = []
    root = Path(board) / RECORDS
    if not root.exists():
        return recs
    for p in sorted(root.glob("*/*.json")):
        r = _read_record(p)
        thumb = record_files(board, p.parent.name, p.name[: -len(".json")])["thumb"]
        r["_thumb"] = thumb if thumb.exists() else None
        recs.append(r)
    return recs


def _reproduction(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What a record replaced: the earlier run's main metric, machine and commit, beside the new ones."""
    main = new["task"]["main_metric"]
    prev = old.get("replaces") or {}
    return {"main_metric": main, "mean": old["metrics"].get(main, {}).get("mean"),
            "cpu": old.get("provenance", {}).get("hardware", {}).get("cpu"),
            "commit": old.get("provenance", {}).get("git_commit"),
            "date": old.get("provenance", {}).get("created", "")[:10], "content_hash": old["dataset"].get("content_hash"),
            "runs": int(prev.get("runs", 1)) + 1}


def add_evaluations(board: Path, evaluations: list) -> list[Path]:
    """Copy evaluations' record, thumbnail and per-case table into the board and re-render, under the lock.

    Everything is prepared (and the existing records read) before the first byte is written, so a damaged
    board or a rendering error leaves the board as it was. A record with the id of an existing one (the same
    solver and settings on the same dataset identity, e.g. ``make run`` on another machine) replaces it and
    keeps the earlier run's main metric and machine under ``replaces``, which the board shows."""
    from phantombench.evaluate import record_json

    board = Path(board)
    written = []
    with board_lock(board):
        old = {r["id"]: r for r in load_records(board)}
        staged: list[tuple[Path, bytes]] = []
        for ev in evaluations:
            rec = ev.record
            files = record_files(board, rec["task"]["name"], rec["id"])
            rec_public = {k: v for k, v in rec.items() if not k.startswith("_")}
            rec_public["dataset"] = {k: v for k, v in rec["dataset"].items() if k != "path"}
            if rec["id"] in old:
                rec_public["replaces"] = _reproduction(old[rec["id"]], rec_public)
            staged.append((files["record"], record_json(rec_public).encode()))
            for kind in ("thumb", "cases"):
                if kind in ev.paths:
                    staged.append((files[kind], Path(ev.paths[kind]).read_bytes()))
            written.append(files["record"])
            old[rec["id"]] = {**rec_public, "_thumb": None}
        recs = sorted(old.values(), key=lambda r: r["id"])
        pages = [(board / "README.md", render_markdown(recs).encode()),
                 (board / "index.html", render_html(_with_thumbs(board, recs, staged)).encode())]
        for path, data in staged + pages:
            _atomic_write(path, data)
    return written


def _with_thumbs(board: Path, recs: list[dict], staged: list[tuple[Path, bytes]]) -> list[dict]:
    """Records with ``_thumb``: the thumbnail's path, or its bytes when it is staged and not yet written."""
    staged_bytes = dict(staged)
    out = []
    for r in recs:
        t = record_files(board, r["task"]["name"], r["id"])["thumb"]
        out.append({**r, "_thumb": staged_bytes.get(t) or (t if t.exists() else None)})
    return out


def render(board: Path, locked: bool = False) -> tuple[Path, Path]:
    board = Path(board)
    ctx = contextlib.nullcontext() if locked else board_lock(board)
    with ctx:
        recs = load_records(board)
        md, page = render_markdown(recs), render_html(recs)   # both rendered before either is written
        _atomic_write(board / "README.md", md.encode())
        _atomic_write(board / "index.html", page.encode())
    return board / "README.md", board / "index.html"


def check(board: Path) -> list[str]:
    """Names of rendered files that differ from what the records give (empty: up to date)."""
    board = Path(board)
    recs = load_records(board)
    stale = []
    for name, text in (("README.md", render_markdown(recs)), ("index.html", render_html(recs))):
        p = board / name
        if not p.exists() or p.read_text() != text:
            stale.append(name)
    return stale


def remove_record(board: Path, record_id: str) -> int:
    board = Path(board)
    n = 0
    with board_lock(board):
        for task_dir in sorted((board / RECORDS).glob("*")):
            for p in record_files(board, task_dir.name, record_id).values():
                if p.exists():
                    p.unlink()
                    n += 1
        render(board, locked=True)
    return n


# =========================================================================================== formatting
def _num(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e5:
        s = f"{v:.{digits}g}" if a < 10 ** digits else f"{v:.0f}"
        return s
    return f"{v:.{digits - 1}e}"


def _mean_std(stat: dict[str, Any]) -> str:
    if stat is None or stat.get("mean") is None:
        return "-"
    s = _num(stat["mean"])
    if stat.get("n", 0) > 1 and stat.get("std") is not None:
        s += f" ± {_num(stat['std'], 2)}"
    return s


def _ds_key(r: dict) -> str:
    """The dataset identity records group by: name@version, machine-independent fingerprint, split, tier."""
    d = r["dataset"]
    fp = d.get("fingerprint") or d["content_hash"]
    tier = d.get("tier", "public")
    return f"{d['name']}@{d['version']} ({fp[:8]}, {d['split']}{', verified' if tier == 'verified' else ''})"


def _sandbox(r: dict) -> str:
    """How the solver was confined: the sandbox's name, or 'none' (marked on the board)."""
    return str(r["solver"].get("sandbox") or "none")


def _reproduced(r: dict) -> str:
    """'-' or the earlier run this record replaced: its main metric and machine (a reproduction check)."""
    rep = r.get("replaces")
    if not rep or rep.get("mean") is None:
        return "-"
    new = r["metrics"].get(rep["main_metric"], {}).get("mean")
    if new is None:
        return "-"
    rel = abs(new - rep["mean"]) / max(abs(rep["mean"]), 1e-30)
    return f"{rep['runs']} runs; {rep['main_metric']} was {_num(rep['mean'])} on {rep.get('cpu') or '?'} ({rel:.1e} rel.)"


def _hardware(r: dict) -> str:
    h = r.get("provenance", {}).get("hardware", {})
    s = f"{h.get('cpu', '?')} x{h.get('cores', '?')}"
    if h.get("gpu"):
        s = f"{h['gpu']}; " + s
    return s


def _sort_key(task, r: dict) -> tuple:
    m = r["metrics"].get(task.main_metric, {}).get("mean")
    sign = 1 if task.metric(task.main_metric).direction == "lower" else -1
    return (_ds_key(r), 0 if m is not None else 1, sign * (m if m is not None else 0.0),
            r["solver"]["name"], r["id"])


def _best(task, recs: list[dict]) -> dict[tuple[str, str], float]:
    """(dataset key, metric) -> best mean among records on that dataset."""
    best: dict[tuple[str, str], float] = {}
    for r in recs:
        for m in task.metrics:
            v = r["metrics"].get(m.name, {}).get("mean")
            if v is None:
                continue
            k = (_ds_key(r), m.name)
            if k not in best or m.better(v, best[k]):
                best[k] = v
    return best


def _grouped(recs: list[dict]) -> list[tuple[Any, list[dict]]]:
    out = []
    names = list(TASKS) + sorted({r["task"]["name"] for r in recs} - set(TASKS))
    for name in names:
        try:
            task = get_task(name)
        except ValueError:
            continue
        rs = sorted((r for r in recs if r["task"]["name"] == name), key=lambda r: _sort_key(task, r))
        out.append((task, rs))
    return out


def _fit(r: dict) -> str:
    """Training (fit) seconds of a learned solver, '-' for solvers without a fit."""
    v = r.get("timing", {}).get("fit_s")
    return _num(v) if v else "-"


# =========================================================================================== markdown
def render_markdown(recs: list[dict]) -> str:
    lines = ["# phantombench leaderboard", "",
             "Rendered by `phantombench leaderboard` from the result records in `records/`; do not edit by hand. "
             "Each cell is mean ± std over the test cases (std over cases, omitted for one case); **bold** is "
             "the best on that dataset. Records group by dataset identity: name@version and a fingerprint that "
             "is the same on every machine whose regeneration agrees within the dataset's tolerance; `sandbox: "
             "none ⚠` marks records whose solver ran unconfined (it could have read the truth); the arrow says whether lower or higher is better. The interactive page "
             "(sortable, per-region metrics, thumbnails, charts) is `index.html`; how to submit: "
             "[SUBMITTING.md](SUBMITTING.md).", ""]
    for task, rs in _grouped(recs):
        lines += [f"## {task.name}", "", task.description, ""]
        if not rs:
            lines += ["_No records yet._", ""]
            continue
        best = _best(task, rs)
        head = task.headline_metrics
        cols = ["solver", "dataset"] + [
            f"{n} {'↓' if task.metric(n).direction == 'lower' else '↑'}"
            + (f" [{task.metric(n).unit}]" if task.metric(n).unit else "") for n in head] + [
            "cases ok", "fit s", "solve s/case", "device", "sandbox", "hardware", "date", "commit", "earlier run"]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for r in rs:
            cells = [f"{r['solver']['name']} {r['solver']['version']}", _ds_key(r)]
            for n in head:
                st = r["metrics"].get(n)
                txt = _mean_std(st)
                v = (st or {}).get("mean")
                if v is not None and best.get((_ds_key(r), n)) == v:
                    txt = f"**{txt}**"
                cells.append(txt)
            c = r["cases"]
            cells += [f"{c['ok']}/{c['n']}", _fit(r), _num(r["timing"].get("solve_s_mean")), str(r["solver"].get("device")),
                      _sandbox(r) if _sandbox(r) != "none" else "none ⚠", _hardware(r),
                      r["provenance"].get("created", "")[:10], (r["provenance"].get("git_commit") or "-")[:10],
                      _reproduced(r)]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
        lines.append("Datasets:")
        lines.append("")
        seen = {}
        for r in rs:
            d = r["dataset"]
            seen[_ds_key(r)] = (f"- `{d['name']}` version {d['version']}, split `{d['split']}` "
                                f"({d['n_cases']} cases), {d.get('tier', 'public')} tier, fingerprint "
                                f"`{d.get('fingerprint') or '-'}` (content sha256 `{d['content_hash']}` on the "
                                "machine that made the first record; it may differ elsewhere in the last bits)")
        lines += list(seen.values()) + [""]
    return "\n".join(lines).rstrip() + "\n"


# =========================================================================================== html
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;
color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table.board{border-collapse:collapse;font-size:.85em;margin:.5em 0 1em}
table.board th,table.board td{border:1px solid #ddd;padding:.25em .5em;text-align:right;white-space:nowrap}
table.board td.t,table.board th.t{text-align:left}
table.board th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0}
table.board th.asc::after{content:" ▲"}table.board th.desc::after{content:" ▼"}
td.best{font-weight:bold;background:#e6f4e6}
.fail{color:#a00}.muted{color:#777;font-size:.85em}
.charts{display:flex;flex-wrap:wrap;gap:1em}.charts figure{margin:0}
.charts figcaption{font-size:.8em;text-align:center}
img.thumb{image-rendering:pixelated;height:64px;display:block}
.scroll{overflow-x:auto}
"""

JS = r"""
(function(){
  function val(td){var v=td.getAttribute('data-v');if(v===null)return td.textContent.trim();
    if(v==='')return null;var x=parseFloat(v);return isNaN(x)?v:x;}
  function sortTable(table,col,dir){
    var tb=table.tBodies[0];var rows=Array.prototype.slice.call(tb.rows);
    rows.sort(function(a,b){var x=val(a.cells[col]),y=val(b.cells[col]);
      if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
      var c=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));
      return dir==='asc'?c:-c;});
    rows.forEach(function(r){tb.appendChild(r);});
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
      th.classList.remove('asc','desc');if(i===col)th.classList.add(dir);});
  }
  window.pbSort=sortTable;
  document.querySelectorAll('table.board').forEach(function(t){
    Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){
      th.addEventListener('click',function(){
        var dir=th.classList.contains('asc')?'desc':'asc';sortTable(t,i,dir);});});});
  if(location.hash==='#selftest'){
    var out=[];var ok=true;
    var expected=JSON.parse(document.getElementById('pb-expected').textContent);
    expected.forEach(function(name){
      var t=document.querySelector('table.board[data-task="'+name+'"]');
      if(!t){ok=false;out.push('missing table '+name);return;}
      var n=t.tBodies[0].rows.length;out.push('table '+name+' rows '+n);
      var ths=t.tHead.rows[0].cells;
      for(var i=0;i<ths.length;i++){
        if(ths[i].getAttribute('data-num')!=='1')continue;
        ['asc','desc'].forEach(function(dir){
          ths[i].click();if(dir==='desc'&&!ths[i].classList.contains('desc'))ths[i].click();
          if(!ths[i].classList.contains(dir)){ok=false;out.push('header '+i+' not '+dir);}
          var vs=Array.prototype.map.call(t.tBodies[0].rows,function(r){return val(r.cells[i]);})
                 .filter(function(v){return v!==null;});
          for(var k=1;k<vs.length;k++){
            if(dir==='asc'?vs[k]<vs[k-1]:vs[k]>vs[k-1]){ok=false;out.push(name+' col '+i+' '+dir+' unsorted');break;}}
        });
      }
    });
    if(window.pbErrors.length){ok=false;out.push('errors: '+window.pbErrors.join(' | '));}
    var pre=document.createElement('pre');pre.id='selftest';
    pre.textContent=(ok?'SELFTEST PASS':'SELFTEST FAIL')+'\n'+out.join('\n');
    document.body.appendChild(pre);
  }
})();
"""

HEAD_JS = """window.pbErrors=[];window.addEventListener('error',function(e){window.pbErrors.push(String(e.message));});
(function(){var ce=console.error;console.error=function(){window.pbErrors.push(Array.prototype.join.call(arguments,' '));
return ce.apply(console,arguments);};})();"""


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _data_v(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else repr(float(v))


def _thumb_img(r: dict) -> str:
    p = r.get("_thumb")
    if not p:
        return "-"
    b64 = base64.b64encode(p if isinstance(p, bytes) else Path(p).read_bytes()).decode()
    return (f'<img class="thumb" alt="truth | prediction, case 1" '
            f'title="left: truth, right: prediction (same colour scale)" src="data:image/png;base64,{b64}">')


def _svg_chart(task, metric, rs: list[dict]) -> str:
    """Horizontal bars (mean) with whiskers (std) per record; the best per dataset drawn darker."""
    items = [(f"{r['solver']['name']} · {r['dataset'].get('preset') or r['dataset']['name']}",
              r["metrics"].get(metric.name, {}), _ds_key(r)) for r in rs]
    items = [(lab, st, k) for lab, st, k in items if st and st.get("mean") is not None]
    if not items:
        return ""
    best = _best(task, rs)
    hi = max(abs(st["mean"]) + (st.get("std") or 0) for _, st, _ in items) or 1.0
    lo = min(0.0, min(st["mean"] - (st.get("std") or 0) for _, st, _ in items))
    span = hi - lo if hi > lo else 1.0
    label_w, bar_w, row_h = 230, 260, 18
    h = row_h * len(items) + 26
    w = label_w + bar_w + 70
    x0 = label_w + (0 - lo) / span * bar_w
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
             f'role="img" aria-label="{_e(metric.name)}" font-family="sans-serif" font-size="11">']
    for k, (lab, st, dk) in enumerate(items):
        y = 4 + k * row_h
        m, s = st["mean"], st.get("std") or 0.0
        xm = label_w + (m - lo) / span * bar_w
        is_best = best.get((dk, metric.name)) == m
        fill = "#2b7a2b" if is_best else "#8fb8de"
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{_e(lab[:38])}</text>')
        parts.append(f'<rect x="{min(x0, xm):.1f}" y="{y + 2}" width="{abs(xm - x0):.1f}" height="{row_h - 6}" '
                     f'fill="{fill}"><title>{_e(lab)}: {_e(_mean_std(st))}</title></rect>')
        if s > 0:
            xa = label_w + (m - s - lo) / span * bar_w
            xb = label_w + (m + s - lo) / span * bar_w
            yc = y + row_h / 2 - 1
            parts.append(f'<line x1="{xa:.1f}" y1="{yc}" x2="{xb:.1f}" y2="{yc}" stroke="#333"/>')
        parts.append(f'<text x="{max(x0, xm) + 4:.1f}" y="{y + 12}">{_e(_num(m))}</text>')
    yb = 4 + len(items) * row_h
    parts.append(f'<line x1="{x0:.1f}" y1="2" x2="{x0:.1f}" y2="{yb}" stroke="#555"/>')
    arrow = "lower is better" if metric.direction == "lower" else "higher is better"
    parts.append(f'<text x="{label_w}" y="{yb + 16}" fill="#555">{_e(metric.name)}'
                 f'{" [" + _e(metric.unit) + "]" if metric.unit else ""} ({arrow})</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(recs: list[dict]) -> str:
    grouped = _grouped(recs)
    out = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<title>phantombench leaderboard</title>', f"<style>{CSS}</style>", f"<script>{HEAD_JS}</script>",
           "</head><body>", "<h1>phantombench leaderboard</h1>",
           '<p class="muted">Rendered from the result records in <code>records/</code>. Cells: mean ± std over the '
           'test cases; green: best on that dataset; click a header to sort. Thumbnails: truth | prediction of the '
           'first test case. How to submit: <a href="SUBMITTING.md">SUBMITTING.md</a>.</p>']
    out.append("<nav><ul>" + "".join(f'<li><a href="#task-{_e(t.name)}">{_e(t.name)}</a> ({len(rs)} records)</li>'
                                     for t, rs in grouped) + "</ul></nav>")
    for task, rs in grouped:
        out.append(f'<section id="task-{_e(task.name)}"><h2>{_e(task.name)}</h2><p>{_e(task.description)}</p>')
        best = _best(task, rs)
        metrics = [task.metric(n) for n in task.headline_metrics] + [
            m for m in task.metrics if m.name not in task.headline_metrics]
        head = ['<th class="t">solver</th>', '<th class="t">dataset</th>'] + [
            f'<th data-num="1" title="{_e(m.description)} ({m.direction} is better)">{_e(m.name)} '
            f'{"↓" if m.direction == "lower" else "↑"}</th>' for m in metrics] + [
            '<th data-num="1">cases ok</th>', '<th data-num="1" title="training time (fit) of learned solvers">fit s</th>',
            '<th data-num="1">solve s/case</th>', '<th class="t">device</th>',
            '<th class="t" title="how the solver was confined; none = it could read and write like any program">'
            'sandbox</th>',
            '<th class="t">hardware</th>', '<th class="t">date</th>', '<th class="t">commit</th>',
            '<th class="t" title="the record this one replaced (same solver and settings, same dataset identity)">'
            'earlier run</th>', '<th class="t">truth | prediction</th>']
        out.append(f'<div class="scroll"><table class="board" data-task="{_e(task.name)}" '
                   f'data-main="{_e(task.main_metric)}"><thead><tr>{"".join(head)}</tr></thead><tbody>')
        for r in rs:
            c = r["cases"]
            tip = f'{r["id"]}\nparams: {json.dumps(r["solver"].get("params"), sort_keys=True, default=str)}'
            cells = [f'<td class="t" title="{_e(tip)}">{_e(r["solver"]["name"])} {_e(r["solver"]["version"])}</td>',
                     f'<td class="t">{_e(_ds_key(r))}</td>']
            for m in metrics:
                st = r["metrics"].get(m.name) or {}
                v = st.get("mean")
                cls = ' class="best"' if v is not None and best.get((_ds_key(r), m.name)) == v else ""
                cells.append(f'<td data-v="{_data_v(v)}"{cls}>{_e(_mean_std(st))}</td>')
            fail = ' class="fail"' if c["failed"] else ""
            fit_s = r["timing"].get("fit_s") or None
            cells += [f'<td data-v="{c["ok"] / max(c["n"], 1)!r}"{fail}>{c["ok"]}/{c["n"]}</td>',
                      f'<td data-v="{_data_v(fit_s)}">{_e(_fit(r))}</td>',
                      f'<td data-v="{_data_v(r["timing"].get("solve_s_mean"))}">'
                      f'{_e(_num(r["timing"].get("solve_s_mean")))}</td>',
                      f'<td class="t">{_e(r["solver"].get("device"))}</td>',
                      f'<td class="t{" fail" if _sandbox(r) == "none" else ""}">{_e(_sandbox(r))}</td>',
                      f'<td class="t">{_e(_hardware(r))}</td>',
                      f'<td class="t">{_e(r["provenance"].get("created", "")[:10])}</td>',
                      f'<td class="t">{_e((r["provenance"].get("git_commit") or "-")[:10])}</td>',
                      f'<td class="t">{_e(_reproduced(r))}</td>',
                      f'<td class="t">{_thumb_img(r)}</td>']
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table></div>")
        if not rs:
            out.append('<p class="muted">No records yet.</p>')
        charts = [(m, _svg_chart(task, m, rs)) for m in (task.metric(n) for n in task.headline_metrics)]
        charts = [(m, s) for m, s in charts if s]
        if charts:
            out.append('<div class="charts">' + "".join(
                f'<figure>{s}<figcaption>{_e(m.description)}</figcaption></figure>' for m, s in charts) + "</div>")
        dsets = {}
        for r in rs:
            d = r["dataset"]
            dsets[_ds_key(r)] = (f"<li><code>{_e(d['name'])}</code> version {_e(d['version'])}, split "
                                 f"<code>{_e(d['split'])}</code> ({d['n_cases']} cases), content sha256 "
                                 f"<code>{_e(d['content_hash'])}</code></li>")
        if dsets:
            out.append('<p class="muted">Datasets:</p><ul class="muted">' + "".join(dsets.values()) + "</ul>")
        out.append("</section>")
    expected = json.dumps([t.name for t, _ in grouped])
    out.append(f'<script type="application/json" id="pb-expected">{expected}</script>')
    out.append(f"<script>{JS}</script>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def copy_board(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)
