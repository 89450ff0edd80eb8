"""One leaderboard for every model the course built (lesson 12): the same held-out chats, the same measures.

Each lesson measured its own model against its own starting point. Here every checkpoint on disk is loaded
and scored on the held-out chats of data/sft_test.jsonl with the measures the lessons used:
- chat accuracy: the share of math and fact questions answered right, greedily (`chat.accuracy`, lessons 02-11);
- whole stories: the share of story requests answered with a story that ends (`peft_train.story_rate`, 03-07);
- answer loss: the cross-entropy per answer token (`chat.answer_loss`, 02-07); lower is better.

`checkpoints(profile)` says where each lesson leaves its model and what kind of file it is; a checkpoint not on disk has
a row that says so. A lesson that keeps its model in memory only joins with one line, `save_checkpoint`.
"""
import dataclasses
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
from transformers import AutoModelForCausalLM, AutoTokenizer

from . import adapters, base_model, chat, models, rl_start, sft, stats
from .paths import ROOT, atomic_dir
from .peft_train import story_rate

MEASURES = {"chat accuracy": "higher", "whole stories": "higher", "answer loss": "lower"}
KINDS = {"model": "whole model", "lora": "LoRA adapter", "bottleneck": "bottleneck adapter"}


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    name: str
    lesson: str
    kind: str  # model, lora (a PEFT adapter, on the model its config names) or bottleneck (lesson 05)
    path: Path
    build: object = None  # for the models the course caches: the function that loads it, rebuilding when missing


def saved_dir(profile):
    """Where lessons that keep no model of their own save one for the board."""
    return profile.artifacts / "checkpoints"


def checkpoints(profile):
    """What to score in `profile`: the start models first (the course's, rebuilt when missing; or the profile's
    real chat model), then whatever the lessons of this profile saved."""
    saved, adapter_dir = saved_dir(profile), profile.artifacts / "adapters"
    rl = "model" if profile.course_model else "lora"  # on a real model lessons 09-11 train LoRA adapters
    lessons = [
        Checkpoint("LoRA r=8", "03", "lora", saved / "lora"),
        Checkpoint("LoRA math adapter", "03", "lora", adapter_dir / "math"),
        Checkpoint("LoRA story adapter", "03", "lora", adapter_dir / "story"),
        Checkpoint("bottleneck math adapter", "05", "bottleneck", adapter_dir / "bottleneck-math"),
        Checkpoint("PPO", "09", rl, saved / "ppo"),
        Checkpoint("DPO", "10", rl, saved / "dpo"),
        Checkpoint("GRPO", "11", rl, saved / "grpo"),
    ]
    if profile.course_model:
        return [Checkpoint("base model", "01", "model", base_model.BASE_DIR, build=base_model.load_base_model),
                Checkpoint("SFT", "02", "model", sft.SFT_DIR, build=sft.load_sft_model),
                Checkpoint("SFT stopped at 150 steps", "11", "model", rl_start.EARLY_SFT_DIR,
                           build=rl_start.load_early_sft_model)] + lessons
    starts = [Checkpoint(name, "start", "model", Path(models.start_model(profile, kind)),
                         build=lambda kind=kind: _load_model(models.start_model(profile, kind), profile))
              for kind, name in {"base": profile.base_model, "chat": profile.chat_model}.items()]
    sft_model = Checkpoint("SFT", "02", "model", sft.sft_model_dir(profile), build=lambda: sft.load_sft_model(profile))
    return list({c.name: c for c in starts}.values()) + [sft_model] + lessons


def _load_model(path, profile):
    return (AutoModelForCausalLM.from_pretrained(path, dtype=profile.dtype, device_map=profile.device),
            AutoTokenizer.from_pretrained(path))


def save_checkpoint(model, tokenizer, name, profile):
    """Save a lesson's model where the leaderboard looks (the profile's checkpoints/NAME), atomically: a whole
    model as safetensors, a PEFT model as its adapter alone (its config names the model it was trained on)."""
    with atomic_dir(saved_dir(profile) / name) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return saved_dir(profile) / name


def kind_on_disk(path):
    """What `path` holds (a key of KINDS), or None when it holds no model."""
    path = Path(path)
    if (path / "config.json").exists():
        return "model"
    if (path / "adapter_config.json").exists():
        config = json.loads((path / "adapter_config.json").read_text())
        return "lora" if config.get("peft_type") == "LORA" else "bottleneck" if "bottleneck_size" in config else None
    return None


def missing_reason(checkpoint):
    """None when the checkpoint can be loaded, else why not (shown in its row of the table)."""
    found = kind_on_disk(checkpoint.path)
    if checkpoint.build is not None or found == checkpoint.kind:
        return None
    if found is None:
        return f"not on disk: lesson {checkpoint.lesson} has not saved it"
    return f"{os.path.relpath(checkpoint.path, ROOT)} holds a {KINDS[found]} now: another lesson saved there"


def load_checkpoint(checkpoint, profile):
    """(model, tokenizer) of a checkpoint, with the library call that reads its kind of file."""
    if checkpoint.build is not None:
        return checkpoint.build()
    if checkpoint.kind == "model":
        return _load_model(checkpoint.path, profile)
    if checkpoint.kind == "lora":
        from peft import AutoPeftModelForCausalLM  # loads the model named in adapter_config.json, then the adapter

        model = AutoPeftModelForCausalLM.from_pretrained(checkpoint.path, dtype=profile.dtype,
                                                         device_map=profile.device)
        saved_with_tokenizer = (checkpoint.path / "tokenizer_config.json").exists()
        return model, AutoTokenizer.from_pretrained(
            checkpoint.path if saved_with_tokenizer else model.peft_config["default"].base_model_name_or_path)
    model, tokenizer = _load_model(models.start_model(profile, "base"), profile)  # lesson 05's start model
    adapters.enable(model, adapters.load_adapter(model, checkpoint.path))
    return model, tokenizer


def score(model, tokenizer, rows):
    """The three measures of one model on the held-out chats `rows` (dicts with messages, task and answer)."""
    graded = chat.grade(model, tokenizer, rows)
    share, low, high = stats.accuracy_interval(graded)  # how sure: the held-out set is small (ftlab.stats)
    return {"chat accuracy": share, "chat accuracy 95% CI": (low, high),
            "whole stories": story_rate(model, tokenizer, rows),
            "answer loss": chat.answer_loss(model, tokenizer, [r["messages"] for r in rows])}


def board_row(name, lesson, kind, model, tokenizer, rows):
    """A row of the board for a model in memory: its name, lesson, kind (a key of KINDS) and scores."""
    return {"name": name, "lesson": lesson, "kind": KINDS[kind], "missing": None} | score(model, tokenizer, rows)


def evaluate_all(entries, rows, profile):
    """One row per checkpoint in `entries`: name, lesson, kind, and its scores (or why it is missing)."""
    board = []
    for checkpoint in entries:
        reason = missing_reason(checkpoint)
        if reason is None:
            model, tokenizer = load_checkpoint(checkpoint, profile)
            board.append(board_row(checkpoint.name, checkpoint.lesson, checkpoint.kind, model, tokenizer, rows))
        else:
            board.append({"name": checkpoint.name, "lesson": checkpoint.lesson, "kind": KINDS[checkpoint.kind],
                          "missing": reason})
    return board


def table_rows(board):
    """The board as table rows, best chat accuracy first; missing checkpoints last, with the reason."""
    scored = sorted((r for r in board if r["missing"] is None), key=lambda r: -r["chat accuracy"])
    rows = [(r["name"], r["lesson"], r["kind"], f"{r['chat accuracy']:.0%}",
             "{:.0%}-{:.0%}".format(*r["chat accuracy 95% CI"]), f"{r['whole stories']:.0%}", f"{r['answer loss']:.3f}")
            for r in scored]
    return rows + [(r["name"], r["lesson"], r["kind"], "", "", "", r["missing"]) for r in board if r["missing"]]


def plot(board):
    """One panel per measure, one bar per scored checkpoint, in the order of the board."""
    scored = [r for r in board if r["missing"] is None]
    names = [f"{r['name']} ({r['lesson']})" for r in scored]
    fig, axes = plt.subplots(1, len(MEASURES), figsize=(14, 0.45 * len(names) + 1.4), sharey=True)
    for ax, (measure, better) in zip(axes, MEASURES.items()):
        values = [r[measure] for r in scored]
        ax.barh(names, values, color=[f"C{i}" for i in range(len(names))])
        ax.set(title=f"{measure} ({better} is better)")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.0%}" if better == "higher" else f" {v:.2f}", va="center", fontsize=8)
        ax.set_xlim(0, 1.15 if better == "higher" else 1.15 * max(values))  # room for the labels
    axes[0].invert_yaxis()
    fig.tight_layout()
    return fig
