"""One task, one budget, every PEFT method (lesson 07): trained the same way, measured the same way.

The lesson builds each model and trains it with SFTTrainer in plain sight; this module holds what is the same
for all of them:
- `measure()`: one row of the comparison table from a finished run (parameters, time per step, memory,
  held-out loss and score, bytes saved);
- the parameter counts of real architectures, by arithmetic and checked on the meta device (no weights, no
  download), against the usual rules of thumb (`OUTLINE_RANGES`).
"""
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

from . import adapters, architectures, lora
from .chat import answer_loss
from .parameters import trainable_parameters
from .paths import atomic_dir
from .peft_train import story_rate

# Every method trains with the profile's `peft_compare` stage (same steps, batch and chats); its learning rate is
# the stage's (LoRA's) unless a method needs its own, by the kind of model. The course model's rates, the stage's
# included, were chosen on the validation split: the lowest answer loss there among the half-decades around the
# rates each method's own lesson used (scripts/lr_select.py, docs/lr-select-07-cpu.md; 30 steps favour rates
# higher than those lessons' longer runs). The real model's (SmolLM2-135M) are the usual ones for a small
# pretrained model (full fine-tuning 1e-4, soft prompts 3e-2), checked in the real profile's short race.
LEARNING_RATES = {
    "course model": {"full fine-tuning": 3e-3, "IA3": 3e-1, "adapter (Houlsby)": 3e-2, "prompt tuning": 1e-1,
                     "prefix tuning": 3e-1, "P-tuning": 1e-2},
    "real model": {"full fine-tuning": 1e-4, "IA3": 3e-2, "adapter (Houlsby)": 3e-3, "prompt tuning": 3e-2,
                   "prefix tuning": 1e-1, "P-tuning": 3e-3},
}


def model_kind(profile):
    """"course model" (the course's own, trained from scratch) or "real model" (a pretrained one)."""
    return "course model" if profile.course_model else "real model"


def learning_rate(profile, method):
    return LEARNING_RATES[model_kind(profile)].get(method, profile.stage("peft_compare").learning_rate)


# ---------------------------------------------------------------- memory
def weight_bytes(model):
    """Bytes of the model's parameters and buffers as stored (4-bit weights count half a byte each)."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}.values()
    return sum(t.numel() * t.element_size() for t in tensors)


# ---------------------------------------------------------------- one row of the table
@dataclass
class Row:
    method: str
    learning_rate: float
    trainable: int
    total: int
    seconds_per_step: float
    peak_memory: int | None  # bytes: the weights, plus what training added at its peak
    held_out_loss: float
    score: float  # what the answers do, a share: whole stories, or sums and facts answered right (`measure`)
    saved_bytes: int
    log_history: list = field(repr=False)

    @property
    def share(self):
        return self.trainable / self.total


def save(model, directory):
    """Save what a method needs to be used later (the whole model for full fine-tuning, else the adapter or the
    prompt alone), atomically; returns the bytes written."""
    with atomic_dir(directory) as tmp:
        names = list(adapters.adapter_configs(model))
        if names:  # ftlab's bottleneck adapters (lesson 05)
            for name in names:
                adapters.save_adapter(model, name, tmp / name)
        else:  # transformers (full model) or PEFT (adapter_config.json, adapter_model.safetensors, README.md)
            model.save_pretrained(tmp)
    return sum(f.stat().st_size for f in Path(directory).rglob("*") if f.is_file())


def slug(method):
    """A folder name for a method: "adapter (Houlsby)" -> "adapter-houlsby"."""
    return re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")


def measure(method, trainer, peak, test_rows, save_root, score=story_rate):
    """The comparison row of a finished SFTTrainer run; `peak` is the PeakMemory around `trainer.train()`,
    `score(model, tokenizer, test_rows)` the share that scores what the answers do (default: whole stories;
    `chat.accuracy`: sums and facts answered right), and what the method saves goes to a folder of its own
    under `save_root`."""
    model, tokenizer = trainer.model, trainer.processing_class
    trainable, total = trainable_parameters(model)
    log = trainer.state.log_history
    return Row(method=method, learning_rate=trainer.args.learning_rate, trainable=trainable, total=total,
               seconds_per_step=log[-1]["train_runtime"] / trainer.state.global_step,
               peak_memory=None if peak.used is None else weight_bytes(model) + peak.used,
               held_out_loss=answer_loss(model, tokenizer, [r["messages"] for r in test_rows]),
               score=score(model, tokenizer, test_rows),
               saved_bytes=save(model, Path(save_root) / slug(method)), log_history=log)


# ---------------------------------------------------------------- real architectures
# Where LoRA goes: the LoRA paper adapted the attention's query and value projections; QLoRA and Unsloth adapt
# every linear layer of each block.
LORA_TARGETS = {"q, v": ("q_proj", "v_proj"), "all linear": lora.LLAMA_LINEARS}
# The rules of thumb the course outline started from: the share of the parameters each family trains.
OUTLINE_RANGES = {"LoRA": (0.001, 0.01), "Adapter": (0.01, 0.05)}


def lora_parameters_on_meta(name, r, targets):
    """LoRA's parameters as PEFT builds them on the real model, on the meta device (shapes only, no memory)."""
    model = get_peft_model(architectures.model_without_weights(name),
                           LoraConfig(r=r, target_modules=list(targets)), low_cpu_mem_usage=True)
    return model.get_nb_trainable_parameters()[0]


def adapter_parameters_on_meta(name, bottleneck_size, placement):
    """A bottleneck adapter's parameters as ftlab.adapters builds it on the real model, on the meta device."""
    model = architectures.model_without_weights(name)
    adapters.add_adapter(model, "count", bottleneck_size, placement)
    adapters.train_adapter(model, "count")
    return trainable_parameters(model)[0]


def outline_range_text(family):
    low, high = OUTLINE_RANGES[family]
    return f"{low * 100:g}% to {high * 100:g}%"


def outline_check(rows, family):
    """Sentences that say where the shares of `family` ("LoRA" or "Adapter") fall against the range the course
    outline gave for it.

    rows: dicts with family, setting, model and share. Settings outside the range are grouped by setting."""
    low, high = OUTLINE_RANGES[family]
    mine = [r for r in rows if r["family"] == family]
    inside = sum(low <= r["share"] <= high for r in mine)
    sentences = [f"{family}: {inside} of {len(mine)} settings fall inside the rule of thumb, "
                 f"{outline_range_text(family)}."]
    for side, outside in (("below", lambda share: share < low), ("above", lambda share: share > high)):
        by_setting = {}
        for r in mine:
            if outside(r["share"]):
                by_setting.setdefault(r["setting"], []).append(r)
        for setting, out in by_setting.items():
            shares = [r["share"] for r in out]
            where = "every model" if len(out) == len({r["model"] for r in mine}) else ", ".join(r["model"] for r in out)
            span = f"{shares[0]:.2%}" if len(out) == 1 else f"{min(shares):.2%} to {max(shares):.2%}"
            sentences.append(f"  {side} it: {family} {setting} on {where} ({span}).")
    return sentences
