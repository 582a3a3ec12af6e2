"""P2 DIME: a supervised CNN against the direct inversions (``phantombench reproduce dime``).

Protocol (P2, scaled by the budget):

1. make or reuse three ``liver-mre`` datasets under ``<data>/liver-mre/``: a training set of ``dime-liver``
   phantoms (its train split trains, its val split picks the best weights), a held-out ``dime-liver`` test set
   (other seed) and a held-out ``mdev-liver`` test set (7 frequencies, 30-90 Hz; other seed);
2. train the DIME-style CNN (:mod:`phantombench.solvers.dime`) once per repeat (seed = repeat index) on the
   training set only -- displacement/stiffness pairs from the FEM, nothing else;
3. score every method with the ``mre`` task's own observation and truth (|G*| at 60 Hz, liver mask): the CNN
   and AHI on the 60 Hz field, MDEV on all seven frequencies of the ``mdev-liver`` phantoms;
4. measure the data (no training): the waves' amplitude over the liver (:func:`data_facts`) and a resolution
   ceiling (:func:`resolution_ceiling`: the per-phantom r of the truth blurred over a fraction of the local shear
   wavelength, and how much of each liver's variance its lesions and vessels carry), on the dime-liver test set;
5. write ``<out>/dime.md`` (the paper's numbers beside ours, mean +- std over repeats), ``dime.json`` (every
   number), ``dime.png`` (truth, CNN, MDEV, AHI on held-out phantoms) and ``dime_training.png`` (loss curves).

Two ways to compute r and R^2 are reported, because the paper's text does not say which it used: *per
phantom* (over the liver pixels of each phantom, then the mean over phantoms -- the leaderboard's convention)
and *pooled* (over the liver pixels of all test phantoms at once, which also rewards getting each phantom's
overall stiffness level right, as a scatter plot over a test set does).

What goes through the evaluation harness: AHI and MDEV on both test sets. What does not: the CNN is trained once
per repeat in this process and that one trained network is scored on both test sets (the harness would fit it
again for each), with its training history and metadata in the report.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from phantombench.papers.common import Paper, dataset_name, ensure_dataset, stats, write_json
from phantombench.papers.scoring import harness, require_ok, rows, solve_in_process

PAPER_NUMBERS = {"r": 0.99, "R2": 0.98, "source": "P2 (arXiv 2512.13010): simulated liver phantoms, DIME vs ground "
                 "truth; better than MMDI; in vivo 15 subjects"}


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
                        "width-16 UNet, 3 repeats (measured: 17 min of training per repeat on one CPU core, 18 min of "
                        "data once)"),
    "short": DimeBudget(60, 8, 2, 16, 4, 96, 8, 1500, 250, 1,
                        "60 training phantoms (48 train, 6 val), 1500 steps (batch 8, 96-pixel patches) of a "
                        "width-16 UNet, 1 repeat (about half an hour on one shared CPU core, data included)"),
}

SEEDS = {"train": 1001, "test": 2002, "mdev": 3003}   # distinct from the tuning sets (seed 100) and official sets
SIGNAL_SNR = 10.0   # "signal" pixels: clean wave amplitude >= 10 x the noise std (20 dB local SNR)
# the table: (method, test set, frequencies it sees); the CNN is ours, the others run through the harness
TABLE = (("CNN", "test_dime", "60 Hz"), ("AHI", "test_dime", "60 Hz"), ("CNN", "test_mdev", "60 Hz"),
         ("AHI", "test_mdev", "60 Hz"), ("MDEV", "test_mdev", "30-90 Hz"))
BASELINES = {"AHI": "ahi", "MDEV": "mdev"}   # method -> solver
SET_METRICS = ("CC", "R2", "MARE", "pooled_CC", "pooled_R2", "solve_s", "CC_signal", "signal_fraction")


def _dataset_id(ds) -> dict[str, Any]:
    m = ds.manifest
    return {"name": m["name"], "version": m["version"], "content_hash": m["content_hash"], "seed": m["seed"],
            "n": m["n"], "path": str(ds.path), "generation_wall_s": m.get("provenance", {}).get(
                "generation_wall_seconds")}


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


# ------------------------------------------------------------------------------------------ data diagnostics
CEILING_FRACTIONS = (0.125, 0.25, 0.5)   # Gaussian sigma of the resolution ceiling, in local shear wavelengths


def wavelength_px(abs_g: np.ndarray, phi: np.ndarray, freq: float, rho: float, pixel: float) -> np.ndarray:
    """Local shear wavelength [pixels] of a viscoelastic medium: 2 pi / Re(k), k = omega sqrt(rho / G*), i.e.
    sqrt(|G*| / rho) / (f cos(phi / 2)) over the pixel size."""
    return np.sqrt(np.maximum(abs_g, 0.0) / rho) / (freq * np.cos(0.5 * np.clip(phi, 0.0, np.pi / 2))) / pixel


def blur_local(g: np.ndarray, sigma: np.ndarray, body: np.ndarray) -> np.ndarray:
    """``g`` blurred by a Gaussian whose sigma (pixels) varies per pixel: normalised convolution over ``body`` at
    a geometric ladder of sigmas, interpolated linearly per pixel; sigma <= 0.25 px leaves a pixel unblurred."""
    m = body.astype(np.float64)
    gm = np.where(body, g, 0.0)
    smax = float(sigma[body].max()) if body.any() else 0.0
    if smax <= 0.25:
        return np.asarray(g, np.float64).copy()
    ladder = np.concatenate([[0.0], np.geomspace(0.25, max(smax, 0.25) * 1.001, 24)])
    levels = [g.astype(np.float64)] + [ndimage.gaussian_filter(gm, s, mode="constant")
                                       / np.maximum(ndimage.gaussian_filter(m, s, mode="constant"), 1e-12)
                                       for s in ladder[1:]]
    k = np.clip(np.searchsorted(ladder, sigma) - 1, 0, len(ladder) - 2)
    lo, hi = ladder[k], ladder[k + 1]
    w = np.clip((sigma - lo) / (hi - lo), 0.0, 1.0)
    stack = np.stack(levels)
    rows, cols = np.indices(g.shape)
    return (1 - w) * stack[k, rows, cols] + w * stack[k + 1, rows, cols]


def variance_shares(g: np.ndarray, labels: np.ndarray, liver: np.ndarray) -> dict[str, float]:
    """Each region's share of a liver's within-phantom variance of |G*|: the sum of its pixels' squared
    deviations from the liver mean over the sum over all liver pixels (lesions + vessels + parenchyma = 1)."""
    from phantombench.meshes.abdomen import HEPATIC_VESSEL, LESION

    d2 = (g - g[liver].mean()) ** 2
    tot = float(d2[liver].sum()) or 1e-300
    les, ves = liver & (labels == LESION), liver & (labels == HEPATIC_VESSEL)
    return {"lesions": float(d2[les].sum() / tot), "vessels": float(d2[ves].sum() / tot),
            "parenchyma": float(d2[liver & ~les & ~ves].sum() / tot)}


def ceiling_r(g: np.ndarray, phi: np.ndarray, body: np.ndarray, liver: np.ndarray, freq: float, rho: float,
              pixel: float, fraction: float) -> float:
    """Pearson r over ``liver`` between the true |G*| ``g`` and ``g`` blurred by a Gaussian of sigma = ``fraction``
    x the local shear wavelength (:func:`wavelength_px`, :func:`blur_local`); 1 for ``fraction`` 0."""
    from phantombench import metrics as M

    lam = wavelength_px(g, phi, freq, rho, pixel)
    return M.pearson(blur_local(g, fraction * np.where(body, lam, 0.0), body), g, liver)


def true_moduli(sample, rho: float, pixel: float, f0: float = 60.0) -> dict[str, Any]:
    """A sample's truth at the frequency nearest ``f0``: that frequency, |G*| ``g``, phase angle ``phi``, the body
    and liver masks and the local shear wavelength ``lam_px`` (:func:`wavelength_px`). For reports, never for a
    solver."""
    freqs = np.asarray(sample["frequencies"], float)
    j = int(np.argmin(np.abs(freqs - f0)))
    g, phi = np.asarray(sample["g_abs"][j], float), np.asarray(sample["phase_angle"][j], float)
    body = np.asarray(sample["mask"], bool)
    return {"freq": float(freqs[j]), "g": g, "phi": phi, "body": body,
            "liver": np.asarray(sample["liver_mask"], bool) & body,
            "lam_px": wavelength_px(g, phi, freqs[j], rho, pixel)}


def resolution_ceiling(ds, indices=None, f0: float = 60.0) -> dict[str, Any]:
    """How high a per-phantom r can a wave-based inversion reach? Per phantom (|G*| at the frequency nearest
    ``f0``, over the liver): :func:`ceiling_r` for each of :data:`CEILING_FRACTIONS`, the liver's median shear
    wavelength (pixels) and the variance shares (:func:`variance_shares`). Means over the phantoms, and the
    per-phantom lists."""
    cfg = ds.manifest["config"]
    rho, pixel = float(cfg["rho"]), float(cfg["pixel_size"])
    per: dict[str, list[float]] = {f"r_sigma_{f:g}": [] for f in CEILING_FRACTIONS}
    per.update(lam_liver_px=[], lesions=[], vessels=[], parenchyma=[])
    for i in (range(len(ds)) if indices is None else indices):
        s = ds[i]
        t = true_moduli(s, rho, pixel, f0)
        g, phi, body, liver = t["g"], t["phi"], t["body"], t["liver"]
        per["lam_liver_px"].append(float(np.median(t["lam_px"][liver])))
        for f in CEILING_FRACTIONS:
            per[f"r_sigma_{f:g}"].append(ceiling_r(g, phi, body, liver, t["freq"], rho, pixel, f))
        for k, v in variance_shares(g, np.asarray(s["labels"]), liver).items():
            per[k].append(v)
    return {"fractions": list(CEILING_FRACTIONS), "n": len(per["lam_liver_px"]), "pixel_m": pixel,
            "mean": {k: float(np.mean(v)) for k, v in per.items()},
            "per_phantom": {k: [round(float(x), 4) for x in v] for k, v in per.items()}}


def data_facts(ds, f0: float = 60.0) -> dict[str, Any]:
    """What the report says about the waves, read from a test set: the field model and its components, the
    drivers, the noise model and level (the manifest's configuration), and the measured median clean |U| over
    each liver relative to the driver amplitude (min, median, max over the phantoms)."""
    cfg = ds.manifest["config"]
    rel = []
    for i in range(len(ds)):
        g = ds.group(i)
        j = int(np.argmin(np.abs(np.asarray(g["frequencies"][...], float) - f0)))
        u = np.asarray(g["u_re"][j], float) + 1j * np.asarray(g["u_im"][j], float)
        liver = np.asarray(g["liver_mask"][...], bool) & np.asarray(g["mask"][...], bool)
        rel.append(float(np.median(np.sqrt((np.abs(u) ** 2).sum(axis=0))[liver])) / float(cfg["driver_amplitude"]))
    return {"model": cfg.get("model", "antiplane"), "components": int(ds.manifest["schema"]["u_re"]["shape"][1]),
            "drivers": 1 + (cfg.get("driver2_angle") is not None), "noise_model": cfg.get("noise_model") or "relative",
            "snr": cfg.get("snr"), "magnitude_snr": cfg.get("magnitude_snr"),
            "generator_version": ds.manifest["version"],
            "liver_u_rel": [float(np.min(rel)), float(np.median(rel)), float(np.max(rel))]}


def _set_scores(ds, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-phantom and pooled r / R^2, MARE, r over the signal pixels and the median solve time of one method on
    one test set, from its per-case dicts (:func:`~phantombench.papers.scoring.rows`)."""
    from phantombench import metrics as M

    per: dict[str, list[float]] = {"CC": [], "R2": [], "MARE": [], "solve_s": [], "CC_signal": []}
    fractions, pool_p, pool_t = [], [], []
    for c in cases:
        m, t, g = c["truth"]["_mask"], c["truth"]["abs_G"], c["pred"]["abs_G"]
        sig = _signal_pixels(ds, c["index"], m)
        fractions.append(float(sig.sum() / max(m.sum(), 1)))
        for k, metric in (("CC", "CC_absG"), ("R2", "R2_absG"), ("MARE", "MARE_absG")):
            per[k].append(c["metrics"][metric])
        per["CC_signal"].append(M.pearson(g, t, sig) if sig.sum() > 10 else float("nan"))
        per["solve_s"].append(c["solve_s"])
        pool_p.append(g[m])
        pool_t.append(t[m])
    p, t = np.concatenate(pool_p), np.concatenate(pool_t)
    return {"per_case": per, "CC": float(np.mean(per["CC"])), "R2": float(np.mean(per["R2"])),
            "MARE": float(np.mean(per["MARE"])), "pooled_CC": M.pearson(p, t), "pooled_R2": M.r2(p, t),
            "CC_signal": float(np.nanmean(per["CC_signal"])), "signal_fraction": float(np.mean(fractions)),
            "solve_s": float(np.median(per["solve_s"]))}


def _example(task, ds, by_method: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The first phantom of a test set for the figure: truth, liver and body masks, each method's |G*|."""
    first = next(iter(by_method.values()))[0]
    obs = task.observation(ds, first["index"])
    return {"truth": first["truth"]["abs_G"], "mask": first["truth"]["_mask"], "body": np.asarray(obs["mask"], bool),
            "pred": {name: cs[0]["pred"]["abs_G"] for name, cs in by_method.items()}}


def _baselines(task, sets: dict[str, Any], log) -> tuple[dict[str, Any], dict[str, list]]:
    """AHI on both test sets and MDEV on the multi-frequency one, through the evaluation harness."""
    log("scoring AHI and MDEV (evaluation harness) ...")
    out: dict[str, Any] = {"test_dime": {}, "test_mdev": {}, "params": {}}
    cases: dict[str, dict[str, list]] = {"test_dime": {}, "test_mdev": {}}
    for name, where, _ in (row for row in TABLE if row[0] in BASELINES):
        ev = harness(BASELINES[name], task, sets[where])
        cases[where][name] = rows(ev, task)
        out[where][name] = _set_scores(sets[where], cases[where][name])
        out["params"][name] = ev.record["solver"]["params"]
    return out, cases


@dataclass(frozen=True)
class Settings:
    budget: str
    repeats: int
    width: int
    steps: int
    threads: int
    device: str
    seconds: float | None
    work: Path


def _datasets(b: DimeBudget, data_root: Path, workers, log) -> dict[str, Any]:
    def make(preset, n, seed, role):
        return ensure_dataset("liver-mre", preset, n, seed, dataset_name("dime", role, n, seed), data_root, log,
                              workers=workers)

    return {"train": make("dime-liver", b.n_train, SEEDS["train"], "train"),
            "test_dime": make("dime-liver", b.n_test, SEEDS["test"], "test"),
            "test_mdev": make("mdev-liver", b.n_mdev, SEEDS["mdev"], "test")}


def run(budget: str = "smoke", repeats: int | None = None, data_root: Path = Path("data"),
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

    from phantombench.solvers.base import resolve_device
    from phantombench.tasks import get_task

    PAPER.check_budget(budget)
    b = BUDGETS[budget]
    st = Settings(budget, int(repeats or b.repeats), int(width or b.width), int(steps or b.steps),
                  int(threads) if threads and threads > 0 else 1, resolve_device(device), seconds,
                  Path(work_dir) if work_dir else Path("results") / "reproduce" / f"dime-{budget}")
    torch.set_num_threads(st.threads)
    task = get_task("mre")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    st.work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    sets = _datasets(b, Path(data_root), workers, log)
    t_data = time.perf_counter() - t_all
    tr_idx, va_idx = sets["train"].split("train"), sets["train"].split("val")
    results: dict[str, Any] = {
        "paper": "dime", "budget": budget, "budget_note": b.note, "budget_params": asdict(b), "repeats": st.repeats,
        "width": st.width, "steps": st.steps, "device": st.device, "threads": st.threads,
        "datasets": {"train": {**_dataset_id(sets["train"]), "train_samples": len(tr_idx), "val_samples": len(va_idx)},
                     "test_dime": _dataset_id(sets["test_dime"]), "test_mdev": _dataset_id(sets["test_mdev"])},
        "paper_numbers": PAPER_NUMBERS, "runs": [], "baselines": {},
    }
    results["data_facts"] = data_facts(sets["test_dime"])
    results["ceiling"] = resolution_ceiling(sets["test_dime"])
    results["baselines"], base_cases = _baselines(task, sets, log)
    fig_examples: dict[str, Any] = {}
    histories = []
    for r in range(st.repeats):
        run_, cnn_cases, history = _repeat(task, sets, r, b, st, log)
        results["runs"].append(run_)
        histories.append(history)
        if r == 0:
            fig_examples = {k.removeprefix("test_"): [_example(task, sets[k], {"CNN": cnn_cases[k], **base_cases[k]})]
                            for k in ("test_dime", "test_mdev")}
        if r < st.repeats - 1:   # a partial report after every repeat (a long run that is stopped keeps its numbers)
            _write(results, fig_examples, histories, out_dir, t_all, t_data)
    return _write(results, fig_examples, histories, out_dir, t_all, t_data)


def _repeat(task, sets, r: int, b: DimeBudget, st: Settings, log) -> tuple[dict, dict, list]:
    """Train the CNN with seed ``r`` (in this process) and score it on both test sets."""
    from phantombench.solvers.base import Cases
    from phantombench.solvers.dime import DIME

    ds = sets["train"]
    tr_idx, va_idx = ds.split("train"), ds.split("val")
    params = {"width": st.width, "depth": b.depth, "crop": b.crop, "batch": b.batch, "steps": st.steps,
              "val_every": b.val_every, "threads": st.threads, "checkpoint_dir": str(st.work / f"seed{r}"),
              "save_weights": str(st.work / f"weights_seed{r}.pt"), "progress": True,
              "augment": False}   # exact, but it cost accuracy at these budgets (measured: solvers/dime.py)
    if st.seconds:
        params["max_fit_s"] = float(st.seconds)
    cnn = DIME(task, params=params, device=st.device, seed=r)
    log(f"training dime-cnn, repeat {r + 1}/{st.repeats} ({len(tr_idx)} train / {len(va_idx)} val phantoms, "
        f"{st.steps} steps, width {st.width}) ...")
    t0 = time.perf_counter()
    cnn.fit(Cases(task, ds, tr_idx), Cases(task, ds, va_idx))
    fit_s = time.perf_counter() - t0
    cases, scores = {}, {}
    for where in ("test_dime", "test_mdev"):
        t = sets[where]
        cases[where] = require_ok("CNN", solve_in_process(task, cnn, [(task.observation(t, i), task.truth(t, i))
                                                                       for i in range(len(t))]))
        scores[where] = _set_scores(t, cases[where])
    m = cnn.meta
    run_ = {"seed": r, "fit_s": m["train_seconds_total"], "fit_s_this_call": fit_s, **scores, "field": m["field"],
            **{k: m[k] for k in ("steps_done", "resumed_from_step", "stopped_early", "n_parameters",
                                 "best_val_loss", "weights")}}
    log(f"  CNN r {scores['test_dime']['CC']:.3f} (dime test), {scores['test_mdev']['CC']:.3f} (mdev test); training "
        f"{m['train_seconds_total']:.0f} s" + (f" (resumed at step {m['resumed_from_step']})"
                                               if m["resumed_from_step"] else ""))
    return run_, cases, cnn.history


def _write(results, fig_examples, histories, out_dir: Path, t_all: float, t_data: float) -> Path:
    """Aggregate the repeats done so far and write dime.md, dime.json and the figures."""
    import torch

    from phantombench.papers import dime_report as report
    from phantombench.provenance import git_commit, hardware, package_versions

    runs = results["runs"]
    results["repeats_done"] = len(runs)
    results["cnn"] = {where: {k: stats([run_[where][k] for run_ in runs]) for k in SET_METRICS
                              if all(k in run_[where] for run_ in runs)} for where in ("test_dime", "test_mdev")}
    results["fit_s"] = stats([run_["fit_s"] for run_ in runs])
    results["wall_s"] = time.perf_counter() - t_all
    results["data_s"] = t_data
    dev = results["device"]
    results["hardware"] = {**hardware(), "device": dev, "torch_threads": results["threads"],
                           "gpu": torch.cuda.get_device_name(0) if dev.startswith("cuda") else None}
    results["git_commit"] = git_commit()
    results["packages"] = {k: v for k, v in package_versions().items() if k in ("phantombench", "torch", "numpy")}
    results["created"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results["goal"] = report.goal(results)
    report.figures(fig_examples, histories, out_dir)
    write_json(out_dir / "dime.json", results)
    md = out_dir / "dime.md"
    md.write_text(report.render(results))
    return md


def _render(results: dict[str, Any]) -> str:
    from phantombench.papers.dime_report import render

    return render(results)


PAPER = Paper(name="dime", title="P2 DIME: deep-learning inversion for MR elastography", budgets=BUDGETS, run=run,
              render=_render)
