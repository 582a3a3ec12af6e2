"""The official datasets of each task: the one place that says what the leaderboard is scored on.

``make data`` (``phantombench official --generate``) and ``phantombench submit`` regenerate them from these
definitions (generator, preset, n, seed, overrides), into ``<root>/<generator>/<preset>/<version>``.
"""

from __future__ import annotations

import json
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

    @property
    def key(self) -> str:
        return f"{self.generator}/{self.preset}/{self.version}"

    def folder(self, root: str | Path = DEFAULT_ROOT) -> Path:
        return Path(root) / self.generator / self.preset / self.version

    def plan_matches(self, manifest: dict[str, Any]) -> str | None:
        """None if ``manifest`` is this dataset; otherwise what differs."""
        from phantombench.runner import resolve

        _, _, plan = resolve(self.generator, self.preset, self.overrides, self.n, self.seed)
        got = {"generator": manifest.get("generator", {}).get("name"), "preset": manifest.get("preset"),
               "n": manifest.get("n"), "seed": manifest.get("seed"), "config": manifest.get("config")}
        want = {"generator": plan["generator"], "preset": plan["preset"], "n": plan["n"], "seed": plan["seed"],
                "config": json.loads(json.dumps(plan["config"]))}
        diff = [k for k in want if got[k] != want[k]]
        return ", ".join(diff) if diff else None


# Each task's tuple is registered in the entry-point group ``phantombench.official`` under the task's name.
BRAIN_OFFICIAL: tuple[OfficialDataset, ...] = (
    OfficialDataset("brain-elasticity", "brain-slice", "elunet-soft", n=1),
    OfficialDataset("brain-elasticity", "brain-slice", "elunet-stiff", n=1),
    OfficialDataset("brain-elasticity", "brain-slice", "elunet-noisy", n=1),
    OfficialDataset("brain-elasticity", "brain-slice", "random", n=20),
)
# liver MRE: the exact plane-wave check, the single-frequency DIME-style phantom, the 7-frequency MDEV one
MRE_OFFICIAL: tuple[OfficialDataset, ...] = (
    OfficialDataset("mre", "liver-mre", "homogeneous", n=1),
    OfficialDataset("mre", "liver-mre", "dime-liver", n=60),
    OfficialDataset("mre", "liver-mre", "mdev-liver", n=10),
)
# EIT: the three phantom families of P3 (one circle, two circles, circle + triangle), 20 dB SNR
EIT_OFFICIAL: tuple[OfficialDataset, ...] = (
    OfficialDataset("eit", "eit", "cnn-pinn-case1", n=100),
    OfficialDataset("eit", "eit", "cnn-pinn-case2", n=100),
    OfficialDataset("eit", "eit", "cnn-pinn-case3", n=100),
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


def official(task: str, presets: list[str] | None = None) -> list[OfficialDataset]:
    from phantombench.tasks import get_task

    get_task(task)
    ods = list(_registered(task))
    if not ods:
        raise ValueError(f"task {task!r} has no official dataset yet")
    if presets:
        unknown = sorted(set(presets) - {o.preset for o in ods})
        if unknown:
            raise ValueError(f"no official {task} dataset with preset {', '.join(unknown)}; "
                             f"official: {', '.join(o.preset for o in ods)}")
        ods = [o for o in ods if o.preset in presets]
    return ods


def all_official() -> list[OfficialDataset]:
    return [o for ods in OFFICIAL.values() for o in ods]


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
        runner.generate(od.generator, od.preset, od.n, od.folder(root), od.seed, od.overrides, workers,
                        progress=progress)
    return open_dataset(od.folder(root))
