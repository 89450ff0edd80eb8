#!/usr/bin/env python3
"""GPU proof for ftlab: the gpu profile's Unsloth path, and Unsloth against plain transformers + PEFT.

On a machine with an NVIDIA GPU and no internet (see docs/benchmarks.md for the exact device command):
  1. installs the wheels carried in .gpu_wheels/ (trl, unsloth, datasets, bitsandbytes, ...) into a folder;
  2. builds a model of SmolLM2-135M's shape (the gpu profile's model: Llama, 30 layers) with random weights from its
     config (no hub weights) and the real model's tokenizer and chat template (from the real profile's converted
     model, artifacts/models/SmolLM2-135M-Instruct, carried to the machine; the course tokenizer where it is
     absent, which the results say), and saves both to a work folder;
  3. runs each part in its own Python process, so that one failure (or a broken CUDA context) hides nothing:
       bench_unsloth, bench_plain  the same LoRA SFT (model, data, batch, sequence length) through Unsloth and
                                   through plain transformers + PEFT: tokens/s and peak GPU memory
       sft                         LoRA SFT through Unsloth with the course's SFT config (ftlab.sft.sft_config)
       qlora                       the same on the model loaded in 4 bits (bitsandbytes)
       dpo, grpo                   a few DPO and GRPO steps through Unsloth
     each checks that its steps finish and its losses are finite;
  4. writes the results as JSON and renders them into the benchmarks page (docs/benchmarks.md).

Without a GPU: `--plan` prints what a run would do; `--fetch-wheels` builds .gpu_wheels/ (needs a package
index); `--render RESULTS.json` rewrites docs/benchmarks.md from a results file that came back from a run.
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEEL_LIST = ROOT / "scripts" / "gpu_wheels.txt"
WHEEL_DIR = ROOT / ".gpu_wheels"
MACHINE_PACKAGES = ROOT / "scripts" / "gpu_machine_packages.txt"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
CARRY_LIMIT = 64 * 2**20  # what the device tool carries per run: working tree plus carried folders
RESULTS_VERSION = 1

# The benchmark runs first: it is what the issue must show. Then the lessons' training paths.
PARTS = ["bench_unsloth", "bench_plain", "sft", "qlora", "dpo", "grpo"]
PART_HELP = {
    "bench_unsloth": "LoRA SFT through Unsloth (FastLanguageModel): tokens/s, peak GPU memory",
    "bench_plain": "the same LoRA SFT through plain transformers + PEFT (no Unsloth imported)",
    "sft": "LoRA SFT through Unsloth with the course's SFT config (prompt-completion, loss on the answers)",
    "qlora": "the same SFT on the model loaded in 4 bits (QLoRA, bitsandbytes)",
    "dpo": "DPO through Unsloth on the course preference pairs",
    "grpo": "GRPO through Unsloth on the course prompts, with a correctness reward",
}
LORA = dict(r=16, lora_alpha=16, lora_dropout=0.0, bias="none",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
# Wheels that would not fit, or carry what the run never loads: (member prefixes or patterns to drop).
SLIM = {
    "unsloth": [r"^studio/"],  # the Unsloth Studio web app
    "bitsandbytes": [r"^bitsandbytes/libbitsandbytes_(?!cpu|cuda128|cuda130|cuda132)[a-z0-9]+\.so$"],
}
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "UNSLOTH_DISABLE_STATISTICS": "1", "TOKENIZERS_PARALLELISM": "false",
               "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONUNBUFFERED": "1"}


# The gpu profile's model (HuggingFaceTB/SmolLM2-135M, its config.json), beside ftlab.architectures.REAL_MODELS
SMOLLM2 = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
               num_key_value_heads=3, tie_word_embeddings=True)


def shapes():
    """name -> (config class, settings) of the shapes the run can build."""
    sys.path.insert(0, str(ROOT))
    from transformers import LlamaConfig

    from ftlab.architectures import REAL_MODELS

    return {"SmolLM2-135M": (LlamaConfig, SMOLLM2), **REAL_MODELS}


# ---------------------------------------------------------------- arguments
def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--plan", "--dry-run", action="store_true", dest="plan",
                      help="print what a run would do (parts, model, wheels, sizes) and exit; works on CPU")
    mode.add_argument("--fetch-wheels", action="store_true",
                      help=f"download and slim the wheels of {WHEEL_LIST.name} into --wheels (needs an index)")
    mode.add_argument("--render", metavar="RESULTS_JSON", type=Path,
                      help="rewrite --docs from a results file and exit")
    mode.add_argument("--check-imports", action="store_true",
                      help="import Unsloth's GPU path here with only the GPU machine's packages and the carried "
                           "ones visible: is the wheel list complete? (CPU, no wheels needed)")
    mode.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # internal: one part, in a child process
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated parts to run, in this order (default: all: {','.join(PARTS)})")
    p.add_argument("--steps", type=int, default=5, help="training steps of sft, qlora, dpo, grpo (default 5)")
    p.add_argument("--bench-steps", type=int, default=20, help="timed benchmark steps per path (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed benchmark steps before those (default 3)")
    p.add_argument("--batch-size", type=int, default=8, help="benchmark batch size (default 8, the gpu profile's)")
    p.add_argument("--seq-len", type=int, default=1024,
                   help="benchmark sequence length, every sequence full (default 1024, the gpu profile's)")
    p.add_argument("--grad-ckpt", choices=["on", "off"], default="on",
                   help="gradient checkpointing in the benchmark, on both paths (default on)")
    p.add_argument("--model", default="SmolLM2-135M",
                   help="a shape from SHAPES (SmolLM2-135M or ftlab.architectures.REAL_MODELS), built with random "
                        "weights (default SmolLM2-135M)")
    p.add_argument("--tiny", action="store_true",
                   help="a tiny model of the same family instead (a smoke test of the script, e.g. on CPU)")
    p.add_argument("--wheels", type=Path, default=WHEEL_DIR, help="folder of wheels to install (default .gpu_wheels)")
    p.add_argument("--no-install", action="store_true", help="use the packages already installed")
    p.add_argument("--site", type=Path, default=Path(tempfile.gettempdir()) / "ftlab-gpu-site",
                   help="where the wheels are installed (default: a folder in the temp dir)")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ftlab-gpu-check",
                   help="work folder: model, tokenizer, trainer outputs, compile caches")
    p.add_argument("--out", type=Path, default=None,
                   help="results JSON (default: $OUT/gpu_results.json where $OUT is set, else artifacts/gpu_check/)")
    p.add_argument("--docs", type=Path, default=DOCS_PAGE, help="the benchmarks page to render (default docs/benchmarks.md)")
    p.add_argument("--budget-s", type=float, default=390,
                   help="the whole run ends within about this many seconds: later parts are skipped (default 390)")
    p.add_argument("--part-timeout-s", type=float, default=150, help="limit for one part (default 150)")
    p.add_argument("--allow-cpu", action="store_true",
                   help="run without CUDA (with --tiny: a smoke test of the code paths; no numbers to publish)")
    p.add_argument("--part-out", type=Path, help=argparse.SUPPRESS)  # internal
    args = p.parse_args(argv)
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = [x for x in args.parts if x not in PARTS]
    if unknown:
        p.error(f"unknown part(s) {', '.join(unknown)}: choose from {', '.join(PARTS)}")
    for name in ("steps", "bench_steps", "batch_size", "seq_len"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be 0 or more")
    if args.out is None:
        out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "artifacts" / "gpu_check"
        args.out = out_dir / "gpu_results.json"
    return args


# ---------------------------------------------------------------- wheels
def read_wheel_list(path=WHEEL_LIST):
    """[(name, version)] from `name==version  # comment` lines."""
    wheels = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        if "==" not in line:
            raise ValueError(f"{path}: {line!r} is not name==version")
        name, version = (s.strip() for s in line.split("==", 1))
        wheels.append((name, version))
    return wheels


def normalize(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_files(folder=WHEEL_DIR):
    """{normalized name: path} of the .whl files in `folder`."""
    folder = Path(folder)
    return {normalize(w.name.split("-")[0]): w for w in sorted(folder.glob("*.whl"))} if folder.is_dir() else {}


def missing_wheels(folder=WHEEL_DIR, wheel_list=WHEEL_LIST):
    have = wheel_files(folder)
    missing = []
    for name, version in read_wheel_list(wheel_list):
        w = have.get(normalize(name))
        if w is None or w.name.split("-")[1] != version:
            missing.append(f"{name}=={version}")
    return missing


def slim_wheel(path, drop_patterns):
    """Rewrite a wheel without the members matching `drop_patterns`, and without their RECORD lines."""
    path = Path(path)
    patterns = [re.compile(p) for p in drop_patterns]
    dropped = set()
    tmp = path.with_suffix(".slim")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if any(p.search(info.filename) for p in patterns):
                dropped.add(info.filename)
        for info in src.infolist():
            if info.filename in dropped:
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if line.split(",")[0] not in dropped).encode()
            dst.writestr(info, data)
    os.replace(tmp, path)
    return len(dropped)


def fetch_wheels(folder=WHEEL_DIR, wheel_list=WHEEL_LIST, python=sys.executable):
    """Download every wheel of the list for CPython 3.12 on x86-64 Linux (no dependencies), then slim."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [f"manylinux_2_{n}_x86_64" for n in (28, 27, 24, 17)] + ["manylinux2014_x86_64", "manylinux1_x86_64"]
    specs = [f"{n}=={v}" for n, v in read_wheel_list(wheel_list)]
    cmd = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "--dest", str(folder)]
    for platform in platforms:
        cmd += ["--platform", platform]
    subprocess.run(cmd + specs, check=True)
    for name, patterns in SLIM.items():
        w = wheel_files(folder).get(normalize(name))
        if w is not None:
            before = w.stat().st_size
            n = slim_wheel(w, patterns)
            if n:
                print(f"slimmed {w.name}: dropped {n} files, {before / 2**20:.1f} -> {w.stat().st_size / 2**20:.1f} MiB")
    wanted = {normalize(n) for n, _ in read_wheel_list(wheel_list)}
    for key, w in wheel_files(folder).items():
        if key not in wanted:
            print(f"note: {w.name} is not in {Path(wheel_list).name}; it would be installed too")
    return wheel_sizes(folder)


def wheel_sizes(folder=WHEEL_DIR):
    return {w.name: w.stat().st_size for w in wheel_files(folder).values()}


def tree_size(root=ROOT):
    """Bytes of what the device tool sends: tracked and untracked files that git does not ignore."""
    try:
        names = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=root, check=True,
                               capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        return None
    return sum((root / n).stat().st_size for n in names if n and (root / n).is_file())


def install_wheels(folder, site):
    """pip install the carried wheels into `site` (no index, no dependencies); returns the installed names."""
    wheels = sorted(Path(folder).glob("*.whl"))
    if not wheels:
        raise RuntimeError(f"no wheels in {folder}: build them with scripts/fetch_gpu_wheels.sh and carry the folder")
    shutil.rmtree(site, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--upgrade", "--target", str(site)] + [str(w) for w in wheels]
    subprocess.run(cmd, check=True)
    return [w.name for w in wheels]


# ---------------------------------------------------------------- model and data (used by the parts)
def model_settings(args):
    """(config class name, settings) of the model the run builds."""
    known = shapes()
    if args.model not in known:
        raise SystemExit(f"unknown --model {args.model!r}: choose one of {', '.join(known)}")
    config_class, settings = known[args.model]
    settings = dict(settings)
    if args.tiny:
        settings.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, vocab_size=1024)
        settings.pop("head_dim", None)
    return config_class.__name__, settings


def count_parameters(config_name, settings):
    """Parameters of a Llama/Qwen2 decoder from its config numbers (Qwen2 has q/k/v biases)."""
    h, i, n = settings["hidden_size"], settings["intermediate_size"], settings["num_hidden_layers"]
    heads, kv = settings["num_attention_heads"], settings["num_key_value_heads"]
    head_dim = settings.get("head_dim") or h // heads
    q, k = heads * head_dim, kv * head_dim
    attention = h * q + 2 * h * k + q * h + ((q + 2 * k) if config_name == "Qwen2Config" else 0)
    layer = attention + 3 * h * i + 2 * h
    embed = settings["vocab_size"] * h
    return embed * (1 if settings.get("tie_word_embeddings") else 2) + n * layer + h


def build_model_dir(args, target):
    """The real model's tokenizer (or the course's) + the model with random weights, saved to `target` (bf16)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    sys.path.insert(0, str(ROOT))
    from ftlab import models, tokenizer as course_tokenizer

    real = (models.REAL_MODEL_DIR / "tokenizer.json").exists()
    tok = (AutoTokenizer.from_pretrained(models.REAL_MODEL_DIR) if real
           else course_tokenizer.train_tokenizer(corpus_texts(), model_max_length=max(args.seq_len, 2048)))
    config_name, settings = model_settings(args)
    config_class = shapes()[args.model][0]
    # The real model's vocabulary size stays (151936 for Qwen2.5): the embedding and the LM head, a large
    # share of a small model's compute and memory, keep their real size. The course tokenizer uses the first
    # few hundred ids; the others are never in the data.
    vocab = max(settings["vocab_size"], len(tok))
    settings["vocab_size"] = vocab
    config = config_class(**settings, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    set_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    target = Path(target)
    shutil.rmtree(target, ignore_errors=True)
    model.save_pretrained(target)
    tok.save_pretrained(target)
    del model
    return {"model": args.model if not args.tiny else f"{args.model} (tiny)", "config": config_name,
            "parameters": n_params, "vocab_size": vocab, "tokenizer_vocab": len(tok),
            "tokenizer": "SmolLM2-135M-Instruct's (chat template included)" if real else "the course's",
            "hidden_size": settings["hidden_size"], "layers": settings["num_hidden_layers"]}


def corpus_texts():
    """The course corpus (ftlab.data, which needs no `datasets`)."""
    return [row["text"] for row in course_rows("corpus", None)]


def bench_dataset(tokenizer, n_rows, seq_len):
    """Rows of exactly `seq_len` token ids cut from the course corpus: every token counts, no padding."""
    from datasets import Dataset

    ids, rows = [], []
    for text in corpus_texts():
        ids.extend(tokenizer(text)["input_ids"] + [tokenizer.eos_token_id])
        while len(ids) >= seq_len and len(rows) < n_rows:
            rows.append(ids[:seq_len])
            ids = ids[seq_len:]
        if len(rows) >= n_rows:
            break
    while len(rows) < n_rows:  # a corpus shorter than asked: repeat it
        rows.append(rows[len(rows) % max(1, len(rows))])
    return Dataset.from_dict({"input_ids": rows})


def course_rows(name, n):
    sys.path.insert(0, str(ROOT))
    from ftlab import data

    return data.read(name, "train")[:n]


# ---------------------------------------------------------------- the parts (each in its own process)
def _losses(trainer):
    return [e["loss"] for e in trainer.state.log_history if "loss" in e]


def _check_losses(losses, steps_done, steps_asked):
    if steps_done < steps_asked:
        raise RuntimeError(f"only {steps_done} of {steps_asked} steps ran")
    if not losses:
        raise RuntimeError("the trainer logged no loss")
    bad = [x for x in losses if not math.isfinite(x)]
    if bad:
        raise RuntimeError(f"non-finite loss: {bad}")


def _precision(device):
    """The course's rule (ftlab.profiles): bf16 from compute capability 8 on, fp16 below (a T4's 7.5), as Unsloth
    loads the model; torch.cuda.is_bf16_supported() says True on a T4, which only emulates bf16."""
    sys.path.insert(0, str(ROOT))
    from ftlab.profiles import PROFILES

    return PROFILES["gpu"].precision() if device == "cuda" else {"bf16": False, "fp16": False}


def _common_trainer_args(args, device, output_dir, steps):
    return dict(output_dir=str(output_dir), max_steps=steps, logging_steps=1, save_strategy="no", report_to="none",
                dataloader_num_workers=0, seed=0, use_cpu=device != "cuda", **_precision(device))


def _versions():
    from importlib import metadata

    out = {}
    for lib in ["torch", "transformers", "trl", "peft", "accelerate", "datasets", "unsloth", "unsloth_zoo",
                "bitsandbytes", "triton", "xformers", "tokenizers"]:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = None
    return out


def _load_unsloth(model_dir, max_seq_length, load_in_4bit, grad_ckpt=True):
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(model_dir), max_seq_length=max_seq_length, dtype=None, load_in_4bit=load_in_4bit,
        local_files_only=True)
    model = FastLanguageModel.get_peft_model(
        model, **LORA, use_gradient_checkpointing="unsloth" if grad_ckpt else False, random_state=0)
    return model, tokenizer


def _timing_callback(warmup, device):
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time from the end of the warm-up steps to the end of the last step, the GPU synchronized."""

        def __init__(self):
            self.start = self.end = None

        def _now(self):
            if device == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter()

        def on_train_begin(self, args, state, control, **kwargs):
            if warmup == 0:
                self.start = self._now()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                self.start = self._now()
            if state.global_step == args.max_steps:
                self.end = self._now()

    return StepTimer()


def part_bench(args, device, model_dir, work, use_unsloth):
    """The benchmark: identical LoRA SFT steps through Unsloth or through plain transformers + PEFT."""
    import torch

    grad_ckpt = args.grad_ckpt == "on"
    if use_unsloth:
        model, tokenizer = _load_unsloth(model_dir, args.seq_len, load_in_4bit=False, grad_ckpt=grad_ckpt)
    else:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        precision = _precision(device)  # the trainer's precision below: the model is loaded in the same
        dtype = torch.bfloat16 if precision["bf16"] else torch.float16 if precision["fp16"] else torch.float32
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa").to(device)
        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
    from trl import SFTConfig, SFTTrainer

    result = {}
    if device == "cpu" and not use_unsloth:
        # CPU smoke test only: TRL 1.15's SFT loss runs a Triton kernel that needs a GPU driver (README.md).
        # unsloth_zoo's pure-torch version of it stands in, loaded from its file alone (importing the package
        # would need Unsloth); on a GPU the plain path stays plain.
        import importlib.util

        spec = importlib.util.find_spec("unsloth_zoo")
        ops_file = Path(spec.submodule_search_locations[0]) / "cpu" / "ops.py"
        ops_spec = importlib.util.spec_from_file_location("_gpu_check_cpu_ops", ops_file)
        ops = importlib.util.module_from_spec(ops_spec)
        ops_spec.loader.exec_module(ops)
        ops.patch_trl_fused_lm_head()
        result["notes"] = ["CPU smoke test: TRL's Triton log-prob kernel replaced by unsloth_zoo's torch one"]
    steps = args.warmup + args.bench_steps
    dataset = bench_dataset(tokenizer, steps * args.batch_size, args.seq_len)
    config = SFTConfig(**_common_trainer_args(args, device, work / "bench", steps),
                       per_device_train_batch_size=args.batch_size, learning_rate=2e-4, lr_scheduler_type="constant",
                       warmup_steps=0, max_length=args.seq_len, packing=False, gradient_checkpointing=grad_ckpt,
                       dataset_num_proc=1)
    timer = _timing_callback(args.warmup, device)
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[timer])
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        result["memory_before_training_gib"] = torch.cuda.memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    losses = _losses(trainer)
    _check_losses(losses, trainer.state.global_step, steps)
    seconds = timer.end - timer.start
    tokens = args.bench_steps * args.batch_size * args.seq_len
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result.update(path="unsloth" if use_unsloth else "transformers+peft", steps_timed=args.bench_steps,
                  warmup_steps=args.warmup, batch_size=args.batch_size, seq_len=args.seq_len,
                  gradient_checkpointing=grad_ckpt, tokens_timed=tokens, seconds=seconds,
                  tokens_per_second=tokens / seconds, first_loss=losses[0], last_loss=losses[-1],
                  trainable_parameters=trainable, attention=getattr(model.config, "_attn_implementation", None))
    if device == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    return result


def part_sft(args, device, model_dir, work, load_in_4bit):
    """The gpu profile's LoRA SFT through Unsloth, with the course's SFT config (assistant-only loss)."""
    from datasets import Dataset
    from trl import SFTTrainer

    sys.path.insert(0, str(ROOT))
    from ftlab import chat
    from ftlab.profiles import PROFILES
    from ftlab.sft import sft_config

    profile = PROFILES["gpu"]
    model, tokenizer = _load_unsloth(model_dir, profile.max_seq_length, load_in_4bit=load_in_4bit)
    # prompt-completion pairs: the loss on the answers only (completion_only_loss), with any chat template
    dataset = Dataset.from_list([chat.prompt_completion(r) for r in course_rows("sft", 64 * args.steps)])
    config = sft_config(work / "sft", profile, max_steps=args.steps, eval_strategy="no", logging_steps=1,
                        use_cpu=device != "cuda", **_precision(device), dataset_num_proc=1)
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()  # no retry with another loss: a failure here is the finding
    losses = _losses(trainer)
    _check_losses(losses, trainer.state.global_step, args.steps)
    return {"load_in_4bit": load_in_4bit, "steps": trainer.state.global_step, "losses": losses,
            "completion_only_loss": config.completion_only_loss, "batch_size": config.per_device_train_batch_size,
            "max_length": config.max_length}


def _gpu_stage(name, batch_size, learning_rate):
    """(batch size, learning rate) of a gpu-profile stage in ftlab.profiles, or these defaults where it has none."""
    sys.path.insert(0, str(ROOT))
    from ftlab.profiles import PROFILES

    stage = PROFILES["gpu"].stages.get(name)
    return (stage.batch_size, stage.learning_rate) if stage else (batch_size, learning_rate)


def part_dpo(args, device, model_dir, work):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    model, tokenizer = _load_unsloth(model_dir, 1024, load_in_4bit=False)
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in course_rows("preferences", 16 * args.steps)]
    batch_size, learning_rate = _gpu_stage("dpo", 8, 5e-6)
    config = DPOConfig(**_common_trainer_args(args, device, work / "dpo", args.steps),
                       per_device_train_batch_size=batch_size, learning_rate=learning_rate, beta=0.1, max_length=512,
                       dataset_num_proc=1)
    trainer = DPOTrainer(model=model, ref_model=None, args=config, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer)
    trainer.train()
    losses = _losses(trainer)
    _check_losses(losses, trainer.state.global_step, args.steps)
    return {"steps": trainer.state.global_step, "losses": losses, "batch_size": batch_size,
            "learning_rate": learning_rate}


def part_grpo(args, device, model_dir, work):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from ftlab.rewards import correctness_reward  # the lessons' verifiable reward

    model, tokenizer = _load_unsloth(model_dir, 1024, load_in_4bit=False)
    rows = [{"prompt": r["prompt"], "answer": r["answer"]} for r in course_rows("prompts", 16 * args.steps)]
    batch_size, learning_rate = _gpu_stage("grpo", 16, 5e-6)  # completions per step
    generations = 4 if batch_size % 4 == 0 else 2
    config = GRPOConfig(**_common_trainer_args(args, device, work / "grpo", args.steps),
                        per_device_train_batch_size=batch_size, num_generations=generations, max_completion_length=32,
                        learning_rate=learning_rate, temperature=1.0, use_vllm=False)
    trainer = GRPOTrainer(model=model, reward_funcs=[correctness_reward], args=config,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    trainer.train()
    losses = _losses(trainer)
    _check_losses(losses, trainer.state.global_step, args.steps)
    rewards = [e.get("reward") for e in trainer.state.log_history if "reward" in e]
    return {"steps": trainer.state.global_step, "losses": losses, "rewards": rewards, "batch_size": batch_size,
            "learning_rate": learning_rate, "num_generations": generations, "max_completion_length": 32}


def run_part(args):
    """Child process: run one part, write {"ok": ..., ...} to --part-out. Unsloth before transformers."""
    started = time.perf_counter()
    result = {"part": args.part, "ok": False}
    try:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu" and not args.allow_cpu:
            raise RuntimeError("no CUDA device: torch.cuda.is_available() is False (use --allow-cpu for a smoke test)")
        if args.part == "qlora" and device != "cuda":
            raise RuntimeError("QLoRA 4-bit needs CUDA (bitsandbytes' 4-bit kernels)")
        if args.part != "bench_plain":
            import unsloth  # noqa: F401  (first: it patches transformers, trl and peft)
        result["device"] = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
        model_dir, work = args.work / "model", args.work / args.part
        if args.part == "bench_unsloth":
            result.update(part_bench(args, device, model_dir, work, use_unsloth=True))
        elif args.part == "bench_plain":
            result.update(part_bench(args, device, model_dir, work, use_unsloth=False))
        elif args.part in ("sft", "qlora"):
            result.update(part_sft(args, device, model_dir, work, load_in_4bit=args.part == "qlora"))
        elif args.part == "dpo":
            result.update(part_dpo(args, device, model_dir, work))
        elif args.part == "grpo":
            result.update(part_grpo(args, device, model_dir, work))
        if device == "cuda" and "peak_memory_gib" not in result:  # the process's peak: loading and training
            result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["ok"] = True
    except BaseException as err:  # noqa: BLE001  (the driver must get a result whatever happened)
        result["error"] = f"{type(err).__name__}: {err}"
        result["traceback"] = traceback.format_exc()[-4000:]
    result["seconds_total"] = time.perf_counter() - started
    try:
        result["versions"] = _versions()
    except Exception:  # noqa: BLE001
        pass
    args.part_out.parent.mkdir(parents=True, exist_ok=True)
    args.part_out.write_text(json.dumps(result, indent=1, default=str))
    return 0 if result["ok"] else 1


# ---------------------------------------------------------------- the driver
def child_argv(args, part, part_out):
    argv = [sys.executable, str(Path(__file__).resolve()), "--part", part, "--part-out", str(part_out),
            "--steps", str(args.steps), "--bench-steps", str(args.bench_steps), "--warmup", str(args.warmup),
            "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), "--grad-ckpt", args.grad_ckpt,
            "--model", args.model, "--work", str(args.work), "--no-install"]
    if args.tiny:
        argv.append("--tiny")
    if args.allow_cpu:
        argv.append("--allow-cpu")
    return argv


def child_env(args, installed):
    env = dict(os.environ, **OFFLINE_ENV)
    paths = ([str(args.site)] if installed else []) + [str(ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_child(argv, env, cwd, timeout, log_file):
    """Run one part; its output goes to `log_file`. On timeout its whole process group is killed (torch's
    compile workers included), so nothing holds the GPU for the next part. Returns (output, exit code)."""
    import signal

    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as log:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = "timeout"
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of a finished part, or the whole part on timeout
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    return Path(log_file).read_text(errors="replace"), rc


def summarize(results):
    """Ratios of the two benchmark paths, when both ran."""
    parts = results["parts"]
    u, p = parts.get("bench_unsloth", {}), parts.get("bench_plain", {})
    if u.get("ok") and p.get("ok"):
        summary = {"speedup": u["tokens_per_second"] / p["tokens_per_second"]}
        if u.get("peak_memory_gib") and p.get("peak_memory_gib"):
            summary["memory_ratio"] = u["peak_memory_gib"] / p["peak_memory_gib"]
            summary["memory_saved"] = 1 - summary["memory_ratio"]
        results["summary"] = summary
    results["all_ok"] = bool(parts) and all(parts[name].get("ok") for name in parts)
    return results


def run(args):
    deadline = time.perf_counter() + args.budget_s
    log = Path(args.out).with_name("gpu_check.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    results = {"results_version": RESULTS_VERSION, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "settings": {k: getattr(args, k) for k in ("steps", "bench_steps", "warmup", "batch_size", "seq_len",
                                                          "grad_ckpt", "model", "tiny", "parts")},
               "python": sys.version.split()[0], "parts": {}}

    def say(message):
        print(message, flush=True)
        with open(log, "a") as f:
            f.write(message + "\n")

    def save():
        summarize(results)
        write_results(results, args.out)

    log.write_text("")
    installed = False
    sys.path.insert(0, str(ROOT))
    if not args.no_install:
        try:
            t = time.perf_counter()
            results["installed_wheels"] = install_wheels(args.wheels, args.site)
            installed = True
            sys.path.insert(0, str(args.site))
            say(f"installed {len(results['installed_wheels'])} wheels into {args.site} in {time.perf_counter() - t:.0f} s")
        except Exception as err:  # noqa: BLE001
            results["install_error"] = f"{type(err).__name__}: {err}"
            say(f"INSTALL FAILED: {results['install_error']}")
            save()
            return 1
    try:
        import torch

        results["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        results["torch"] = torch.__version__
        if results["gpu"] is None and not args.allow_cpu:
            raise RuntimeError("no CUDA device: torch.cuda.is_available() is False (use --allow-cpu for a smoke test)")
        args.work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        results["model"] = build_model_dir(args, args.work / "model")
        say(f"built {results['model']} in {time.perf_counter() - t:.0f} s")
    except Exception as err:  # noqa: BLE001
        results["setup_error"] = f"{type(err).__name__}: {err}"
        results["setup_traceback"] = traceback.format_exc()[-4000:]
        say(f"SETUP FAILED: {results['setup_error']}\n{results['setup_traceback']}")
        save()
        return 1
    save()
    env = child_env(args, installed)
    for part in args.parts:
        left = deadline - time.perf_counter()
        if left < 20:
            results["parts"][part] = {"part": part, "ok": False, "error": f"skipped: the {args.budget_s:.0f} s budget is spent"}
            say(f"[{part}] SKIPPED (budget)")
            save()
            continue
        part_out = args.work / "results" / f"{part}.json"
        part_out.unlink(missing_ok=True)
        say(f"[{part}] {PART_HELP[part]}")
        t = time.perf_counter()
        limit = min(args.part_timeout_s, left)
        output, rc = run_child(child_argv(args, part, part_out), env, args.work, limit,
                               args.work / "results" / f"{part}.log")
        if part_out.exists():
            result = json.loads(part_out.read_text())
        else:
            result = {"part": part, "ok": False,
                      "error": f"the part's process ended ({rc}) without a result" + (
                          f" after its {limit:.0f} s limit" if rc == "timeout" else "")}
        result["wall_seconds"] = time.perf_counter() - t
        results["parts"][part] = result
        with open(log, "a") as f:
            f.write(f"----- output of {part} (rc {rc}), last 20000 characters -----\n{output[-20000:]}\n")
        status = "ok" if result.get("ok") else f"FAILED: {result.get('error')}"
        say(f"[{part}] {status} ({result['wall_seconds']:.0f} s)")
        save()
    for part in args.parts:
        r = results["parts"].get(part, {})
        if r.get("versions"):
            results["versions"] = r["versions"]
            break
    save()
    try:
        page = render_page(results, args.docs.read_text() if args.docs.exists() else "")
        args.docs.parent.mkdir(parents=True, exist_ok=True)
        args.docs.write_text(page)
        Path(args.out).with_name("benchmarks.md").write_text(page)
    except Exception as err:  # noqa: BLE001
        say(f"rendering the page failed: {type(err).__name__}: {err}")
    say(json.dumps(results.get("summary", {})))
    say("ALL PARTS OK" if results["all_ok"] else "SOME PARTS FAILED: see " + str(log))
    return 0 if results["all_ok"] else 1


def write_results(results, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    os.replace(tmp, path)


# ---------------------------------------------------------------- the page
BEGIN, END = "<!-- gpu_check results: begin -->", "<!-- gpu_check results: end -->"


def _f(x, fmt):
    return "n/a" if x is None else format(x, fmt)


def _count(n):
    if not n:
        return "?"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n:,}"


def render_results(results):
    """The results section of docs/benchmarks.md, in markdown."""
    out = []
    model = results.get("model", {})
    v = results.get("versions", {})
    out.append(f"Run of {results.get('started_utc', '?')} on {results.get('gpu') or 'CPU (smoke test, no numbers)'}, "
               f"Python {results.get('python', '?')}, torch {v.get('torch') or results.get('torch', '?')}, "
               f"transformers {v.get('transformers', '?')}, trl {v.get('trl', '?')}, peft {v.get('peft', '?')}, "
               f"unsloth {v.get('unsloth', '?')}, bitsandbytes {v.get('bitsandbytes', '?')}.")
    if model:
        out.append(f"Model: {model.get('model')} shape ({model.get('config')}), random weights, "
                   f"{_count(model.get('parameters'))} parameters, vocabulary {model.get('vocab_size')} "
                   f"(the course tokenizer uses {model.get('tokenizer_vocab')} of those ids).")
    for key in ("install_error", "setup_error"):
        if results.get(key):
            out.append(f"**{key.replace('_', ' ')}:** `{results[key]}`")
    parts = results.get("parts", {})
    bench = [parts[p] for p in ("bench_unsloth", "bench_plain") if p in parts]
    if bench:
        s = results.get("settings", {})
        out += ["", f"### Speed and memory: LoRA r16 on all linear layers, batch {s.get('batch_size')} x "
                    f"{s.get('seq_len')} tokens, gradient checkpointing {s.get('grad_ckpt')}, "
                    f"{s.get('bench_steps')} timed steps after {s.get('warmup')} warm-up steps", "",
                "| path | tokens/s | peak GPU memory (GiB) | memory before training (GiB) | first loss | last loss | status |",
                "|---|---|---|---|---|---|---|"]
        for name, r in zip(("Unsloth", "transformers + PEFT"), bench):
            status = "ok" if r.get("ok") else f"failed: {r.get('error', '?')[:200]}"
            out.append(f"| {name} | {_f(r.get('tokens_per_second'), ',.0f')} | {_f(r.get('peak_memory_gib'), '.2f')} | "
                       f"{_f(r.get('memory_before_training_gib'), '.2f')} | {_f(r.get('first_loss'), '.3f')} | "
                       f"{_f(r.get('last_loss'), '.3f')} | {status} |")
        summary = results.get("summary")
        if summary:
            line = f"Unsloth / plain: **{summary['speedup']:.2f}x** the tokens per second"
            if "memory_ratio" in summary:
                line += (f", **{summary['memory_ratio']:.2f}x** the peak memory "
                         f"({summary['memory_saved'] * 100:.0f}% less)")
            out += ["", line + "."]
    rest = [p for p in ("sft", "qlora", "dpo", "grpo") if p in parts]
    if rest:
        out += ["", "### The gpu profile's training paths through Unsloth", "",
                "| part | steps | losses (first, last) | mean reward (first, last) | peak GPU memory (GiB) | time (s) | status |",
                "|---|---|---|---|---|---|---|"]
        for p in rest:
            r = parts[p]
            losses = r.get("losses") or []
            shown = f"{losses[0]:.3f}, {losses[-1]:.3f}" if losses else "n/a"
            status = "ok" if r.get("ok") else f"failed: {r.get('error', '?')[:200]}"
            if r.get("notes"):
                status += " (" + "; ".join(r["notes"])[:200] + ")"
            rewards = [x for x in (r.get("rewards") or []) if x is not None]
            reward = f"{rewards[0]:.2f}, {rewards[-1]:.2f}" if rewards else ""
            out.append(f"| {p} | {r.get('steps', 'n/a')} | {shown} | {reward} | {_f(r.get('peak_memory_gib'), '.2f')} "
                       f"| {_f(r.get('wall_seconds'), '.0f')} | {status} |")
    return "\n".join(out) + "\n"


def render_page(results, page):
    """`page` with the text between the result markers replaced by the rendered results."""
    section = f"{BEGIN}\n{render_results(results)}{END}"
    if BEGIN in page and END in page:
        head, rest = page.split(BEGIN, 1)
        return head + section + rest.split(END, 1)[1]
    return page.rstrip("\n") + "\n\n## Results\n\n" + section + "\n"


# ---------------------------------------------------------------- is the wheel list complete?
IMPORT_CHECK = r"""
import importlib.abc, json, os, re, sys
from importlib.metadata import packages_distributions

norm = lambda n: re.sub(r"[-_.]+", "_", n).lower()
allowed = {norm(n) for n in json.loads(sys.argv[1])}
owners = packages_distributions()
hidden = set()

def blocked(name):
    top = name.split(".")[0]
    dists = owners.get(top)
    if top in sys.stdlib_module_names or top == "ftlab" or not dists or any(norm(d) in allowed for d in dists):
        return False
    hidden.add(top)
    return True

class Hide(importlib.abc.MetaPathFinder):
    def __init__(self, inner):
        self.inner = inner
    def find_spec(self, name, path=None, target=None):
        return None if blocked(name) else self.inner.find_spec(name, path, target)
    def find_distributions(self, *args, **kwargs):
        found = getattr(self.inner, "find_distributions", None)
        return iter(()) if found is None else (
            d for d in found(*args, **kwargs) if norm(d.metadata["Name"] or "") in allowed)
    def invalidate_caches(self):
        getattr(self.inner, "invalidate_caches", lambda: None)()

sys.meta_path[:] = [f if getattr(f, "__name__", "") in ("BuiltinImporter", "FrozenImporter") else Hide(f)
                    for f in sys.meta_path]
import unsloth
from unsloth import FastLanguageModel
from trl import SFTConfig, SFTTrainer, DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer
import bitsandbytes, datasets, peft
print("HIDDEN=" + json.dumps(sorted(hidden)))
"""


def check_imports(machine_packages=MACHINE_PACKAGES, wheel_list=WHEEL_LIST, timeout=900):
    """Import Unsloth's GPU code path (UNSLOTH_ALLOW_CPU=1 keeps it on a CPU) in a fresh interpreter in which
    only the GPU machine's packages and the carried wheels can be found. Returns (ok, hidden modules, output)."""
    machine = [line.strip() for line in Path(machine_packages).read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    allowed = machine + [name for name, _ in read_wheel_list(wheel_list)]
    env = dict(os.environ, UNSLOTH_ALLOW_CPU="1", **OFFLINE_ENV)
    done = subprocess.run([sys.executable, "-c", IMPORT_CHECK, json.dumps(allowed)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    hidden = json.loads(done.stdout.split("HIDDEN=")[-1]) if "HIDDEN=" in done.stdout else None
    return done.returncode == 0 and hidden is not None, hidden, output


# ---------------------------------------------------------------- plan
def plan(args):
    lines = ["gpu_check plan (nothing is run)", ""]
    config_name, settings = model_settings(args)
    n = count_parameters(config_name, settings)
    lines.append(f"model: {args.model}{' (tiny)' if args.tiny else ''} shape, {config_name}, random weights, "
                 f"about {n / 1e6:.0f}M parameters, SmolLM2-135M-Instruct's tokenizer (carry "
                 f"artifacts/models/SmolLM2-135M-Instruct/tokenizer*; the course tokenizer without it)")
    lines.append(f"parts, in order (each its own process, limit {args.part_timeout_s:.0f} s each, "
                 f"{args.budget_s:.0f} s in all):")
    for part in args.parts:
        lines.append(f"  {part:14s} {PART_HELP[part]}")
    lines.append(f"steps: {args.steps} per training part; benchmark {args.warmup} warm-up + {args.bench_steps} timed "
                 f"steps of {args.batch_size} x {args.seq_len} tokens, gradient checkpointing {args.grad_ckpt}")
    lines.append(f"results: {args.out} (and gpu_check.log, benchmarks.md beside it); page: {args.docs}")
    lines.append("")
    wheels = read_wheel_list()
    sizes = wheel_sizes(args.wheels)
    lines.append(f"wheels ({WHEEL_LIST.relative_to(ROOT)}), from {args.wheels}:")
    for name, version in wheels:
        w = wheel_files(args.wheels).get(normalize(name))
        size = f"{w.stat().st_size / 2**20:6.2f} MiB" if w else "   not fetched"
        lines.append(f"  {name + '==' + version:30s} {size}")
    total = sum(sizes.values())
    tree = tree_size()
    missing = missing_wheels(args.wheels)
    if missing:
        lines.append(f"missing: {', '.join(missing)}: run scripts/fetch_gpu_wheels.sh")
    if tree is not None:
        fits = "fits" if tree + total <= CARRY_LIMIT else "DOES NOT FIT"
        lines.append(f"carry: wheels {total / 2**20:.1f} MiB + working tree {tree / 2**20:.1f} MiB = "
                     f"{(total + tree) / 2**20:.1f} MiB of {CARRY_LIMIT / 2**20:.0f} MiB: {fits}")
    else:  # not a git checkout: the working tree's size is unknown
        lines.append(f"carry: wheels {total / 2**20:.1f} MiB + the working tree, of {CARRY_LIMIT / 2**20:.0f} MiB")
    print("\n".join(lines))
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.part:
        return run_part(args)
    if args.plan:
        return plan(args)
    if args.check_imports:
        ok, hidden, output = check_imports()
        if not ok:
            print(output[-6000:])
            print("IMPORT CHECK FAILED: a module the GPU path imports is neither on the GPU machine nor carried")
            return 1
        print(f"import check ok: Unsloth's GPU path imports with the carried wheels; optional modules it looked "
              f"for and did without: {', '.join(hidden) or 'none'}")
        return 0
    if args.fetch_wheels:
        sizes = fetch_wheels(args.wheels)
        total = sum(sizes.values())
        for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
            print(f"{size / 2**20:8.2f} MiB  {name}")
        print(f"{total / 2**20:8.2f} MiB  in all ({CARRY_LIMIT / 2**20:.0f} MiB may be carried, repo included)")
        missing = missing_wheels(args.wheels)
        if missing:
            print(f"missing after the download: {', '.join(missing)}")
            return 1
        return 0
    if args.render:
        results = json.loads(Path(args.render).read_text())
        page = render_page(results, args.docs.read_text() if args.docs.exists() else "")
        args.docs.parent.mkdir(parents=True, exist_ok=True)
        args.docs.write_text(page)
        print(f"rendered {args.render} into {args.docs}")
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
