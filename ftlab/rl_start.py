"""Lesson 11's starting point: a chat model that gets some sums right, not most, and the math prompts.

RL can only reinforce what the policy already does sometimes. The lesson-02 SFT model answers most sums correctly,
which leaves GRPO little to gain; a model that answers none earns reward 0 on every sample and learns nothing. So
the course model's RL start is lesson 02's SFT run stopped as soon as it answers a quarter of some training sums
(checked every few steps). Its accuracy climbs steeply with the steps, and where it climbs differs by machine and
seed: a fixed 150 steps answered about one held-out sum in six here and none on another machine. The skill it stops
at does not differ. Cached in artifacts/sft-early/. (A real chat model already answers some sums: `models.start_model`
gives it as it is.)
"""
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from . import cache, chat, data, sft
from .paths import ARTIFACTS
from .profiles import course_profile

EARLY_SFT_DIR = ARTIFACTS / "sft-early"
EARLY_STOP = {"share": 0.25, "sums": 64, "every": 5}  # stop at a quarter of 64 training sums right, checked every 5 steps


class StopAtAccuracy(TrainerCallback):
    """Stops training at the first check (every `every` steps) where the model answers at least `share` of `rows`
    right, greedily."""

    def __init__(self, tokenizer, rows, share, every):
        self.tokenizer, self.rows, self.share, self.every = tokenizer, rows, share, every
        self.accuracy = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0:
            self.accuracy = chat.accuracy(model, self.tokenizer, self.rows, max_new_tokens=8)  # a sum is a few tokens
            control.should_training_stop = self.accuracy >= self.share


def early_sft_recipe():
    return {**sft.recipe(course_profile()), "stop": EARLY_STOP}


def build_early_sft_model(target=EARLY_SFT_DIR):
    """Lesson 02's SFT run, stopped by `StopAtAccuracy`; saved with its recipe. Returns the trainer."""
    profile = course_profile()
    trainer = sft.sft_trainer(profile.artifacts / "runs" / "sft-early", profile, eval_strategy="no")
    sums = list(math_prompts("train").select(range(EARLY_STOP["sums"])))
    stop = StopAtAccuracy(trainer.processing_class, sums, EARLY_STOP["share"], EARLY_STOP["every"])
    trainer.add_callback(stop)
    trainer.train()
    print(f"SFT stopped at step {trainer.state.global_step}: {stop.accuracy:.0%} of {len(sums)} training sums right")
    cache.save_with_recipe(trainer.model, trainer.processing_class, trainer.state.log_history, target,
                           early_sft_recipe())
    return trainer


def ensure_early_sft_model(target=EARLY_SFT_DIR):
    """The folder of the SFT model stopped early, built first (under a minute) when missing."""
    return cache.ensure(target, early_sft_recipe(), build_early_sft_model,
                        "lesson 02's SFT stopped at a quarter of the sums right, under a minute")


def load_early_sft_model(target=EARLY_SFT_DIR):
    """(model, tokenizer) of the SFT model stopped early, built first when missing."""
    folder = ensure_early_sft_model(target)
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def math_prompts(split):
    """The math prompts of the course prompts dataset: `prompt` (a conversation), `task`, `answer`."""
    return data.load("prompts")[split].filter(lambda row: row["task"] == "math")
