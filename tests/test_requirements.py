"""The ranges (pyproject.toml) and the lock (requirements.txt) agree, and the environment check reads them right."""
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ftlab import environment
from ftlab.environment import declared_ranges, normalize, pinned_versions
from ftlab.paths import ROOT

COLAB_PACKAGES = ROOT / "checks" / "colab_packages.txt"


def ranges():
    """{normalized name: (extra, Requirement)} of every requirement in pyproject.toml, base (None) and extras."""
    found = {}
    for extra, requirements in declared_ranges().items():
        for requirement in map(Requirement, requirements):
            assert normalize(requirement.name) not in found, f"{requirement.name} is declared twice"
            found[normalize(requirement.name)] = (extra, requirement)
    return found


def test_every_pin_of_the_lock_lies_in_its_range():
    pins = {normalize(name): version for name, version in pinned_versions().items()}
    declared = ranges()
    assert set(pins) == set(declared), (f"pinned without a range: {sorted(set(pins) - set(declared))}; "
                                        f"a range without a pin: {sorted(set(declared) - set(pins))}")
    outside = {name: (pins[name], str(requirement.specifier)) for name, (_, requirement) in declared.items()
               if Version(pins[name]) not in requirement.specifier}
    assert not outside, f"pins outside their ranges in pyproject.toml: {outside}"


def test_every_range_has_a_floor_and_the_lessons_libraries_a_ceiling():
    for name, (extra, requirement) in ranges().items():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators & {">=", "~=", "=="}, f"{name}: no lower bound"
        if extra is None:
            assert operators & {"<", "<=", "~=", "=="}, f"{name}: a library of the lessons needs an upper bound"


def test_python_313_is_admitted_and_this_python_too():
    requires = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    assert "3.13" in requires and "3.11" in requires
    assert ".".join(map(str, sys.version_info[:3])) in requires


def test_colabs_own_torch_lies_in_the_range():
    """The Colab cell keeps Colab's torch and torchvision: the ranges must admit them."""
    colab = dict(line.split("==") for line in COLAB_PACKAGES.read_text().splitlines()
                 if "==" in line and not line.startswith("#"))
    declared = ranges()
    for name in environment.KEPT_FROM_HOST:
        assert Version(colab[name]) in declared[name][1].specifier, (name, colab[name])


def fake_versions(monkeypatch, **versions):
    real = environment._installed
    monkeypatch.setattr(environment, "_installed",
                        lambda name: versions[normalize(name)] if normalize(name) in versions else real(name))


def rows_by_name():
    return {name: (installed, ok) for name, _, installed, ok in environment.check_environment()}


def test_the_environment_check_passes_here():
    assert all(ok for *_, ok in environment.check_environment()), environment.check_environment()


def test_colabs_torch_is_ok_a_transformers_off_the_pin_is_not(monkeypatch):
    fake_versions(monkeypatch, torch="2.11.0+cu128", transformers="5.16.0")
    rows = rows_by_name()
    assert rows["torch"] == ("2.11.0+cu128", True) and rows["transformers"] == ("5.16.0", False)
    fake_versions(monkeypatch, torch="2.10.0")
    assert rows_by_name()["torch"] == ("2.10.0", False)


def test_a_missing_extra_is_left_out_a_missing_base_library_is_not(monkeypatch):
    fake_versions(monkeypatch, jupyterlab=None, trl=None)
    rows = rows_by_name()
    assert "jupyterlab" not in rows and rows["trl"] == ("missing", False)


def test_a_missing_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if not installed
    expected = r"extra 'llama-cpp'.*llama-cpp-python.*pip install -e .*\[llama-cpp\]"
    with pytest.raises(ModuleNotFoundError, match=expected):
        environment.require("llama_cpp")
    assert environment.require("gguf").__name__ == "gguf"  # an installed module is simply imported
