"""The official datasets of each task: the one place that says what the leaderboard is scored on.

``make data`` (``phantombench official --generate``) and ``phantombench submit`` regenerate them from these
definitions (generator, preset, n, seed, overrides), into ``<root>/<generator>/<preset>/<version>``.

Identity. Each official dataset has a *pinned reference* in ``references.json`` (beside this module): the
fingerprint of the maintainers' generation and the anchors of its grid (:mod:`phantombench.fingerprint`).
A regeneration anywhere is the official dataset when its fingerprint on those anchors equals the pinned
one -- true whenever it agrees within the dataset's tolerance, whatever the CPU -- and is refused otherwise.
Maintainers pin with ``phantombench official --pin`` after changing a generator or a definition.

Tiers. ``public`` datasets have public seeds: anyone regenerates them, and results are self-reported (a
solver could regenerate a test case from its seed). ``verified`` datasets take their seed from a secret the
maintainers keep outside the repository (the environment variable ``PHANTOMBENCH_VERIFIED_SECRET`` of their
CI): only its fingerprint and anchors are committed, which reveal nothing usable about the data.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path("data")


@dataclass(frozen=True)
class OfficialDataset:
    task: str
    generator: str
    preset: str
    n: int
    seed: int = 0
    version: str = "v1"
    overrides: dict[str, Any] = field(default_factory=dict)
    split: str = "test"
    tier: str = "public"         # or "verified": seeded from the maintainers' secret (see the module docstring)
    purpose: str = "benchmark"   # or "verification": an exact check of the solvers (e.g. a homogeneous phantom,
    #                              where a nominal constant can be right), not a ranking
    splits: dict[str, int] | None = None   # counts per split in index order (default: the generator's rule)

    @property
    def key(self) -> str:
        return f"{self.generator}/{self.preset}/{self.version}"

    def folder(self, root: str | Path = DEFAULT_ROOT) -> Path:
        return Path(root) / self.generator / self.preset / self.version

    def plan_matches(self, manifest: dict[str, Any]) -> str | None:
        """None if ``manifest`` is this dataset; otherwise what differs."""
        from phantombench.runner import resolve

        from phantombench.store import split_indices

        gen, cfg, plan = resolve(self.generator, self.preset, self.overrides, self.n, seed_for(self), self.splits)
        got = {"generator": manifest.get("generator", {}).get("name"), "preset": manifest.get("preset"),
               "n": manifest.get("n"), "seed": manifest.get("seed"), "config": manifest.get("config"),
               "splits": manifest.get("counts")}
        want = {"generator": plan["generator"], "preset": plan["preset"], "n": plan["n"], "seed": plan["seed"],
                "config": json.loads(json.dumps(plan["config"])),
                "splits": {k: len(v) for k, v in split_indices(gen, cfg, plan).items()}}
        diff = [k for k in want if got[k] != want[k]]
        return ", ".join(diff) if diff else None


# Each task's tuple is registered in the entry-point group ``phantombench.official`` under the task's name.
BRAIN_OFFICIAL: tuple[OfficialDataset, ...] = (
    OfficialDataset("brain-elasticity", "brain-slice", "elunet-soft", n=1),
    OfficialDataset("brain-elasticity", "brain-slice", "elunet-stiff", n=1),
    OfficialDataset("brain-elasticity", "brain-slice", "elunet-noisy", n=1),
    # random family: 16 train / 2 val as before, and 50 test cases so that intervals can separate solvers
    OfficialDataset("brain-elasticity", "brain-slice", "random", n=68, version="v2",
                    splits={"train": 16, "val": 2, "test": 50}),
)
# liver MRE (generator 2.0: plane-strain waves that reach the liver, MR phase noise in metres): the exact
# plane-wave check, the single-frequency DIME-style phantom (50 test cases; learned solvers may train on generated
# phantoms, so the official train split is small), the 7-frequency MDEV one (about 65 s per sample: 4 test cases)
MRE_OFFICIAL: tuple[OfficialDataset, ...] = (
    OfficialDataset("mre", "liver-mre", "homogeneous", n=1, version="v2", purpose="verification"),
    OfficialDataset("mre", "liver-mre", "dime-liver", n=74, version="v2",
                    splits={"train": 20, "val": 4, "test": 50}),
    OfficialDataset("mre", "liver-mre", "mdev-liver", n=5, version="v2", splits={"val": 1, "test": 4}),
)
# EIT: the three phantom families of P3 (one circle, two circles, circle + triangle), 20 dB SNR; 80 train,
# 10 val, 50 test phantoms each (learned solvers may train on more: generated data, see phantombench.submit)
_EIT_SPLITS = {"train": 80, "val": 10, "test": 50}
EIT_OFFICIAL: tuple[OfficialDataset, ...] = (
    OfficialDataset("eit", "eit", "cnn-pinn-case1", n=140, version="v2", splits=_EIT_SPLITS),
    OfficialDataset("eit", "eit", "cnn-pinn-case2", n=140, version="v2", splits=_EIT_SPLITS),
    OfficialDataset("eit", "eit", "cnn-pinn-case3", n=140, version="v2", splits=_EIT_SPLITS),
)


def _registered(task: str) -> tuple[OfficialDataset, ...]:
    """The official datasets registered for ``task`` (empty if none); each must belong to that task."""
    from phantombench import registry

    if task not in registry.names("official"):
        return ()
    ods = tuple(registry.load("official", task))
    bad = [o for o in ods if not isinstance(o, OfficialDataset) or o.task != task]
    if bad:
        raise ValueError(f"entry point {task!r} of phantombench.official holds {bad[0]!r}, "
                         f"not an OfficialDataset of task {task!r}")
    return ods


class _Official(Mapping):
    """Read-only view: task -> tuple of OfficialDataset, from the ``phantombench.official`` entry points."""

    def __getitem__(self, task: str) -> tuple[OfficialDataset, ...]:
        ods = _registered(task)
        if not ods:
            raise KeyError(task)
        return ods

    def __iter__(self):
        """Tasks in their order (``Task.order``), then any other registered names."""
        from phantombench import registry
        from phantombench.tasks import task_names

        have = registry.names("official")
        return iter([t for t in task_names() if t in have] + sorted(set(have) - set(task_names())))

    def __len__(self) -> int:
        from phantombench import registry

        return len(registry.names("official"))


OFFICIAL: Mapping[str, tuple[OfficialDataset, ...]] = _Official()


SECRET_ENV = "PHANTOMBENCH_VERIFIED_SECRET"
REFERENCES = Path(__file__).with_name("references.json")


class OfficialError(ValueError):
    """An official dataset that cannot be used as asked (one line)."""


def seed_for(od: OfficialDataset) -> int:
    """The dataset seed: the public one, or for the verified tier one derived from the maintainers' secret."""
    if od.tier == "public":
        return od.seed
    if od.tier != "verified":
        raise OfficialError(f"{od.key}: unknown tier {od.tier!r} (public or verified)")
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise OfficialError(f"{od.key} is a verified dataset: its seed comes from the maintainers' secret "
                            f"({SECRET_ENV}); submit to the public tier and ask for verification (SUBMITTING.md)")
    digest = hashlib.sha256(f"phantombench-verified|{secret}|{od.key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def references(path: Path = REFERENCES) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        refs = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise OfficialError(f"{path}: unreadable pinned references ({type(e).__name__})") from None
    return refs if isinstance(refs, dict) else {}


def official_fingerprint(od: OfficialDataset, ds, refs: dict[str, Any] | None = None) -> str:
    """The pinned fingerprint if ``ds`` agrees with the pinned reference of ``od``; else one clear error."""
    from phantombench.fingerprint import FingerprintError, fingerprint, sample_digests

    ref = (references() if refs is None else refs).get(od.key)
    if ref is None:
        raise OfficialError(f"{od.key} has no pinned reference; a maintainer pins it with `phantombench official "
                            "--pin` before it can be scored")
    sketch = ds.sketch(from_data=True)
    try:
        got = fingerprint(ds.manifest, sketch, ref["anchors"])
    except FingerprintError as e:
        raise OfficialError(f"{ds.path} does not match the official {od.key}: {e}") from None
    if got != ref["fingerprint"]:
        mine = sample_digests(ds.manifest, sketch, ref["anchors"])
        bad = sorted(sid for sid, h in mine.items() if ref.get("samples", {}).get(sid) != h)
        where = f"sample {bad[0]} (and {len(bad) - 1} more)" if bad else "its definition"
        raise OfficialError(f"{ds.path} is not the official {od.key}: {where} differs beyond the tolerance "
                            f"(fingerprint {got[:8]} vs pinned {ref['fingerprint'][:8]}); regenerate it")
    return got


def pin(ods: list[OfficialDataset], root: str | Path = DEFAULT_ROOT, path: Path = REFERENCES) -> dict[str, Any]:
    """Pin the references of ``ods`` from their datasets under ``root`` (maintainers only)."""
    from phantombench.fingerprint import anchors, fingerprint, sample_digests, unit_groups
    from phantombench.provenance import provenance
    from phantombench.store import _write_json_atomic, open_dataset

    refs = references(path)
    for od in ods:
        ds = open_dataset(od.folder(root))
        if od.plan_matches(ds.manifest) is not None:
            raise OfficialError(f"{ds.path} is not {od.key}: {od.plan_matches(ds.manifest)}")
        sk, rtol = ds.sketch(from_data=True), ds.manifest["regen_rtol"]
        a = anchors(sk, rtol, unit_groups(ds.manifest))
        prov = provenance()
        refs[od.key] = {"fingerprint": fingerprint(ds.manifest, sk, a), "tier": od.tier, "anchors": a,
                        "samples": sample_digests(ds.manifest, sk, a),
                        "content_hash": ds.manifest["content_hash"] if od.tier == "public" else None,
                        "pinned_on": {"cpu": prov["hardware"].get("cpu"), "commit": prov.get("git_commit"),
                                      "date": prov["created"][:10]}}
    _write_json_atomic(path, dict(sorted(refs.items())))
    return refs


def official(task: str, presets: list[str] | None = None) -> list[OfficialDataset]:
    from phantombench.tasks import get_task

    get_task(task)
    ods = list(_registered(task))
    if not os.environ.get(SECRET_ENV):   # verified datasets exist only where the maintainers' secret is
        ods = [o for o in ods if o.tier == "public"]
    if not ods:
        raise ValueError(f"task {task!r} has no official dataset yet")
    return with_presets(ods, presets, f"{task} ")


def with_presets(ods: list[OfficialDataset], presets: list[str] | None, scope: str = "") -> list[OfficialDataset]:
    """The datasets of ``ods`` whose preset is one of ``presets`` (all when none); ValueError naming the first
    preset no dataset has (``scope`` words the message, e.g. ``"mre "``)."""
    if not presets:
        return ods
    unknown = sorted(set(presets) - {o.preset for o in ods})
    if unknown:
        raise ValueError(f"no official {scope}dataset with preset {', '.join(unknown)}; "
                         f"official: {', '.join(o.preset for o in ods)}")
    return [o for o in ods if o.preset in presets]


def all_official() -> list[OfficialDataset]:
    """Every official dataset (the verified ones only where the maintainers' secret is set)."""
    secret = bool(os.environ.get(SECRET_ENV))
    return [o for ods in OFFICIAL.values() for o in ods if secret or o.tier == "public"]


def status(od: OfficialDataset, root: str | Path = DEFAULT_ROOT) -> str:
    """'ok', 'missing', 'incomplete' or 'different: <what>'."""
    folder = od.folder(root)
    if not (folder / "manifest.json").exists():
        return "incomplete" if (folder / "plan.json").exists() else "missing"
    diff = od.plan_matches(json.loads((folder / "manifest.json").read_text()))
    return "ok" if diff is None else f"different: {diff}"


def ensure(od: OfficialDataset, root: str | Path = DEFAULT_ROOT, workers: int | None = None,
           progress: Callable[[int, int], None] | None = None):
    """Open the official dataset, generating (or finishing) it first if needed."""
    from phantombench import runner
    from phantombench.store import open_dataset

    st = status(od, root)
    if st.startswith("different"):
        raise ValueError(f"{od.folder(root)} is not the official {od.key} ({st}); move it away or use another root")
    if st != "ok":
        runner.generate(od.generator, od.preset, od.n, od.folder(root), seed_for(od), od.overrides, workers,
                        progress=progress, splits=od.splits)
    return open_dataset(od.folder(root))
