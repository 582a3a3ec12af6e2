"""Importers: KTC2023 tank files and El-UNet text grids, written here in their formats from the suite's own
generators, become task datasets that verify and evaluate; data contradicting a convention are refused with one
line and leave nothing behind; the KTC2023 score on hand cases and against a brute-force evaluation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import phantombench
from phantombench.importers import ConventionError, import_dataset
from phantombench.verify import verify_dataset

BIN = Path(sys.executable).parent / "phantombench"

# ================================================================================== KTC2023 files
R, L, BG = 0.115, 32, 0.05


def ktc_patterns() -> np.ndarray:
    """76 pair drives of 2 mA (adjacent, skip-2 and skip-4 pairs), (P, L)."""
    cur = np.zeros((76, L))
    for p in range(76):
        a = p % L
        cur[p, a], cur[p, (a + 1 + 2 * (p // L)) % L] = 2e-3, -2e-3
    return cur


def ktc_mpat() -> np.ndarray:
    m = np.zeros((L, L - 1))
    for k in range(L - 1):
        m[k, k], m[k + 1, k] = 1.0, -1.0
    return m


def ktc_phantom(x, y):
    """A resistive disc upper right, a conductive one lower left, in water of BG S/m."""
    s = np.full(np.shape(x), BG)
    s[(x - 0.04) ** 2 + (y - 0.03) ** 2 < 0.025**2] = 0.2 * BG
    s[(x + 0.045) ** 2 + (y + 0.02) ** 2 < 0.02**2] = 5 * BG
    return s


def ktc_truth() -> np.ndarray:
    c = (np.arange(256) + 0.5) / 256 * 2 * R - R
    X, Y = np.meshgrid(c, -c)                       # row 0 at +y
    s = ktc_phantom(X, Y)
    t = np.where(s < BG, 1, np.where(s > BG, 2, 0)).astype(np.uint8)
    t[X**2 + Y**2 > R**2] = 0
    return t


def write_ktc(folder: Path, level: int = 1, sign: float = 1.0, order: str = "pattern-major",
              truth: np.ndarray | None = None) -> Path:
    """ref.mat, data1.mat and true1.mat computed with the suite's CEM (generators.cem) on the KTC geometry."""
    from scipy.io import savemat

    from phantombench.generators.cem import electrode_potentials

    folder.mkdir(parents=True, exist_ok=True)
    cur, mp = ktc_patterns(), ktc_mpat()
    kw = dict(n_electrodes=L, coverage=0.5, contact_impedance=1e-6, currents=cur, mesh_size=0.05,
              first_angle=np.pi / 2, radius=R)
    uref = sign * electrode_potentials(BG, **kw) @ mp
    uel = sign * electrode_potentials(ktc_phantom, **kw) @ mp
    uel[:, (np.abs(mp[: 2 * (level - 1)]) > 0).any(axis=0)] = np.nan

    def flat(u):
        return (u if order == "pattern-major" else u.T).reshape(-1, 1)

    savemat(folder / "ref.mat", {"Injref": cur.T, "Uelref": flat(uref), "Mpat": mp})
    savemat(folder / "data1.mat", {"Inj": cur.T, "Uel": flat(uel)})
    savemat(folder / "true1.mat", {"truth": ktc_truth() if truth is None else truth})
    return folder


@pytest.fixture(scope="module")
def ktc_files(tmp_path_factory) -> Path:
    return write_ktc(tmp_path_factory.mktemp("ktc") / "level2", level=2)


@pytest.fixture(scope="module")
def ktc_ds(ktc_files, tmp_path_factory):
    return import_dataset("ktc2023", ktc_files, "eit", tmp_path_factory.mktemp("ktcds") / "ds")


def _refused(fn, match: str, out: Path) -> str:
    with pytest.raises(ConventionError, match=match) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and not out.exists()     # one line, nothing written
    return msg


def test_ktc_import_declares_the_acquisition_the_data_follow(ktc_ds):
    from phantombench.generators.operators import forward_operator
    from phantombench.tasks import get_task

    ds = ktc_ds
    assert verify_dataset(ds.path)[0] == []
    cfg = ds.manifest["config"]
    assert ds.attrs(0)["level"] == 2 and ds.attrs(0)["dropped_electrodes"] == [1, 2]
    assert ds.manifest["schema"]["dv"]["shape"] == [76 * 29] and ds.manifest["splits"] == {"test": ["000000"]}
    assert cfg["background"] == pytest.approx(BG, rel=0.08)        # fitted from the water tank
    s = ds[0]
    assert np.array_equal(s["labels"], ktc_truth()) and np.isnan(s["dsigma"][~s["mask"]]).all()
    assert set(np.unique(s["dsigma"][s["mask"]])) == {-cfg["background"], 0.0, cfg["background"]}
    # the declared config (electrodes, protocol, measurements) reproduces the water-tank voltages
    op = forward_operator(cfg, mesh_size=0.06)
    v = op.forward(np.full(op.n_cells, cfg["background"]))
    cos = v @ s["v_ref"] / np.linalg.norm(v) / np.linalg.norm(s["v_ref"])
    assert cos > 0.999 and np.linalg.norm(v) / np.linalg.norm(s["v_ref"]) == pytest.approx(1.0, rel=0.05)
    task = get_task("eit")
    task.check_dataset(ds)
    obs = task.observation(ds, 0)
    assert obs["currents"].shape == (76, 32) and np.isfinite(obs["dv"]).all()


def test_ktc_import_then_evaluate(ktc_ds, tmp_path):
    from phantombench.evaluate import evaluate
    from phantombench.importers.ktc import ktc_score, segment

    ev = evaluate("noser", "eit", ktc_ds, isolate=False, out_dir=tmp_path / "ev")
    assert ev.record["cases"]["ok"] == 1 and ev.record["metrics"]["CC"]["mean"] > 0.6
    ex = ev.examples[0]
    seg = segment(ex["prediction"]["dsigma"], ex["truth"]["_mask"])
    truth = ktc_ds[0]["labels"]
    assert ktc_score(truth, seg) > ktc_score(truth, np.zeros_like(truth)) + 0.1


@pytest.mark.parametrize("case", ["sign", "order", "level", "classes", "task"])
def test_ktc_contradictions_are_refused(case, tmp_path):
    out = tmp_path / "out"
    if case == "sign":
        src = write_ktc(tmp_path / "neg", sign=-1.0)
        msg = _refused(lambda: import_dataset("ktc2023", src, "eit", out), "^sign: ", out)
        assert "INTO the tank" in msg and "negate" in msg
    elif case == "order":
        src = write_ktc(tmp_path / "mm", order="measurement-major")
        _refused(lambda: import_dataset("ktc2023", src, "eit", out, order="pattern-major"),
                 "storage order: .*read measurement-major", out)
        ds = import_dataset("ktc2023", src, "eit", out)          # auto: detected and read as such
        assert ds.manifest["config"]["reference_order"] == "measurement-major"
    elif case == "level":
        src = write_ktc(tmp_path / "l3", level=3)
        _refused(lambda: import_dataset("ktc2023", src, "eit", out, level=2),
                 "those of level 3, not the declared level 2; pass level=3", out)
    elif case == "classes":
        bad = ktc_truth()
        bad[100, 100] = 3
        src = write_ktc(tmp_path / "cls", truth=bad)
        _refused(lambda: import_dataset("ktc2023", src, "eit", out), "KTC classes are 0 water", out)
    else:
        _refused(lambda: import_dataset("ktc2023", tmp_path, "brain-elasticity", out), "pass --task eit", out)


# ================================================================================== the KTC2023 score
def _brute_ssim(t, r, sigma):
    """The SSIM map by explicit weighted sums over the window, edge-corrected by the window mass inside."""
    H, W = t.shape
    half = int(np.ceil(2 * sigma))
    k = np.arange(-half, half + 1)
    w1 = np.exp(-k**2 / (2 * sigma**2))
    w1 /= w1.sum()
    vals = []
    for i in range(H):
        for j in range(W):
            ii, jj = i + k, j + k
            wi, wj = w1[(ii >= 0) & (ii < H)], w1[(jj >= 0) & (jj < W)]
            w = np.outer(wi, wj)
            w /= w.sum()
            a = t[ii[(ii >= 0) & (ii < H)]][:, jj[(jj >= 0) & (jj < W)]]
            b = r[ii[(ii >= 0) & (ii < H)]][:, jj[(jj >= 0) & (jj < W)]]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb, c = (w * a * a).sum() - ma**2, (w * b * b).sum() - mb**2, (w * a * b).sum() - ma * mb
            vals.append((2 * ma * mb + 1e-4) * (2 * c + 9e-4) / ((ma**2 + mb**2 + 1e-4) * (va + vb + 9e-4)))
    return float(np.mean(vals))


def test_ktc_score_hand_cases_and_formula():
    from phantombench.importers.ktc import _gaussian_ssim, ktc_score, segment

    truth = ktc_truth()
    assert ktc_score(truth, truth) == pytest.approx(1.0, abs=1e-12)
    swapped = np.where(truth == 1, 2, np.where(truth == 2, 1, 0))
    water = np.zeros_like(truth)
    assert ktc_score(truth, swapped) < ktc_score(truth, water) < 0.9
    one_right = np.where(truth == 2, 0, truth)              # the resistive disc found, the conductive one missed
    assert ktc_score(truth, water) < ktc_score(truth, one_right) < 1.0
    rng = np.random.default_rng(0)
    a, b = (rng.random((24, 20)) > 0.6).astype(float), (rng.random((24, 20)) > 0.5).astype(float)
    assert _gaussian_ssim(a, b, sigma=3.0) == pytest.approx(_brute_ssim(a, b, 3.0), rel=1e-10)
    img = np.where(truth == 1, -0.8, np.where(truth == 2, 1.3, 0.0)) + 0.01 * rng.standard_normal(truth.shape)
    assert np.array_equal(segment(img), truth)
    with pytest.raises(ValueError, match="differ in shape"):
        ktc_score(truth, truth[:10])


# ================================================================================== El-UNet files
NAMES = {"ux": "Ux_structured", "uy": "Uy_structured", "exx": "Exx_structured", "eyy": "Eyy_structured",
         "exy": "Exy_structured", "sxx": "Sxx_structured", "syy": "Syy_structured", "sxy": "Sxy_structured",
         "E": "Youngs_Structured", "nu": "Poissons_Structured"}


def write_elunet(sample: dict[str, np.ndarray], folder: Path, bottom_up: bool = True, edit=None,
                 truth: bool = True) -> Path:
    """One example folder of comma-separated grids (stored bottom-up unless told otherwise)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in NAMES.items():
        if k in ("E", "nu") and not truth:
            continue
        a = sample[k][::-1] if bottom_up else sample[k]
        np.savetxt(folder / f"{name}.txt", edit(k, a) if edit else a, delimiter=",")
    return folder


@pytest.fixture(scope="module")
def brain(generated) -> Path:
    return generated("brain-slice", "elunet-soft", n=1)


@pytest.fixture(scope="module")
def elunet_ds(brain, tmp_path_factory):
    src = write_elunet(phantombench.open_dataset(brain)[0], tmp_path_factory.mktemp("el") / "ex0")
    return import_dataset("elunet", src.parent, "brain-elasticity", tmp_path_factory.mktemp("elds") / "ds")


def test_elunet_import_detects_rows_spacing_and_load(elunet_ds, brain):
    ref = phantombench.open_dataset(brain)
    ds = elunet_ds
    assert verify_dataset(ds.path)[0] == []
    a = ds.attrs(0)
    assert a["conventions"]["rows"] == "bottom-up" and a["conventions"]["shear"] == "tensor"
    assert np.allclose(a["grid_spacing_m"], ref.attrs(0)["grid_spacing_m"], rtol=1e-3)
    assert a["traction_Pa"] == pytest.approx(ref.attrs(0)["traction_Pa"], rel=1e-3)
    for k in NAMES:
        assert np.array_equal(ds[0][k], ref[0][k]), k
    assert (ds[0]["labels"] == 255).all() and ds[0]["mask"].all()


def test_elunet_import_then_evaluate_matches_the_generated_dataset(elunet_ds, brain):
    from phantombench.evaluate import evaluate

    ours = evaluate("direct-elasticity", "brain-elasticity", elunet_ds, isolate=False).record["metrics"]
    ref = evaluate("direct-elasticity", "brain-elasticity", brain, split="test", isolate=False).record["metrics"]
    for m in ("MARE_E", "MARE_nu", "SSIM_E"):
        assert ours[m]["mean"] == pytest.approx(ref[m]["mean"], rel=1e-2), m


def _negate(keys):
    return lambda k, a: -a if k in keys else a


@pytest.mark.parametrize("case,edit,kw,match", [
    ("rows", None, {"rows": "top-down"}, "stored bottom-up, not top-down as declared; pass rows='bottom-up'"),
    ("tension", _negate({"ux", "uy", "exx", "eyy", "exy", "sxx", "syy", "sxy"}), {}, r"^ex0: load: mean eyy = \+"),
    ("stress sign", _negate({"sxx", "syy", "sxy"}), {}, "sign: mean syy .* negate Sxx, Syy and Sxy"),
    ("y down", _negate({"uy", "exy", "sxy"}), {}, "y axis pointing down"),
    ("kPa", lambda k, a: a / 1e3 if k == "E" else a, {}, "E looks like kPa: pass youngs_unit='kPa'"),
    ("spacing", None, {"spacing": [0.001, 0.001]}, "spacing: displacements and strains give"),
    ("shear", lambda k, a: 3 * a if k == "exy" else a, {}, "shear: sxy / exy"),
])
def test_elunet_contradictions_are_refused(case, edit, kw, match, brain, tmp_path):
    src = write_elunet(phantombench.open_dataset(brain)[0], tmp_path / "ex0", edit=edit)
    out = tmp_path / "out"
    _refused(lambda: import_dataset("elunet", src, "brain-elasticity", out, **kw), match, out)


def test_elunet_conversions_declared_or_detected(brain, tmp_path):
    ref = phantombench.open_dataset(brain)[0]
    src = write_elunet(ref, tmp_path / "kpa", bottom_up=False, edit=lambda k, a: a / 1e3 if k == "E" else a)
    ds = import_dataset("elunet", src, "brain-elasticity", tmp_path / "o1", youngs_unit="kPa")
    assert ds.attrs(0)["conventions"]["rows"] == "top-down" and np.allclose(ds[0]["E"], ref["E"], rtol=1e-12)
    src = write_elunet(ref, tmp_path / "eng", edit=lambda k, a: 2 * a if k == "exy" else a)
    ds = import_dataset("elunet", src, "brain-elasticity", tmp_path / "o2")
    assert ds.attrs(0)["conventions"]["shear"].startswith("engineering") and np.allclose(ds[0]["exy"], ref["exy"])
    src = write_elunet(ref, tmp_path / "obs", truth=False)
    ds = import_dataset("elunet", src, "brain-elasticity", tmp_path / "o3", truth=False)
    assert "E" not in ds.manifest["schema"] and "exx" in ds.manifest["schema"]


def test_import_command(brain, tmp_path):
    src = write_elunet(phantombench.open_dataset(brain)[0], tmp_path / "ex0")
    r = subprocess.run([str(BIN), "import", "elunet", str(src), "--task", "brain-elasticity", "--out",
                        str(tmp_path / "ds")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "imported" in r.stdout and (tmp_path / "ds" / "manifest.json").exists()
    r = subprocess.run([str(BIN), "import", "elunet", str(src), "--task", "brain-elasticity", "--out",
                        str(tmp_path / "no"), "--option", "rows=top-down"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "row order" in r.stderr
    assert not (tmp_path / "no").exists()
    r = subprocess.run([str(BIN), "import", "elunet", str(src), "--task", "brain-elasticity", "--out",
                        str(tmp_path / "no"), "--option", "colour=red"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no option(s) colour" in r.stderr
