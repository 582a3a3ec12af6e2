"""The DIME report: the goal check, the figures and the Markdown, all from the results dict stored as
``dime.json`` (so :func:`rerender` rebuilds the report from its JSON alone)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from phantombench.papers.common import pm, use_agg
from phantombench.papers.dime import PAPER_NUMBERS as PAPER, SIGNAL_SNR, TABLE


def goal(res: dict[str, Any]) -> dict[str, Any]:
    """CNN r >= 0.95 (per phantom, pooled) on held-out phantoms, and better than MDEV (r, MARE)."""
    cnn_r = res["cnn"]["test_dime"]["CC"]["mean"]
    cnn_m = res["cnn"]["test_mdev"]["CC"]["mean"]
    mdev_r = res["baselines"]["test_mdev"]["MDEV"]["CC"]
    cnn_pool = res["cnn"]["test_dime"]["pooled_CC"]["mean"]
    return {"cnn_r_ge_0.95": bool(cnn_r is not None and cnn_r >= 0.95),
            "cnn_pooled_r_ge_0.95": bool(cnn_pool is not None and cnn_pool >= 0.95),
            "cnn_beats_mdev_r": bool(cnn_m is not None and cnn_m > mdev_r),
            "cnn_beats_mdev_mare": bool(res["cnn"]["test_mdev"]["MARE"]["mean"]
                                        < res["baselines"]["test_mdev"]["MDEV"]["MARE"])}


def rerender(out_dir: Path = Path("leaderboard/papers")) -> Path:
    """Re-render ``dime.md`` from ``dime.json`` (the figures are kept as they are)."""
    out_dir = Path(out_dir)
    md = out_dir / "dime.md"
    md.write_text(render(json.loads((out_dir / "dime.json").read_text())))
    return md


# ------------------------------------------------------------------------------------------ figures
def _map_row(axes, title: str, ex: dict[str, Any], cols) -> Any:
    from phantombench import metrics as M

    m, body, t = ex["mask"], ex["body"], ex["truth"]
    vmax = float(np.percentile(t[m], 99.5)) * 1.1
    ys, xs = np.nonzero(body)
    box = (slice(max(ys.min() - 4, 0), ys.max() + 5), slice(max(xs.min() - 4, 0), xs.max() + 5))
    im = None
    for j, c in enumerate(cols):
        ax = axes[j]
        img = t if c == "truth" else ex["pred"].get(c)
        ax.set_xticks([])
        ax.set_yticks([])
        if j == 0:
            ax.set_ylabel(title, fontsize=9)
        if img is None:
            ax.text(0.5, 0.5, f"{c}: n/a\n(one frequency)", ha="center", va="center", transform=ax.transAxes)
            for sp in ax.spines.values():
                sp.set_visible(False)
            continue
        ax.imshow(np.where(body, 0.15, np.nan)[box], cmap="gray", vmin=0, vmax=1)
        im = ax.imshow(np.where(m, img / 1e3, np.nan)[box], cmap="viridis", vmin=0, vmax=vmax / 1e3)
        if c == "truth":
            ax.set_title("truth |G*|", fontsize=10)
        else:
            ax.set_title(f"{c}: r {M.pearson(img, t, m):.2f}, MARE {M.mare(img, t, m):.0f} %", fontsize=10)
    return im


def figures(examples: dict[str, Any], histories: list, out_dir: Path) -> None:
    """``dime.png`` (truth, CNN, MDEV, AHI on a held-out phantom of each test set), ``dime_training.png``."""
    plt = use_agg()
    rows = [("mdev-liver test phantom\nCNN, AHI: 60 Hz; MDEV: 30-90 Hz", ex) for ex in examples.get("mdev", [])[:1]]
    rows += [("dime-liver test phantom\n60 Hz", ex) for ex in examples.get("dime", [])[:1]]
    fig, axes = plt.subplots(len(rows), 4, figsize=(13, 3.3 * len(rows)), squeeze=False)
    for k, (title, ex) in enumerate(rows):
        im = _map_row(axes[k], title, ex, ("truth", "CNN", "MDEV", "AHI"))
        fig.colorbar(im, ax=axes[k].tolist(), shrink=0.85, label="|G*| [kPa]")
    fig.savefig(out_dir / "dime.png", dpi=90, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for r, h in enumerate(histories):
        if not h:
            continue
        st = [x["step"] for x in h]
        ax.plot(st, [x["train_loss"] for x in h], color=f"C{r}", ls="--", label=f"train (seed {r})")
        ax.plot(st, [x["val_loss"] for x in h], color=f"C{r}", label=f"val (seed {r})")
    ax.set_xlabel("step")
    ax.set_ylabel("weighted L1 loss (log|G*| + 0.5 phi)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(out_dir / "dime_training.png", dpi=90, bbox_inches="tight")
    plt.close(fig)


# ------------------------------------------------------------------------------------------ report
def _pm(st: dict[str, Any] | None, fmt: str = "{:.3f}") -> str:
    return pm(st, fmt, sep=" +- ", missing="--")


def _f3(v: float) -> str:
    return f"{v:.3f}"


def _signal_lines(res: dict[str, Any]) -> list[str]:
    cn, bl = res["cnn"]["test_dime"], res["baselines"]["test_dime"]["AHI"]
    if "CC_signal" not in cn or "CC_signal" not in bl:
        return []
    return [f"  measured: only {100 * bl['signal_fraction']:.0f} % of the scored liver pixels carry a wave at least "
            f"{SIGNAL_SNR:g} x the noise std (dime-liver test). Over those pixels alone the CNN's per-phantom r is "
            f"{_pm(cn['CC_signal'])} (over the whole liver {_pm(cn['CC'])}) and AHI's {bl['CC_signal']:.3f} "
            f"(whole liver {bl['CC']:.3f});"]


def _table(res: dict[str, Any]) -> list[str]:
    b, n, done = res["budget_params"], res["repeats"], res["repeats_done"]
    L = [
        "# P2 DIME: deep-learning inversion for MR elastography -- reproduction",
        "",
        f"`phantombench reproduce dime --budget {res['budget']} --repeats {n}` (generated; do not edit by hand)."
        + ("" if done == n else f" **Partial: {done} of {n} repeats done when this was written.**"),
        "",
        f"Budget `{res['budget']}`: {res['budget_note']}. Network: UNet, width {res['width']}, depth {b['depth']}, "
        f"{res['runs'][0]['n_parameters'] / 1e6:.2f} M parameters; {res['steps']} steps of batch {b['batch']} "
        f"on {b['crop']}-pixel patches; full-image inference (see `solvers/dime.py`).",
        "",
        "## Table",
        "",
        "Pearson r and R^2 of |G*| against the ground truth over the liver (the `mre` task's scored region, |G*| "
        "at 60 Hz). *Per phantom*: over each phantom's liver pixels, mean over the phantoms. *Pooled*: over the "
        f"liver pixels of all test phantoms at once. CNN: mean +- std over {done} training "
        f"repeat(s) (seeds 0..{done - 1}); AHI and MDEV are deterministic (one run).",
        "",
        "| method | test set | paper r | paper R^2 | r (per phantom) | R^2 (per phantom) | r (pooled) | "
        "R^2 (pooled) | MARE % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    cn, bl = res["cnn"], res["baselines"]

    def row_cnn(where, label):
        c = cn[where]
        return (f"| DIME-style CNN (ours) | {label} | {PAPER['r']} | {PAPER['R2']} | {_pm(c['CC'])} | {_pm(c['R2'])} "
                f"| {_pm(c['pooled_CC'])} | {_pm(c['pooled_R2'])} | {_pm(c['MARE'], '{:.1f}')} |")

    def row_base(name, where, label):
        x = bl[where][name]
        return (f"| {name} | {label} | not reported | not reported | {_f3(x['CC'])} | {_f3(x['R2'])} | "
                f"{_f3(x['pooled_CC'])} | {_f3(x['pooled_R2'])} | {x['MARE']:.1f} |")

    d = res["datasets"]
    for name, where, freq in TABLE:
        label = f"{d[where]['name'].split('/')[-1]}, {d[where]['n']} phantoms, {freq}"
        L.append(row_cnn(where, label) if name == "CNN" else row_base(name, where, label))
    return L


def _goal_section(res: dict[str, Any]) -> list[str]:
    cn, bl, g = res["cnn"], res["baselines"], res["goal"]
    yn = {True: "yes", False: "no"}
    L = [
        "",
        "The paper reports r = 0.99 and R^2 = 0.98 for DIME on simulated liver phantoms and that DIME beats MMDI; it "
        "gives no AHI/MDEV numbers on its phantoms (\"not reported\"). MMDI is not implemented here.",
        "",
        "## Goal: CNN r >= 0.95 on held-out phantoms and better than MDEV",
        "",
        f"* CNN r >= 0.95 per phantom (dime-liver test): **{yn[g['cnn_r_ge_0.95']]}** "
        f"({_pm(cn['test_dime']['CC'])}); pooled: **{yn[g['cnn_pooled_r_ge_0.95']]}** "
        f"({_pm(cn['test_dime']['pooled_CC'])}).",
        f"* CNN beats MDEV on the mdev-liver phantoms: r **{yn[g['cnn_beats_mdev_r']]}** "
        f"({_pm(cn['test_mdev']['CC'])} vs {_f3(bl['test_mdev']['MDEV']['CC'])}), MARE "
        f"**{yn[g['cnn_beats_mdev_mare']]}** ({_pm(cn['test_mdev']['MARE'], '{:.1f}')} % vs "
        f"{bl['test_mdev']['MDEV']['MARE']:.1f} %).",
    ]
    if res["budget"] == "smoke":
        L.append("* `smoke` checks the pipeline end to end; its network and training are far too small for the "
                 "paper's accuracy. Judge the goal on `--budget paper`.")
    return L + [
        "",
        "Why the CNN stays below the paper's r (likely reasons; only the data one is measured here):",
        "",
        "* compute: the network here has "
        f"{res['runs'][0]['n_parameters'] / 1e6:.1f} M parameters and trains for {_pm(res['fit_s'], '{:.0f}')} s "
        "per repeat on one shared CPU core (loss curves: `dime_training.png`);",
        "* data: one anterior driver and 2D out-of-plane waves that decay with depth (the liver-mre card: median |U| "
        "over the liver 1-3 % of the driver amplitude) at SNR 30 referred to the liver RMS, so the deep liver sits "
        "near the noise floor for every method;",
        *_signal_lines(res),
        "* metric: within a healthy liver the stiffness varies little except in small (sub-wavelength) lesions and "
        "vessels, which dominate the per-phantom r; the pooled r also rewards each phantom's overall level.",
        "",
        "![truth, CNN, MDEV, AHI](dime.png)",
        "",
        "![training curves](dime_training.png)",
        "",
    ]


def _data_section(res: dict[str, Any]) -> list[str]:
    d = res["datasets"]
    tr, td, tm = d["train"], d["test_dime"], d["test_mdev"]
    return [
        "## Data",
        "",
        "| role | dataset | version | content hash | seed | phantoms |",
        "|---|---|---|---|---|---|",
        f"| training | {tr['name']} | {tr['version']} | `{tr['content_hash'][:12]}` | "
        f"{tr['seed']} | {tr['n']} ({tr['train_samples']} train, {tr['val_samples']} val) |",
        f"| test | {td['name']} | {td['version']} | `{td['content_hash'][:12]}` | {td['seed']} | {td['n']} |",
        f"| test | {tm['name']} | {tm['version']} | `{tm['content_hash'][:12]}` | {tm['seed']} | {tm['n']} |",
        "",
        "The trained weights (`weights_seed<k>.pt` in the work folder) record the training dataset's name, version "
        "and content hash. AHI/MDEV parameters were tuned on separate sets (seed 100), never on these test sets.",
        "",
    ]


def _time_section(res: dict[str, Any]) -> list[str]:
    d, cn, bl, hw = res["datasets"], res["cnn"], res["baselines"], res["hardware"]
    return [
        "## Time and hardware",
        "",
        f"* CNN training {_pm(res['fit_s'], '{:.0f}')} s per repeat (training-loop wall time, summed over resumed "
        "runs; finished checkpoints in the work folder are reused when the same command runs again).",
        "* data generation (from the manifests, dask workers on this machine): "
        + ", ".join(f"{k.replace('_', ' ')} {d[k]['generation_wall_s']:.0f} s" for k in ("train", "test_dime",
                                                                                         "test_mdev")
                    if d[k].get("generation_wall_s") is not None) + ".",
        f"* this invocation: {res['wall_s']:.0f} s wall (data {res['data_s']:.0f} s: generation, or ~0 when reused).",
        f"* inference per phantom (median): CNN {_pm(cn['test_dime']['solve_s'], '{:.3f}')} s, "
        f"AHI {bl['test_dime']['AHI']['solve_s']:.3f} s, "
        f"MDEV (7 frequencies) {bl['test_mdev']['MDEV']['solve_s']:.3f} s.",
        f"* hardware: {hw['cpu']} ({hw['cores']} cores), device `{hw['device']}`"
        + (f" ({hw['gpu']})" if hw.get("gpu") else "") + f", torch threads {hw['torch_threads']}; "
        f"torch {res['packages'].get('torch')}, git {res['git_commit']}, {res['created']}.",
        "",
    ]


def render(res: dict[str, Any]) -> str:
    """The report (Markdown) from the results dict (also stored as dime.json)."""
    return "\n".join(_table(res) + _goal_section(res) + _data_section(res) + _time_section(res))
