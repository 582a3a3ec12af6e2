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
    from phantombench.store import lock_waiting

    board.mkdir(parents=True, exist_ok=True)
    fd = os.open(board, os.O_RDONLY)
    try:
        if not lock_waiting(fd, LOCK_TIMEOUT_S if timeout is None else timeout):
            raise LeaderboardError(f"{board} stayed locked by another writer (submit or leaderboard) longer than "
                                   "the timeout; try again when it has finished")
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    from phantombench.store import write_atomic

    write_atomic(path, data)


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
        files = record_files(board, p.parent.name, p.name[: -len(".json")])
        r["_thumb"] = files["thumb"] if files["thumb"].exists() else None
        r["_cases"] = files["cases"] if files["cases"].exists() else None
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
        recs = _with_thumbs(board, recs, staged)
        pages = [(board / "README.md", render_markdown(recs).encode()),
                 (board / "index.html", render_html(recs).encode())]
        for path, data in staged + pages:
            _atomic_write(path, data)
    return written


def _with_thumbs(board: Path, recs: list[dict], staged: list[tuple[Path, bytes]]) -> list[dict]:
    """Records with ``_thumb``: the thumbnail's path, or its bytes when it is staged and not yet written."""
    staged_bytes = dict(staged)
    out = []
    for r in recs:
        f = record_files(board, r["task"]["name"], r["id"])
        out.append({**r, "_thumb": staged_bytes.get(f["thumb"]) or (f["thumb"] if f["thumb"].exists() else None),
                    "_cases": staged_bytes.get(f["cases"]) or (f["cases"] if f["cases"].exists() else None)})
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


# =========================================================================================== pages
def _current_keys() -> set[str]:
    from phantombench.official import all_official

    return {od.key for od in all_official()}


def _grouped(recs: list[dict]) -> list[tuple[Any, list[dict]]]:
    """Records per task, each marked ``_superseded`` when its official dataset is no longer the current version
    (e.g. ``brain-slice/random/v1`` after v2 enlarged the test split): such groups are shown after the current
    ones, for the record."""
    current = _current_keys()
    recs = [{**r, "_superseded": bool(r.get("official")) and r["official"].get("dataset") not in current}
            for r in recs]
    out = []
    names = list(TASKS) + sorted({r["task"]["name"] for r in recs} - set(TASKS))
    for name in names:
        try:
            task = get_task(name)
        except ValueError:
            continue
        out.append((task, [r for r in recs if r["task"]["name"] == name]))
    return out


def render_markdown(recs: list[dict]) -> str:
    from phantombench.board_render import render_markdown as md

    return md(_grouped(recs))


def render_html(recs: list[dict]) -> str:
    from phantombench.board_render import render_html as page

    return page(_grouped(recs), CSS, HEAD_JS, JS)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{margin-top:2.2em;border-bottom:2px solid #444}
h3{font-size:1em;margin:1.6em 0 .3em;padding:.3em .6em;background:#eef2f7;border-left:4px solid #4a6fa5}
.group{margin-bottom:1.2em}
table.board{border-collapse:collapse;font-size:.9em;margin:.3em 0;width:100%}
table.board th,table.board td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:right;white-space:nowrap}
table.board td.t,table.board th.t{text-align:left}
table.board th{background:#f6f6f6;cursor:pointer;user-select:none}
table.board th.asc::after{content:" ▲"}table.board th.desc::after{content:" ▼"}
tr.row{cursor:pointer}tr.row:hover{background:#fafafa}
tr.v-best td{font-weight:bold;background:#e3f1e3}tr.v-tied td{background:#f1f8f0}
tr.detail td{padding:0 .5em;border-bottom:1px solid #ddd;white-space:normal;text-align:left}
tr.detail summary{color:#4a6fa5;font-size:.85em;cursor:pointer}
.detail-body{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start;padding:.5em 0 1em}
table.metrics{border-collapse:collapse;font-size:.85em}table.metrics td,table.metrics th{padding:.1em .6em;
border-bottom:1px solid #eee;text-align:right}table.metrics .t{text-align:left}
img.thumb{width:auto;max-width:100%;height:auto;display:block;border:1px solid #ccc}
dl.prov{display:grid;grid-template-columns:auto 1fr;gap:.1em .8em;font-size:.85em;margin:0;max-width:420px}
dl.prov dt{color:#666}dl.prov dd{margin:0;word-break:break-all}
.v-best{color:#1b7837;font-weight:bold}.v-tied{color:#4d9a4d}.warn{color:#a00}.muted{color:#777;font-size:.85em}
p.main{background:#f6f6f6;padding:.4em .6em}
figure.chart{margin:.5em 0 1em;overflow-x:auto}figure.chart figcaption{font-size:.8em;color:#555}
"""

JS = r"""
(function(){
  function val(td){var v=td.getAttribute('data-v');if(v===null)return td.textContent.trim();
    if(v==='')return null;var x=parseFloat(v);return isNaN(x)?v:x;}
  function pairs(tb){var out=[];Array.prototype.forEach.call(tb.rows,function(r){
    if(r.classList.contains('row'))out.push([r,null]);else if(out.length)out[out.length-1][1]=r;});return out;}
  function sortTable(table,col,dir){
    var tb=table.tBodies[0];var ps=pairs(tb);
    ps.sort(function(a,b){var x=val(a[0].cells[col]),y=val(b[0].cells[col]);
      if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
      var c=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));
      return dir==='asc'?c:-c;});
    ps.forEach(function(p){tb.appendChild(p[0]);if(p[1])tb.appendChild(p[1]);});
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
      th.classList.remove('asc','desc');if(i===col)th.classList.add(dir);});
  }
  document.querySelectorAll('table.board').forEach(function(t){
    Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){
      th.addEventListener('click',function(){sortTable(t,i,th.classList.contains('asc')?'desc':'asc');});});
    Array.prototype.forEach.call(t.tBodies[0].rows,function(r){if(!r.classList.contains('row'))return;
      r.addEventListener('click',function(){var d=r.nextElementSibling;
        if(d&&d.classList.contains('detail')){var det=d.querySelector('details');det.open=!det.open;}});});});
  if(location.hash==='#selftest'){
    var out=[];var ok=true;
    var expected=JSON.parse(document.getElementById('pb-expected').textContent);
    expected.forEach(function(name){
      var ts=document.querySelectorAll('table.board[data-task="'+name+'"]');
      if(!ts.length){ok=false;out.push('missing table '+name);return;}
      var n=0;
      ts.forEach(function(t){
        n+=pairs(t.tBodies[0]).length;var ths=t.tHead.rows[0].cells;
        for(var i=0;i<ths.length;i++){
          if(ths[i].getAttribute('data-num')!=='1')continue;
          ['asc','desc'].forEach(function(dir){
            ths[i].click();if(dir==='desc'&&!ths[i].classList.contains('desc'))ths[i].click();
            if(!ths[i].classList.contains(dir)){ok=false;out.push('header '+i+' not '+dir);}
            var ps=pairs(t.tBodies[0]);
            ps.forEach(function(p){if(!p[1]||p[1].getAttribute('data-for')!==p[0].getAttribute('data-id')){
              ok=false;out.push(name+' detail row separated from its row');}});
            var vs=ps.map(function(p){return val(p[0].cells[i]);}).filter(function(v){return v!==null;});
            for(var k=1;k<vs.length;k++){
              if(dir==='asc'?vs[k]<vs[k-1]:vs[k]>vs[k-1]){ok=false;out.push(name+' col '+i+' '+dir+' unsorted');break;}}
          });
        }
      });
      out.push('table '+name+' rows '+n);
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


def copy_board(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)
