"""Trivial baseline for every task: one constant value per prediction field (a homogeneous background).

The constant is estimated from the observation where the physics makes that a one-liner, otherwise a
nominal value (overridable):

* ``brain-elasticity``: a homogeneous uniaxial-stress fit. Under a top traction t every horizontal section
  carries mean syy = -t, so a homogeneous plane-stress solid has E = t / mean|eyy| and nu = -mean(exx)/mean(eyy)
  (means over the mask), nu clipped to [0, 0.499].
* ``mre``: |G*| = ``abs_G`` (default 2 kPa, healthy liver) and phi = ``phi`` (default 0.3 rad).
* ``eit``: no conductivity change (dsigma = 0), the difference-imaging null hypothesis.
* ``registration``: zero displacement, of the shape the task declares (``task.prediction_shape``).

Any field can be fixed instead with ``--param value_<field>=<number>``.
"""

from __future__ import annotations

import numpy as np

from phantombench.solvers.base import Solver


class Constant(Solver):
    name = "constant"
    version = "1.0.0"
    tasks = ()
    time_budget_s = 10.0
    defaults = {"abs_G": 2000.0, "phi": 0.3, "value_E": None, "value_nu": None, "value_abs_G": None,
                "value_phi": None, "value_dsigma": None}

    def _shape(self, obs) -> tuple[int, int]:
        return np.shape(obs["mask"])

    def estimate(self, obs) -> dict[str, float]:
        t = self.task.name
        if t == "brain-elasticity":
            m = np.asarray(obs["mask"], bool)
            exx, eyy = np.asarray(obs["exx"])[m], np.asarray(obs["eyy"])[m]
            mean_eyy = float(np.mean(eyy))
            E = float(obs["traction"]) / max(abs(mean_eyy), 1e-12)
            nu = float(np.clip(-np.mean(exx) / mean_eyy, 0.0, 0.499)) if mean_eyy != 0 else 0.3
            return {"E": E, "nu": nu}
        if t == "mre":
            return {"abs_G": float(self.params["abs_G"]), "phi": float(self.params["phi"])}
        if t in ("eit", "registration"):
            return {p.name: 0.0 for p in self.task.predictions}
        return {p.name: 1.0 for p in self.task.predictions}

    def solve(self, observation):
        values = self.estimate(observation)
        shape = self._shape(observation)
        out = {}
        for p in self.task.predictions:
            v = self.params.get(f"value_{p.name}")
            shp = self.task.prediction_shape(p.name, observation) if hasattr(self.task, "prediction_shape") else shape
            out[p.name] = np.full(shp, values[p.name] if v is None else float(v), dtype=np.float64)
        return out
