"""Rendering the board: records -> per-task views (ranked dataset groups) -> jinja2 pages and Altair charts.

The pages come from ``templates/board.md.j2`` and ``templates/board.html.j2``; charts are Vega-Lite specs built
with Altair and turned into inline SVG by vl-convert (no JavaScript library, no network: the page opens from
disk). Everything is a pure function of the records, so the same records give the same bytes.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phantombench.board_stats import DatasetGroup, Row, rank_group

ARROWS = {"lower": "↓", "higher": "↑"}
VERDICT_COLOURS = {"best": "#1b7837", "tied": "#7fbf7b", "": "#8c8c8c"}


def num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    v = float(v)
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def data_v(v: Any) -> str:
    return "" if v is None or not math.isfinite(float(v)) else repr(float(v))


def metric_cell(r: dict, name: str) -> str:
    st = r["metrics"].get(name) or {}
    s = num(st.get("mean"))
    if st.get("n", 0) > 1 and st.get("std") is not None:
        s += f" ± {num(st['std'], 2)}"
    return s


def ci_text(row: Row) -> str:
    return "single case" if row.ci is None else f"[{num(row.ci[0])}, {num(row.ci[1])}]"


def main_cell(row: Row) -> str:
    s = num(row.mean)
    s = f"**{s}**" if row.verdict == "best" else s
    return s + ("" if row.ci is None else f" [{num(row.ci[0])}, {num(row.ci[1])}]")


def sandbox_cell(r: dict) -> str:
    s = str(r["solver"].get("sandbox") or "none")
    return "none ⚠" if s == "none" else s


def fit(r: dict) -> str:
    v = r.get("timing", {}).get("fit_s")
    return num(v) if v else "-"


def training(r: dict) -> str:
    """The training data a learned row used (the board's policy); "-" for solvers that do not learn."""
    t = r.get("training")
    if t is None:
        return "official train split (counts not recorded)" if r["solver"].get("has_fit") else "-"
    where = ("official train split" if t["source"] == "test-dataset" else
             f"generated, seed {t.get('seed')}" if t["source"] == "generated" else f"dataset {t['dataset']}")
    return f"{where}: {t['train_cases']} train + {t['val_cases']} val cases, fit {num(t['fit_s'])} s"


def training_short(r: dict) -> str:
    t = r.get("training")
    if t is None:
        return "official" if r["solver"].get("has_fit") else "-"
    return f"{t['train_cases']} {'official' if t['source'] == 'test-dataset' else 'generated'}"


def hardware(r: dict) -> str:
    h = r.get("provenance", {}).get("hardware", {})
    s = f"{h.get('cpu', '?')} x{h.get('cores', '?')}"
    return f"{h['gpu']}; {s}" if h.get("gpu") else s


def reproduced(r: dict) -> str:
    rep = r.get("replaces")
    if not rep or rep.get("mean") is None:
        return "-"
    new = r["metrics"].get(rep["main_metric"], {}).get("mean")
    if new is None:
        return "-"
    rel = abs(new - rep["mean"]) / max(abs(rep["mean"]), 1e-30)
    return f"{rep['runs']} runs; {rep['main_metric']} was {num(rep['mean'])} on {rep.get('cpu') or '?'} ({rel:.1e} rel.)"


def params_tip(r: dict) -> str:
    return json.dumps(r["solver"].get("params", {}), sort_keys=True, default=str)


def thumb(r: dict) -> str:
    p = r.get("_thumb")
    if not p:
        return '<span class="muted">no thumbnail</span>'
    b64 = base64.b64encode(p if isinstance(p, bytes) else Path(p).read_bytes()).decode()
    return (f'<img class="thumb" alt="truth | prediction, first test case" '
            f'title="left: truth, right: prediction (same colour scale)" src="data:image/png;base64,{b64}">')


# =========================================================================================== views
def ds_key(r: dict) -> str:
    d = r["dataset"]
    fp = d.get("fingerprint") or d["content_hash"]
    return f"{d['name']}@{d['version']} ({fp[:8]}, {d['split']}{', verified' if d.get('tier') == 'verified' else ''})"


def _group_title(g: DatasetGroup) -> str:
    r = g.records[0]
    d, n = r["dataset"], r["dataset"].get("n_cases", 0)
    name = r.get("official", {}).get("dataset") or g.key
    return (f"{name} · {n} test case{'s' if n != 1 else ''}{' · single case: no interval' if n == 1 else ''}"
            + (" · superseded dataset version (kept for the record)" if r.get("_superseded") else ""))


def _group_description(g: DatasetGroup) -> str:
    d = g.records[0]["dataset"]
    return (f"`{d['name']}` version {d['version']}, split `{d['split']}` ({d['n_cases']} cases), "
            f"{d.get('tier', 'public')} tier, fingerprint `{d.get('fingerprint') or '-'}` (content sha256 "
            f"`{d['content_hash']}` on the machine of the latest record; it may differ elsewhere in the last bits)")


@dataclass
class TaskView:
    task: Any
    metric: Any
    groups: list[DatasetGroup]
    n_records: int
    chart: str = ""
    secondary: list[Any] = field(default_factory=list)
    all_metrics: list[Any] = field(default_factory=list)

    @property
    def arrow(self) -> str:
        return ARROWS[self.metric.direction]


def build_views(grouped: list[tuple[Any, list[dict]]], charts: bool = True) -> list[TaskView]:
    views = []
    for task, rs in grouped:
        metric = task.metric(task.main_metric)
        keys: dict[str, list[dict]] = {}
        for r in rs:
            keys.setdefault(ds_key(r), []).append(r)
        order = sorted(keys.items(), key=lambda kv: (any(r.get("_superseded") for r in kv[1]), kv[0]))
        groups = [rank_group(DatasetGroup(k, v), metric.name, metric.direction) for k, v in order]
        for g in groups:
            g.title, g.description = _group_title(g), _group_description(g)
            g.description_html = g.description.replace("`", "")
        secondary = [task.metric(n) for n in task.headline_metrics if n != metric.name]
        ordered = [metric] + secondary + [m for m in task.metrics if m.name not in task.headline_metrics]
        tv = TaskView(task, metric, groups, len(rs), secondary=secondary, all_metrics=ordered)
        tv.chart = chart_svg(tv) if charts and groups else ""
        views.append(tv)
    return views


def chart_svg(tv: TaskView) -> str:
    """Mean and 95 % interval of the main metric per solver, one panel per current dataset (Altair -> SVG)."""
    import altair as alt
    import pandas as pd

    rows = []
    for g in tv.groups:
        r0 = g.records[0]
        if r0.get("_superseded"):
            continue                       # superseded dataset versions: in their tables only
        label = f"{r0.get('official', {}).get('dataset') or g.key} ({r0['dataset'].get('n_cases', '?')} cases)"
        for row in g.rows:
            if row.mean is None:
                continue
            lo, hi = row.ci if row.ci else (row.mean, row.mean)
            rows.append({"dataset": label, "solver": row.record["solver"]["name"], "mean": row.mean, "lo": lo,
                         "hi": hi, "verdict": row.verdict or "other"})
    if not rows:
        return ""
    df = pd.DataFrame(rows)
    colour = alt.Color("verdict:N", scale=alt.Scale(domain=["best", "tied", "other"],
                                                    range=[VERDICT_COLOURS["best"], VERDICT_COLOURS["tied"],
                                                           VERDICT_COLOURS[""]]))
    title = f"{tv.metric.name} ({tv.metric.direction} is better)"
    x = alt.X("mean:Q", title=title)
    base = alt.Chart(df)
    layer = alt.layer(base.mark_rule(strokeWidth=2).encode(x=alt.X("lo:Q", title=title), x2="hi:Q",
                                                           y=alt.Y("solver:N", title=None), color=colour),
                      base.mark_point(filled=True, size=60).encode(x=x, y="solver:N", color=colour,
                                                                    tooltip=["solver", "mean", "lo", "hi"]))
    spec = layer.properties(width=420).facet(row=alt.Row("dataset:N", title=None, header=alt.Header(
        labelAngle=0, labelAlign="left", labelAnchor="start", labelOrient="top", labelFontWeight="bold"))
    ).resolve_scale(x="independent", y="independent")
    return _svg(spec.to_json())


@functools.lru_cache(maxsize=64)
def _svg(spec_json: str) -> str:
    import vl_convert as vlc

    return vlc.vegalite_to_svg(spec_json)


# =========================================================================================== pages
@functools.cache
def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("phantombench", "templates"),
                             autoescape=jinja2.select_autoescape(["html.j2"]), trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    for f in (num, data_v, metric_cell, ci_text, main_cell, sandbox_cell, fit, hardware, reproduced, params_tip,
              thumb, training, training_short):
        env.filters[f.__name__] = f
    return env


def render_markdown(grouped: list[tuple[Any, list[dict]]]) -> str:
    views = build_views(grouped, charts=False)
    text = _env().get_template("board.md.j2").render(views=views, arrows=ARROWS)
    return "\n".join(ln.rstrip() for ln in text.splitlines()).strip() + "\n"


def render_html(grouped: list[tuple[Any, list[dict]]], css: str, head_js: str, js: str) -> str:
    views = build_views(grouped)
    expected = json.dumps([tv.task.name for tv in views])
    return _env().get_template("board.html.j2").render(views=views, arrows=ARROWS, css=css, head_js=head_js, js=js,
                                                       expected=html.escape(expected, quote=False))
