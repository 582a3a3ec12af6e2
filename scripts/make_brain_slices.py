"""Derive coronal gray/white label slices from the MNI ICBM152 2009a tissue maps.

Run once (needs nilearn, which ships the maps, and nibabel); the result is committed as
``meshes/anatomy/mni152_coronal_labels.npz`` so that data generation needs neither.

    python scripts/make_brain_slices.py [--png /tmp/slices.png]

Labelling: a voxel is brain where max(p_gm, p_wm) > threshold; brain voxels take the
class with the larger probability (1 gray, 2 white), others are background (0).
Connected pieces smaller than ``min_island`` voxels (of any class, background holes
included) are merged into the class that surrounds them. All slices share one crop: the
bounding box of the brain over the chosen slices plus a margin.

Array layout of each slice: (H, W) with row 0 at the top (superior, largest MNI z) and
column 0 at the subject's right (smallest MNI x), i.e. radiological left-right is not
flipped: x grows to the right of the image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

OUT = Path(__file__).resolve().parent.parent / "meshes" / "anatomy" / "mni152_coronal_labels.npz"

#: MNI y coordinates (mm) of the slices: the posterior half of the brain
#: (the brain spans y = -106 .. 73 mm in the template), every 7 mm.
DEFAULT_Y_MM = tuple(range(-97, -19, 7))


def _load_maps():
    import nibabel as nib
    import nilearn.datasets

    folder = Path(nilearn.datasets.__file__).resolve().parent / "data"
    maps = {}
    affine = None
    for tissue in ("gm", "wm"):
        img = nib.load(folder / f"mni_icbm152_{tissue}_tal_nlin_sym_09a_converted.nii.gz")
        data = np.asarray(img.dataobj, dtype=np.float64)
        if img.get_data_dtype() == np.uint8:  # stored as 0..255 in nilearn's copy
            data = data / 255.0
        maps[tissue] = data
        if affine is None:
            affine = img.affine
        elif not np.allclose(affine, img.affine):
            raise ValueError("gray- and white-matter maps are not on the same grid")
    if not np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3]))) or np.any(np.diag(affine)[:3] <= 0):
        raise ValueError("expected an axis-aligned RAS affine with positive spacing")
    return maps["gm"], maps["wm"], affine


def _merge_small_pieces(lab: np.ndarray, min_island: int) -> np.ndarray:
    """Relabel connected pieces (4-connected) smaller than min_island to the majority
    class on their outer rim; repeat until nothing changes."""
    lab = lab.copy()
    for _ in range(10):
        changed = False
        for cls in (0, 1, 2):
            comp, n = ndimage.label(lab == cls)
            if n == 0:
                continue
            sizes = np.bincount(comp.ravel())
            for k in np.nonzero(sizes[1:] < min_island)[0] + 1:
                piece = comp == k
                rim = ndimage.binary_dilation(piece) & ~piece
                if not rim.any():
                    continue
                counts = np.bincount(lab[rim], minlength=3)
                counts[cls] = -1
                lab[piece] = np.argmax(counts)
                changed = True
        if not changed:
            break
    return lab


def make_slices(y_mm=DEFAULT_Y_MM, threshold=0.5, min_island=12, margin=4):
    gm, wm, affine = _load_maps()
    spacing = np.diag(affine)[:3]
    origin = affine[:3, 3]
    labels = []
    for y in y_mm:
        j = int(round((y - origin[1]) / spacing[1]))
        g = gm[:, j, :]  # (x, z)
        w = wm[:, j, :]
        lab = np.zeros(g.shape, np.uint8)
        brain = np.maximum(g, w) > threshold
        lab[brain & (g >= w)] = 1
        lab[brain & (w > g)] = 2
        lab = _merge_small_pieces(lab, min_island)
        # to image layout: rows = z descending (top = superior), columns = x ascending
        labels.append(lab.T[::-1, :])
    stack = np.stack(labels)
    # common crop: bounding box of the brain over all slices, plus a margin
    any_brain = (stack > 0).any(axis=0)
    rows = np.nonzero(any_brain.any(axis=1))[0]
    cols = np.nonzero(any_brain.any(axis=0))[0]
    r0, r1 = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, stack.shape[1])
    c0, c1 = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, stack.shape[2])
    stack = np.ascontiguousarray(stack[:, r0:r1, c0:c1])
    # MNI coordinates of the crop's pixel centres: column c -> x, row r -> z
    nz = gm.shape[2]
    x0 = origin[0] + c0 * spacing[0]
    z_top = origin[2] + (nz - 1 - r0) * spacing[2]
    meta = dict(
        labels=stack,
        y_mm=np.asarray(y_mm, np.float64),
        voxel_size_mm=np.asarray([spacing[0], spacing[2]], np.float64),  # (dx, dz)
        x0_mm=np.float64(x0),
        z_top_mm=np.float64(z_top),
        threshold=np.float64(threshold),
        min_island=np.int64(min_island),
        classes=np.asarray(["background", "gray", "white"]),
        source=np.asarray(
            "MNI ICBM152 2009a nonlinear symmetric gm/wm probability maps "
            "(nilearn copy: mni_icbm152_{gm,wm}_tal_nlin_sym_09a_converted.nii.gz); "
            "see LICENSE-MNI152.txt"
        ),
    )
    return meta


def save_montage(meta, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    labs = meta["labels"]
    n = len(labs)
    ncol = 4
    nrow = (n + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(3 * ncol, 3.2 * nrow))
    cmap = ListedColormap(["black", "0.55", "white"])
    for ax, lab, y in zip(axes.ravel(), labs, meta["y_mm"]):
        ax.imshow(lab, cmap=cmap, vmin=0, vmax=2, interpolation="nearest")
        ax.set_title(f"y = {y:.0f} mm")
        ax.set_axis_off()
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--png", type=Path, default=None, help="also save a montage PNG here")
    args = ap.parse_args()
    meta = make_slices()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **meta)
    lab = meta["labels"]
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1024:.1f} kB): {lab.shape[0]} slices of "
        f"{lab.shape[1]} x {lab.shape[2]} px, y = {meta['y_mm'].min():.0f}..{meta['y_mm'].max():.0f} mm"
    )
    for y, s in zip(meta["y_mm"], lab):
        print(f"  y={y:6.1f} mm  gray {np.sum(s == 1):6d} px  white {np.sum(s == 2):6d} px")
    if args.png:
        save_montage(meta, args.png)
        print(f"montage: {args.png}")


if __name__ == "__main__":
    main()
