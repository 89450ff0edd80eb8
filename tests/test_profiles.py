import pytest

from ftlab import profiles


def test_cpu_is_the_default_without_cuda(monkeypatch):
    monkeypatch.delenv("FTLAB_PROFILE", raising=False)
    monkeypatch.setattr(profiles, "cuda_available", lambda: False)
    assert profiles.get_profile().name == "cpu"


def test_gpu_is_the_default_with_cuda(monkeypatch):
    monkeypatch.delenv("FTLAB_PROFILE", raising=False)
    monkeypatch.setattr(profiles, "cuda_available", lambda: True)
    assert profiles.get_profile().name == "gpu"


def test_environment_switch_and_argument_choose_the_profile(monkeypatch):
    monkeypatch.setattr(profiles, "cuda_available", lambda: True)
    monkeypatch.setenv("FTLAB_PROFILE", "cpu")
    assert profiles.get_profile().name == "cpu"
    assert profiles.get_profile("gpu").name == "gpu"


def test_bad_choices_say_what_is_wrong(monkeypatch):
    monkeypatch.setattr(profiles, "cuda_available", lambda: False)
    with pytest.raises(ValueError, match="unknown profile 'tpu'"):
        profiles.get_profile("tpu")
    with pytest.raises(RuntimeError, match="needs CUDA"):
        profiles.get_profile("gpu")


def test_every_profile_has_the_same_stages():
    cpu, gpu = profiles.PROFILES["cpu"], profiles.PROFILES["gpu"]
    assert set(cpu.stages) == set(gpu.stages)
    assert cpu.model_name == "course-base" and "/" in gpu.model_name
    assert cpu.precision() == {"bf16": False, "fp16": False}


def test_setup_goes_offline_in_the_cpu_profile(monkeypatch):
    for switch in profiles.OFFLINE_SWITCHES:
        monkeypatch.delenv(switch, raising=False)
    profile = profiles.setup("cpu", quiet=True)
    assert profile.name == "cpu"
    assert all(__import__("os").environ[s] == "1" for s in profiles.OFFLINE_SWITCHES)
