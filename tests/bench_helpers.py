"""Small synthetic datasets for the benchmark-core tests (no FEM: built in milliseconds).

``make_brain_dataset`` writes a dataset through the real store (manifest, hashes, splits) whose generator
name is ``brain-slice`` and whose fields carry the brain-elasticity task's names. The strains are those of a
homogeneous solid under uniaxial stress with the sample's own (E, nu) of the background, so the constant
baseline's homogeneous fit recovers the background exactly; E and nu maps hold a stiff disc (label 2).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from phantombench import store
from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample


class _Cfg(GeneratorConfig):
    h: int = 24
    w: int = 16
    traction: float = 30.0


class FakeBrain(Generator):
    name = "brain-slice"
    version = "0.0.0-test"
    Config = _Cfg
    presets = {"synthetic": {}}

    def schema(self, cfg):
        hw = (cfg.h, cfg.w)
        s = {k: FieldSpec(hw, "float64", u, k) for k, u in
             (("exx", "1"), ("eyy", "1"), ("exy", "1"), ("ux", "m"), ("uy", "m"), ("E", "Pa"), ("nu", "1"))}
        s["labels"] = FieldSpec(hw, "uint8", "", "labels")
        s["mask"] = FieldSpec(hw, "bool", "", "mask")
        return s

    def sample(self, cfg, rng, index):
        h, w = cfg.h, cfg.w
        yy, xx = np.mgrid[0:h, 0:w]
        E_bg = 1000.0 * (1 + 0.1 * index)
        nu_bg = 0.35
        disc = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 <= (min(h, w) / 4) ** 2
        E = np.where(disc, 2 * E_bg, E_bg)
        nu = np.where(disc, 0.45, nu_bg)
        labels = np.where(disc, 2, 0).astype(np.uint8)
        t = cfg.traction
        eyy = np.full((h, w), -t / E_bg)
        exx = np.full((h, w), nu_bg * t / E_bg)
        exy = np.zeros((h, w))
        dx = 0.001
        ux = exx * (xx * dx)
        uy = eyy * ((h - 1 - yy) * dx)
        f = {"exx": exx, "eyy": eyy, "exy": exy, "ux": ux, "uy": uy, "E": E, "nu": nu, "labels": labels,
             "mask": np.ones((h, w), bool)}
        return Sample(f, {"traction_Pa": t, "grid_spacing_m": [dx, dx]})


def write_dataset(gen: Generator, root: Path, preset: str, n: int, **cfg) -> Path:
    """A finished dataset of ``n`` samples of a test generator (``sample(cfg, None, i)``: no random stream)."""
    c = gen.config(preset, cfg)
    plan = {"generator": gen.name, "generator_version": gen.version, "preset": preset,
            "config": c.model_dump(mode="json"), "seed": 0, "n": n}
    root = Path(root)
    store.prepare(root, plan)
    for i in range(n):
        store.write_sample(root, i, gen.sample(c, None, i), {})
    store.finalise(root, gen, c, plan, {"created": "test"})
    return root


def make_brain_dataset(root: Path, n: int = 3, **cfg) -> Path:
    return write_dataset(FakeBrain(), root, "synthetic", n, **cfg)


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path -> digest): 'byte-identical' made checkable."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
