"""Rewards: the course reward model (lesson 08) and the reward functions that RL optimises (lessons 09, 11).

A reward model is the SFT model with its language-model head swapped for a head that outputs one number per
conversation. Lesson 08 trains it step by step; lesson 09 calls `load_reward_model()`, which reads it from
artifacts/reward/ and, when it is missing or was built by another recipe, rebuilds it with `build_reward_model()`.
"""
import re

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed
from trl import RewardConfig, RewardTrainer

from . import cache, data, sft
from .paths import ARTIFACTS
from .profiles import course_profile

REWARD_DIR = ARTIFACTS / "reward"


# ---------------------------------------------------------------- the reward model
def reward_model_from_sft():
    """(model, tokenizer): the SFT model's trunk with a new, randomly initialised scalar head (`score`)."""
    _, tokenizer = sft.load_sft_model()  # makes sure artifacts/sft exists
    # num_labels=1: one number per sequence, read at the last non-padding token (found with pad_token_id).
    model = AutoModelForSequenceClassification.from_pretrained(sft.SFT_DIR, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def reward_config(output_dir, profile, **overrides):
    """TRL's RewardConfig for the profile: the shared settings (batch = preference pairs per step)."""
    settings = profile.training_settings("reward", output_dir) | dict(
        max_length=profile.max_seq_length,
        eval_strategy="steps",
        eval_steps=max(1, profile.stage("reward").steps // 4),
    )
    settings.update(overrides)
    return RewardConfig(**settings)


def preference_pairs(split):
    """The course preference pairs of one split, in the columns TRL's preference trainers take."""
    return data.load("preferences")[split].remove_columns(["kind"])


def recipe(profile=None):
    profile = profile or course_profile()
    return {"sft": sft.recipe(profile), "reward": vars(profile.stage("reward")), "seed": profile.seed,
            "data": [data.path("preferences", s).stat().st_size for s in data.SPLITS["preferences"]]}


def is_cached(target=REWARD_DIR, profile=None):
    return cache.built_from(target, recipe(profile))


def save_reward_model(model, tokenizer, log_history, target=REWARD_DIR, profile=None):
    """Save model (safetensors), tokenizer, training log and recipe together, atomically."""
    return cache.save_with_recipe(model, tokenizer, log_history, target, recipe(profile))


def build_reward_model(target=REWARD_DIR, profile=None):
    """Lesson 08 in one function: SFT trunk + scalar head, RewardTrainer on the pairs, save. Returns the trainer."""
    profile = profile or course_profile()
    set_seed(profile.seed)  # the new head's initial weights depend on it
    model, tokenizer = reward_model_from_sft()
    trainer = RewardTrainer(
        model=model,
        args=reward_config(ARTIFACTS / "runs" / "reward", profile),
        train_dataset=preference_pairs("train"),
        eval_dataset=preference_pairs("test"),
        processing_class=tokenizer,
    )
    trainer.train()
    save_reward_model(trainer.model, tokenizer, trainer.state.log_history, target, profile)
    return trainer


def load_reward_model(target=REWARD_DIR):
    """(model, tokenizer) of the course reward model, rebuilt first (about a minute) when not cached."""
    if not is_cached(target):
        print(f"The course reward model is not in {target} yet: building it as lesson 08 does (about a minute).")
        build_reward_model(target)
    return AutoModelForSequenceClassification.from_pretrained(target), AutoTokenizer.from_pretrained(target)


# ---------------------------------------------------------------- scoring
@torch.no_grad()
def score(model, tokenizer, prompts, replies, batch_size=64):
    """Reward-model scores of conversations: each prompt (a list of messages) answered with a reply (text)."""
    model.eval()
    tokenizer.padding_side = "right"  # the score is read at the last real token, found from the padding
    texts = [tokenizer.apply_chat_template(p + [{"role": "assistant", "content": r}], tokenize=False)
             for p, r in zip(prompts, replies)]
    scores = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model.device)
        scores.append(model(**batch).logits[:, 0].float().cpu())
    return torch.cat(scores)


def pair_scores(model, tokenizer, rows):
    """(chosen scores, rejected scores) of preference rows."""
    prompts = [r["prompt"] for r in rows]
    chosen = score(model, tokenizer, prompts, [r["chosen"][-1]["content"] for r in rows])
    rejected = score(model, tokenizer, prompts, [r["rejected"][-1]["content"] for r in rows])
    return chosen, rejected


def pairwise_accuracy(model, tokenizer, rows):
    """{kind: share of pairs whose chosen reply scores higher}, and "all" over every pair."""
    chosen, rejected = pair_scores(model, tokenizer, rows)
    right = (chosen > rejected).tolist()
    kinds = [r["kind"] for r in rows]
    result = {kind: sum(ok for ok, k in zip(right, kinds) if k == kind) / kinds.count(kind)
              for kind in sorted(set(kinds))}
    result["all"] = sum(right) / len(right)
    return result


# ---------------------------------------------------------------- verifiable rewards (lesson 11)
def completion_text(completion):
    """A completion as text: TRL passes conversational completions as [{"role": "assistant", "content": ...}]."""
    return completion[-1]["content"] if isinstance(completion, list) else completion


def final_number(text):
    """The number after the last '=' in a reply, or None."""
    numbers = re.findall(r"=\s*(-?\d+)", text)
    return numbers[-1] if numbers else None


def correctness_reward(completions, answer, **kwargs):
    """1 when the reply's final number is the right answer, else 0. `answer` is the dataset column."""
    return [1.0 if final_number(completion_text(c)) == a else 0.0 for c, a in zip(completions, answer)]


FORMAT = re.compile(r"^\s*\d+\s*[+-]\s*\d+\s*=\s*-?\d+\s*$")


def format_reward(completions, **kwargs):
    """0.5 when the reply is one equation `a+b=c` and nothing else (the format the answers should take)."""
    return [0.5 if FORMAT.match(completion_text(c)) else 0.0 for c in completions]
