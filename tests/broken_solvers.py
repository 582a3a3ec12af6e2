"""Deliberately broken solvers for the harness and submit tests (loaded as tests/broken_solvers.py:Class)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from phantombench.solvers.base import Solver
from phantombench.solvers.constant import Constant


class Raises(Solver):
    name = "broken-raises"
    version = "0"
    time_budget_s = 5.0

    def solve(self, observation):
        raise RuntimeError("deliberate failure")


class Hangs(Solver):
    name = "broken-hangs"
    version = "0"
    time_budget_s = 0.5

    def solve(self, observation):
        time.sleep(3600)


class NaNs(Constant):
    name = "broken-nan"
    version = "0"

    def solve(self, observation):
        out = super().solve(observation)
        first = self.task.predictions[0].name
        out[first][3, 4] = np.nan
        return out


class WrongShape(Constant):
    name = "broken-shape"
    version = "0"

    def solve(self, observation):
        return {k: v[:-1] for k, v in super().solve(observation).items()}


class KiloPascal(Constant):
    name = "broken-units"
    version = "0"

    def solve(self, observation):
        out = super().solve(observation)
        out["E"] = out["E"] / 1000.0
        return out


class Chaos(Constant):
    """Misbehaves according to the case (identified by its traction-free strain level): one mode per case."""

    name = "chaos"
    version = "0"
    time_budget_s = 1.0
    MODES = ["ok", "raise", "nan", "shape", "hang", "segfault", "ok", "units", "notdict", "ok"]

    def solve(self, observation):
        # the synthetic dataset's background E is 1000 (1 + 0.1 i): recover the case index i from the strain
        E = float(observation["traction"]) / abs(float(np.mean(observation["eyy"])))
        mode = self.MODES[int(round((E / 1000.0 - 1) * 10))]
        out = super().solve(observation)
        if mode == "raise":
            raise ValueError("chaos says no")
        if mode == "nan":
            out["nu"][0, 0] = np.nan
        if mode == "shape":
            out["E"] = out["E"].T
        if mode == "hang":
            time.sleep(3600)
        if mode == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if mode == "units":
            out["E"] = out["E"] / 1000.0
        if mode == "notdict":
            return [out["E"], out["nu"]]
        return out


class TooGreedy(Solver):
    name = "too-greedy"
    version = "0"
    time_budget_s = 1e6

    def solve(self, observation):
        return {}


class Learner(Constant):
    """Has a fit: remembers the mean training E and nu and predicts them (checks that fit sees targets)."""

    name = "learner"
    version = "0"
    fit_budget_s = 30.0

    def fit(self, train, val):
        Es = [t["E"][obs["mask"]].mean() for obs, t in train]
        nus = [t["nu"][obs["mask"]].mean() for obs, t in train]
        self.E, self.nu = float(np.mean(Es)), float(np.mean(nus))
        self.n_train, self.n_val = len(train), len(val)

    def solve(self, observation):
        shape = np.shape(observation["mask"])
        return {"E": np.full(shape, self.E), "nu": np.full(shape, self.nu + 1e-3 * self.n_train)}
