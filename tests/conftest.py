"""Fixtures shared by the test modules.

* ``fake_brain`` / ``fake_brain10`` -- synthetic brain-elasticity datasets (3 and 10 samples, no FEM, built once
  per session by :func:`tests.bench_helpers.make_brain_dataset`);
* ``broken_solvers`` -- the path of ``tests/broken_solvers.py``, for solver specs such as
  ``f"{broken_solvers}:Raises"`` (the harness loads it as a file, never as an importable module);
* ``generated`` -- ``generated(generator, preset, n=1, seed=0, **overrides) -> Path``: a real dataset made by the
  runner in this process, once per session for each distinct set of arguments, so modules asking for the same
  one share it.

Helpers that tests import are imported explicitly from the ``tests`` package (``from tests.bench_helpers
import ...``; pytest puts the repository root on ``sys.path``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def fake_brain(tmp_path_factory) -> Path:
    from tests.bench_helpers import make_brain_dataset

    return make_brain_dataset(tmp_path_factory.mktemp("fake") / "ds", n=3)


@pytest.fixture(scope="session")
def fake_brain10(tmp_path_factory) -> Path:
    from tests.bench_helpers import make_brain_dataset

    return make_brain_dataset(tmp_path_factory.mktemp("fake10") / "ds", n=10)


@pytest.fixture(scope="session")
def broken_solvers() -> str:
    return str(TESTS / "broken_solvers.py")


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Callable[..., Path]:
    root = tmp_path_factory.mktemp("generated")
    made: dict[str, Path] = {}

    def make(generator: str, preset: str, n: int = 1, seed: int = 0, **overrides) -> Path:
        from phantombench import runner

        key = json.dumps([generator, preset, n, seed, overrides], sort_keys=True, default=str)
        if key not in made:
            out = root / f"{generator}-{preset}-n{n}-s{seed}-{len(made)}"
            runner.generate(generator, preset, n, out, seed=seed, overrides=overrides or None, workers=0)
            made[key] = out
        return made[key]

    return make
