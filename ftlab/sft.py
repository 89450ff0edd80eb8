"""The course SFT model: the base model fine-tuned on the course chats (lesson 02), the start of alignment.

Lesson 02 trains it step by step; lessons 08-11 call `load_sft_model()`, which reads it from artifacts/sft/
and, when it is missing or was built by another recipe, rebuilds it with `build_sft_model()`. Lesson 13 runs the
same recipe (`sft_trainer`) as a script, `ftlab sft --config`, on one process or several.
Also what lesson 02 shows on the way: the loss mask token by token (`loss_mask`, `MaskView`), a simulated
disconnect (`Disconnect`), and the held-out loss on assistant tokens of any model (`assistant_loss`).
"""
import html

import torch

from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
from trl import SFTConfig, SFTTrainer
from trl.chat_template_utils import get_training_chat_template, has_generation_markers

from . import base_model, cache, data
from .paths import ARTIFACTS
from .profiles import course_profile
from .tokenizer import TURN_END

SFT_DIR = ARTIFACTS / "sft"


def sft_config(output_dir, profile, stage="sft", **overrides):
    """TRL's SFTConfig for the profile's training `stage`: the shared settings, plus what SFT needs."""
    settings = profile.training_settings(stage, output_dir) | dict(
        weight_decay=0.01,
        max_length=profile.max_seq_length,
        assistant_only_loss=True,  # learn the answers, not the questions
        eos_token=TURN_END,  # a reply ends with <|im_end|>: the model learns to stop there
        eval_strategy="steps",
        eval_steps=max(1, profile.stage(stage).steps // 6),
    )
    settings.update(overrides)
    return SFTConfig(**settings)


def recipe(profile=None):
    """Everything that decides the SFT model, including the base model's own recipe."""
    profile = profile or course_profile()
    return {"base": base_model.recipe(profile), "sft": vars(profile.stage("sft")),
            "max_length": profile.max_seq_length, "seed": profile.seed,
            "data": [data.path("sft", s).stat().st_size for s in data.SPLITS["sft"]]}


def is_cached(target=SFT_DIR, profile=None):
    return cache.built_from(target, recipe(profile))


def start_model(profile):
    """(model, tokenizer) that SFT starts from: the course base model in the cpu profile; in the gpu profile the
    profile's chat model through Unsloth, every weight trainable, as lesson 02 loads it."""
    if profile.name == "cpu":
        return base_model.load_base_model()
    from unsloth import FastLanguageModel

    return FastLanguageModel.from_pretrained(profile.model_name, max_seq_length=profile.max_seq_length,
                                             load_in_4bit=False, full_finetuning=True)


def sft_trainer(output_dir, profile=None, **overrides):
    """Lesson 02's full-parameter SFT run, ready to train: the start model, the course chats, `sft_config`.
    `overrides` are SFTConfig fields (the command line `ftlab sft --config` passes its config's here)."""
    profile = profile or course_profile()
    model, tokenizer = start_model(profile)
    chats = data.load("sft")
    set_seed(profile.seed)
    return SFTTrainer(
        model=model,
        args=sft_config(output_dir, profile, **overrides),
        train_dataset=chats["train"].remove_columns(["task", "answer"]),
        eval_dataset=chats["test"].remove_columns(["task", "answer"]),
        processing_class=tokenizer,
    )


def build_sft_model(target=SFT_DIR, profile=None):
    """Lesson 02's full-parameter SFT in one function: base model, SFTTrainer, save. Returns the trainer."""
    trainer = sft_trainer(ARTIFACTS / "runs" / "sft", profile)
    trainer.train()
    save_sft_model(trainer, target, profile)
    return trainer


def save_sft_model(trainer, target=SFT_DIR, profile=None):
    """Save the trained model, its tokenizer, training log and recipe together, atomically."""
    return cache.save_with_recipe(trainer.model, trainer.processing_class, trainer.state.log_history, target,
                                  recipe(profile))


def load_sft_model(target=SFT_DIR):
    """(model, tokenizer) of the course SFT model, rebuilt first (about a minute) when not cached."""
    if not is_cached(target):
        print(f"The course SFT model is not in {target} yet: building it as lesson 02 does (about a minute).")
        build_sft_model(target)
    return AutoModelForCausalLM.from_pretrained(target), AutoTokenizer.from_pretrained(target)


# ---------------------------------------------------------------- what lesson 02 shows
def training_template(tokenizer):
    """None when the tokenizer's chat template marks the assistant's tokens with {% generation %} (the course
    tokenizer's does), else TRL's training version of it: what SFTTrainer(assistant_only_loss=True) uses for
    templates without markers, such as Qwen's."""
    return None if has_generation_markers(tokenizer.chat_template) else get_training_chat_template(tokenizer)


def loss_mask(tokenizer, messages):
    """[(token, id, trained)] for one conversation: the tokens of the chat template, and whether the
    assistant-only loss trains on each. The template's {% generation %} markers decide it."""
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True,
                                        chat_template=training_template(tokenizer))
    return [(tokenizer.decode([i]), i, bool(m)) for i, m in zip(out["input_ids"], out["assistant_masks"])]


class MaskView:
    """A loss mask, displayed token by token: coloured in a notebook, [[bracketed]] as plain text."""

    def __init__(self, rows):
        self.rows = rows

    def _repr_html_(self):
        spans = []
        for token, _, trained in self.rows:
            style = ("background:#b7e4c7;border:1px solid #2d6a4f" if trained
                     else "background:#e9ecef;border:1px solid #ced4da;color:#6c757d")
            spans.append(f'<span style="{style};padding:1px 2px;margin:1px;font-family:monospace;'
                         f'white-space:pre">{html.escape(repr(token)[1:-1])}</span>')
        legend = ('<div style="margin-top:4px;font-size:90%">green: in the loss (the model learns to write it); '
                  'grey: context only (no loss)</div>')
        return '<div style="line-height:1.9">' + "".join(spans) + "</div>" + legend

    def __repr__(self):
        text, inside = "", False
        for token, _, trained in self.rows:
            if trained != inside:
                text += "[[" if trained else "]]"
                inside = trained
            text += token
        return text + ("]]" if inside else "") + "\n([[...]]: in the loss)"


class Disconnect(TrainerCallback):
    """Stops training with KeyboardInterrupt after `step` steps, as a lost Colab session or a stopped
    kernel would: whatever was not saved in a checkpoint is gone."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"simulated disconnect after step {self.step}")


@torch.no_grad()
def assistant_loss(model, tokenizer, conversations, batch_size=32):
    """Mean loss per assistant token over `conversations` (lists of messages ending with the answer):
    the held-out loss SFT lowers, for any model, without a Trainer."""
    model.eval()
    total, count, template = 0.0, 0, training_template(tokenizer)
    for start in range(0, len(conversations), batch_size):
        encoded = [tokenizer.apply_chat_template(c, return_dict=True, return_assistant_tokens_mask=True,
                                                 chat_template=template)
                   for c in conversations[start:start + batch_size]]
        width = max(len(e["input_ids"]) for e in encoded)
        ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
        labels = torch.full((len(encoded), width), -100)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, e in enumerate(encoded):  # padded on the right
            n = len(e["input_ids"])
            ids[row, :n] = torch.tensor(e["input_ids"])
            labels[row, :n] = torch.where(torch.tensor(e["assistant_masks"]) == 1, ids[row, :n], -100)
            attention[row, :n] = 1
        logits = model(input_ids=ids.to(model.device), attention_mask=attention.to(model.device)).logits
        # the logits at position t predict token t+1
        total += torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(),
                                                   labels[:, 1:].flatten().to(model.device), reduction="sum").item()
        count += (labels[:, 1:] != -100).sum().item()
    return total / count
