"""Generator ``kheil``: procedural cuboid registration pairs with an exact displacement (P5's synthetic data).

Two modes, each in 3-D (64^3) and as its 2-D z-slice (64 x 64); samples are cheap (no FEM):

* ``rigid``   -- one cuboid per image, fixed and moving drawn independently: centre 32 + int(4 N(0,1)) per
  axis and an in-plane angle t = 0.2 N(0,1) rad about z. Voxel (i, j, k) is inside when
  ``|i - cx - (j - cy) sin t| < 4``, ``|j - cy + (i - cx) sin t| < 15`` and ``cz - 10 <= k < cz + 10``
  (the small-angle form: sin only, no cos). Intensity 1 inside, then one smoothing pass (7-point sum / 9).
* ``sliding`` -- two 20 x 10 x 20 blocks stacked along y (axis 1): j in [cy-10, cy) of intensity 0.8 and
  j in [cy, cy+10) of intensity 1.0, i in [cx-10, cx+10), k in [cz-10, cz+10). In the moving image the first
  block is shifted by -s along x (axis 0) and the second by +s, s = int(3 N(0,1)); no smoothing.

The truth is a dense displacement on the fixed grid (pixels, channel d along array axis d) with
``moving(x + disp(x)) = fixed(x)``. Rigid: writing the in-plane part of the inside test as ``|A_t (p - c)|``,
``A_t = [[1, -sin t], [sin t, 1]]``, a fixed point p and its moving point p' share canonical coordinates,
``A_t' (p' - c') = A_t (p - c)``, so ``p' = c' + A_t'^-1 A_t (p - c)`` in-plane and ``k' = k - cz + cz'``.
Since ``A_t = sqrt(1 + sin^2 t) R(atan sin t)``, this map is a rotation by ``atan sin t - atan sin t'`` times
the in-plane scale ``sqrt((1 + sin^2 t) / (1 + sin^2 t'))`` (within 2 % of 1 when both angles are within one
standard deviation, 0.2 rad): the small-angle form is not exactly a rotation, and the stored truth is the exact
map the voxelisation applies.
Sliding: ``disp = (-s, 0, 0)`` for j < cy and ``(+s, 0, 0)`` for j >= cy, on the whole grid.

2-D presets are the slice k = cz of the 3-D definition: the rectangle (rigid) or the two blocks (sliding) in
the (i, j) plane; the smoothing of a z-invariant slice is (4-neighbour sum + 3 centre) / 9, the in-plane
restriction of the 7-point pass. Presets in ``generators/presets/kheil.json``, card ``generators/cards/kheil.md``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from phantombench.generators.assets import card_text, load_presets
from phantombench.generators.base import FieldSpec, Generator, GeneratorConfig, Sample

HALF_WIDTH, HALF_LENGTH, HALF_DEPTH = 4, 15, 10     # rigid cuboid: |u| < 4, |v| < 15, -10 <= k - cz < 10
BLOCK_X, BLOCK_Y, BLOCK_Z = 20, 10, 20             # sliding blocks (voxels along axes 0, 1, 2)
SLIDING_INTENSITY = (0.8, 1.0)                      # first block (j < cy), second block (j >= cy)


class KheilConfig(GeneratorConfig):
    mode: Literal["rigid", "sliding"] = Field("rigid", description="rigid: one independently placed cuboid per "
                                              "image; sliding: two blocks shifted in opposite directions")
    ndim: Literal[2, 3] = Field(3, description="3: size^3 volume; 2: its z-slice, size x size")
    size: int = Field(64, ge=48, le=256, description="grid edge length [voxels]")
    spacing_mm: float = Field(1.0, gt=0, description="isotropic voxel spacing [mm]")
    centre_std: float = Field(4.0, ge=0, description="centre = size/2 + int(centre_std N(0,1)) per axis [voxels]")
    angle_std: float = Field(0.2, ge=0, le=0.5, description="rigid: in-plane angle t = angle_std N(0,1) [rad]")
    shift_std: float = Field(3.0, ge=0, le=8, description="sliding: s = int(shift_std N(0,1)) [voxels]")
    smooth: bool | None = Field(None, description="one 7-point smoothing pass; None = on for rigid, off for "
                                                  "sliding")
    n_landmarks: int = Field(16, ge=1, le=256, description="landmarks per pair, drawn among the body's voxels")


def smoothing_pass(img: np.ndarray) -> np.ndarray:
    """One 7-point pass: (centre + 6 face neighbours) / 9 in 3-D; in 2-D the slice of a z-invariant volume,
    (3 centre + 4 neighbours) / 9. Zero outside the grid."""
    pad = np.pad(img, 1)
    inner = tuple(slice(1, -1) for _ in range(img.ndim))
    total = img.astype(np.float64) * (1.0 if img.ndim == 3 else 3.0)
    for ax in range(img.ndim):
        for step in (-1, 1):
            sl = list(inner)
            sl[ax] = slice(1 + step, pad.shape[ax] - 1 + step)
            total = total + pad[tuple(sl)]
    return total / 9.0


def grid_coords(cfg: KheilConfig) -> np.ndarray:
    """Voxel index coordinates, shape (ndim, *grid), float64."""
    return np.indices((cfg.size,) * cfg.ndim, dtype=np.float64)


def _canonical(p: np.ndarray, c: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """In-plane canonical coordinates (u, v) = A_t (p - c) of points p (leading axis: coordinates)."""
    s = np.sin(t)
    di, dj = p[0] - c[0], p[1] - c[1]
    return di - dj * s, dj + di * s


def rigid_inside(p: np.ndarray, c: np.ndarray, t: float) -> np.ndarray:
    """The cuboid's inside test at points p (ndim, ...): the stated small-angle form."""
    u, v = _canonical(p, c, t)
    inside = (np.abs(u) < HALF_WIDTH) & (np.abs(v) < HALF_LENGTH)
    if p.shape[0] == 3:
        inside &= (p[2] >= c[2] - HALF_DEPTH) & (p[2] < c[2] + HALF_DEPTH)
    return inside


def rigid_map(p: np.ndarray, fixed: dict, moving: dict) -> np.ndarray:
    """p' = c' + A_t'^-1 A_t (p - c) in-plane, k' = k - cz + cz': the moving point of each fixed point p."""
    u, v = _canonical(p, fixed["centre"], fixed["angle"])
    c2, s2 = np.asarray(moving["centre"], float), np.sin(moving["angle"])
    det = 1.0 + s2 * s2                                    # A_t'^-1 = [[1, s'], [-s', 1]] / (1 + s'^2)
    out = np.empty_like(p)
    out[0] = c2[0] + (u + s2 * v) / det
    out[1] = c2[1] + (v - s2 * u) / det
    if p.shape[0] == 3:
        out[2] = p[2] - fixed["centre"][2] + c2[2]
    return out


def similarity_of(fixed: dict, moving: dict) -> tuple[float, float]:
    """(angle [rad], in-plane scale) of the rigid case's linear part A_t'^-1 A_t."""
    s, s2 = np.sin(fixed["angle"]), np.sin(moving["angle"])
    return float(np.arctan(s) - np.arctan(s2)), float(np.sqrt((1 + s * s) / (1 + s2 * s2)))


def draw_pose(cfg: KheilConfig, rng: np.random.Generator) -> dict[str, Any]:
    """A centre (32 + int(4 N(0,1)) per axis for size 64) and an angle; z kept in 2-D for the record."""
    centre = [cfg.size // 2 + int(cfg.centre_std * rng.standard_normal()) for _ in range(3)]
    return {"centre": centre[:cfg.ndim], "angle": float(cfg.angle_std * rng.standard_normal())}


def sliding_blocks(p: np.ndarray, c, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the two blocks (first: j in [cy-10, cy) shifted by -shift along axis 0; second:
    j in [cy, cy+10) shifted by +shift) at points p."""
    common = np.ones(p.shape[1:], bool)
    if p.shape[0] == 3:
        common &= (p[2] >= c[2] - BLOCK_Z // 2) & (p[2] < c[2] + BLOCK_Z // 2)
    out = []
    for sign, (j0, j1) in ((-1, (c[1] - BLOCK_Y, c[1])), (1, (c[1], c[1] + BLOCK_Y))):
        x0 = c[0] - BLOCK_X // 2 + sign * shift
        out.append(common & (p[1] >= j0) & (p[1] < j1) & (p[0] >= x0) & (p[0] < x0 + BLOCK_X))
    return out[0], out[1]


def jacobian_determinant(disp: np.ndarray) -> np.ndarray:
    """det(I + grad disp), gradients by central differences in pixel units (one-sided at the grid border)."""
    nd = disp.shape[0]
    grads = np.empty((nd, nd) + disp.shape[1:])
    for a in range(nd):
        for b in range(nd):
            grads[a, b] = np.gradient(disp[a], axis=b)
        grads[a, a] += 1.0
    return np.linalg.det(np.moveaxis(grads, (0, 1), (-2, -1)))


# ------------------------------------------------------------------------------------------ stages
def render_rigid(cfg: KheilConfig, p: np.ndarray, fixed: dict, moving: dict) -> dict[str, np.ndarray]:
    """Images, labels, body and mask of a rigid pair; the true displacement of the exact map."""
    smooth = cfg.smooth if cfg.smooth is not None else True
    f_in, m_in = rigid_inside(p, fixed["centre"], fixed["angle"]), rigid_inside(p, moving["centre"], moving["angle"])
    img = [a.astype(np.float64) for a in (f_in, m_in)]
    if smooth:
        img = [smoothing_pass(a) for a in img]
    disp = rigid_map(p, fixed, moving) - p
    return {"fixed": img[0], "moving": img[1], "fixed_labels": f_in.astype(np.uint8),
            "moving_labels": m_in.astype(np.uint8), "body": f_in, "mask": f_in.astype(np.uint8), "disp": disp}


def render_sliding(cfg: KheilConfig, p: np.ndarray, centre, shift: int) -> dict[str, np.ndarray]:
    """Two blocks sliding along x in opposite directions: images, labels, mask (2 on the interface slab)."""
    smooth = cfg.smooth if cfg.smooth is not None else False
    f1, f2 = sliding_blocks(p, centre, 0)
    m1, m2 = sliding_blocks(p, centre, shift)
    lo, hi = SLIDING_INTENSITY
    fixed = lo * f1 + hi * f2
    moving = lo * m1 + hi * m2
    if smooth:
        fixed, moving = smoothing_pass(fixed), smoothing_pass(moving)
    body = f1 | f2
    mask = body.astype(np.uint8)
    mask[body & ((p[1] == centre[1] - 1) | (p[1] == centre[1]))] = 2
    disp = np.zeros_like(p)
    disp[0] = np.where(p[1] < centre[1], -float(shift), float(shift))
    return {"fixed": fixed, "moving": moving, "fixed_labels": (f1 + 2 * f2).astype(np.uint8),
            "moving_labels": (m1 + 2 * m2).astype(np.uint8), "body": body, "mask": mask, "disp": disp}


def landmarks(cfg: KheilConfig, f: dict[str, np.ndarray], pose_map, rng: np.random.Generator):
    """``n_landmarks`` body voxels (drawn without replacement) and their exact moving positions."""
    idx = np.argwhere(f["body"]).astype(np.float64)
    pick = idx[np.sort(rng.choice(len(idx), size=min(cfg.n_landmarks, len(idx)), replace=False))]
    if len(pick) < cfg.n_landmarks:                       # tiny bodies: repeat to keep the declared shape
        pick = pick[np.arange(cfg.n_landmarks) % len(pick)]
    return pick, pose_map(pick.T).T


def normals_of(mask: np.ndarray, ndim: int) -> np.ndarray:
    """Unit interface normal (axis 1, the stacking direction) on mask == 2 voxels, 0 elsewhere."""
    n = np.zeros((ndim,) + mask.shape, np.float32)
    n[1][mask == 2] = 1.0
    return n


def sample_fields(cfg: KheilConfig, f: dict[str, np.ndarray], lm: tuple[np.ndarray, np.ndarray]) -> dict:
    disp = f["disp"]
    return {"fixed": f["fixed"].astype(np.float32), "moving": f["moving"].astype(np.float32),
            "disp": disp.astype(np.float64), "fixed_labels": f["fixed_labels"], "moving_labels": f["moving_labels"],
            "mask": f["mask"], "normals": normals_of(f["mask"], cfg.ndim), "body": f["body"].astype(bool),
            "jac_det": jacobian_determinant(disp), "landmarks_fixed": lm[0], "landmarks_moving": lm[1]}


PRESETS: dict[str, dict[str, Any]] = load_presets("kheil")
LABEL_NAMES = {"rigid": {"1": "cuboid"}, "sliding": {"1": "block 1 (j < cy, intensity 0.8)",
                                                     "2": "block 2 (j >= cy, intensity 1.0)"}}


class Kheil(Generator):
    name = "kheil"
    version = "1.0.0"
    Config = KheilConfig
    presets = PRESETS
    regen_rtol = 1e-12      # closed-form geometry: regeneration is exact up to libm round-off

    def schema(self, cfg: KheilConfig) -> dict[str, FieldSpec]:
        g = (cfg.size,) * cfg.ndim
        d, K = cfg.ndim, cfg.n_landmarks
        axes = "rows, columns" if d == 2 else "axes 0, 1, 2"
        return {
            "fixed": FieldSpec(g, "float32", "1", "fixed image (row 0 at the top)"),
            "moving": FieldSpec(g, "float32", "1", "moving image"),
            "disp": FieldSpec((d,) + g, "float64", "px", f"true displacement on the fixed grid, channel d along "
                              f"array axis d ({axes}); moving(x + disp(x)) = fixed(x)"),
            "fixed_labels": FieldSpec(g, "uint8", "", "object classes of the fixed image (0 = background)"),
            "moving_labels": FieldSpec(g, "uint8", "", "object classes of the moving image"),
            "mask": FieldSpec(g, "uint8", "", "0 free, 1 rigid (the objects), 2 sliding interface slab"),
            "normals": FieldSpec((d,) + g, "float32", "1", "unit interface normal on mask == 2, 0 elsewhere"),
            "body": FieldSpec(g, "bool", "", "evaluation region: the fixed image's objects"),
            "jac_det": FieldSpec(g, "float64", "1", "det(I + grad disp) of the truth (central differences, px)"),
            "landmarks_fixed": FieldSpec((K, d), "float64", "px", "landmark voxel positions in the fixed image"),
            "landmarks_moving": FieldSpec((K, d), "float64", "px", "their exact positions in the moving image"),
        }

    def sample(self, cfg: KheilConfig, rng: np.random.Generator, index: int) -> Sample:
        """Poses -> voxelised images and exact displacement -> landmarks -> fields and attributes."""
        p = grid_coords(cfg)
        if cfg.mode == "rigid":
            fixed, moving = draw_pose(cfg, rng), draw_pose(cfg, rng)
            f = render_rigid(cfg, p, fixed, moving)
            angle, scale = similarity_of(fixed, moving)
            attrs = {"fixed_pose": fixed, "moving_pose": moving, "map_angle_rad": angle, "map_scale": scale}
            pose_map = lambda q: rigid_map(q, fixed, moving)  # noqa: E731
        else:
            centre = draw_pose(cfg, rng)["centre"]
            shift = int(cfg.shift_std * rng.standard_normal())
            f = render_sliding(cfg, p, centre, shift)
            attrs = {"centre": centre, "shift_px": shift}
            pose_map = lambda q: q + np.where(q[1] < centre[1], -shift, shift) * (  # noqa: E731
                np.arange(cfg.ndim) == 0)[:, None]
        lm = landmarks(cfg, f, pose_map, rng)
        attrs.update({"mode": cfg.mode, "spacing_mm": [cfg.spacing_mm] * cfg.ndim,
                      "label_names": LABEL_NAMES[cfg.mode]})
        return Sample(sample_fields(cfg, f, lm), attrs)

    def splits(self, cfg: KheilConfig, n: int) -> dict[str, list[int]]:
        """The paper's 200/50/50 proportions: 2/3 train, 1/6 val, 1/6 test (test last); n <= 2: all test."""
        if n <= 2:
            return {"test": list(range(n))}
        n_test = n_val = max(1, round(n / 6))
        n_train = n - n_val - n_test
        return {"train": list(range(n_train)), "val": list(range(n_train, n_train + n_val)),
                "test": list(range(n_train + n_val, n))}

    def card(self, cfg: KheilConfig) -> str:
        smooth = cfg.smooth if cfg.smooth is not None else cfg.mode == "rigid"
        grid = " x ".join([str(cfg.size)] * cfg.ndim)
        return card_text(self.name).format(mode=cfg.mode, grid=grid, spacing=cfg.spacing_mm,
                                           smooth="one 7-point smoothing pass" if smooth else "no smoothing",
                                           K=cfg.n_landmarks, cstd=cfg.centre_std, astd=cfg.angle_std,
                                           sstd=cfg.shift_std)
