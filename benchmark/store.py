"""The versioned dataset store: a folder holding a zarr v3 store, ``manifest.json`` and a card.

Layout of a dataset folder::

    plan.json        what is being generated (generator, preset, resolved config, seed, n); written first
    data.zarr/       zarr v3 root group; one sub-group per finished sample, named by its id (``000007``)
    .partial/        samples being written (private; a sample becomes visible by one atomic rename)
    manifest.json    written last, atomically, once every sample is present
    README.md        the dataset card, rendered from the manifest

Atomicity: a sample is written into ``.partial/<id>.<pid>.<rand>`` and renamed into ``data.zarr/<id>``
only once complete (rename of a directory is atomic on POSIX). A killed run leaves at worst stale
partials, which the next run removes; samples already renamed are kept and skipped. Generation is
deterministic per sample, so a sample finished twice (an orphaned worker of a killed run) is
identical and the loser of the rename race simply discards its copy.

Hashes: sha256 over (dtype, shape, C-order bytes) of every array, recorded in the sample's zarr
attributes at write time and collected into the manifest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from phantombench.fingerprint import FORMAT as FINGERPRINT_FORMAT
from phantombench.fingerprint import anchors, fingerprint, plan_digest, sample_sketch, unit_groups
from phantombench.generators.base import Generator, Sample

PLAN = "plan.json"
MANIFEST = "manifest.json"
CARD = "README.md"
DATA = "data.zarr"
PARTIAL = ".partial"
LOCK = ".lock"


REQUIRED_KEYS = ("name", "version", "generator", "preset", "config", "seed", "n", "splits", "schema",
                 "content_hash", "samples")


WRITER_WAIT_S = float(os.environ.get("PHANTOMBENCH_WRITER_WAIT", 1800))


class StoreError(RuntimeError):
    """A dataset folder that cannot be used as asked (wrong content, locked, incomplete...)."""


def sample_id(index: int) -> str:
    return f"{index:06d}"


def array_sha256(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def content_hash(sample_hashes: dict[str, dict[str, str]]) -> str:
    """One hash for the whole dataset: sha256 over the sorted per-array hashes."""
    h = hashlib.sha256()
    for sid in sorted(sample_hashes):
        for name in sorted(sample_hashes[sid]):
            h.update(f"{sid}/{name}={sample_hashes[sid][name]}\n".encode())
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename: a reader sees the old file or the new one, never a part
    (the one atomic write of manifests, cards, records, board pages and caches)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n").encode())


def _write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, text.encode())


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays and paths (shared by manifests, records and
    reproduction reports)."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------------------- writing
def write_sample(root: Path, index: int, sample: Sample, meta: dict[str, Any]) -> dict[str, Any]:
    """Write one sample atomically; return its record (hashes, attrs, meta). Safe to race."""
    root = Path(root)
    sid = sample_id(index)
    final = root / DATA / sid
    partial = root / PARTIAL / f"{sid}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    partial.parent.mkdir(parents=True, exist_ok=True)
    hashes = {name: array_sha256(arr) for name, arr in sample.fields.items()}
    attrs = json.loads(json.dumps(sample.attrs, default=json_default))
    record = {"index": index, "id": sid, "sha256": hashes, "attrs": sample.attrs,
              "sketch": sample_sketch(sample.fields, attrs), **meta}
    try:
        g = zarr.open_group(str(partial), mode="w", zarr_format=3)
        for name, arr in sample.fields.items():
            arr = np.ascontiguousarray(arr)
            g.create_array(name=name, data=arr, chunks=arr.shape if arr.ndim else None)
        g.attrs.update(json.loads(json.dumps(record, default=json_default)))
        try:
            os.rename(partial, final)
        except OSError:
            if not final.exists():
                raise
            shutil.rmtree(partial, ignore_errors=True)  # identical sample already there
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return record


def clean_partials(root: Path) -> int:
    """Remove partial samples whose writer process is gone; return how many were removed."""
    pdir = Path(root) / PARTIAL
    removed = 0
    if not pdir.exists():
        return 0
    for p in pdir.iterdir():
        parts = p.name.split(".")
        pid = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else -1
        if pid < 0 or not _pid_alive(pid) or pid == os.getpid():
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
    return removed


def finished_ids(root: Path) -> set[str]:
    d = Path(root) / DATA
    if not d.exists():
        return set()
    return {p.name for p in d.iterdir() if p.is_dir() and (p / "zarr.json").exists()}


def lock_waiting(fd: int, timeout: float) -> bool:
    """Take an exclusive ``flock`` on ``fd``, polling up to ``timeout`` s; False if another holder kept it."""
    import time

    limit = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > limit:
                return False
            time.sleep(0.2)


@contextlib.contextmanager
def writer_lock(root: Path, wait: float | None = None) -> Iterator[None]:
    """One writer per dataset folder; the OS drops the lock if the process dies (kill -9 included). A second
    writer (e.g. a concurrent submit generating the same official dataset) waits up to ``wait`` s (default
    ``PHANTOMBENCH_WRITER_WAIT``, 1800) and then finds the dataset finished."""
    root.mkdir(parents=True, exist_ok=True)
    fh = open(root / LOCK, "w")
    wait = WRITER_WAIT_S if wait is None else wait
    if not lock_waiting(fh.fileno(), wait):
        fh.close()
        raise StoreError(f"{root} is being written by another process (waited {wait:g} s); try again when it "
                         "has finished")
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def prepare(root: Path, plan: dict[str, Any]) -> bool:
    """Create the folder for ``plan`` or check that an existing one holds the same plan.

    Returns True if the dataset is already complete.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise StoreError(f"{root} exists and is not a folder")
    existing = root / PLAN
    if existing.exists():
        try:
            old = json.loads(existing.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise StoreError(f"{existing}: unreadable plan; delete the folder and generate again") from None
        if not isinstance(old, dict):
            raise StoreError(f"{existing}: not a plan; delete the folder and generate again")
        if old != json.loads(json.dumps(plan, default=json_default)):
            diff = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
            raise StoreError(f"{root} holds a different dataset (differs in: {', '.join(diff)}); "
                             "choose another --out or delete it")
        done = (root / MANIFEST).exists()
        if not done and not (root / DATA / "zarr.json").exists():  # killed between plan.json and data.zarr
            zarr.open_group(str(root / DATA), mode="a", zarr_format=3)
        return done
    if root.exists() and any(p.name not in (LOCK,) for p in root.iterdir()):
        raise StoreError(f"{root} is not empty and is not a phantombench dataset; choose another --out")
    root.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(root / PLAN, plan)  # first: a folder with a plan resumes, whatever else a kill left
    zarr.open_group(str(root / DATA), mode="w", zarr_format=3)
    return False


def collect_records(root: Path, n: int) -> dict[str, dict[str, Any]]:
    recs = {}
    for i in range(n):
        sid = sample_id(i)
        g = zarr.open_group(str(Path(root) / DATA / sid), mode="r")
        recs[sid] = dict(g.attrs)
    return recs


def finalise(root: Path, gen: Generator, cfg, plan: dict[str, Any], provenance: dict[str, Any]) -> dict:
    """Write manifest.json (last) and the card once every sample exists."""
    from phantombench.card import render_card

    root = Path(root)
    n = plan["n"]
    missing = [sample_id(i) for i in range(n) if sample_id(i) not in finished_ids(root)]
    if missing:
        raise StoreError(f"cannot finalise {root}: {len(missing)} samples missing (first {missing[0]})")
    recs = collect_records(root, n)
    hashes = {sid: r["sha256"] for sid, r in recs.items()}
    splits = split_indices(gen, cfg, plan)
    manifest = {
        "format": "phantombench-dataset/1",
        "name": f"{plan['generator']}/{plan['preset']}",
        "version": plan["generator_version"],
        "generator": {"name": plan["generator"], "version": plan["generator_version"]},
        "preset": plan["preset"],
        "config": plan["config"],
        "seed": plan["seed"],
        "seeding": "sample i uses numpy.random.SeedSequence(entropy=seed, spawn_key=(i,))",
        "n": n,
        "splits": {k: [sample_id(i) for i in v] for k, v in splits.items()},
        "counts": {k: len(v) for k, v in splits.items()},
        "schema": {k: v.as_dict() for k, v in gen.schema(cfg).items()},
        "regen_rtol": gen.regen_rtol,
        "content_hash": content_hash(hashes),
        "samples": {sid: {k: r[k] for k in r if k not in ("id",)} for sid, r in recs.items()},
        "provenance": provenance,
    }
    for sid, r in manifest["samples"].items():
        if "sketch" not in r:   # a sample written before sketches existed (resumed run)
            r["sketch"] = sample_sketch(read_sample(root, sid), r.get("attrs"))
    sketch = {sid: r["sketch"] for sid, r in manifest["samples"].items()}
    manifest["fingerprint"] = {"format": FINGERPRINT_FORMAT, "value": fingerprint(manifest, sketch),
                               "plan_digest": plan_digest(manifest),
                               "anchors": anchors(sketch, manifest["regen_rtol"], unit_groups(manifest)),
                               "method": "anchored sketch grid (phantombench.fingerprint)"}
    _write_text_atomic(root / CARD, render_card(manifest, gen.card(cfg)))
    manifest["files"] = file_inventory(root)
    manifest["seal"] = manifest_seal(manifest)
    _write_json_atomic(root / MANIFEST, manifest)
    shutil.rmtree(root / PARTIAL, ignore_errors=True)
    return manifest


def split_indices(gen: Generator, cfg, plan: dict[str, Any]) -> dict[str, list[int]]:
    """The plan's split counts (consecutive index ranges, in the given order), else the generator's own rule."""
    counts = plan.get("split_counts")
    if counts is None:
        return gen.splits(cfg, plan["n"])
    out, start = {}, 0
    for name, k in counts.items():
        out[name] = list(range(start, start + k))
        start += k
    return {k: v for k, v in out.items() if v}


def manifest_seal(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON without its ``seal``: an edit by hand shows up in ``verify``."""
    body = {k: v for k, v in manifest.items() if k != "seal"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=json_default).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dataset_files(root: Path) -> list[str]:
    """Every file of a dataset folder that ``verify`` vouches for (relative paths, sorted)."""
    root = Path(root)
    skip = {MANIFEST, LOCK}
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in skip and not rel.startswith(PARTIAL) and not p.name.startswith("."):
            out.append(rel)
    return out


def file_inventory(root: Path) -> dict[str, str]:
    """sha256 of every file of the dataset but the manifest (recorded in the manifest at finalise)."""
    return {rel: file_sha256(Path(root) / rel) for rel in dataset_files(root)}


def read_sample(root: Path, sid: str) -> dict[str, np.ndarray]:
    g = zarr.open_group(str(Path(root) / DATA / sid), mode="r")
    return {name: g[name][...] for name in g.array_keys()}


def sketch_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "phantombench" / "sketch"


def data_sketch(ds: Dataset) -> dict[str, dict[str, list[float]]]:
    """Per-sample sketches recomputed from the arrays, never from the manifest.

    Decoding every array of a large dataset through zarr takes seconds (7 s for 74 liver-MRE samples) and the
    official check runs on every submission, so the result is memoised under ``~/.cache/phantombench/sketch``
    keyed by the sha256 of every file of the dataset (hashing the raw bytes is about 5x faster than decoding
    them) together with the sample ids and attributes the sketch reads: the sketch is a deterministic function
    of exactly these, so a changed byte anywhere gives a new key and a fresh computation. The manifest's own
    sketches are never trusted here."""
    samples = ds.manifest["samples"]
    what = {"inventory": file_inventory(ds.path), "attrs": {sid: rec.get("attrs") for sid, rec in samples.items()},
            "format": FINGERPRINT_FORMAT}
    key = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()
    path = sketch_cache_dir() / f"{key}.json"
    with contextlib.suppress(OSError, ValueError):
        cached = json.loads(path.read_text())
        if isinstance(cached, dict) and set(cached) == set(samples):
            return cached
    out = {sid: sample_sketch(read_sample(ds.path, sid), rec.get("attrs")) for sid, rec in samples.items()}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(out))
        os.replace(tmp, path)
    return out


# ----------------------------------------------------------------------------------------- reading
@dataclass
class Dataset:
    """A finished dataset: ``ds.manifest``, ``len(ds)``, ``ds[i]`` -> dict of numpy arrays."""

    path: Path
    manifest: dict[str, Any]
    fields: list[str] | None = None   # a select()ed view reads only these (None: every schema field)

    def __len__(self) -> int:
        return int(self.manifest["n"])

    @property
    def ids(self) -> list[str]:
        return [sample_id(i) for i in range(len(self))]

    def group(self, i: int) -> zarr.Group:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range (dataset has {len(self)})")
        return zarr.open_group(str(self.path / DATA / sample_id(i % len(self))), mode="r")

    def __getitem__(self, i):
        """``ds[i]`` -> dict of arrays; ``ds[i, ["exx", "eyy"]]`` reads only those fields; ``ds[a:b]``,
        ``ds[[i, j]]`` or ``ds[a:b, ["exx"]]`` -> a list of such dicts (each sample read now)."""
        i, fields = i if isinstance(i, tuple) else (i, None)
        if isinstance(i, slice):
            return [self.read(j, fields) for j in range(len(self))[i]]
        if isinstance(i, list | np.ndarray):
            return [self.read(int(j), fields) for j in i]
        return self.read(i, fields)

    def read(self, i: int, fields: list[str] | tuple[str, ...] | str | None = None) -> dict[str, np.ndarray]:
        """Sample ``i``: every schema field, or only ``fields`` (only those arrays are opened and decoded)."""
        names = self.fields if fields is None else [fields] if isinstance(fields, str) else list(fields)
        schema = self.manifest["schema"]
        unknown = [f for f in names or () if f not in schema]
        if unknown:
            raise KeyError(f"no field(s) {', '.join(unknown)} in {self.path.name}; the schema has "
                           f"{', '.join(schema)}")
        g = self.group(int(i))
        return {name: g[name][...] for name in (names or schema) if names or name in g}

    def select(self, fields: list[str] | tuple[str, ...]) -> Dataset:
        """The same dataset reading only ``fields`` (``ds.select(fields=["exx"])[0]`` -> ``{"exx": ...}``)."""
        unknown = [f for f in fields if f not in self.manifest["schema"]]
        if unknown:
            raise KeyError(f"no field(s) {', '.join(unknown)} in {self.path.name}; the schema has "
                           f"{', '.join(self.manifest['schema'])}")
        return Dataset(self.path, self.manifest, list(fields))

    def attrs(self, i: int) -> dict[str, Any]:
        return self.manifest["samples"][sample_id(i % len(self))]["attrs"]

    def split(self, name: str) -> list[int]:
        if name not in self.manifest["splits"]:
            raise KeyError(f"no split {name!r}; this dataset has {', '.join(self.manifest['splits'])}")
        return [int(s) for s in self.manifest["splits"][name]]

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def sketch(self, from_data: bool = False) -> dict[str, dict[str, list[float]]]:
        """Per-sample sketches (:mod:`phantombench.fingerprint`): from the manifest, or recomputed from the arrays
        (``from_data``: memoised on disk, see :func:`data_sketch`)."""
        if from_data:
            return data_sketch(self)
        out = {}
        for sid, rec in self.manifest["samples"].items():
            out[sid] = (rec["sketch"] if "sketch" in rec
                        else sample_sketch(read_sample(self.path, sid), rec.get("attrs")))
        return out

    @property
    def fingerprint(self) -> str:
        """Machine-independent identity (see :mod:`phantombench.fingerprint`)."""
        fp = self.manifest.get("fingerprint", {})
        if fp.get("format") == FINGERPRINT_FORMAT and fp.get("value"):
            return fp["value"]
        return fingerprint(self.manifest, self.sketch())


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Open a finished dataset folder (the one holding manifest.json)."""
    p = Path(path)
    if not p.is_dir():
        raise StoreError(f"{p} is not a folder")
    m = p / MANIFEST
    if not m.exists():
        if (p / PLAN).exists():
            raise StoreError(f"{p} is incomplete (no manifest.json yet); run the same generate again to finish it")
        raise StoreError(f"{p} is not a phantombench dataset (no manifest.json)")
    try:
        manifest = json.loads(m.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreError(f"{m}: unreadable manifest ({type(e).__name__}); run `phantombench verify {p}`") from None
    missing = [k for k in REQUIRED_KEYS if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise StoreError(f"{m}: not a phantombench manifest (missing {', '.join(missing)})")
    return Dataset(p, manifest)


def verify_hashes(ds: Dataset) -> list[str]:
    """Re-hash every array; return 'sample/field: reason' for each problem."""
    problems = []
    for sid, rec in ds.manifest["samples"].items():
        gpath = ds.path / DATA / sid
        if not (gpath / "zarr.json").exists():
            problems.append(f"{sid}: sample missing")
            continue
        try:
            g = zarr.open_group(str(gpath), mode="r")
        except Exception as e:  # noqa: BLE001 - corrupt metadata is a finding, not a crash
            problems.append(f"{sid}: unreadable ({type(e).__name__}: {e})")
            continue
        for name, want in rec["sha256"].items():
            try:
                got = array_sha256(g[name][...])
            except Exception as e:  # noqa: BLE001
                problems.append(f"{sid}/{name}: unreadable ({type(e).__name__})")
                continue
            if got != want:
                problems.append(f"{sid}/{name}: sha256 mismatch")
    return problems
