"""`phantombench show`: class names and one colour per class present on label panels and the mesh, diverging
maps centred on zero for signed fields, one panel per channel, robust and honest colour limits.

Datasets: ``fake_brain`` (conftest), a tiny hand-made dataset whose values are chosen to test each rule
(built through the real store, milliseconds), and a real one-sample Kheil dataset (``generated``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm, TwoSlopeNorm

import phantombench
from phantombench import show
from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample
from tests.bench_helpers import write_dataset

H, W = 20, 30
OUTLIER = 1e6


class _Cfg(GeneratorConfig):
    h: int = H
    w: int = W


class ShowCases(Generator):
    """One sample whose fields each exercise one drawing rule."""

    name = "show-cases"
    version = "0.0.0-test"
    Config = _Cfg
    presets = {"cases": {}}

    def schema(self, cfg):
        hw = (cfg.h, cfg.w)
        return {
            "frequencies": FieldSpec((2,), "float64", "Hz", "driving frequencies"),
            "disp": FieldSpec((2, *hw), "float64", "m", "displacement, channel d along array axis d"),
            "wave": FieldSpec(hw, "float64", "m", "a signed wave with one huge pixel"),
            "E": FieldSpec(hw, "float64", "Pa", "Young's modulus with one huge pixel"),
            "const": FieldSpec(hw, "float64", "Pa", "a constant modulus"),
            "uy": FieldSpec(hw, "float64", "m", "negative, with a round-off positive value"),
            "g": FieldSpec((2, *hw), "float64", "Pa", "storage modulus per frequency"),
            "labels": FieldSpec(hw, "uint8", "", "0 background, 2 liver, 3 vessel, 5 lesion"),
            "mask": FieldSpec(hw, "bool", "", "pixel centre inside the body"),
            "mesh_points": FieldSpec(("n_nodes", 2), "float64", "m", "mesh vertex coordinates"),
            "mesh_cells": FieldSpec(("n_cells", 3), "int64", "", "triangle vertex indices"),
            "mesh_cell_labels": FieldSpec(("n_cells",), "uint8", "", "region label per triangle"),
        }

    def card(self, cfg):
        return "Labels: 0 outside, 2 liver, 5 lesion, 7 spleen.\n"

    def sample(self, cfg, rng, index):
        h, w = cfg.h, cfg.w
        yy, xx = np.mgrid[0:h, 0:w]
        wave = 2e-6 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
        wave[0, 0] = OUTLIER * 1e-6
        E = 1000.0 + 10.0 * xx
        E[h - 1, w - 1] = OUTLIER
        uy = -1e-3 * (yy + 1.0)
        uy[0, 0] = 1e-20
        labels = np.zeros((h, w), np.uint8)
        labels[2:10, 2:12] = 2
        labels[12:18, 15:25] = 5
        pts = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
        f = {"frequencies": np.array([30.0, 60.0]),
             "disp": np.stack([1e-4 * (xx - w / 2), -2e-4 * (yy - h / 2)]),
             "wave": wave, "E": E, "const": np.full((h, w), 2000.0), "uy": uy,
             "g": np.stack([E * 0 + 1500.0 + yy, E * 0 + 3000.0 + yy]),
             "labels": labels, "mask": labels > 0,
             "mesh_points": pts, "mesh_cells": np.array([[0, 1, 2], [1, 3, 2]]),
             "mesh_cell_labels": np.array([2, 7], np.uint8)}
        return Sample(f, {"label_names": {"2": "liver parenchyma"}})


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    return write_dataset(ShowCases(), tmp_path_factory.mktemp("show") / "cases", "cases", 1)


@pytest.fixture(scope="module")
def figure(cases):
    """(figure, {panel title: (axes, image)}) of the hand-made sample."""
    import matplotlib.pyplot as plt

    fig = show.sample_figure(phantombench.open_dataset(cases), 0)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    yield fig, panels
    plt.close(fig)


def _image(ax):
    return ax.images[0] if ax.images else ax.collections[0]


def _colourbar_labels(fig, ax) -> list[str]:
    cb = _image(ax).colorbar
    return [t.get_text() for t in cb.ax.get_yticklabels()]


def test_labels_get_one_colour_and_name_per_class_present(figure):
    fig, panels = figure
    im = _image(panels["labels"])
    # classes 0, 2, 5 are present (3 is named but absent); 2's name comes from the sample attribute
    assert isinstance(im.cmap, ListedColormap) and len(im.cmap.colors) == 3
    assert isinstance(im.norm, BoundaryNorm) and im.norm.Ncmap == 3 and len(im.norm.boundaries) == 4
    assert _colourbar_labels(fig, panels["labels"]) == ["background", "liver parenchyma", "lesion"]
    assert np.allclose(im.cmap.colors[1], show.class_colour(2)) and np.allclose(im.cmap.colors[2],
                                                                                show.class_colour(5))


def test_mesh_is_coloured_like_the_label_panel(figure):
    fig, panels = figure
    mesh_ax = next(ax for title, ax in panels.items() if title.startswith("mesh:"))
    pc = mesh_ax.collections[0]
    assert isinstance(pc.cmap, ListedColormap) and len(pc.cmap.colors) == 2    # classes 2 and 7
    assert np.allclose(pc.cmap.colors[0], _image(panels["labels"]).cmap.colors[1])   # class 2: same colour
    # 7 is named only by the card; 2 by the sample attribute, as on the label panel
    assert _colourbar_labels(fig, mesh_ax) == ["liver parenchyma", "spleen"]


def test_bool_mask_is_categorical_with_inside_outside(figure):
    fig, panels = figure
    im = _image(panels["mask"])
    assert isinstance(im.cmap, ListedColormap) and len(im.cmap.colors) == 2
    assert _colourbar_labels(fig, panels["mask"]) == ["outside", "inside"]


def test_signed_field_is_diverging_and_symmetric_with_percentile_limits(figure):
    _, panels = figure
    im = _image(panels["wave"])
    assert isinstance(im.norm, TwoSlopeNorm) and im.norm.vcenter == 0
    assert im.norm.vmin == pytest.approx(-im.norm.vmax)
    assert im.cmap.name == "RdBu_r"
    # values in um (the colour bar says so): the sine's amplitude is 2 um; the 1e6 um pixel does not count
    assert im.colorbar.ax.get_ylabel() == "\u00b5m"
    assert 1.5 < im.norm.vmax <= 2.0
    assert im.colorbar.extend in ("max", "both")          # the clipped pixel is marked


def test_outlier_pixel_does_not_set_the_sequential_limits(figure):
    _, panels = figure
    im = _image(panels["E"])
    assert not isinstance(im.norm, TwoSlopeNorm | LogNorm) and im.cmap.name == "viridis"
    # E runs 1000..1290 Pa apart from one pixel at 1e6 Pa
    assert 1000 <= im.norm.vmin < 1010 and 1280 < im.norm.vmax <= 1290


def test_round_off_of_the_other_sign_does_not_make_a_field_signed(figure):
    _, panels = figure
    im = _image(panels["uy"])
    assert not isinstance(im.norm, TwoSlopeNorm) and im.norm.vmax < 0


def test_two_channel_field_gives_two_titled_panels(figure):
    _, panels = figure
    assert "disp along rows" in panels and "disp along columns" in panels
    assert not any(t.startswith("disp[") for t in panels)
    rows, cols = _image(panels["disp along rows"]), _image(panels["disp along columns"])
    assert rows.get_array().shape == cols.get_array().shape == (H, W)
    # channel 0 (along rows): 1e-4 * (x - 15) m -> -1.5..1.4 mm; channel 1: -2e-4 * (y - 10) m -> -1.8..2 mm
    assert np.nanmax(np.abs(rows.get_array())) == pytest.approx(1.5)
    assert np.nanmax(np.abs(cols.get_array())) == pytest.approx(2.0)
    assert rows.colorbar.ax.get_ylabel() == cols.colorbar.ax.get_ylabel() == "mm"
    assert "g 30 Hz" in panels and "g 60 Hz" in panels


def test_constant_field_states_its_value_and_has_honest_limits(figure):
    _, panels = figure
    title = next(t for t in panels if t.startswith("const"))
    assert title == "const = 2000 Pa (constant)"
    im = _image(panels[title])
    assert im.colorbar is None
    lo, hi = im.norm.vmin, im.norm.vmax
    assert lo < 2000 < hi and (lo, hi) != (2000.0, 2001.0) and hi - 2000 == pytest.approx(2000 - lo)


def test_no_offset_text_on_any_colour_bar(figure):
    fig, _ = figure
    fig.canvas.draw()
    for ax in fig.axes:
        assert ax.yaxis.get_offset_text().get_text() == ""


def test_fake_brain_constants_and_field_choice(fake_brain):
    import matplotlib.pyplot as plt

    ds = phantombench.open_dataset(fake_brain)
    fig = show.sample_figure(ds, 1, ["exx", "exy", "E", "labels"])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    # sample 1: E background 1100 Pa, exx = 0.35 * 30 / 1100 everywhere, exy = 0; no mesh asked for
    assert titles[:2] == [f"exx = {0.35 * 30 / 1100:.4g} (constant)", "exy = 0 (constant)"]
    assert titles[2:] == ["E", "labels"]
    plt.close(fig)
    for bad in (["nope"], ["mesh"]):                  # the fake dataset has no mesh
        with pytest.raises(ValueError, match="unknown grid field"):
            show.sample_figure(ds, 0, bad)


def test_kheil_sample_uses_the_datasets_names(generated):
    ds = phantombench.open_dataset(generated("kheil", "kheil-sliding-2d"))
    panels, s, roi = show.sample_panels(ds, 0)
    by = {p.title: p for p in panels}
    assert roi == "body"
    assert by["fixed_labels"].ticklabels == ["background", "block 1", "block 2"]
    assert by["mask"].ticklabels == ["free", "rigid (the objects)", "sliding interface slab"]
    assert by["jac_det = 1 (constant)"].kind == "constant"
    assert by["disp along rows"].kind == "diverging" and by["fixed"].cmap == "gray"
    assert not any(t.startswith("landmarks") for t in by)       # (K, 2) arrays are not images


@pytest.mark.parametrize("text, expected", [
    ("0 background, 1 gray matter, 2 white matter, 3 inclusion",
     {0: "background", 1: "gray matter", 2: "white matter", 3: "inclusion"}),
    ("object classes of the fixed image (0 = background)", {0: "background"}),
    ("region label, see the card (0 outside)", {0: "outside"}),
    ("observed strain xx (10% Gaussian noise)", {}),
])
def test_class_names_are_parsed_from_descriptions(text, expected):
    assert show.parse_classes(text) == expected


@pytest.mark.parametrize("unit, magnitude, factor, label", [
    ("m", 3e-6, 1e6, "\u00b5m"), ("Pa", 5e4, 1e-3, "kPa"), ("Pa", 2000.0, 1.0, "Pa"),
    ("1", 4e-3, 1e3, "\u00d71e-3"), ("px", 2.0, 1.0, "px"),
])
def test_unit_scale(unit, magnitude, factor, label):
    f, text = show.unit_scale(unit, magnitude)
    assert f == pytest.approx(factor) and text == label


def test_cli_show_writes_the_figure(fake_brain, tmp_path):
    png = tmp_path / "f.png"
    exe = Path(sys.executable).with_name("phantombench")
    r = subprocess.run([str(exe), "show", str(fake_brain), "--sample", "2", "--out", str(png)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_case_figure_colour_scale_is_robust_and_diverging_for_signed_truth():
    from phantombench.figures import colour_scale

    yy, xx = np.mgrid[0:20, 0:30]
    mask = np.ones((20, 30), bool)
    signed = np.sin(xx / 3.0)
    signed[0, 0] = 1e6
    lo, hi, cmap = colour_scale(signed, mask)
    assert cmap == "RdBu_r" and lo == -hi and 0.9 < hi <= 1.0
    lo, hi, cmap = colour_scale(np.full((20, 30), 2000.0), mask)
    assert cmap == "viridis" and (lo, hi) == (1000.0, 3000.0)
    positive = 1000.0 + xx
    positive[5, 5] = 1e9
    assert colour_scale(positive, mask)[1] < 1030


def test_a_volume_is_shown_at_the_slice_through_its_scored_objects(generated):
    ds = phantombench.open_dataset(generated("kheil", "kheil-rigid"))
    s = ds[0]
    body = np.asarray(s["body"], bool)
    cut = show.volume_slice(body.shape, body)
    assert body[cut].sum() == body.reshape(body.shape[0], -1).sum(axis=1).max() > 0
    by = {p.title: p for p in show.sample_panels(ds, 0)[0]}
    assert by["fixed_labels"].ticklabels == ["background", "cuboid"]       # the object is in the slice
    assert [t for t in by if t.startswith("disp")][:3] == ["disp along axis 0", "disp along axis 1",
                                                            next(t for t in by if t.startswith("disp along axis 2"))]
    assert by["fixed"].data.shape == body.shape[1:]
