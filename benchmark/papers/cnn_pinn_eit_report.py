"""The CNN-PINN (P3) report: Table II beside ours, the quality goal, hyperparameters, data and the figure, all
from the results dict stored as ``cnn-pinn-eit.json`` (int case keys in memory, string keys read back). The
Markdown's layout is the template ``templates/paper-cnn-pinn-eit.md.j2``; this module computes its cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from phantombench.papers.cnn_pinn_eit import CASE_NAMES, CASES, LITERAL, METRICS, PAPER_ROW, PAPER_TABLE2, ZERO
from phantombench.papers.common import pm, render_template, use_agg


def figure(test_cases, examples, path: Path) -> None:
    """Truth and reconstructions of the first test phantom of each case."""
    plt = use_agg()
    cols = ["truth"] + [m for m in ("NOSER (p=0.5)", "TV", "Tikhonov", "CNN-PINN", LITERAL) if m in examples[1]]
    fig, axes = plt.subplots(3, len(cols), figsize=(2.3 * len(cols), 7.2), squeeze=False)
    for r, c in enumerate(CASES):
        truth = test_cases[c][0][1]["dsigma"]
        for k, name in enumerate(cols):
            img = truth if name == "truth" else examples[c][name]
            ax = axes[r, k]
            vmax = np.nanmax(np.abs(img)) or 1.0
            ax.imshow(img, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
            if k == 0:
                ax.set_ylabel(f"case {c}: {CASE_NAMES[c]}", fontsize=8)
    fig.suptitle("P3 test phantoms (first of each case), conductivity change; each panel on its own symmetric "
                 "colour scale", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _case(d: dict, c: int):
    """Entry of case c whether the keys are ints (in memory) or strings (read back from the JSON)."""
    return d[c] if c in d else d[str(c)]


def _pm(st: dict[str, Any]) -> str:
    return pm(st, "{:.4f}", no_std="n/a (1 run)")


def _table_rows(res: dict[str, Any], c: int) -> list[tuple[str, list[str]]]:
    """(method, cells) of case c's Table II rows: ours beside the paper's for each metric."""
    out = []
    for m in (m for m in res if m in PAPER_ROW):
        st = _case(res[m], c)["stats"]
        prow = PAPER_TABLE2[c][PAPER_ROW[m]]
        out.append((m, [x for k, met in enumerate(METRICS) for x in (_pm(st[met]), f"{prow[k]:.4f}")]))
    return out


def _goal(res: dict[str, Any], c: int) -> str:
    """Case c of the quality goal: CNN-PINN above NOSER (both exponents) and TV on SSIM and on CC."""
    verdict = []
    for met in ("SSIM", "CC"):
        ours = _case(res["CNN-PINN"], c)["stats"][met]["mean"]
        others = {m: _case(res[m], c)["stats"][met]["mean"] for m in ("NOSER (p=0.5)", "NOSER (p=1)", "TV")}
        ok = all(ours > v for v in others.values())
        verdict.append(f"{met} {ours:.3f} vs " + ", ".join(f"{m} {v:.3f}" for m, v in others.items())
                       + (" -- **met**" if ok else " -- **not met**"))
    return "; ".join(verdict)


def render(rep: dict[str, Any]) -> str:
    """The report (Markdown) from the results dict (also stored as cnn-pinn-eit.json)."""
    res = rep["results"]
    extra = [m for m in res if m not in PAPER_ROW]
    return render_template(
        "paper-cnn-pinn-eit.md.j2", rep=rep, hw=rep["provenance"]["hardware"], d=rep["datasets"],
        commit=rep["provenance"].get("git_commit"),
        cases=[{"c": c, "name": CASE_NAMES[c], "info": _case(rep["datasets"]["test"], c), "rows": _table_rows(res, c)}
               for c in CASES],
        extra=[(m, c, [_pm(_case(res[m], c)["stats"][met]) for met in METRICS]) for m in extra for c in CASES],
        goal=[(c, _goal(res, c)) for c in CASES],
        zero_ssim=", ".join(f"{_case(res[ZERO], c)['stats']['SSIM']['mean']:.3f}" for c in CASES) if ZERO in res
        else None,
        selection=[(m, s, ", ".join(f"{k:g}: {v:.4f}" for k, v in s["scores"].items()))
                   for m, s in rep["selection"].items()],
        literal=(" (row 'Table I as printed')." if LITERAL in res
                 else " (measured during development; run the paper budget for that row)."))
