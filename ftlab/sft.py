"""The course SFT model: the base model fine-tuned on the course chats (lesson 02), the start of alignment.

Lesson 02 trains it step by step; lessons 08-11 call `load_sft_model()`, which reads it from artifacts/sft/
and, when it is missing or was built by another recipe, rebuilds it with `build_sft_model()`.
"""
import json

from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import SFTConfig, SFTTrainer

from . import base_model, data
from .paths import ARTIFACTS, atomic_dir
from .profiles import PROFILES
from .tokenizer import TURN_END

SFT_DIR = ARTIFACTS / "sft"


def sft_config(output_dir, profile, **overrides):
    """TRL's SFTConfig with the settings that work for the profile. TRL's defaults suit big GPU models
    (bf16, gradient checkpointing, lr 2e-5); on the course model they would only slow down and show nothing."""
    stage = profile.stage("sft")
    settings = dict(
        output_dir=str(output_dir),
        max_steps=stage.steps,
        per_device_train_batch_size=stage.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=stage.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, stage.steps // 20),
        weight_decay=0.01,
        max_length=profile.max_seq_length,
        assistant_only_loss=True,  # learn the answers, not the questions
        eos_token=TURN_END,  # a reply ends with <|im_end|>: the model learns to stop there
        logging_steps=10,
        eval_strategy="steps",
        eval_steps=max(1, stage.steps // 6),
        save_strategy="no",
        seed=profile.seed,
        data_seed=profile.seed,
        use_cpu=profile.device == "cpu",
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        report_to="none",
        **profile.precision(),
    )
    settings.update(overrides)
    return SFTConfig(**settings)


def recipe(profile=PROFILES["cpu"]):
    """Everything that decides the SFT model, including the base model's own recipe."""
    return {"base": base_model.recipe(profile), "sft": vars(profile.stage("sft")),
            "max_length": profile.max_seq_length, "seed": profile.seed,
            "data": [data.path("sft", s).stat().st_size for s in data.SPLITS["sft"]]}


def is_cached(target=SFT_DIR, profile=PROFILES["cpu"]):
    try:
        return json.loads((target / "recipe.json").read_text()) == recipe(profile)
    except (OSError, ValueError):
        return False


def build_sft_model(target=SFT_DIR, profile=PROFILES["cpu"]):
    """Lesson 02's full-parameter SFT in one function: base model, SFTTrainer, save. Returns the trainer."""
    model, tokenizer = base_model.load_base_model()
    chats = data.load("sft")
    set_seed(profile.seed)
    trainer = SFTTrainer(
        model=model,
        args=sft_config(ARTIFACTS / "runs" / "sft", profile),
        train_dataset=chats["train"].remove_columns(["task", "answer"]),
        eval_dataset=chats["test"].remove_columns(["task", "answer"]),
        processing_class=tokenizer,
    )
    trainer.train()
    with atomic_dir(target) as tmp:
        trainer.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
        (tmp / "recipe.json").write_text(json.dumps(recipe(profile), indent=1))
    return trainer


def load_sft_model(target=SFT_DIR):
    """(model, tokenizer) of the course SFT model, rebuilt first (about a minute) when not cached."""
    if not is_cached(target):
        print(f"The course SFT model is not in {target} yet: building it as lesson 02 does (about a minute).")
        build_sft_model(target)
    return AutoModelForCausalLM.from_pretrained(target), AutoTokenizer.from_pretrained(target)
