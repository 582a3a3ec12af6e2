"""Forward operators handed to solvers by their task: the acquisition model (generators/operators.py) agrees with
the eit generator's config, and ``task.forward_operator`` builds the operator the observation declares."""

from __future__ import annotations

import mpi4py.MPI  # noqa: F401  (before dolfinx)
import numpy as np
import pytest

from phantombench.generators.eit import EIT, EITConfig
from phantombench.generators.operators import CEMSetup, as_setup, electrodes_from_config, protocol_from_config
from phantombench.tasks import TaskError, get_task


def test_acquisition_fields_and_defaults_match_the_generator_config():
    gen = EITConfig.model_fields
    for name, f in CEMSetup.model_fields.items():
        assert name in gen, name
        assert f.default == gen[name].default, name
        assert f.annotation == gen[name].annotation, name


def test_setup_from_generator_config_keeps_the_other_keys_and_validates():
    cfg = EIT().config("cnn-pinn-case2")
    s = as_setup(cfg)
    assert s.protocol == "trig-p3" and s.model_dump()["phantom"] == "two-circles"
    assert protocol_from_config(cfg).n_measurements == protocol_from_config(cfg.model_dump(mode="json")).n_measurements
    assert electrodes_from_config(s).n == 16
    with pytest.raises(ValueError, match="electrode_angles"):
        CEMSetup(n_electrodes=8, electrode_angles=[0.0, 1.0])


def test_task_hook_builds_the_declared_operator():
    task = get_task("eit")
    cfg = EIT().config("random").model_dump(mode="json")
    obs = {"config": cfg, "mask": np.ones((32, 32), bool)}
    fwd = task.forward_operator(obs, mesh_size=0.2)
    assert fwd.n_measurements == 208 and (fwd.grid.H, fwd.grid.W) == (32, 32)
    v0 = fwd.forward(np.full(fwd.n_cells, cfg["background"]))
    assert v0.shape == (208,) and np.isfinite(v0).all()
    with pytest.raises(TaskError, match="no forward operator"):
        get_task("brain-elasticity").forward_operator({})


def test_eit_config_rejects_unknown_overrides():
    from phantombench.solvers.eit_classical import eit_config

    with pytest.raises(ValueError, match="n_electrode"):
        eit_config({"dv": np.zeros(16)}, {"n_electrode": 8})
    assert eit_config({"dv": np.zeros(16)}, {"contact_impedance": 0.02})["contact_impedance"] == 0.02
