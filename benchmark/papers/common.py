"""What every paper reproduction shares: the :class:`Paper` object, datasets, statistics and report helpers.

* :class:`Paper` -- what ``phantombench reproduce`` needs of a paper: name, budgets, ``run`` and ``render``;
* :func:`ensure_dataset` / :func:`ensure_official` -- make or reuse a dataset (one folder convention:
  ``<data>/<generator>/<preset>/<name>``, ``name`` = ``<paper>-<role>-n<n>-s<seed>``), and :func:`whole`, a
  view of a dataset with one more split, ``all``, so the evaluation harness scores every sample;
* :func:`stats` (mean, sample std and count of the finite values), :func:`pm` ("mean ± std" cells);
* :func:`write_json` (numbers made JSON-safe by :func:`clean`) and :func:`save_png` (palette PNG);
* :func:`render_template` -- a report's Markdown from its jinja2 template (``templates/paper-*.md.j2``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

ALL = "all"   # the split of :func:`whole`: every sample of the dataset


@dataclass(frozen=True)
class Paper:
    """A reproducible paper: ``run(budget, repeats, data_root, out_dir, log, **options) -> report path`` writes
    ``<out_dir>/<name>.md`` (and its JSON and figures); ``render(results) -> Markdown`` re-renders the report
    from the results dict stored beside it."""

    name: str
    title: str
    budgets: Mapping[str, Any]
    run: Callable[..., Path]
    render: Callable[[dict[str, Any]], str]

    def check_budget(self, budget: str) -> None:
        if budget not in self.budgets:
            raise ValueError(f"--budget must be one of {', '.join(self.budgets)} (got {budget!r})")


# ------------------------------------------------------------------------------------------ datasets
def dataset_name(paper: str, role: str, n: int, seed: int) -> str:
    """The folder name of a paper's own dataset: ``<paper>-<role>-n<n>-s<seed>``."""
    return f"{paper}-{role}-n{n}-s{seed}"


def ensure_dataset(generator: str, preset: str, n: int, seed: int, name: str, data_root: Path,
                   log: Callable[[str], Any], overrides: dict[str, Any] | None = None, workers: int | None = None):
    """Open ``<data_root>/<generator>/<preset>/<name>``, generating or finishing it first if needed (a finished
    folder made with another configuration is an error, not silently reused)."""
    from phantombench import runner
    from phantombench.store import open_dataset

    folder = Path(data_root) / generator / preset / name
    if (folder / "manifest.json").exists():
        log(f"reusing {folder}")
    else:
        log(f"generating {n} {preset} phantoms (seed {seed}) into {folder} ...")
    runner.generate(generator, preset, n, folder, seed=seed, overrides=overrides or {}, workers=workers)
    return open_dataset(folder)


def ensure_official(task: str, preset: str, data_root: Path, log: Callable[[str], Any]):
    """Open the official dataset ``preset`` of ``task`` under ``data_root``, generating it first if needed."""
    from phantombench.official import ensure, official

    od = official(task, [preset])[0]
    log(f"dataset {od.key} under {data_root}")
    return ensure(od, data_root, workers=0)


def whole(ds):
    """The dataset with one more split, :data:`ALL` (every sample): a paper scores every sample of its test
    sets, the harness scores a split."""
    man = {**ds.manifest, "splits": {**ds.manifest["splits"], ALL: list(ds.ids)}}
    return replace(ds, manifest=man)


# ------------------------------------------------------------------------------------------ statistics
def stats(values: Iterable[float | None]) -> dict[str, Any]:
    """Mean, sample standard deviation (None below two values) and count of the finite values."""
    a = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if a.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else None, "n": int(a.size)}


def pm(st: Mapping[str, Any] | None, fmt: str = "{:.1f}", sep: str = " ± ", missing: str = "failed",
       no_std: str | None = None) -> str:
    """A ``mean ± std`` cell of :func:`stats` output: ``missing`` without a mean; without a std the mean alone,
    or ``mean ± no_std`` when ``no_std`` is given."""
    if not st or st.get("mean") is None:
        return missing
    s = fmt.format(st["mean"])
    if st.get("std") is not None:
        return s + sep + fmt.format(st["std"])
    return s if no_std is None else s + sep + no_std


# ------------------------------------------------------------------------------------------ output
def clean(o: Any) -> Any:
    """JSON-safe copy: string keys, numpy scalars as Python numbers, NaN and inf as None."""
    if isinstance(o, dict):
        return {str(k): clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, (np.floating, float)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON (see :func:`clean`; arrays and paths through the store's ``json_default``)."""
    from phantombench.store import json_default

    Path(path).write_text(json.dumps(clean(obj), indent=1, default=json_default) + "\n")


def save_png(fig, path: Path, dpi: int) -> None:
    """Save a figure as a 256-colour palette PNG (a third of the RGBA size; the same input gives the same bytes)."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    buf.seek(0)
    img = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    img.save(path, format="PNG", optimize=True)


def use_agg():
    """matplotlib.pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@functools.cache
def _templates():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("phantombench", "templates"), trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["f"] = format          # {{ x|f(".3f") }}: Python's format spec
    env.filters["pm"] = pm
    return env


def render_template(name: str, **context: Any) -> str:
    """Render the report template ``name`` (in the package's ``templates`` folder) with ``context``."""
    return _templates().get_template(name).render(**context)


def write_learned_report(results: dict[str, Any], out_dir: Path, name: str, render: Callable[[dict], str]) -> Path:
    """Stamp a learned-registration reproduction (hardware, commit, packages, date), write ``<name>.json`` and the
    Markdown rendered from that JSON (so the report is exactly its JSON's rendering)."""
    import time

    from phantombench.provenance import git_commit, hardware, package_versions

    out_dir.mkdir(parents=True, exist_ok=True)
    results["hardware"] = {**hardware(), "device": results["device"], "torch_threads": results["threads"]}
    results["git_commit"] = git_commit()
    results["packages"] = {k: v for k, v in package_versions().items()
                           if k in ("phantombench", "torch", "numpy", "monai")}
    results["created"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    write_json(out_dir / f"{name}.json", results)
    md = out_dir / f"{name}.md"
    md.write_text(render(json.loads((out_dir / f"{name}.json").read_text())))
    return md
