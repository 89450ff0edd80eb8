"""ftlab.colab, the Colab install cell's code, with Colab, pip and the GPU mocked (checks/test_colab.py runs it for
real in a simulated Colab)."""
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ftlab import colab
from ftlab.paths import ROOT


def versions(monkeypatch, table):
    monkeypatch.setattr(colab, "installed_version", lambda name: table.get(name))


def test_the_constraints_are_the_lock_with_torch_held_where_it_is(monkeypatch):
    versions(monkeypatch, {"torch": "2.11.0+cu128", "torchvision": "0.26.0+cu128"})
    lines = colab.constraints(ROOT).splitlines()
    assert "torch==2.11.0+cu128" in lines and "torchvision==0.26.0+cu128" in lines
    assert "torch==2.14.1" not in lines and "trl==1.15.0" in lines and "datasets==4.8.5" in lines
    assert not any("#" in line or not line.strip() for line in lines)


def test_the_module_imports_with_the_standard_library_only():
    """The cell imports ftlab.colab before anything is installed: with no site-packages, it must still import."""
    done = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                           "import ftlab.colab"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_install_runs_pip_once_with_the_constraints_and_keeps_torch(monkeypatch, tmp_path, capsys):
    versions(monkeypatch, {"torch": "2.11.0+cu128", "torchvision": "0.26.0+cu128"})
    monkeypatch.setattr(colab, "is_installed", lambda course: False)
    commands = []

    def pip(command, check):
        commands.append(command)
        constraints = Path(command[command.index("-c") + 1]).read_text()
        assert "torch==2.11.0+cu128" in constraints

    monkeypatch.setattr(subprocess, "run", pip)
    colab.install(ROOT)
    [command] = commands
    assert command[:4] == [sys.executable, "-m", "pip", "install"] and command[command.index("-e") + 1] == str(ROOT)
    assert "kept: torch 2.11.0+cu128, torchvision 0.26.0+cu128" in capsys.readouterr().out


def test_install_refuses_a_torch_that_moved(monkeypatch):
    table = {"torch": "2.11.0+cu128", "torchvision": "0.26.0+cu128"}
    versions(monkeypatch, table)
    monkeypatch.setattr(colab, "is_installed", lambda course: False)
    monkeypatch.setattr(subprocess, "run", lambda command, check: table.update(torch="2.14.1"))
    with pytest.raises(RuntimeError, match="Colab's own builds must stay"):
        colab.install(ROOT)


def test_install_does_nothing_the_second_time(monkeypatch, capsys):
    monkeypatch.setattr(colab, "is_installed", lambda course: True)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip ran again"))
    colab.install(ROOT)
    assert "installed from" in capsys.readouterr().out


def test_is_installed_reads_where_ftlab_was_installed_from(monkeypatch, tmp_path):
    def distribution(url):
        return types.SimpleNamespace(read_text=lambda name: json.dumps({"url": url, "dir_info": {"editable": True}}))

    monkeypatch.setattr(colab.metadata, "distribution", lambda name: distribution(f"file://{tmp_path}"))
    assert colab.is_installed(tmp_path) and not colab.is_installed(tmp_path / "other")


def fake_torch(available=False, cuda="12.8"):
    """A stand-in for the torch module: its version, CUDA build and whether it sees a GPU."""
    return types.SimpleNamespace(
        __version__=f"2.11.0+cu{cuda.replace('.', '')}" if cuda else "2.11.0+cpu",
        version=types.SimpleNamespace(cuda=cuda),
        cuda=types.SimpleNamespace(is_available=lambda: available, get_device_name=lambda index: "Tesla T4"))


@pytest.mark.parametrize("torch, driver, expected", [
    (fake_torch(available=True), "550.54.15", None),
    (fake_torch(cuda=None), None, "CPU build"),
    (fake_torch(), None, "no NVIDIA driver"),
    (fake_torch(cuda="13.0"), "550.54.15", "driver 550.54.15 is too old for torch 2.11.0+cu130, built for CUDA 13.0, "
                                           "which needs driver 580 or newer"),
    (fake_torch(cuda="12.8"), "550.54.15", "sees no GPU, though the NVIDIA driver 550.54.15 is there"),
], ids=["gpu", "cpu-runtime", "no-driver", "old-driver", "other"])
def test_the_gpu_problem_says_why(monkeypatch, torch, driver, expected):
    monkeypatch.setattr(colab, "nvidia_driver", lambda: driver)
    problem = colab.gpu_problem(torch)
    assert problem is None if expected is None else expected in problem


def test_the_profile_is_gpu_with_a_gpu_and_cpu_with_the_reason_without(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(available=True))
    assert colab.choose_profile() == "gpu" and "Tesla T4" in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "torch", fake_torch(cuda=None))
    assert colab.choose_profile() == "cpu" and "Runtime > Change runtime type" in capsys.readouterr().out
