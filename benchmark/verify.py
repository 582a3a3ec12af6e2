"""``verify``: check every file a dataset folder holds against what its manifest says was written.

Each problem is one line that starts with the damaged file's path relative to the dataset folder, so a user
knows what to delete or regenerate; nothing here raises on damaged input. Checks, in order:

1. ``manifest.json`` parses, has every key, and its seal (sha256 of its own canonical JSON) holds;
2. ``plan.json`` parses and describes the same dataset (generator, version, preset, config, seed, n);
3. the manifest is consistent: one entry per sample ``0..n-1``, splits that partition the samples, counts
   that match the splits, and a content hash equal to the one recomputed from the per-array sha256;
4. every file recorded at generation (card, plan, zarr metadata, chunks) exists with its sha256, and no file
   was added to ``data.zarr``;
5. every array decodes, has its recorded sha256, and no float array is entirely NaN;
6. the sketch recomputed from the arrays falls in the manifest's fingerprint bins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from phantombench import fingerprint as F
from phantombench import store as S


def _manifest(root: Path) -> tuple[dict[str, Any] | None, list[str]]:
    p = root / S.MANIFEST
    if not p.exists():
        return None, [f"{S.MANIFEST}: missing (the dataset was never finished)"]
    try:
        m = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, [f"{S.MANIFEST}: unreadable ({type(e).__name__})"]
    if not isinstance(m, dict):
        return None, [f"{S.MANIFEST}: not a manifest (a JSON {type(m).__name__})"]
    missing = [k for k in S.REQUIRED_KEYS if k not in m]
    if missing:
        return None, [f"{S.MANIFEST}: missing keys {', '.join(missing)}"]
    if "seal" in m and m["seal"] != S.manifest_seal(m):
        return m, [f"{S.MANIFEST}: edited after it was written (seal mismatch)"]
    return m, []


def _plan(root: Path, m: dict[str, Any]) -> list[str]:
    p = root / S.PLAN
    try:
        plan = json.loads(p.read_text())
    except FileNotFoundError:
        return [f"{S.PLAN}: missing"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return [f"{S.PLAN}: unreadable ({type(e).__name__})"]
    if not isinstance(plan, dict):
        return [f"{S.PLAN}: not a plan"]
    want = {"generator": m["generator"].get("name"), "generator_version": m["version"], "preset": m["preset"],
            "config": m["config"], "seed": m["seed"], "n": m["n"]}
    diff = [k for k, v in want.items() if plan.get(k) != v]
    return [f"{S.PLAN}: disagrees with the manifest on {', '.join(diff)}"] if diff else []


def _consistency(m: dict[str, Any]) -> list[str]:
    out = []
    n = m["n"]
    ids = {S.sample_id(i) for i in range(n)} if isinstance(n, int) and 0 <= n <= 10_000_000 else set()
    got = set(m["samples"]) if isinstance(m["samples"], dict) else set()
    if got != ids:
        lost, extra = sorted(ids - got), sorted(got - ids)
        out.append(f"{S.MANIFEST}: sample entries do not match n={n}"
                   + (f" ({len(lost)} missing, first {lost[0]})" if lost else "")
                   + (f" ({len(extra)} unexpected, first {extra[0]})" if extra else ""))
    split_ids = [s for v in m["splits"].values() for s in v] if isinstance(m["splits"], dict) else []
    if sorted(split_ids) != sorted(ids):
        out.append(f"{S.MANIFEST}: splits do not partition the {n} samples")
    counts = m.get("counts", {})
    if isinstance(m["splits"], dict) and any(counts.get(k) != len(v) for k, v in m["splits"].items()):
        out.append(f"{S.MANIFEST}: split counts disagree with the splits")
    try:
        hashes = {sid: r["sha256"] for sid, r in m["samples"].items()}
        if S.content_hash(hashes) != m["content_hash"]:
            out.append(f"{S.MANIFEST}: content_hash does not match the per-array sha256 it lists")
    except (AttributeError, KeyError, TypeError):
        out.append(f"{S.MANIFEST}: sample entries without sha256")
    return out


def _files(root: Path, m: dict[str, Any]) -> list[str]:
    files = m.get("files")
    if not isinstance(files, dict):
        return []
    out = []
    for rel, want in sorted(files.items()):
        p = root / rel
        if not p.is_file():
            out.append(f"{rel}: missing")
        elif S.file_sha256(p) != want:
            out.append(f"{rel}: sha256 mismatch (damaged or edited)")
    out += [f"{rel}: not written by the generator (unexpected file)" for rel in S.dataset_files(root)
            if rel not in files]
    return out


def _arrays(root: Path, m: dict[str, Any]) -> tuple[list[str], int]:
    import zarr

    out, n_arrays = [], 0
    for sid, rec in sorted(m["samples"].items()):
        gdir = f"{S.DATA}/{sid}"
        try:
            g = zarr.open_group(str(root / gdir), mode="r")
        except Exception as e:  # noqa: BLE001 - damage is a finding, not a crash
            out.append(f"{gdir}/zarr.json: sample unreadable ({type(e).__name__})")
            continue
        for name in m["schema"]:
            if name not in rec.get("sha256", {}):
                out.append(f"{gdir}/{name}: field of the schema missing from the manifest")
        for name, want in sorted(rec.get("sha256", {}).items()):
            n_arrays += 1
            try:
                a = g[name][...]
            except Exception as e:  # noqa: BLE001
                out.append(f"{gdir}/{name}: unreadable ({type(e).__name__})")
                continue
            if S.array_sha256(a) != want:
                out.append(f"{gdir}/{name}: sha256 mismatch")
            elif a.dtype.kind in "fc" and a.size and not np.isfinite(a).any():
                out.append(f"{gdir}/{name}: every value is NaN or infinite")
    return out, n_arrays


def _fingerprint(root: Path, m: dict[str, Any]) -> list[str]:
    fp = m.get("fingerprint", {})
    if not fp:
        return []
    try:
        ref = {sid: r["sketch"] for sid, r in m["samples"].items()}
        ds = S.Dataset(root, m)
        diff = F.first_difference(ds.sketch(from_data=True), ref, m.get("regen_rtol", F.MIN_RTOL),
                                   F.unit_groups(m))
        if diff is not None:
            return [f"{S.DATA}: data leave the fingerprint's tolerance ({diff})"]
        if fp.get("format") == F.FORMAT and F.fingerprint(m, ref, fp.get("anchors")) != fp.get("value"):
            return [f"{S.MANIFEST}: fingerprint does not match the sketch it lists"]
    except Exception as e:  # noqa: BLE001
        return [f"{S.MANIFEST}: fingerprint not checkable ({type(e).__name__}: {e})"]
    return []


def verify_dataset(path: str | Path) -> tuple[list[str], dict[str, Any]]:
    """Every problem (one line each, file first) and a summary (arrays, files, samples checked)."""
    root = Path(path)
    if not root.is_dir():
        return [f"{root}: not a folder"], {}
    m, problems = _manifest(root)
    if m is None:
        return problems, {}
    problems += _plan(root, m) + _consistency(m) + _files(root, m)
    arr, n_arrays = _arrays(root, m)
    problems += arr
    if not any(p.startswith(S.DATA) for p in problems):
        problems += _fingerprint(root, m)
    summary = {"arrays": n_arrays, "files": len(m.get("files", {})), "samples": len(m["samples"]),
               "sealed": "seal" in m}
    return problems, summary
