"""The El-UNet report: the paper's findings checked against the numbers, the figures, and the Markdown.

Everything here reads the results dict that :func:`phantombench.papers.elunet.run` stores as ``elunet.json``
(the figures also take the truth and repeat-0 predictions), so a report re-renders from its JSON alone. The
Markdown's layout is the template ``templates/paper-elunet.md.j2``; this module computes its cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from phantombench.papers.common import pm, render_template, save_png, use_agg
from phantombench.papers.elunet import BUDGETS, CASES

TIE_POINTS = 0.5     # percentage points: differences this small are reported as ties, never counted as wins
PALETTE = {"P": "#1f77b4", "PS": "#ff7f0e", "W1": "#2ca02c", "W2": "#d62728", "PINN": "#9467bd", "direct": "#444444"}


# ------------------------------------------------------------------------------------------- findings
def _mean(results, case, key, metric="MARE_E"):
    try:
        return results["cases"][case]["models"][key]["summary"][metric]["mean"]
    except KeyError:
        return None


def _verdict(ok: int, n: int) -> str:
    if n == 0:
        return "not testable"
    if ok == n:
        return "supported"
    if ok == 0:
        return "not supported"
    return f"partly ({ok} of {n})"


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _learned(results) -> list[str]:
    return [m["key"] for m in results["models"] if m["key"] != "direct"]


def _beats_pinn(results, cases) -> dict[str, str]:
    """1: every El-UNet beats the dense PINN (E and nu)."""
    ok = n = 0
    losers = []
    for c in cases:
        for k in (k for k in _learned(results) if k != "PINN"):
            for met in ("MARE_E", "MARE_nu"):
                a, p = _mean(results, c, k, met), _mean(results, c, "PINN", met)
                if a is None or p is None:
                    continue
                n += 1
                if a < p:
                    ok += 1
                else:
                    losers.append(f"{k} {met.split('_')[1]} {c}")
    return {"finding": "Every El-UNet beats the dense PINN", "paper": "yes, on E and nu in all three cases",
            "ours": f"{ok} of {n} (model, metric, case) comparisons won" + (
                f"; lost: {', '.join(losers)}" if losers else ""), "verdict": _verdict(ok, n)}


def _ps_beats_p(results, cases) -> dict[str, str]:
    """2: PS beats P on nu."""
    parts, ok, n = [], 0, 0
    for c in cases:
        a, p = _mean(results, c, "PS", "MARE_nu"), _mean(results, c, "P", "MARE_nu")
        if a is None or p is None:
            continue
        n += 1
        ok += a < p
        parts.append(f"{c}: PS {_fmt(a)} vs P {_fmt(p)} %")
    return {"finding": "PS beats P on nu", "paper": "yes", "ours": "; ".join(parts), "verdict": _verdict(ok, n)}


def _w1_best(results, cases) -> dict[str, str]:
    """3: W1 best (lowest MARE_E and MARE_nu among the learned models) and most stable (smallest std)."""
    learned = _learned(results)
    parts, ok, n, ties = [], 0, 0, 0
    for c in cases:
        for met in ("MARE_E", "MARE_nu"):
            vals = {k: _mean(results, c, k, met) for k in learned}
            vals = {k: v for k, v in vals.items() if v is not None}
            if "W1" not in vals:
                continue
            best = min(vals, key=vals.get)
            n += 1
            ok += best == "W1"
            ties += best != "W1" and vals["W1"] - vals[best] <= TIE_POINTS
            parts.append(f"{c} {met.split('_')[1]}: best {best} ({_fmt(vals[best])} %, W1 {_fmt(vals['W1'])} %)")
    if ties:
        parts.append(f"W1 within {TIE_POINTS:g} points of the best in {ties} more (not counted)")
    stab = []
    for c in cases:
        sds = {k: results["cases"][c]["models"][k]["summary"]["MARE_E"]["std"] for k in learned}
        if all(v is not None for v in sds.values()):
            stab.append(f"{c}: smallest std(E) {min(sds, key=sds.get)}")
    return {"finding": "PS-W1 is best and most stable across soft, noisy and stiff", "paper": "yes",
            "ours": "; ".join(parts) + ("; " + "; ".join(stab) if stab else "; stability needs >= 2 repeats"),
            "verdict": _verdict(ok, n)}


def _stiff_hardest(results, cases) -> dict[str, str]:
    """4: the stiff case is the hardest: per learned model, stiff MARE_E >= soft and noisy."""
    parts, ok, n = [], 0, 0
    if {"soft", "noisy", "stiff"} <= set(cases):
        for k in _learned(results):
            s, o, st = (_mean(results, c, k) for c in ("soft", "noisy", "stiff"))
            if None in (s, o, st):
                continue
            n += 1
            ok += st >= max(s, o)
            parts.append(f"{k}: {_fmt(s)} / {_fmt(o)} / {_fmt(st)}")
    return {"finding": "The stiff background is the hardest case", "paper": "yes",
            "ours": "MARE(E) soft / noisy / stiff: " + "; ".join(parts), "verdict": _verdict(ok, n)}


def _turns_up(run_: dict[str, Any]) -> tuple[int, bool] | None:
    """(epoch index of the minimum, whether the final nu error is above 1.1 x that minimum) of a run's curve."""
    cv = run_.get("curve", {}).get("MARE_nu", [])
    if len(cv) < 3:
        return None
    i = int(np.nanargmin(cv))
    return i, bool(i < len(cv) - 1 and cv[-1] > 1.1 * cv[i])


def _runs(results, cases, key):
    for c in ("noisy", "stiff"):
        if c in cases and key in results["cases"][c]["models"]:
            for run_ in results["cases"][c]["models"][key]["runs"]:
                yield c, run_


def _w2_turns_up(results, cases) -> dict[str, str]:
    """5: W2's nu error turns back up late in the noisy and stiff runs (and the same test on PS and W1)."""
    parts, ok, n = [], 0, 0
    for c, run_ in _runs(results, cases, "W2"):
        t = _turns_up(run_)
        if t is None:
            continue
        i, up = t
        cv = run_["curve"]["MARE_nu"]
        n += 1
        ok += up
        parts.append(f"{c} seed {run_['seed']}: min {_fmt(cv[i])} % at epoch {run_['curve']['epoch'][i]}, "
                     f"final {_fmt(cv[-1])} %")
    others = []
    for k in ("PS", "W1"):
        ts = [t for _, run_ in _runs(results, cases, k) if (t := _turns_up(run_)) is not None]
        if ts:
            others.append(f"{k} {sum(up for _, up in ts)} of {len(ts)}")
    return {"finding": "PS-W2's nu error turns back up late in noisy and stiff runs", "paper": "yes",
            "ours": "; ".join(parts) + " (up = final > 1.1 x minimum)" + (
                f"; the same test on the other PS models: {', '.join(others)} turn up" if others else ""),
            "verdict": _verdict(ok, n)}


def findings(results: dict[str, Any]) -> list[dict[str, str]]:
    """The paper's qualitative findings checked against our numbers: (finding, paper, ours, verdict)."""
    cases = list(results["cases"])
    return [f(results, cases) for f in (_beats_pinn, _ps_beats_p, _w1_best, _stiff_hardest, _w2_turns_up)]


# ------------------------------------------------------------------------------------------- figures
def _labels(results) -> dict[str, str]:
    return {m["key"]: m["label"].replace(" (reference)", "") for m in results["models"]}


def _maps_figure(results, case: str, ex: dict[str, Any], out_dir: Path) -> None:
    """Truth, prediction and |error| maps of E and nu, one column per model (repeat 0)."""
    plt = use_agg()
    labels = _labels(results)
    keys = [k for k in labels if k in ex["pred"]]
    mask = ex["truth"]["_mask"]
    fig, axes = plt.subplots(4, len(keys) + 1, figsize=(1.9 * (len(keys) + 1) + 1, 10.2), squeeze=False,
                             constrained_layout=True)
    for r, (field, unit) in enumerate((("E", "Pa"), ("nu", ""))):
        g = np.where(mask, ex["truth"][field], np.nan)
        lo, hi = float(np.nanmin(g)), float(np.nanmax(g))
        pad = 0.25 * (hi - lo) or 0.1 * abs(hi)
        im = axes[2 * r, 0].imshow(g, vmin=lo - pad, vmax=hi + pad, cmap="viridis")
        axes[2 * r, 0].set_title(f"truth {field}" + (f" [{unit}]" if unit else ""), fontsize=8)
        fig.colorbar(im, ax=axes[2 * r, 0], shrink=0.7)
        axes[2 * r + 1, 0].axis("off")
        for j, k in enumerate(keys, start=1):
            q = np.where(mask, ex["pred"][k][field], np.nan)
            im = axes[2 * r, j].imshow(q, vmin=lo - pad, vmax=hi + pad, cmap="viridis")
            axes[2 * r, j].set_title(f"{labels[k]}: {field}", fontsize=7)
            with np.errstate(divide="ignore", invalid="ignore"):
                e = 100 * np.abs(q - g) / np.abs(g)
            im2 = axes[2 * r + 1, j].imshow(e, vmin=0, vmax=50 if field == "E" else 30, cmap="magma")
            axes[2 * r + 1, j].set_title(f"|error| {field} [%], MARE {np.nanmean(e[mask]):.1f}", fontsize=7)
            if j == len(keys):
                fig.colorbar(im, ax=axes[2 * r, j], shrink=0.7)
                fig.colorbar(im2, ax=axes[2 * r + 1, j], shrink=0.7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"El-UNet reproduction, {case} case ({results['budget']} budget, seed 0)", fontsize=10)
    save_png(fig, out_dir / f"elunet_maps_{case}.png", dpi=60)


def _curves_figure(results, case: str, out_dir: Path) -> None:
    """Loss, MARE(E) and MARE(nu) versus epoch of every learned run; the direct inversion as a dashed line."""
    plt = use_agg()
    labels = _labels(results)
    models = results["cases"][case]["models"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    for k in (m["key"] for m in results["models"]):
        if k == "direct" or k not in models:
            continue
        for i, run_ in enumerate(models[k]["runs"]):
            lab = labels[k] if i == 0 else None
            ep = np.maximum(np.asarray(run_["loss"]["epoch"]), 1)
            axes[0].loglog(ep, run_["loss"]["loss"], color=PALETTE[k], lw=1, alpha=0.8, label=lab)
            cep = np.maximum(np.asarray(run_["curve"]["epoch"]), 1)
            axes[1].semilogx(cep, run_["curve"]["MARE_E"], color=PALETTE[k], lw=1, marker=".", ms=3, label=lab)
            axes[2].semilogx(cep, run_["curve"]["MARE_nu"], color=PALETTE[k], lw=1, marker=".", ms=3, label=lab)
    ref = models.get("direct", {}).get("summary", {})
    for ax, met in ((axes[1], "MARE_E"), (axes[2], "MARE_nu")):
        v = ref.get(met, {}).get("mean")
        if v is not None:
            ax.axhline(v, color=PALETTE["direct"], ls="--", lw=1, label="direct inversion")
    for ax, ylabel in zip(axes, ("loss (unweighted)", "MARE(E) [%]", "MARE(nu) [%]")):
        ax.set_ylabel(ylabel)
        ax.set_xlabel("epoch (epoch 0 plotted at 1)")
        ax.grid(alpha=0.3, which="both")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{case} case: loss and error versus epoch ({results['train_time_s']:g} s per model)", fontsize=10)
    save_png(fig, out_dir / f"elunet_curves_{case}.png", dpi=80)


def figures(results: dict[str, Any], examples: dict[str, dict[str, Any]], out_dir: Path) -> None:
    """``elunet_maps_<case>.png`` and ``elunet_curves_<case>.png`` for every case run."""
    for case, ex in examples.items():
        _maps_figure(results, case, ex, out_dir)
        _curves_figure(results, case, out_dir)


# ------------------------------------------------------------------------------------------- report
def _clock_words(results: dict[str, Any]) -> str:
    if results.get("clock") == "cpu":
        return ("s of process CPU time on one thread -- equal compute per model on a shared machine, where equal "
                "wall time would hand each model whatever the other jobs left")
    return "s of wall time"


def command(results: dict[str, Any]) -> str:
    """The command line that reproduces this report (budget plus any override of it)."""
    b = BUDGETS[results["budget"]]
    cmd = f"phantombench reproduce elunet --budget {results['budget']}"
    if results["train_time_s"] != b.train_time_s:
        cmd += f" --seconds {results['train_time_s']:g}"
    if results["repeats"] != b.repeats:
        cmd += f" --repeats {results['repeats']}"
    if results["width"] != b.width:
        cmd += f" --width {results['width']}"
    if results.get("clock", b.clock) != b.clock:
        cmd += f" --clock {results['clock']}"
    return cmd


def _table(results: dict[str, Any], cases: list[str]) -> list[tuple[str, str, list[str], list[str]]]:
    """(model, the paper's finding, MARE E / nu cells per case, epochs per case) of the main table."""
    rows = []
    for m in results["models"]:
        cells, eps = [], []
        for c in cases:
            s = results["cases"][c]["models"][m["key"]]["summary"]
            cells += [pm(s["MARE_E"]), pm(s["MARE_nu"])]
            eps.append("-" if s.get("epochs") is None else f"{s['epochs']['mean']:.0f}")
        rows.append((m["label"], m["paper"], cells, eps))
    return rows


def _regions(results: dict[str, Any], cases: list[str]) -> list[tuple[str, list[str]]]:
    """(model, "background / gray / white" seed-mean MARE(E) per case)."""
    def cell(s):
        return " / ".join("-" if s[f"MARE_E_{r}"]["mean"] is None else f"{s[f'MARE_E_{r}']['mean']:.1f}"
                          for r in ("background", "gray", "white"))

    return [(m["label"], [cell(results["cases"][c]["models"][m["key"]]["summary"]) for c in cases])
            for m in results["models"]]


def _loss(results: dict[str, Any], cases: list[str]) -> list[tuple[str, list[str]]] | None:
    """Rows of the loss diagnosis (truth, interface share, each model), or None when a case lacks it."""
    if not all("p_loss" in results["cases"][c] for c in cases):
        return None
    pl = {c: results["cases"][c]["p_loss"] for c in cases}
    rows = [("ground truth", [f"{pl[c]['truth']:.3g}" for c in cases]),
            ("share of the truth's equilibrium residual^2 on pixels next to a material jump",
             [f"{100 * pl[c]['truth_interface_share']:.0f} % (of {100 * pl[c]['interface_pixels']:.0f} % of pixels)"
              for c in cases])]
    for m in results["models"]:
        vals = [pl[c]["models"].get(m["key"]) for c in cases]
        rows.append((m["label"], ["-" if v is None else f"{v:.3g}" for v in vals]))
    return rows


def render(results: dict[str, Any]) -> str:
    """The report (Markdown) from the results dict (also stored as elunet.json); layout:
    templates/paper-elunet.md.j2."""
    cases = list(results["cases"])
    prov = results["provenance"]
    hw = prov["hardware"]
    pb = BUDGETS["paper"]
    n_learned = sum(m["key"] != "direct" for m in results["models"])
    protocol = {"models": n_learned, "cases": len(CASES), "repeats": pb.repeats, "minutes": pb.train_time_s / 60,
                "hours": n_learned * len(CASES) * pb.repeats * pb.train_time_s / 3600}
    return render_template(
        "paper-elunet.md.j2", r=results, cases=cases, prov=prov, command=command(results),
        clock=results.get("clock", "wall"), clock_words=_clock_words(results),
        hw_line=f"{hw.get('cpu')} ({hw.get('cores')} cores)" + (f", GPU {hw['gpu']}" if hw.get("gpu") else ""),
        table=_table(results, cases), regions=_regions(results, cases), loss=_loss(results, cases),
        protocol=protocol)
