"""The trivial registration baseline: zero displacement (the moving image taken as already aligned).

Every registration metric of this row is the "before registration" value: EPE = the true displacement's
magnitude, Dice and HD95 of the unwarped moving labels, zero Jacobian spread and no folding.
"""

from __future__ import annotations

import numpy as np

from phantombench.solvers.base import Solver


class Identity(Solver):
    name = "identity"
    version = "1.0.0"
    tasks = ("registration",)
    time_budget_s = 10.0
    defaults: dict = {}

    def solve(self, observation):
        grid = np.shape(observation["fixed"])
        return {"disp": np.zeros((len(grid),) + grid, dtype=np.float64)}
