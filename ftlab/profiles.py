"""Two profiles, one notebook: the one place that maps a profile to its model and training numbers.

- cpu: the default without CUDA (laptops, CI). The course base model (about 1M parameters, built in
  lesson 01), fp32, short runs, offline: nothing comes from a hub.
- gpu: the default with CUDA (Colab, a workstation). A real small chat model through Unsloth, bf16
  or 4-bit, longer runs.
Choose with the environment variable FTLAB_PROFILE (cpu, gpu or auto), or `setup(profile=...)`.
Every training of a session takes its seed from FTLAB_SEED (0 when unset), or `setup(seed=...)`: the course's
own models (base, SFT, reward) are rebuilt at another seed, so a lesson's claims can be checked beyond one run.
"""
import dataclasses
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata


@dataclass(frozen=True)
class Stage:
    """How long and how hard one training stage runs in a profile."""
    steps: int
    batch_size: int
    learning_rate: float


@dataclass(frozen=True)
class Profile:
    name: str
    device: str
    model_name: str  # "course-base" is the model lesson 01 builds; anything else is a hub model id
    max_seq_length: int
    dtype: str  # "auto": bf16 where the GPU supports it, else fp16
    load_in_4bit: bool
    seed: int = 0
    stages: dict = field(default_factory=dict)

    def stage(self, name):
        return self.stages[name]

    def training_settings(self, stage, output_dir):
        """The Trainer settings every course run shares, for training `stage` in this profile. The libraries'
        defaults suit big models on GPUs (bf16, gradient checkpointing, tiny learning rates); on the course
        model they would only slow training down and show nothing."""
        numbers = self.stage(stage)
        return dict(
            output_dir=str(output_dir),
            max_steps=numbers.steps,
            per_device_train_batch_size=numbers.batch_size,
            per_device_eval_batch_size=64,
            learning_rate=numbers.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=max(1, numbers.steps // 20),
            logging_steps=10,
            save_strategy="no",
            seed=self.seed,
            data_seed=self.seed,
            use_cpu=self.device == "cpu",
            gradient_checkpointing=False,
            dataloader_num_workers=0,
            report_to="none",
            **self.precision(),
        )

    def precision(self):
        """Trainer mixed-precision flags: fp32 on CPU; bf16 on GPUs that have it, fp16 on older ones (T4)."""
        if self.device != "cuda":
            return {"bf16": False, "fp16": False}
        import torch

        bf16 = torch.cuda.is_bf16_supported()
        return {"bf16": bf16, "fp16": not bf16}


PROFILES = {
    "cpu": Profile(
        name="cpu", device="cpu", model_name="course-base", max_seq_length=192, dtype="float32",
        load_in_4bit=False,
        # Measured on 2 cores: pretraining 400 x 32 blocks of 128 tokens takes about 2 minutes.
        stages={
            "pretrain": Stage(steps=400, batch_size=32, learning_rate=3e-3),
            "sft": Stage(steps=300, batch_size=16, learning_rate=1e-3),
            "lora": Stage(steps=300, batch_size=16, learning_rate=3e-3),  # lesson 03: LoRA takes a higher rate
            # Lessons 05-07 (PEFT): a task adapter, a soft prompt, each method of the comparison (its own rate).
            "adapter": Stage(steps=400, batch_size=16, learning_rate=1e-2),
            "prompt_tuning": Stage(steps=100, batch_size=16, learning_rate=3e-2),
            "peft_compare": Stage(steps=30, batch_size=16, learning_rate=3e-3),  # x 8 methods: lesson 07 in 3 minutes
            # Lessons 08-11 (alignment): batch = preference pairs (reward, dpo), rollouts (ppo), completions (grpo).
            "reward": Stage(steps=50, batch_size=16, learning_rate=1e-3),
            "dpo": Stage(steps=50, batch_size=16, learning_rate=1e-5),
            "ppo": Stage(steps=20, batch_size=32, learning_rate=5e-5),
            "grpo": Stage(steps=200, batch_size=64, learning_rate=2e-4),  # lesson 11: 1e-4 gave 1.9x reward, 3e-4 dips first
            "export": Stage(steps=60, batch_size=16, learning_rate=3e-3),  # lesson 12: the LoRA merged and exported
        },
    ),
    "gpu": Profile(
        name="gpu", device="cuda", model_name="unsloth/Qwen2.5-0.5B-Instruct", max_seq_length=1024,
        dtype="auto", load_in_4bit=True,
        # A real model is already trained: continued pretraining takes a small rate and few steps.
        stages={
            "pretrain": Stage(steps=120, batch_size=8, learning_rate=5e-5),
            "sft": Stage(steps=120, batch_size=8, learning_rate=2e-5),
            "lora": Stage(steps=120, batch_size=8, learning_rate=2e-4),
            "adapter": Stage(steps=60, batch_size=8, learning_rate=5e-4),
            "prompt_tuning": Stage(steps=60, batch_size=8, learning_rate=3e-2),
            "peft_compare": Stage(steps=60, batch_size=8, learning_rate=2e-4),
            "reward": Stage(steps=200, batch_size=8, learning_rate=1e-4),
            "dpo": Stage(steps=100, batch_size=8, learning_rate=5e-6),
            "ppo": Stage(steps=40, batch_size=16, learning_rate=1e-6),
            "grpo": Stage(steps=150, batch_size=16, learning_rate=5e-6),
            "export": Stage(steps=60, batch_size=8, learning_rate=2e-4),
        },
    ),
}

LIBRARIES = ["torch", "transformers", "trl", "peft", "datasets", "accelerate", "unsloth"]
OFFLINE_SWITCHES = ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"]


def cuda_available():
    import torch

    return torch.cuda.is_available()


def session_seed():
    """The seed of every training in this session: FTLAB_SEED, 0 when unset."""
    value = os.environ.get("FTLAB_SEED", "0")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"FTLAB_SEED={value!r}: the seed must be a whole number, such as 0 or 1") from None


def course_profile():
    """The cpu profile at the session's seed: the recipe of the course's own models (base, SFT, early SFT, reward
    model), which they are built and cached with whichever profile a lesson runs in."""
    return get_profile("cpu")


def get_profile(name=None):
    """The profile called `name`, else FTLAB_PROFILE, else gpu when CUDA is there and cpu when not; at the
    session's seed."""
    name = (name or os.environ.get("FTLAB_PROFILE") or "auto").lower()
    if name == "auto":
        name = "gpu" if cuda_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)} or auto")
    if name == "gpu" and not cuda_available():
        raise RuntimeError("the gpu profile needs CUDA, and torch sees no GPU here: use the cpu profile")
    return dataclasses.replace(PROFILES[name], seed=session_seed())


def library_versions():
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = "not installed"
    return versions


def setup(profile=None, seed=None, quiet=False):
    """Start a lesson: choose the profile and the seed, go offline in the cpu profile, import Unsloth, seed
    everything.

    Call it first, before importing transformers or trl: the offline switches are read when the
    Hugging Face libraries are imported, and Unsloth patches them when it is imported before them.
    `seed` overrides FTLAB_SEED for the whole session (it is written back to the environment, where the
    course's model caches read it).
    """
    import torch

    _quiet_import_noise()
    if seed is not None:
        os.environ["FTLAB_SEED"] = str(seed)
    chosen = get_profile(profile)
    if chosen.name == "cpu":
        for switch in OFFLINE_SWITCHES:
            os.environ[switch] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Unsloth first, in both profiles: on a GPU it brings its kernels; on a CPU its fallback also keeps
    # TRL away from a Triton kernel that needs a GPU driver (trl 1.15 calls it whenever Triton is installed).
    import unsloth  # noqa: F401

    from transformers import set_seed

    set_seed(chosen.seed)
    if not quiet:
        device = torch.cuda.get_device_name(0) if chosen.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        print(f"profile: {chosen.name}   seed: {chosen.seed}   device: {device}   model: {chosen.model_name}")
        print("   ".join(f"{lib} {version}" for lib, version in library_versions().items()))
    return chosen


def _quiet_import_noise():
    """Silence warnings printed while Unsloth loads that say nothing about the lesson; progress bars as text."""
    _text_progress_bars()
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)  # torch.compile internals
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # 4-bit CPU kernels we do not use


def _text_progress_bars():
    """tqdm draws text progress bars, in a notebook too. With ipywidgets installed (nbgrader needs it) tqdm.auto would
    draw widgets, and a saved notebook keeps only a widget's first frame ("0%") where a text bar keeps its last.
    It must run before the Hugging Face libraries take tqdm.auto's bar, as setup() does."""
    import tqdm.auto
    import tqdm.std

    tqdm.auto.tqdm = tqdm.std.tqdm
