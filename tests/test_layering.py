"""The layering of phantombench is a checked contract: ``lint-imports`` (import-linter) must keep every contract
declared under ``[tool.importlinter]`` in pyproject.toml.

import-linter finds a package's modules by walking its folder, but the installed layout maps four source folders
(``benchmark/``, ``generators/``, ``solvers/``, ``meshes/``) into the one namespace ``phantombench``. The test
therefore builds a mirror -- ``phantombench/`` with a symlink per source file, laid out as the namespace is --
from pyproject's ``package-dir`` table and runs ``lint-imports`` from the repository root with the mirror first
on the Python path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def build_mirror(dest: Path, root: Path = ROOT) -> Path:
    """``dest/phantombench/...``: one symlink per ``.py`` file of each folder that pyproject maps into the
    namespace; returns ``dest``."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items()):
        src = (root / folder).resolve()
        for f in sorted(src.rglob("*.py")):
            if "__pycache__" in f.parts:
                continue
            target = dest.joinpath(*package.split("."), f.relative_to(src))
            if target.exists():      # a mapped sub-folder inside another mapped folder: the more specific wins
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f)
    return dest


def test_mirror_holds_every_module(tmp_path):
    mirror = build_mirror(tmp_path)
    for module in ("__init__.py", "registry.py", "generators/base.py", "solvers/base.py", "meshes/disk.py"):
        assert (mirror / "phantombench" / module).is_file(), module


def test_import_contracts_are_kept(tmp_path):
    mirror = build_mirror(tmp_path / "mirror")
    env = {**os.environ, "PYTHONPATH": str(mirror)}
    p = subprocess.run([str(LINT), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    report = p.stdout + p.stderr
    summary = report[report.find("Contracts"):]          # the verdict per contract, then the broken imports
    assert "Contracts:" in report and "0 broken" in report, summary
    assert p.returncode == 0, summary
