import dataclasses
import json

import pytest

from ftlab import profiles
from ftlab.paths import ROOT


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
    cpu, real, gpu = (profiles.PROFILES[name] for name in ("cpu", "real", "gpu"))
    assert set(cpu.stages) == set(real.stages) == set(gpu.stages)
    assert cpu.course_model and not real.course_model and not gpu.course_model
    assert "/" in gpu.base_model and "/" in gpu.chat_model  # hub ids
    assert real.stages == gpu.stages  # what CI measures on the CPU is what a GPU runs
    assert cpu.precision() == real.precision() == {"bf16": False, "fp16": False}


def test_a_smoke_run_cuts_every_stage_and_keeps_its_models_apart(monkeypatch):
    monkeypatch.setattr(profiles, "cuda_available", lambda: False)
    monkeypatch.setenv("FTLAB_SMOKE", "1")
    real, full = profiles.get_profile("real"), profiles.PROFILES["real"]
    assert real.smoke and real.artifacts != full.artifacts and real.eval_chats == profiles.SMOKE_EVAL_CHATS
    for name, stage in real.stages.items():
        assert stage == dataclasses.replace(full.stage(name), steps=min(full.stage(name).steps, profiles.SMOKE_STEPS))
    with pytest.raises(ValueError, match="smoke run takes a real model"):
        profiles.get_profile("cpu")  # the course's models live in fixed folders: three steps would replace them
    monkeypatch.delenv("FTLAB_SMOKE")
    assert not profiles.get_profile("real").smoke


@pytest.mark.parametrize("capability, flags", [((7, 5), {"bf16": False, "fp16": True}),  # T4: fp16
                                               ((8, 0), {"bf16": True, "fp16": False}),  # A100: bf16
                                               ((9, 0), {"bf16": True, "fp16": False})])
def test_precision_follows_the_gpu_capability_not_emulation(monkeypatch, capability, flags):
    import torch

    monkeypatch.setattr(profiles, "gpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what a T4 answers, by emulation
    gpu = profiles.PROFILES["gpu"]
    assert gpu.precision() == flags
    assert gpu.dtype == (torch.bfloat16 if flags["bf16"] else torch.float16)


def test_the_seed_comes_from_the_environment_or_the_call(monkeypatch):
    monkeypatch.setenv("FTLAB_SEED", "3")
    assert profiles.get_profile("cpu").seed == 3 and profiles.course_profile().seed == 3
    monkeypatch.setenv("FTLAB_SEED", "three")
    with pytest.raises(ValueError, match="whole number"):
        profiles.get_profile("cpu")
    monkeypatch.setenv("FTLAB_SEED", "0")
    assert profiles.setup("cpu", seed=4, quiet=True).seed == 4
    assert __import__("os").environ["FTLAB_SEED"] == "4"


@pytest.mark.parametrize("count, environment, visible", [(2, {}, "0"), (1, {}, None),
                                                         (2, {"LOCAL_RANK": "0"}, None),
                                                         (2, {"CUDA_VISIBLE_DEVICES": "1"}, "1")])
def test_a_notebook_sees_one_gpu_unless_a_launcher_runs(monkeypatch, count, environment, visible):
    import torch

    for name in ("LOCAL_RANK", "WORLD_SIZE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    profiles._one_gpu_without_a_launcher()
    assert __import__("os").environ.get("CUDA_VISIBLE_DEVICES") == visible


def test_setup_goes_offline_in_the_cpu_profile(monkeypatch):
    for switch in profiles.OFFLINE_SWITCHES:
        monkeypatch.delenv(switch, raising=False)
    profile = profiles.setup("cpu", quiet=True)
    assert profile.name == "cpu"
    assert all(__import__("os").environ[s] == "1" for s in profiles.OFFLINE_SWITCHES)


@pytest.mark.parametrize("profile", ["cpu", "real"])
def test_the_grpo_rate_is_the_one_chosen_on_the_validation_split(profile):
    """scripts/lr_select.py recorded lesson 11's validation accuracy per rate (docs/lr-select-11-<profile>.json):
    the profile trains GRPO at the rate with the highest."""
    accuracy = json.loads((ROOT / "docs" / f"lr-select-11-{profile}.json").read_text())["GRPO"]
    best = max(accuracy, key=accuracy.get)
    assert profiles.PROFILES[profile].stage("grpo").learning_rate == float(best), accuracy
