"""Training as a script (lesson 13): the run config, its errors, the batch split, the accelerate configs as
accelerate itself reads them, and a short run that records itself."""
import json
import math

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from transformers import LlamaForCausalLM

from ftlab import base_model, cli, launch, sft
from ftlab.paths import ROOT

ACCELERATE = ROOT / "configs" / "accelerate"


@pytest.mark.parametrize("name", ["sft.yaml", "sft_gpu.yaml"])
def test_the_course_run_configs_load(name):
    config = launch.load_run_config(ROOT / "configs" / name)
    launch.check_training_fields(config, name)
    assert config["global_batch_size"] % 2 == 0


@pytest.mark.parametrize("text, where", [
    ("profile: cpu\nglobal_batch_size: 16\noutput_dir: x\nsteps: 3\n", "key 'steps': unknown"),
    ("profile: cpu\noutput_dir: x\n", "key 'global_batch_size': missing"),
    ("profile: tpu\nglobal_batch_size: 16\noutput_dir: x\n", "key 'profile'"),
    ("profile: cpu\nglobal_batch_size: sixteen\noutput_dir: x\n", "key 'global_batch_size': expected a positive"),
    ("profile: cpu\nglobal_batch_size: 16\noutput_dir: x\ntraining:\n  per_device_train_batch_size: 8\n",
     "key 'training.per_device_train_batch_size': set it with the top-level key 'global_batch_size'"),
    ("- just\n- a list\n", "expected a mapping"),
])
def test_a_bad_run_config_names_the_file_and_the_key(tmp_path, text, where):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(launch.ConfigError, match=str(path)) as error:
        launch.load_run_config(path)
    assert where in str(error.value)


def test_a_training_key_must_be_an_sftconfig_field(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("profile: cpu\nglobal_batch_size: 16\noutput_dir: x\ntraining:\n  max_stepz: 3\n")
    config = launch.load_run_config(path)
    with pytest.raises(launch.ConfigError, match=r"run.yaml, key 'training.max_stepz': not a field of trl.SFTConfig"):
        launch.check_training_fields(config, path)


def test_the_global_batch_splits_over_processes_and_accumulation_steps():
    assert launch.per_device_batch(16, 1) == 16
    assert launch.per_device_batch(16, 2) == 8
    assert launch.per_device_batch(16, 2, accumulation=2) == 4
    with pytest.raises(launch.ConfigError, match="do not split evenly over 3 processes"):
        launch.per_device_batch(16, 3)


EXPECTED = {  # config file: (what `accelerate launch` turns it into, number of processes)
    "cpu_ddp.yaml": ("multi_gpu", 2), "multi_gpu.yaml": ("multi_gpu", 8), "fsdp.yaml": ("use_fsdp", 8),
    "deepspeed_zero2.yaml": ("use_deepspeed", 8), "deepspeed_zero3.yaml": ("use_deepspeed", 8),
}


def test_every_accelerate_config_is_there():
    assert sorted(p.name for p in ACCELERATE.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_accelerate_reads_each_config_and_every_key_reaches_the_launcher(name):
    path = ACCELERATE / name
    config = load_config_from_file(str(path))  # accelerate's own class: unknown top-level keys raise here
    assert isinstance(config, ClusterConfig)
    # Keys inside fsdp_config and deepspeed_config are copied onto the launcher's arguments, silently, whatever
    # their name: each must be an argument `accelerate launch` knows, or it would be ignored.
    known = {action.dest for action in launch_command_parser()._actions}
    nested = [k if k.startswith("fsdp") else f"fsdp_{k}" for k in config.fsdp_config] + list(config.deepspeed_config)
    assert set(nested) <= known, set(nested) - known
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(["--config_file", str(path), "x.py"]))
    flag, processes = EXPECTED[name]
    assert getattr(args, flag) and args.num_processes == processes
    assert not args.cpu  # --cpu would start one process, whatever num_processes says


def test_the_sharded_configs_shard_what_their_comments_say():
    fsdp = load_config_from_file(str(ACCELERATE / "fsdp.yaml")).fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_reshard_after_forward"] is True
    for name, stage in [("deepspeed_zero2.yaml", 2), ("deepspeed_zero3.yaml", 3)]:
        deepspeed = load_config_from_file(str(ACCELERATE / name)).deepspeed_config
        assert deepspeed["zero_stage"] == stage
        assert "gradient_accumulation_steps" not in deepspeed  # the Trainer fills it from its own arguments


def test_model_state_per_gpu_matches_the_zero_paper():
    # Rajbhandari et al. 2020, figure 1: a 7.5B model on 64 GPUs, mixed-precision Adam.
    gb = {s: launch.model_state_per_gpu(7.5e9, 64, s) / 1e9 for s in launch.SHARDS}
    assert gb["DDP"] == pytest.approx(120)
    assert gb["ZeRO-1"] == pytest.approx(31.4, abs=0.05)
    assert gb["ZeRO-2"] == pytest.approx(16.6, abs=0.05)
    assert gb["ZeRO-3 / FSDP"] == pytest.approx(1.9, abs=0.05)


def test_processes_reports_a_single_process_without_a_launcher(capsys):
    cli.main(["processes"])
    assert "ftlab: process 0 of 1 (NO" in capsys.readouterr().out


def test_a_run_from_a_config_trains_and_records_itself(tmp_path, monkeypatch, course_tokenizer):
    """`ftlab sft --config` on one process, with a freshly initialised model in place of the course base model
    (unit tests do not build it)."""
    monkeypatch.setattr(sft, "start_model", lambda profile: (
        LlamaForCausalLM(base_model.base_model_config(course_tokenizer)), course_tokenizer))
    config = tmp_path / "run.yaml"
    config.write_text("profile: cpu\nglobal_batch_size: 4\noutput_dir: unused\ntraining:\n"
                      "  max_steps: 3\n  logging_steps: 1\n  eval_strategy: 'no'\n  disable_tqdm: true\n")
    record = launch.run_sft(config, output_dir=tmp_path / "run")
    assert record["world_size"] == 1 and record["per_device_batch"] == 4 and record["global_batch"] == 4
    assert [len(batch) for batch in record["first_batches"][0]] == [4] * launch.FIRST_STEPS
    assert math.isfinite(launch.final_loss(record))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["world_size"] == 1
    assert (tmp_path / "run" / "model.safetensors").exists()
