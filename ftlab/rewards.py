"""Rewards: the reward model (lesson 08) and the reward functions that RL optimises (lessons 09, 11).

A reward model is a chat model with its language-model head swapped for a head that outputs one number per
conversation: the course SFT model in the cpu profile (every weight trained), the profile's real chat model
otherwise (a LoRA adapter and the new head trained). Lesson 08 trains it step by step; lesson 09 calls
`load_reward_model(profile)`, which reads it from the profile's artifacts and, when it is missing or was built by
another recipe, rebuilds it with `build_reward_model()`, the same steps.
"""
import re

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed
from trl import RewardConfig, RewardTrainer

from . import cache, chat, data, models, sft
from .profiles import course_profile


# ---------------------------------------------------------------- the reward model
# A real model's adapter: every linear layer of the trunk; the SEQ_CLS task also trains the new `score` head in full.
REWARD_LORA = dict(r=16, lora_alpha=32, target_modules="all-linear", task_type="SEQ_CLS")


def reward_model_dir(profile):
    return profile.artifacts / "reward"


def reward_model_start(profile):
    """(model, tokenizer): the profile's chat model's trunk with a new, randomly initialised scalar head (`score`),
    wrapped in a LoRA adapter for a real model (the head trains in full: PEFT's SEQ_CLS task keeps it trainable)."""
    start = models.start_model(profile, "chat")
    tokenizer = AutoTokenizer.from_pretrained(start)
    set_seed(profile.seed)  # the new head's initial weights depend on it
    # num_labels=1: one number per sequence, read at the last non-padding token (found with pad_token_id).
    # float32 weights everywhere, as lesson 08 says: the new head trains in full, and an fp16 trainer (a T4) refuses
    # 16-bit trainable weights; PEFT upcasts only LoRA's own. On a GPU the trainer still computes in 16 bits.
    model = AutoModelForSequenceClassification.from_pretrained(start, num_labels=1, dtype=torch.float32,
                                                               device_map=profile.device)
    model.config.pad_token_id = tokenizer.pad_token_id
    if not profile.course_model:
        model = get_peft_model(model, LoraConfig(**REWARD_LORA))
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
    start = sft.recipe(profile) if profile.course_model else {"model": profile.chat_model, "lora": REWARD_LORA}
    return {"start": start, "reward": vars(profile.stage("reward")), "seed": profile.seed,
            "data": data.path("preferences", "train").stat().st_size}


def is_cached(profile=None):
    profile = profile or course_profile()
    return cache.built_from(reward_model_dir(profile), recipe(profile))


def save_reward_model(model, tokenizer, log_history, profile=None):
    """Save the reward model (a LoRA adapter merged into its trunk first), tokenizer, training log and recipe
    together, atomically, where `load_reward_model` looks."""
    profile = profile or course_profile()
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return cache.save_with_recipe(model, tokenizer, log_history, reward_model_dir(profile), recipe(profile))


def build_reward_model(profile=None):
    """Lesson 08 in one function: trunk + scalar head, RewardTrainer on the pairs, save. Returns the trainer."""
    profile = profile or course_profile()
    model, tokenizer = reward_model_start(profile)
    trainer = RewardTrainer(
        model=model,
        args=reward_config(profile.artifacts / "runs" / "reward", profile),
        train_dataset=preference_pairs("train"),
        eval_dataset=preference_pairs("validation"),
        processing_class=tokenizer,
    )
    trainer.train()
    save_reward_model(trainer.model, tokenizer, trainer.state.log_history, profile)
    return trainer


def load_reward_model(profile=None):
    """(model, tokenizer) of the profile's reward model, built first (a minute or two) when missing."""
    profile = profile or course_profile()
    folder = cache.ensure(reward_model_dir(profile), recipe(profile), lambda _: build_reward_model(profile),
                          "the reward model as lesson 08 does, a minute or two")
    return (AutoModelForSequenceClassification.from_pretrained(folder, dtype=profile.dtype, device_map=profile.device),
            AutoTokenizer.from_pretrained(folder))


# ---------------------------------------------------------------- scoring
@torch.no_grad()
def score(model, tokenizer, prompts, replies, batch_size=64):
    """Reward-model scores of conversations: each prompt (a list of messages) answered with a reply (text)."""
    model.eval()
    texts = [tokenizer.apply_chat_template(p + [{"role": "assistant", "content": r}], tokenize=False)
             for p, r in zip(prompts, replies)]
    scores = torch.empty(len(texts))
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches of similar lengths: little padding
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        # right padding: the score is read at the last real token, found from the padding
        batch = tokenizer([texts[i] for i in chunk], return_tensors="pt", padding=True, padding_side="right",
                          add_special_tokens=False).to(model.device)
        scores[chunk] = model(**batch).logits[:, 0].float().cpu()
    return scores


def pair_scores(model, tokenizer, rows):
    """(chosen scores, rejected scores) of preference rows."""
    prompts = [r["prompt"] for r in rows]
    chosen = score(model, tokenizer, prompts, [r["chosen"][-1]["content"] for r in rows])
    rejected = score(model, tokenizer, prompts, [r["rejected"][-1]["content"] for r in rows])
    return chosen, rejected


def pairwise_accuracy(rows, chosen, rejected):
    """{kind: share of pairs whose chosen reply scores higher}, and "all" over every pair, from `pair_scores`."""
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


def correctness_reward(prompts, completions, answer, **kwargs):
    """1 when the reply answers its prompt's sum right, else 0: the number after the last '=' (or the last number:
    "The answer is 12.") is the answer, and the sum written before it is the one asked (`chat.is_correct`, the
    rule the held-out accuracy uses). TRL passes `prompts` and `completions`; `answer` is the dataset column."""
    return [1.0 if chat.is_correct("math", chat.question_of(p), completion_text(c), a) else 0.0
            for p, c, a in zip(prompts, completions, answer)]


FORMAT = re.compile(r"^\s*\d+\s*[+-]\s*\d+\s*=\s*-?\d+\s*$")


def format_reward(completions, **kwargs):
    """0.5 when the reply is one equation `a+b=c` and nothing else (the format the answers should take)."""
    return [0.5 if FORMAT.match(completion_text(c)) else 0.0 for c in completions]
