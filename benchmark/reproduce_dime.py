"""``phantombench reproduce dime``: the DIME table (P2) -- a supervised CNN against the direct inversions.

Protocol (P2, scaled by the budget):

1. make or reuse three ``liver-mre`` datasets under ``<data>/liver-mre/``: a training set of ``dime-liver``
   phantoms (its train split trains, its val split picks the best weights), a held-out ``dime-liver`` test set
   (other seed) and a held-out ``mdev-liver`` test set (7 frequencies, 30-90 Hz; other seed);
2. train the DIME-style CNN (:mod:`phantombench.solvers.dime`) once per repeat (seed = repeat index) on the
   training set only -- displacement/stiffness pairs from the FEM, nothing else;
3. score every method with the ``mre`` task's own observation and truth (|G*| at 60 Hz, liver mask): the CNN
   and AHI on the 60 Hz field, MDEV on all seven frequencies of the ``mdev-liver`` phantoms;
4. write ``<out>/dime.md`` (the paper's numbers beside ours, mean +- std over repeats), ``dime.json`` (every
   number), ``dime.png`` (truth, CNN, MDEV, AHI on held-out phantoms) and ``dime_training.png`` (loss curves).

Two ways to compute r and R^2 are reported, because the paper's text does not say which it used: *per
phantom* (over the liver pixels of each phantom, then the mean over phantoms -- the leaderboard's convention)
and *pooled* (over the liver pixels of all test phantoms at once, which also rewards getting each phantom's
overall stiffness level right, as a scatter plot over a test set does).

Entry point: :func:`run_dime` (``budget, repeats, data_root, out_dir, **options -> Path``), registered with
``phantombench reproduce`` as ``dime``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

PAPER = {"r": 0.99, "R2": 0.98, "source": "P2 (arXiv 2512.13010): simulated liver phantoms, DIME vs ground truth; "
         "better than MMDI; in vivo 15 subjects"}


@dataclass(frozen=True)
class DimeBudget:
    n_train: int          # dime-liver training phantoms (80 % train, 10 % val, 10 % unused by the split rule)
    n_test: int           # held-out dime-liver phantoms
    n_mdev: int           # held-out mdev-liver phantoms
    width: int
    depth: int
    crop: int
    batch: int
    steps: int
    val_every: int
    repeats: int
    note: str


BUDGETS: dict[str, DimeBudget] = {
    "smoke": DimeBudget(12, 3, 2, 8, 4, 64, 8, 600, 100, 1,
                        "12 training phantoms, 600 steps (batch 8, 64-pixel patches) of a width-8 UNet, 1 repeat "
                        "(minutes on one CPU core; checks the pipeline end to end, far from the paper's budget)"),
    "paper": DimeBudget(200, 16, 8, 16, 4, 96, 8, 4000, 250, 3,
                        "200 training phantoms (160 train, 20 val), 4000 steps (batch 8, 96-pixel patches) of a "
                        "width-16 UNet, 3 repeats (about 1 h per repeat on one shared CPU core)"),
}

SEEDS = {"train": 1001, "test": 2002, "mdev": 3003}   # distinct from the tuning sets (seed 100) and official sets


def _stats(v) -> dict[str, Any]:
    a = np.asarray([x for x in v if x is not None and np.isfinite(x)], dtype=float)
    if a.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else None, "n": int(a.size)}


def _ensure(preset: str, n: int, seed: int, tag: str, data_root: Path, workers, log):
    from phantombench import runner
    from phantombench.store import open_dataset

    folder = Path(data_root) / "liver-mre" / preset / f"dime-{tag}-n{n}-s{seed}"
    if not (folder / "manifest.json").exists():
        log(f"generating {n} {preset} phantoms (seed {seed}) into {folder} ...")
        t0 = time.perf_counter()
        runner.generate("liver-mre", preset, n, folder, seed=seed, workers=workers)
        log(f"  done in {time.perf_counter() - t0:.0f} s")
    else:
        log(f"reusing {folder}")
    return open_dataset(folder)


def _dataset_id(ds) -> dict[str, Any]:
    m = ds.manifest
    return {"name": m["name"], "version": m["version"], "content_hash": m["content_hash"], "seed": m["seed"],
            "n": m["n"], "path": str(ds.path), "generation_wall_s": m.get("provenance", {}).get(
                "generation_wall_seconds")}


SIGNAL_SNR = 10.0   # "signal" pixels: clean wave amplitude >= 10 x the noise std (20 dB local SNR)


def _signal_pixels(ds, i: int, scored: np.ndarray) -> np.ndarray:
    """Scored pixels where the clean displacement at the scored frequency (nearest 60 Hz) stands at least
    SIGNAL_SNR times above the noise std of this sample (std of noisy - clean over the body mask). A diagnostic of
    the data, read from the dataset by the report, never shown to a solver."""
    g = ds.group(i)
    f = np.asarray(g["frequencies"][...], float)
    j = int(np.argmin(np.abs(f - 60.0)))
    u = np.asarray(g["u_re"][j], float) + 1j * np.asarray(g["u_im"][j], float)          # (C, H, W)
    un = np.asarray(g["u_noisy_re"][j], float) + 1j * np.asarray(g["u_noisy_im"][j], float)
    body = np.asarray(g["mask"][...], bool)
    amp = np.sqrt((np.abs(u) ** 2).sum(axis=0))
    noise = np.abs(un - u)[:, body]
    sigma = float(np.sqrt(np.mean(noise ** 2) / 2)) or 1e-300   # per real component
    return scored & (amp >= SIGNAL_SNR * sigma)


def _score_set(task, ds, solvers: dict[str, Any], keep: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-case metrics and pooled r/R^2 of each solver over every sample of ``ds``; a few predictions kept."""
    from phantombench import metrics as M

    per: dict[str, dict[str, list[float]]] = {k: {"CC": [], "R2": [], "MARE": [], "solve_s": [], "CC_signal": []}
                                              for k in solvers}
    signal_fraction: list[float] = []
    pool_p: dict[str, list[np.ndarray]] = {k: [] for k in solvers}
    pool_t: list[np.ndarray] = []
    examples: list[dict[str, Any]] = []
    for i in range(len(ds)):
        obs = task.observation(ds, i)
        truth = task.truth(ds, i)
        m = truth["_mask"]
        sig = _signal_pixels(ds, i, m)
        signal_fraction.append(float(sig.sum() / max(m.sum(), 1)))
        pool_t.append(truth["abs_G"][m])
        ex = {"truth": truth["abs_G"], "mask": m, "body": np.asarray(obs["mask"], bool), "pred": {}}
        for name, s in solvers.items():
            t0 = time.perf_counter()
            pred = s.solve(obs)
            dt = time.perf_counter() - t0
            clean, reason = task.validate(pred, truth)
            if reason is not None:
                raise RuntimeError(f"{name} returned an invalid prediction: {reason}")
            g = clean["abs_G"]
            per[name]["CC"].append(M.pearson(g, truth["abs_G"], m))
            per[name]["R2"].append(M.r2(g, truth["abs_G"], m))
            per[name]["MARE"].append(M.mare(g, truth["abs_G"], m))
            per[name]["CC_signal"].append(M.pearson(g, truth["abs_G"], sig) if sig.sum() > 10 else float("nan"))
            per[name]["solve_s"].append(dt)
            pool_p[name].append(g[m])
            ex["pred"][name] = g
        if len(examples) < keep:
            examples.append(ex)
    t = np.concatenate(pool_t)
    out: dict[str, Any] = {}
    for name in solvers:
        p = np.concatenate(pool_p[name])
        out[name] = {"per_case": per[name], "CC": float(np.mean(per[name]["CC"])),
                     "R2": float(np.mean(per[name]["R2"])), "MARE": float(np.mean(per[name]["MARE"])),
                     "pooled_CC": M.pearson(p, t), "pooled_R2": M.r2(p, t),
                     "CC_signal": float(np.nanmean(per[name]["CC_signal"])),
                     "signal_fraction": float(np.mean(signal_fraction)),
                     "solve_s": float(np.median(per[name]["solve_s"]))}
    return out, {"examples": examples}


def run_dime(budget: str = "smoke", repeats: int | None = None, data_root: Path = Path("data"),
             out_dir: Path = Path("leaderboard/papers"), seconds: float | None = None, width: int | None = None,
             device: str | None = None, threads: int = 0, workers: int | None = None, steps: int | None = None,
             work_dir: Path | None = None, log=print, **_: Any) -> Path:
    """Run the DIME reproduction; return the path of the markdown report.

    ``seconds`` caps the CNN's training wall time per repeat (default: no cap beyond the solver's fit budget);
    ``width``/``steps`` override the budget's network width and training steps; ``threads`` sets torch's CPU
    threads (default 1: on a shared machine more threads can be much slower); ``work_dir`` holds checkpoints and
    weights (default ``results/reproduce/dime-<budget>``).
    """
    import torch

    from phantombench.solvers.base import Cases, resolve_device
    from phantombench.solvers.dime import DIME
    from phantombench.solvers.mre_direct import AHI, MDEV
    from phantombench.tasks import get_task

    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)} (got {budget!r})")
    b = BUDGETS[budget]
    repeats = int(repeats or b.repeats)
    width = int(width or b.width)
    steps = int(steps or b.steps)
    threads = int(threads) if threads and threads > 0 else 1
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    task = get_task("mre")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(work_dir) if work_dir else Path("results") / "reproduce" / f"dime-{budget}"
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    ds_train = _ensure("dime-liver", b.n_train, SEEDS["train"], "train", data_root, workers, log)
    ds_test = _ensure("dime-liver", b.n_test, SEEDS["test"], "test", data_root, workers, log)
    ds_mdev = _ensure("mdev-liver", b.n_mdev, SEEDS["mdev"], "test", data_root, workers, log)
    t_data = time.perf_counter() - t0
    tr_idx, va_idx = ds_train.split("train"), ds_train.split("val")

    results: dict[str, Any] = {
        "paper": "dime", "budget": budget, "budget_note": b.note, "budget_params": asdict(b), "repeats": repeats,
        "width": width, "steps": steps, "device": dev, "threads": threads,
        "datasets": {"train": {**_dataset_id(ds_train), "train_samples": len(tr_idx), "val_samples": len(va_idx)},
                     "test_dime": _dataset_id(ds_test), "test_mdev": _dataset_id(ds_mdev)},
        "paper_numbers": PAPER, "runs": [], "baselines": {},
    }

    # ---- classical baselines (deterministic: one run)
    log("scoring AHI and MDEV ...")
    ahi, mdev = AHI(task), MDEV(task)
    res_d, _ = _score_set(task, ds_test, {"AHI": ahi})
    res_m, _ = _score_set(task, ds_mdev, {"AHI": ahi, "MDEV": mdev})
    results["baselines"] = {"test_dime": res_d, "test_mdev": res_m,
                            "params": {"AHI": ahi.params, "MDEV": mdev.params}}

    # ---- the CNN, one training per repeat
    fig_examples: dict[str, Any] = {}
    histories = []
    for r in range(repeats):
        params = {"width": width, "depth": b.depth, "crop": b.crop, "batch": b.batch, "steps": steps,
                  "val_every": b.val_every, "threads": threads, "checkpoint_dir": str(work / f"seed{r}"),
                  "save_weights": str(work / f"weights_seed{r}.pt"), "progress": True}
        if seconds:
            params["max_fit_s"] = float(seconds)
        cnn = DIME(task, params=params, device=dev, seed=r)
        log(f"training dime-cnn, repeat {r + 1}/{repeats} ({len(tr_idx)} train / {len(va_idx)} val phantoms, "
            f"{steps} steps, width {width}) ...")
        t0 = time.perf_counter()
        cnn.fit(Cases(task, ds_train, tr_idx), Cases(task, ds_train, va_idx))
        fit_s = time.perf_counter() - t0
        rd, exd = _score_set(task, ds_test, {"CNN": cnn, "AHI": ahi})
        rm, exm = _score_set(task, ds_mdev, {"CNN": cnn, "MDEV": mdev, "AHI": ahi})
        results["runs"].append({"seed": r, "fit_s": cnn.meta["train_seconds_total"], "fit_s_this_call": fit_s,
                                "test_dime": rd["CNN"], "test_mdev": rm["CNN"],
                                "steps_done": cnn.meta["steps_done"], "resumed_from_step": cnn.meta["resumed_from_step"],
                                "stopped_early": cnn.meta["stopped_early"], "n_parameters": cnn.meta["n_parameters"],
                                "best_val_loss": cnn.meta["best_val_loss"], "weights": cnn.meta["weights"]})
        histories.append(cnn.history)
        if r == 0:
            fig_examples = {"dime": exd["examples"], "mdev": exm["examples"]}
        if r < repeats - 1:   # a partial report after every repeat (a long run that is stopped keeps its numbers)
            _write(results, fig_examples, histories, out_dir, t_all, t_data, dev, threads)
        log(f"  CNN r {rd['CNN']['CC']:.3f} (dime test), {rm['CNN']['CC']:.3f} (mdev test); training "
            f"{cnn.meta['train_seconds_total']:.0f} s" + (f" (resumed at step {cnn.meta['resumed_from_step']})"
                                                          if cnn.meta["resumed_from_step"] else ""))

    return _write(results, fig_examples, histories, out_dir, t_all, t_data, dev, threads)


def _write(results, fig_examples, histories, out_dir: Path, t_all: float, t_data: float, dev: str,
           threads: int) -> Path:
    """Aggregate the repeats done so far and write dime.md, dime.json and the figures."""
    import torch

    from phantombench.provenance import git_commit, hardware, package_versions

    results["repeats_done"] = len(results["runs"])
    results["cnn"] = {
        where: {k: _stats([run[where][k] for run in results["runs"]]) for k in
                ("CC", "R2", "MARE", "pooled_CC", "pooled_R2", "solve_s", "CC_signal", "signal_fraction")
                if all(k in run[where] for run in results["runs"])}
        for where in ("test_dime", "test_mdev")}
    results["fit_s"] = _stats([run["fit_s"] for run in results["runs"]])
    results["wall_s"] = time.perf_counter() - t_all
    results["data_s"] = t_data
    results["hardware"] = {**hardware(), "device": dev, "torch_threads": threads,
                           "gpu": torch.cuda.get_device_name(0) if dev.startswith("cuda") else None}
    results["git_commit"] = git_commit()
    results["packages"] = {k: v for k, v in package_versions().items() if k in ("phantombench", "torch", "numpy")}
    results["created"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results["goal"] = _goal(results)

    _figures(fig_examples, histories, out_dir)
    (out_dir / "dime.json").write_text(json.dumps(_clean(results), indent=1) + "\n")
    md = out_dir / "dime.md"
    md.write_text(render(results))
    return md


def rerender(out_dir: Path = Path("leaderboard/papers")) -> Path:
    """Re-render ``dime.md`` from ``dime.json`` (the figures are kept as they are)."""
    out_dir = Path(out_dir)
    res = json.loads((out_dir / "dime.json").read_text())
    md = out_dir / "dime.md"
    md.write_text(render(res))
    return md


def _goal(res: dict[str, Any]) -> dict[str, Any]:
    cnn_r = res["cnn"]["test_dime"]["CC"]["mean"]
    cnn_m = res["cnn"]["test_mdev"]["CC"]["mean"]
    mdev_r = res["baselines"]["test_mdev"]["MDEV"]["CC"]
    cnn_pool = res["cnn"]["test_dime"]["pooled_CC"]["mean"]
    return {"cnn_r_ge_0.95": bool(cnn_r is not None and cnn_r >= 0.95),
            "cnn_pooled_r_ge_0.95": bool(cnn_pool is not None and cnn_pool >= 0.95),
            "cnn_beats_mdev_r": bool(cnn_m is not None and cnn_m > mdev_r),
            "cnn_beats_mdev_mare": bool(res["cnn"]["test_mdev"]["MARE"]["mean"]
                                        < res["baselines"]["test_mdev"]["MDEV"]["MARE"])}


def _clean(o):
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.floating, float)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    return o


# ------------------------------------------------------------------------------------------ figures
def _figures(examples: dict[str, Any], histories: list, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("mdev-liver test phantom\nCNN, AHI: 60 Hz; MDEV: 30-90 Hz", ex) for ex in examples.get("mdev", [])[:1]]
    rows += [("dime-liver test phantom\n60 Hz", ex) for ex in examples.get("dime", [])[:1]]
    cols = ("truth", "CNN", "MDEV", "AHI")
    fig, axes = plt.subplots(len(rows), 4, figsize=(13, 3.3 * len(rows)), squeeze=False)
    from phantombench import metrics as M

    for k, (title, ex) in enumerate(rows):
        m, body = ex["mask"], ex["body"]
        t = ex["truth"]
        vmax = float(np.percentile(t[m], 99.5)) * 1.1
        ys, xs = np.nonzero(body)
        box = (slice(max(ys.min() - 4, 0), ys.max() + 5), slice(max(xs.min() - 4, 0), xs.max() + 5))
        for j, c in enumerate(cols):
            ax = axes[k, j]
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
def _pm(st: dict[str, Any], fmt: str = "{:.3f}") -> str:
    if st is None or st.get("mean") is None:
        return "--"
    s = fmt.format(st["mean"])
    if st.get("std") is not None:
        s += " +- " + fmt.format(st["std"])
    return s


def _signal_lines(res: dict[str, Any]) -> list[str]:
    cn, bl = res["cnn"]["test_dime"], res["baselines"]["test_dime"]["AHI"]
    if "CC_signal" not in cn or "CC_signal" not in bl:
        return []
    return [f"  measured: only {100 * bl['signal_fraction']:.0f} % of the scored liver pixels carry a wave at least "
            f"{SIGNAL_SNR:g} x the noise std (dime-liver test). Over those pixels alone the CNN's per-phantom r is "
            f"{_pm(cn['CC_signal'])} (over the whole liver {_pm(cn['CC'])}) and AHI's {bl['CC_signal']:.3f} "
            f"(whole liver {bl['CC']:.3f});"]


def render(res: dict[str, Any]) -> str:
    b = res["budget_params"]
    d = res["datasets"]
    cn, bl = res["cnn"], res["baselines"]
    hw = res["hardware"]
    n = res["repeats"]
    f3 = "{:.3f}".format
    L = [
        "# P2 DIME: deep-learning inversion for MR elastography -- reproduction",
        "",
        f"`phantombench reproduce dime --budget {res['budget']} --repeats {n}` (generated; do not edit by hand)."
        + ("" if res["repeats_done"] == n else
           f" **Partial: {res['repeats_done']} of {n} repeats done when this was written.**"),
        "",
        f"Budget `{res['budget']}`: {res['budget_note']}. Network: UNet, width {res['width']}, depth {b['depth']}, "
        f"{res['runs'][0]['n_parameters'] / 1e6:.2f} M parameters; {res['steps']} steps of batch {b['batch']} "
        f"on {b['crop']}-pixel patches; full-image inference (see `solvers/dime.py`).",
        "",
        "## Table",
        "",
        "Pearson r and R^2 of |G*| against the ground truth over the liver (the `mre` task's scored region, |G*| "
        "at 60 Hz). *Per phantom*: over each phantom's liver pixels, mean over the phantoms. *Pooled*: over the "
        f"liver pixels of all test phantoms at once. CNN: mean +- std over {res['repeats_done']} training "
        f"repeat(s) (seeds 0..{res['repeats_done'] - 1}); AHI and MDEV are deterministic (one run).",
        "",
        "| method | test set | paper r | paper R^2 | r (per phantom) | R^2 (per phantom) | r (pooled) | "
        "R^2 (pooled) | MARE % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    nd, nm = d["test_dime"]["n"], d["test_mdev"]["n"]
    not_rep = "not reported"

    def row_cnn(where, label):
        c = cn[where]
        return (f"| DIME-style CNN (ours) | {label} | {PAPER['r']} | {PAPER['R2']} | {_pm(c['CC'])} | {_pm(c['R2'])} "
                f"| {_pm(c['pooled_CC'])} | {_pm(c['pooled_R2'])} | {_pm(c['MARE'], '{:.1f}')} |")

    def row_base(name, where, label):
        x = bl[where][name]
        return (f"| {name} | {label} | {not_rep} | {not_rep} | {f3(x['CC'])} | {f3(x['R2'])} | "
                f"{f3(x['pooled_CC'])} | {f3(x['pooled_R2'])} | {x['MARE']:.1f} |")

    ld, lm = f"dime-liver, {nd} phantoms, 60 Hz", f"mdev-liver, {nm} phantoms"
    L += [row_cnn("test_dime", ld), row_base("AHI", "test_dime", ld),
          row_cnn("test_mdev", lm + ", 60 Hz"), row_base("AHI", "test_mdev", lm + ", 60 Hz"),
          row_base("MDEV", "test_mdev", lm + ", 30-90 Hz")]
    g = res["goal"]
    yn = {True: "yes", False: "no"}
    L += [
        "",
        "The paper reports r = 0.99 and R^2 = 0.98 for DIME on simulated liver phantoms and that DIME beats MMDI; it "
        "gives no AHI/MDEV numbers on its phantoms (\"not reported\"). MMDI is not implemented here.",
        "",
        "## Goal (issue 6): CNN r >= 0.95 on held-out phantoms and better than MDEV",
        "",
        f"* CNN r >= 0.95 per phantom (dime-liver test): **{yn[g['cnn_r_ge_0.95']]}** "
        f"({_pm(cn['test_dime']['CC'])}); pooled: **{yn[g['cnn_pooled_r_ge_0.95']]}** "
        f"({_pm(cn['test_dime']['pooled_CC'])}).",
        f"* CNN beats MDEV on the mdev-liver phantoms: r **{yn[g['cnn_beats_mdev_r']]}** "
        f"({_pm(cn['test_mdev']['CC'])} vs {f3(bl['test_mdev']['MDEV']['CC'])}), MARE "
        f"**{yn[g['cnn_beats_mdev_mare']]}** ({_pm(cn['test_mdev']['MARE'], '{:.1f}')} % vs "
        f"{bl['test_mdev']['MDEV']['MARE']:.1f} %).",
    ]
    if res["budget"] == "smoke":
        L.append("* `smoke` checks the pipeline end to end; its network and training are far too small for the "
                 "paper's accuracy. Judge the goal on `--budget paper`.")
    L += [
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
        "## Data",
        "",
        "| role | dataset | version | content hash | seed | phantoms |",
        "|---|---|---|---|---|---|",
        f"| training | {d['train']['name']} | {d['train']['version']} | `{d['train']['content_hash'][:12]}` | "
        f"{d['train']['seed']} | {d['train']['n']} ({d['train']['train_samples']} train, {d['train']['val_samples']} "
        "val) |",
        f"| test | {d['test_dime']['name']} | {d['test_dime']['version']} | `{d['test_dime']['content_hash'][:12]}` | "
        f"{d['test_dime']['seed']} | {nd} |",
        f"| test | {d['test_mdev']['name']} | {d['test_mdev']['version']} | `{d['test_mdev']['content_hash'][:12]}` | "
        f"{d['test_mdev']['seed']} | {nm} |",
        "",
        "The trained weights (`weights_seed<k>.pt` in the work folder) record the training dataset's name, version "
        "and content hash. AHI/MDEV parameters were tuned on separate sets (seed 100), never on these test sets.",
        "",
        "## Time and hardware",
        "",
        f"* CNN training {_pm(res['fit_s'], '{:.0f}')} s per repeat (training-loop wall time, summed over resumed "
        "runs; finished checkpoints in the work folder are reused when the same command runs again).",
        "* data generation (from the manifests, dask workers on this machine): "
        + ", ".join(f"{k.replace('_', ' ')} {d[k]['generation_wall_s']:.0f} s" for k in ("train", "test_dime", "test_mdev")
                    if d[k].get("generation_wall_s") is not None) + ".",
        f"* this invocation: {res['wall_s']:.0f} s wall (data {res['data_s']:.0f} s: generation, or ~0 when reused).",
        f"* inference per phantom (median): CNN {_pm(cn['test_dime']['solve_s'], '{:.3f}')} s, "
        f"AHI {bl['test_dime']['AHI']['solve_s']:.3f} s, MDEV (7 frequencies) {bl['test_mdev']['MDEV']['solve_s']:.3f} s.",
        f"* hardware: {hw['cpu']} ({hw['cores']} cores), device `{hw['device']}`"
        + (f" ({hw['gpu']})" if hw.get("gpu") else "") + f", torch threads {hw['torch_threads']}; "
        f"torch {res['packages'].get('torch')}, git {res['git_commit']}, {res['created']}.",
        "",
    ]
    return "\n".join(L)
