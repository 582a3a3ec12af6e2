"""The registry: groups, names, one clear error, caching, late installs, and lazy loading (one solver's module
only, so the solver process stays light)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from phantombench import registry


def test_every_group_lists_this_packages_parts():
    assert {"brain-slice", "eit", "liver-mre"} <= set(registry.names("generators"))
    assert {"brain-elasticity", "mre", "eit"} <= set(registry.names("tasks"))
    assert set(registry.names("official")) == set(registry.names("tasks"))
    assert {"constant", "direct-elasticity", "dime-cnn", "cnn-pinn"} <= set(registry.names("solvers"))
    assert registry.names("solvers") == registry.names("phantombench.solvers")


def test_unknown_names_and_groups_are_one_clear_error():
    with pytest.raises(registry.UnknownName, match=r"unknown solver 'nope'; choose one of: .*constant"):
        registry.load("solvers", "nope")
    with pytest.raises(ValueError, match="unknown task 'nope'; choose one of: brain-elasticity"):
        registry.load("tasks", "nope")
    with pytest.raises(registry.RegistryError, match="unknown registry group 'widgets'"):
        registry.names("widgets")


def test_load_is_cached_and_returns_the_declared_object():
    from phantombench.tasks import BRAIN

    assert registry.load("tasks", "brain-elasticity") is BRAIN
    assert registry.load("tasks", "brain-elasticity") is registry.load("phantombench.tasks", "brain-elasticity")


def test_a_distribution_installed_after_the_first_lookup_is_found(tmp_path, monkeypatch):
    registry.names("generators")                       # fills the cache before the install
    site = tmp_path / "site"
    (site / "mygen").mkdir(parents=True)
    (site / "mygen" / "__init__.py").write_text("OBJ = object()\n")
    dist = site / "mygen-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mygen\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[phantombench.generators]\nmy-gen = mygen:OBJ\n")
    monkeypatch.syspath_prepend(str(site))
    import mygen

    assert registry.load("generators", "my-gen") is mygen.OBJ
    monkeypatch.undo()
    registry.clear_cache()
    assert "my-gen" not in registry.names("generators")


def test_loading_one_solver_imports_no_other_solver():
    code = textwrap.dedent("""
        import sys
        from phantombench.solvers.base import load_solver_class
        load_solver_class("constant")
        print(" ".join(m for m in sys.modules if m.startswith("phantombench.solvers.") or m == "torch"))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.split()) == ["phantombench.solvers.base", "phantombench.solvers.constant"]
