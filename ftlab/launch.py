"""Training as a script, on one process or many (lesson 13).

`ftlab sft --config configs/sft.yaml` runs lesson 02's SFT recipe (`ftlab.sft.sft_trainer`) from a config file.
Started by a launcher (`accelerate launch`, `torchrun`, a SLURM job), the same command runs once per process:
each process trains a share of every batch, and the gradients are averaged across processes before each step.
The config names the *global* batch (examples per optimizer step, all processes together), so one config gives
the same run on any number of processes.

Process 0 writes `run.json` into the output folder: what the launcher started (world size, backend, threads),
the batches each process trained on first, and the Trainer's log.
"""
import json
import os
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import yaml

from .paths import ROOT, atomic_write_text

# The run config's keys, and what each one is for.
CONFIG_KEYS = {
    "profile": "cpu, real, gpu or auto: the model and the stage numbers, from ftlab/profiles.py",
    "global_batch_size": "examples per optimizer step over all processes (per process: this / processes)",
    "output_dir": "where the model, run.json and checkpoints go (relative to the repository root)",
    "training": "SFTConfig fields, on top of ftlab.sft.sft_config for the profile",
}
# Set through the keys above, so not accepted under `training`.
DERIVED = {"per_device_train_batch_size": "global_batch_size", "output_dir": "output_dir"}
FIRST_STEPS = 2  # how many steps of batches run.json records for each process


class ConfigError(ValueError):
    """A run config that cannot run; the message names the file and the key."""


def load_run_config(path):
    """The run config at `path` as a dict, its keys and values checked. It imports no Hugging Face library:
    the config names the profile, and `ftlab.setup` must choose it before they are imported."""
    from .profiles import PROFILES

    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the run config: {error}") from error
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of {', '.join(CONFIG_KEYS)}")
    for key in config:
        if key not in CONFIG_KEYS:
            raise ConfigError(f"{path}, key '{key}': unknown; the keys are {', '.join(CONFIG_KEYS)}")
    for key in ("profile", "global_batch_size", "output_dir"):
        if key not in config:
            raise ConfigError(f"{path}, key '{key}': missing ({CONFIG_KEYS[key]})")
    if config["profile"] not in [*PROFILES, "auto"]:
        raise ConfigError(f"{path}, key 'profile': {config['profile']!r} is not one of {', '.join(PROFILES)}, auto")
    batch = config["global_batch_size"]
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ConfigError(f"{path}, key 'global_batch_size': expected a positive whole number, got {batch!r}")
    config["training"] = config.get("training") or {}
    if not isinstance(config["training"], dict):
        raise ConfigError(f"{path}, key 'training': expected a mapping of SFTConfig fields")
    for key in config["training"]:
        if key in DERIVED:
            raise ConfigError(f"{path}, key 'training.{key}': set it with the top-level key '{DERIVED[key]}'")
    return config


def check_training_fields(config, path):
    """Every key under `training` must be a field of TRL's SFTConfig (call after `ftlab.setup`)."""
    from trl import SFTConfig

    known = {f.name for f in fields(SFTConfig)}
    for key in config["training"]:
        if key not in known:
            raise ConfigError(f"{path}, key 'training.{key}': not a field of trl.SFTConfig")


def per_device_batch(global_batch, processes, accumulation=1, where="global_batch_size"):
    """The batch each process trains on at a time, so that all processes together, over `accumulation`
    gradient-accumulation steps, make `global_batch`."""
    if global_batch % (processes * accumulation):
        raise ConfigError(f"{where}: {global_batch} examples do not split evenly over {processes} processes "
                          f"x {accumulation} accumulation steps")
    return global_batch // (processes * accumulation)


def run_sft(config_path, output_dir=None):
    """Train as the run config says, on this process's share. Every process of a launch calls this."""
    config = load_run_config(config_path)
    rank = int(os.environ.get("RANK", "0"))  # set by the launcher; 0 without one
    from .profiles import SMOKE_STEPS, setup

    profile = setup(config["profile"], quiet=rank > 0)  # before transformers and trl, in every process
    check_training_fields(config, config_path)
    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object

    from . import sft

    # The same distributed state the Trainer will use: it joins the process group the launcher set up.
    state = PartialState(cpu=profile.device == "cpu")
    batch = per_device_batch(config["global_batch_size"], state.num_processes,
                             config["training"].get("gradient_accumulation_steps", 1),
                             f"{config_path}, key 'global_batch_size'")
    output_dir = ROOT / (output_dir or config["output_dir"])
    training = dict(config["training"])
    if profile.smoke:  # FTLAB_SMOKE=1: the run config's steps cut as the profile's stages are
        training["max_steps"] = min(training.get("max_steps", SMOKE_STEPS), SMOKE_STEPS)
    trainer = sft.sft_trainer(output_dir, profile, per_device_train_batch_size=batch, **training)
    say(f"ftlab: process {state.process_index} of {state.num_processes} ({state.distributed_type.value}), "
        f"batch {batch} per process, {torch.get_num_threads()} torch threads")

    seen = gather_object([first_batches(trainer, FIRST_STEPS)])  # one entry per process, in rank order
    result = trainer.train()
    trainer.save_model()  # process 0 writes; the others wait for it
    record = {
        "config": config,
        "world_size": state.num_processes,
        "distributed_type": state.distributed_type.value,
        "backend": state.backend,
        "threads_per_process": torch.get_num_threads(),
        "per_device_batch": batch,
        "global_batch": batch * state.num_processes * trainer.args.gradient_accumulation_steps,
        "first_batches": seen,
        "train_runtime": result.metrics["train_runtime"],
        "log_history": trainer.state.log_history,
    }
    if state.is_main_process:
        atomic_write_text(output_dir / "run.json", json.dumps(record, indent=1))
        say(f"ftlab: {result.global_step} steps in {result.metrics['train_runtime']:.1f} s, "
            f"final training loss {final_loss(record):.4f}; wrote {output_dir / 'run.json'}")
    state.wait_for_everyone()
    return record


def say(line):
    """Write one line, newline included, in one write: `print` writes the text and the newline separately, and
    the lines of processes printing at the same moment would come out run together."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def report_processes():
    """Print which process this is, of how many: `accelerate launch ... -m ftlab.cli processes` checks in
    seconds that a launch starts the processes you meant, before a long run."""
    from accelerate import PartialState

    from .profiles import get_profile

    # cpu=True matters: without it, processes that find no GPU do not join the launcher's group (gloo) and each
    # reports, and would train, alone.
    state = PartialState(cpu=get_profile().device == "cpu")
    say(f"ftlab: process {state.process_index} of {state.num_processes} "
        f"({state.distributed_type.value}, backend {state.backend})")


def first_batches(trainer, steps):
    """The dataset rows this process trains on in the first `steps` steps, read from a fresh copy of the
    Trainer's own data loader (train() builds its own, so this one is used up here)."""
    batches = iter(trainer.get_train_dataloader().batch_sampler)
    return [list(next(batches)) for _ in range(steps)]


def final_loss(record):
    """The last training loss the Trainer logged in a run record."""
    return [h["loss"] for h in record["log_history"] if "loss" in h][-1]


def read_run(output_dir):
    """The run record that process 0 wrote into `output_dir`."""
    return json.loads((ROOT / output_dir / "run.json").read_text())


def run_command(command, echo_prefix="ftlab:"):
    """Run a command line from the repository root as a terminal in the course's environment would (its
    `bin/` first on PATH). Print and return the lines starting with `echo_prefix`, and the wall-clock seconds.
    On failure, raise with the end of the output: that is where a launcher says what went wrong."""
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    done = subprocess.run(command, shell=True, cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode:
        tail = "\n".join(done.stdout.splitlines()[-40:])
        raise RuntimeError(f"`{command}` failed with exit status {done.returncode}:\n{tail}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(echo_prefix)]
    # The processes print in whatever order they get there: their reports first, by rank, then the rest as printed.
    lines.sort(key=lambda line: ("process" not in line, line if "process" in line else ""))
    print("\n".join(lines))
    return lines, seconds


# ---------------------------------------------------------------- what each way of scaling out keeps per GPU
# Bytes per parameter of a mixed-precision AdamW fine-tune: bf16 weights and gradients, and the optimizer state
# (fp32 master weights, momentum and variance). Activations come on top and depend on batch and sequence length.
STATE_BYTES = {"weights": 2, "gradients": 2, "optimizer state": 12}
SHARDS = {  # what each strategy splits over the GPUs (1/N each); the rest every GPU holds whole
    "DDP": (),
    "ZeRO-1": ("optimizer state",),
    "ZeRO-2": ("gradients", "optimizer state"),  # FSDP's SHARD_GRAD_OP
    "ZeRO-3 / FSDP": ("weights", "gradients", "optimizer state"),  # FSDP's FULL_SHARD
}


def model_state_per_gpu(parameters, gpus, strategy):
    """Bytes of weights, gradients and optimizer state on each GPU of a full fine-tune (the ZeRO paper's
    arithmetic: Rajbhandari et al., 2020)."""
    return sum(size * parameters / (gpus if part in SHARDS[strategy] else 1) for part, size in STATE_BYTES.items())

