"""The course SFT model: the base model fine-tuned on the course chats (lesson 02), the start of alignment.

Lesson 02 trains it step by step; lessons 08-11 get it through `ensure_sft_model()`, which finds it in
artifacts/sft/ and, when it is missing or was built by another recipe, rebuilds it with `build_sft_model()`.
Lesson 13 runs the same recipe (`sft_trainer`) as a script, `ftlab sft --config`, on one process or several.
Also what lesson 02 shows on the way: the loss mask token by token (`loss_mask`, `MaskView`) and a simulated
disconnect (`Disconnect`).
"""
import html

from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
from trl import SFTConfig, SFTTrainer

from . import base_model, cache, chat, data, models
from .paths import ARTIFACTS
from .profiles import course_profile
from .tokenizer import TURN_END

SFT_DIR = ARTIFACTS / "sft"


def sft_config(output_dir, profile, stage="sft", **overrides):
    """TRL's SFTConfig for the profile's training `stage`: the shared settings, plus what SFT needs."""
    settings = profile.training_settings(stage, output_dir) | dict(
        weight_decay=0.01,
        max_length=profile.max_seq_length,
        completion_only_loss=True,  # learn the answers, not the questions
        eos_token=TURN_END,  # a reply ends with <|im_end|>: the model learns to stop there
        eval_strategy="steps",
        eval_steps=max(1, profile.stage(stage).steps // 6),
    )
    settings.update(overrides)
    return SFTConfig(**settings)


def chat_splits():
    """The course chats as prompt-completion pairs, {"train", "validation", "test"}, with the columns SFTTrainer
    takes."""
    chats = data.load("sft")
    return {split: chats[split].map(chat.prompt_completion, remove_columns=chats[split].column_names)
            for split in data.SPLITS["sft"]}


def sft_model_dir(profile):
    """Where lesson 02 leaves its model in `profile`: artifacts/sft for the course model."""
    return SFT_DIR if profile.course_model else profile.artifacts / "sft"


def recipe(profile=None):
    """Everything that decides the SFT model, including its start model's own recipe."""
    profile = profile or course_profile()
    start = base_model.recipe(profile) if profile.course_model else profile.base_model
    return {"base": start, "sft": vars(profile.stage("sft")), "max_length": profile.max_seq_length,
            "seed": profile.seed, "loss": "completion only",
            "data": data.path("sft", "train").stat().st_size}


def is_cached(target=SFT_DIR, profile=None):
    return cache.built_from(target, recipe(profile))


def start_model(profile):
    """(model, tokenizer) that SFT starts from, through Unsloth with every weight trainable, as lesson 02 loads it:
    the profile's base model (the course base model, or a real pretrained one)."""
    from unsloth import FastLanguageModel

    return FastLanguageModel.from_pretrained(models.start_model(profile, "base"), max_seq_length=profile.max_seq_length,
                                             dtype=profile.dtype, load_in_4bit=False, full_finetuning=True)


def sft_trainer(output_dir, profile=None, **overrides):
    """Lesson 02's full-parameter SFT run, ready to train: the start model, the course chats, `sft_config`.
    `overrides` are SFTConfig fields (the command line `ftlab sft --config` passes its config's here)."""
    profile = profile or course_profile()
    model, tokenizer = start_model(profile)
    chats = chat_splits()
    set_seed(profile.seed)
    return SFTTrainer(model=model, args=sft_config(output_dir, profile, **overrides), train_dataset=chats["train"],
                      eval_dataset=chats["validation"], processing_class=tokenizer)


def build_sft_model(target=SFT_DIR, profile=None):
    """Lesson 02's full-parameter SFT in one function: base model, SFTTrainer, save. Returns the trainer."""
    profile = profile or course_profile()
    trainer = sft_trainer(profile.artifacts / "runs" / "sft", profile)
    trainer.train()
    save_sft_model(trainer, target, profile)
    return trainer


def save_sft_model(trainer, target=SFT_DIR, profile=None):
    """Save the trained model, its tokenizer, training log and recipe together, atomically."""
    return cache.save_with_recipe(trainer.model, trainer.processing_class, trainer.state.log_history, target,
                                  recipe(profile))


def ensure_sft_model(profile=None):
    """The folder of lesson 02's SFT model of `profile` (the course SFT model by default), built first when missing."""
    profile = profile or course_profile()
    target = sft_model_dir(profile)
    return cache.ensure(target, recipe(profile), lambda folder: build_sft_model(folder, profile),
                        "lesson 02's SFT model as lesson 02 does, a minute or two")


def load_sft_model(profile=None):
    """(model, tokenizer) of lesson 02's SFT model of `profile` (the course SFT model by default)."""
    profile = profile or course_profile()
    folder = ensure_sft_model(profile)
    return (AutoModelForCausalLM.from_pretrained(folder, dtype=profile.dtype, device_map=profile.device),
            AutoTokenizer.from_pretrained(folder))


# ---------------------------------------------------------------- what lesson 02 shows
def loss_mask(tokenizer, messages):
    """[(token, id, trained)] for one conversation: the tokens of the chat template, and whether the loss trains
    on each (the answer's tokens, found as SFTTrainer finds them: `chat.encode`)."""
    encoded = chat.encode(tokenizer, messages)
    return [(tokenizer.decode([i]), i, bool(m)) for i, m in zip(encoded["input_ids"], encoded["completion_mask"])]


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
