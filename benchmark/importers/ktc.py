"""KTC2023 EIT tank data (MATLAB files) -> an ``eit`` task dataset; the challenge's official score.

Format (one folder):

* ``ref.mat``: ``Injref`` (32 x P) current patterns [A], positive = into the tank; ``Uelref`` (P * 31,) voltages
  of the water-only tank [V], pattern-major: measurement m of pattern p is ``Mpat[:, m] . U_p``; ``Mpat``
  (32 x 31), column m = ``U[m] - U[m+1]``;
* ``data<k>.mat``: ``Inj`` and ``Uel`` of a target (difficulty level l: the measurements touching electrodes
  1..2(l-1) are NaN);
* optional ``true<k>.mat`` / ``truth<k>.mat``: ``truth`` (256 x 256) in {0 water, 1 resistive, 2 conductive} on
  [-0.115, 0.115]^2 m, row 0 at +y.

Geometry (declared, the challenge's): a disk of radius 0.115 m, 32 electrodes 5.625 deg wide (coverage 0.5),
electrode 1 centred at +y, numbered counter-clockwise; contact impedance 1e-6 Ohm m^2.

Detected from the physics (:func:`check_reference`): the water-tank voltages must match a homogeneous disk driven
by ``Injref`` as currents *into* the tank and measured with ``Mpat``: the cosine between them tells the sign (a
negative one: the file's currents or voltage differences have the opposite sign) and the storage order
(pattern-major or measurement-major); the least-squares scale gives the effective 2-D background conductivity
the task's linearisation uses. Missing electrodes give the difficulty level, checked against a declared one.

Observations written per target: ``dv = Uel - Uelref`` and ``v_ref`` on the measurements present, ``currents``
(P x 32), the disk ``mask``; with a truth, ``labels`` and a nominal ``dsigma`` (``contrast`` x background for
the resistive and conductive classes: real contrasts are not known, so SSIM/CC of the task compare shapes and
signs; :func:`ktc_score` is the challenge's own segmentation score).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from phantombench.importers.common import ConventionError, ImportedSample, conventions_card, write_dataset

RADIUS = 0.115
N_ELECTRODES = 32
WIDTH_DEG = 5.625
CONTACT_IMPEDANCE = 1e-6
GRID = 256
CLASSES = {0: "water", 1: "resistive", 2: "conductive"}


# =========================================================================================== reading
def load_mat(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    try:
        d = loadmat(str(path))
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line
        raise ConventionError(f"{path.name}: not a readable MATLAB file ({type(e).__name__})") from None
    missing = [n for n in names if n not in d]
    if missing:
        raise ConventionError(f"{path.name}: lacks variable(s) {', '.join(missing)} (KTC2023 format: "
                              f"{', '.join(names)})")
    return {n: np.asarray(d[n], dtype=np.float64) for n in names}


def _patterns(inj: np.ndarray, name: str) -> np.ndarray:
    """``Inj`` (32 x P) -> currents (P x 32), each pattern summing to zero."""
    if inj.ndim != 2 or inj.shape[0] != N_ELECTRODES:
        raise ConventionError(f"{name}: shape {inj.shape}, expected {N_ELECTRODES} x P (electrode-major, one column "
                              "per current pattern)")
    cur = inj.T.copy()
    if np.abs(cur.sum(axis=1)).max() > 1e-9 * max(np.abs(cur).max(), 1e-300):
        raise ConventionError(f"{name}: a current pattern does not sum to zero (charge conservation); columns must "
                              "be patterns, rows electrodes")
    return cur


def _voltages(u: np.ndarray, n_patterns: int, n_meas: int, order: str, name: str) -> np.ndarray:
    u = u.ravel()
    if u.size != n_patterns * n_meas:
        raise ConventionError(f"{name}: {u.size} values, expected {n_patterns} patterns x {n_meas} measurements")
    return u.reshape(n_patterns, n_meas) if order == "pattern-major" else u.reshape(n_meas, n_patterns).T


# =========================================================================================== physics checks
def homogeneous_measurements(currents: np.ndarray, mpat: np.ndarray, mesh_size: float = 0.08) -> np.ndarray:
    """(P, M) measurements of the declared tank at 1 S/m (the CEM of the suite's ``eit`` generator)."""
    from phantombench.generators.cem import electrode_potentials

    U = electrode_potentials(1.0, n_electrodes=N_ELECTRODES, coverage=N_ELECTRODES * WIDTH_DEG / 360.0,
                             contact_impedance=CONTACT_IMPEDANCE, currents=currents, mesh_size=mesh_size,
                             first_angle=np.pi / 2, direction="ccw", radius=RADIUS)
    return U @ mpat


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(a[ok] @ b[ok] / (np.linalg.norm(a[ok]) * np.linalg.norm(b[ok]) + 1e-300))


def check_reference(uref_raw: np.ndarray, currents: np.ndarray, mpat: np.ndarray,
                    order: str = "auto") -> tuple[np.ndarray, float, dict[str, Any]]:
    """Water-tank voltages against the homogeneous model: returns (Uref (P, M), background [S/m], findings).
    Refuses a sign or storage order that contradicts the model, with the fix."""
    P, M = currents.shape[0], mpat.shape[1]
    model = homogeneous_measurements(currents, mpat)
    cos = {o: _cosine(_voltages(uref_raw, P, M, o, "Uelref"), model) for o in ("pattern-major", "measurement-major")}
    best = max(cos, key=lambda o: abs(cos[o]))
    if order != "auto" and abs(cos[order]) < 0.9 <= abs(cos[best]):
        raise ConventionError(f"storage order: Uelref matches a homogeneous tank only when read {best} (cosine "
                              f"{cos[best]:.3f} vs {cos[order]:.3f} {order}); pass order='{best}' or 'auto'")
    use = best if order == "auto" else order
    c = cos[use]
    if c <= -0.9:
        raise ConventionError(f"sign: Uelref is anti-correlated with a homogeneous tank (cosine {c:.3f}) driven by "
                              "Injref as currents INTO the tank and measured as Mpat' U (U[m] - U[m+1]); negate "
                              "Uelref and Uel (or Injref and Inj) so that positive current enters the tank")
    if c < 0.9:
        raise ConventionError(f"layout: Uelref does not match a homogeneous {RADIUS} m tank with {N_ELECTRODES} "
                              f"electrodes (cosine {c:.3f}); check that Injref rows and Mpat rows are electrodes "
                              "1..32 counter-clockwise from +y and that Mpat columns are the measurements")
    uref = _voltages(uref_raw, P, M, use, "Uelref")
    ok = np.isfinite(uref)
    inv_sigma = float(model[ok] @ uref[ok] / (model[ok] @ model[ok]))
    return uref, 1.0 / inv_sigma, {"order": use, "cosine": round(c, 6)}


def dropped_measurements(mpat: np.ndarray, level: int) -> np.ndarray:
    """Measurements touching electrodes 1..2(level-1) (boolean, (M,))."""
    gone = np.zeros(N_ELECTRODES, bool)
    gone[: 2 * (level - 1)] = True
    return (np.abs(mpat[gone]) > 0).any(axis=0)


def detect_level(uel: np.ndarray, mpat: np.ndarray, level: int | None, name: str) -> tuple[int, np.ndarray]:
    """The difficulty level whose dropped electrodes explain the NaN measurements; the kept measurements."""
    nan = ~np.isfinite(uel)
    per_meas = nan.any(axis=0)
    if (nan.any(axis=0) != nan.all(axis=0)).any():
        raise ConventionError(f"{name}: a measurement is NaN for some current patterns only; KTC levels drop "
                              "whole electrodes (the same measurements of every pattern)")
    levels = [lv for lv in range(1, 8) if np.array_equal(dropped_measurements(mpat, lv), per_meas)]
    if not levels:
        raise ConventionError(f"{name}: the {int(per_meas.sum())} NaN measurements are not those of any difficulty "
                              "level (level l drops electrodes 1..2(l-1)); check the electrode numbering")
    if level is not None and level not in levels:
        raise ConventionError(f"{name}: the NaN measurements are those of level {levels[0]}, not the declared "
                              f"level {level}; pass level={levels[0]} (or none, to detect it)")
    return levels[0], ~per_meas


# =========================================================================================== truth
def disk_mask(n: int = GRID) -> np.ndarray:
    c = (np.arange(n) + 0.5) / n * 2 - 1
    X, Y = np.meshgrid(c, -c)
    return X**2 + Y**2 <= 1.0


def read_truth(path: Path, row0: str) -> np.ndarray:
    t = load_mat(path, ("truth",))["truth"]
    if t.shape != (GRID, GRID):
        raise ConventionError(f"{path.name}: truth is {t.shape}, expected {GRID} x {GRID} on [-{RADIUS}, {RADIUS}]^2 m")
    vals = set(np.unique(t).tolist())
    if not vals <= set(CLASSES):
        raise ConventionError(f"{path.name}: truth holds {sorted(vals)}; KTC classes are 0 water, 1 resistive, "
                              "2 conductive")
    return (t if row0 == "+y" else t[::-1]).astype(np.uint8)


def truth_fields(labels: np.ndarray, background: float, contrast: tuple[float, float]) -> dict[str, np.ndarray]:
    mask = disk_mask(labels.shape[0])
    ds = np.zeros(labels.shape)
    ds[labels == 1] = contrast[0] * background
    ds[labels == 2] = contrast[1] * background
    return {"labels": np.where(mask, labels, 0).astype(np.uint8), "dsigma": np.where(mask, ds, np.nan)}


# =========================================================================================== import
def _targets(src: Path) -> list[tuple[Path, Path | None]]:
    """``data<k>.mat`` files, each with its ``true<k>.mat`` / ``truth<k>.mat`` if there is one."""
    out = []
    for p in sorted(src.glob("data*.mat"), key=lambda q: [int(t) if t.isdigit() else t
                                                            for t in re.split(r"(\d+)", q.name)]):
        k = p.stem[len("data"):]
        truth = next((src / f"{s}{k}.mat" for s in ("true", "truth") if (src / f"{s}{k}.mat").exists()), None)
        out.append((p, truth))
    return out


def _sample(ref: dict, uref: np.ndarray, background: float, data: Path, truth: Path | None,
            opts: dict[str, Any]) -> ImportedSample:
    d = load_mat(data, ("Inj", "Uel"))
    cur = _patterns(d["Inj"], f"{data.name}: Inj")
    if cur.shape != ref["currents"].shape or not np.allclose(cur, ref["currents"], rtol=1e-6, atol=0):
        raise ConventionError(f"{data.name}: Inj differs from Injref; difference imaging needs the reference's "
                              "current patterns")
    P, M = ref["currents"].shape[0], ref["mpat"].shape[1]
    uel = _voltages(d["Uel"], P, M, ref["order"], f"{data.name}: Uel")
    level, keep = detect_level(uel, ref["mpat"], opts.get("level"), data.name)
    if opts.get("keep") is not None and not np.array_equal(keep, opts["keep"]):
        raise ConventionError(f"{data.name}: level {level} differs from the other targets' (import each level "
                              "into its own dataset: the measurement protocol must be the same for every sample)")
    opts["keep"] = keep
    fields = {"dv": (uel - uref)[:, keep].ravel(), "v": uel[:, keep].ravel(), "v_ref": uref[:, keep].ravel(),
              "currents": cur, "mask": disk_mask()}
    if truth is not None:
        fields.update(truth_fields(read_truth(truth, opts["truth_row0"]), background, opts["contrast"]))
    n = GRID
    attrs = {"level": level, "dropped_electrodes": list(range(1, 2 * (level - 1) + 1)),
             "grid": {"x0": -RADIUS + RADIUS / n, "y_top": RADIUS - RADIUS / n, "dx": 2 * RADIUS / n,
                      "dy": 2 * RADIUS / n, "H": n, "W": n}}
    return ImportedSample(fields, attrs, [data] + ([truth] if truth is not None else []))


SPECS = {
    "dv": ("V", "Uel - Uelref on the measurements present (pattern-major)"),
    "v": ("V", "Uel: the target's measurements present (pattern-major)"),
    "v_ref": ("V", "Uelref: the water tank's measurements present"),
    "currents": ("A", "current into each electrode per pattern (Injref transposed)"),
    "mask": ("", "pixel centre inside the tank"),
    "labels": ("", "KTC classes: 0 water, 1 resistive, 2 conductive"),
    "dsigma": ("S/m", "nominal conductivity change: contrast x background per class (real values unknown)"),
}


def _config(ref: dict[str, Any], keep: np.ndarray, background: float, level: int) -> dict[str, Any]:
    mpat = ref["mpat"][:, keep]
    return {"radius": RADIUS, "n_electrodes": N_ELECTRODES, "coverage": N_ELECTRODES * WIDTH_DEG / 360.0,
            "first_angle": float(np.pi / 2), "direction": "ccw", "contact_impedance": CONTACT_IMPEDANCE,
            "protocol": "custom", "injection": ref["currents"].tolist(), "measurement_matrix": mpat.T.tolist(),
            "background": background, "grid_size": GRID, "source_format": "ktc2023", "level": level,
            "reference_order": ref["order"], "reference_cosine": ref["cosine"]}


def import_ktc(src: str | Path, out: str | Path, *, level: int | None = None, order: str = "auto",
               truth: bool = True, truth_row0: str = "+y", contrast: tuple[float, float] = (-1.0, 1.0),
               split: str = "test"):
    """Import a KTC2023 folder (``ref.mat``, ``data*.mat``, optional ``true*.mat``) as an ``eit`` dataset."""
    src = Path(src)
    if not (src / "ref.mat").exists():
        raise ConventionError(f"{src}: no ref.mat (a KTC2023 folder holds ref.mat and data<k>.mat files)")
    if truth_row0 not in ("+y", "-y") or order not in ("auto", "pattern-major", "measurement-major"):
        raise ConventionError("truth_row0 is '+y' or '-y'; order is 'auto', 'pattern-major' or 'measurement-major'")
    r = load_mat(src / "ref.mat", ("Injref", "Uelref", "Mpat"))
    cur, mpat = _patterns(r["Injref"], "ref.mat: Injref"), r["Mpat"]
    if mpat.shape[0] != N_ELECTRODES:
        raise ConventionError(f"ref.mat: Mpat is {mpat.shape}, expected {N_ELECTRODES} x M (electrodes x measurements)")
    uref, background, found = check_reference(r["Uelref"], cur, mpat, order)
    ref = {"currents": cur, "mpat": mpat, **found}
    opts = {"level": level, "truth_row0": truth_row0, "contrast": tuple(contrast), "keep": None}
    targets = _targets(src)
    if not targets:
        raise ConventionError(f"{src}: no data<k>.mat file")
    samples = [_sample(ref, uref, background, d, t if truth else None, opts) for d, t in targets]
    for s in samples:
        s.sources.insert(0, src / "ref.mat")
    lv = samples[0].attrs["level"]
    card = conventions_card("KTC2023 EIT tank", [
        f"tank radius {RADIUS} m, {N_ELECTRODES} electrodes {WIDTH_DEG} deg wide, electrode 1 at +y, counter-"
        f"clockwise; contact impedance {CONTACT_IMPEDANCE:g} Ohm m^2 (declared: the challenge's geometry)",
        "currents in A, voltages in V (declared; a scale error would only rescale the fitted background)",
        f"currents positive into the tank, measurements Mpat' U, Uelref read {found['order']} (detected: cosine "
        f"{found['cosine']:.4f} with a homogeneous tank)",
        f"effective 2-D background conductivity {background:.6g} S/m (least-squares fit of Uelref)",
        f"difficulty level {lv}: electrodes 1..{2 * (lv - 1)} dropped" if lv > 1 else "level 1: every electrode",
        f"truth row 0 at {truth_row0} (declared); dsigma nominal: resistive {contrast[0]:g} x background, "
        f"conductive {contrast[1]:g} x background"])
    return write_dataset(out, "eit", "ktc2023", _config(ref, opts["keep"], background, lv), samples, SPECS,
                         card, split)


# =========================================================================================== scoring
def _gaussian_ssim(t: np.ndarray, r: np.ndarray, sigma: float = 80.0) -> float:
    """Mean SSIM of two binary images: Gaussian window (sigma px, support 2 ceil(2 sigma) + 1), local moments
    corrected at the edges by the window's own mass, C1 = 1e-4, C2 = 9e-4."""
    from scipy.ndimage import correlate1d

    half = int(np.ceil(2 * sigma))
    w = np.exp(-np.arange(-half, half + 1) ** 2 / (2 * sigma**2))
    w /= w.sum()

    def blur(a):
        return correlate1d(correlate1d(a, w, axis=0, mode="constant"), w, axis=1, mode="constant")

    norm = blur(np.ones_like(t))
    mt, mr = blur(t) / norm, blur(r) / norm
    vt, vr = blur(t * t) / norm - mt**2, blur(r * r) / norm - mr**2
    cov = blur(t * r) / norm - mt * mr
    c1, c2 = 1e-4, 9e-4
    s = (2 * mt * mr + c1) * (2 * cov + c2) / ((mt**2 + mr**2 + c1) * (vt + vr + c2))
    return float(s.mean())


def ktc_score(truth: np.ndarray, reco: np.ndarray) -> float:
    """The KTC2023 score of a segmentation: 0.5 (SSIM(truth==2, reco==2) + SSIM(truth==1, reco==1)), each the
    mean over every pixel of the Gaussian-window SSIM (sigma 80 px); 1 for a perfect segmentation."""
    truth, reco = np.asarray(truth), np.asarray(reco)
    if truth.shape != reco.shape:
        raise ValueError(f"truth {truth.shape} and reconstruction {reco.shape} differ in shape")
    return 0.5 * sum(_gaussian_ssim((truth == c).astype(np.float64), (reco == c).astype(np.float64)) for c in (2, 1))


def segment(dsigma: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Three classes from a conductivity-change image: Otsu's threshold on |dsigma| separates changed from
    unchanged pixels; a changed pixel is conductive (2) where dsigma > 0 and resistive (1) where it is < 0."""
    from skimage.filters import threshold_otsu

    d = np.asarray(dsigma, dtype=np.float64)
    m = np.isfinite(d) if mask is None else (np.asarray(mask, bool) & np.isfinite(d))
    out = np.zeros(d.shape, np.uint8)
    a = np.abs(d[m])
    if a.size == 0 or a.max() == a.min():
        return out
    t = threshold_otsu(a)
    changed = m & (np.abs(np.nan_to_num(d)) > t)
    out[changed & (d > 0)] = 2
    out[changed & (d < 0)] = 1
    return out
