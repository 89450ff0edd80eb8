"""Lesson 11's starting point: a chat model that gets some sums right, not most, and the math prompts.

RL can only reinforce what the policy already does sometimes. The lesson-02 SFT model (300 steps) already
answers most sums correctly, which leaves GRPO little to gain; the same SFT stopped at 150 steps answers
about one in six held-out sums correctly: a start that is neither 0% nor 100%. It is built by lesson 02's own
`sft.build_sft_model` with a shorter stage, cached in artifacts/sft-early/.
"""
import dataclasses

from transformers import AutoModelForCausalLM, AutoTokenizer

from . import data, sft
from .paths import ARTIFACTS
from .profiles import Stage, course_profile

EARLY_SFT_DIR = ARTIFACTS / "sft-early"
EARLY_SFT_STEPS = 150


def early_sft_profile(profile=None):
    """The profile with its SFT stage cut to EARLY_SFT_STEPS steps."""
    profile = profile or course_profile()
    stage = profile.stage("sft")
    return dataclasses.replace(profile, stages={**profile.stages, "sft": Stage(EARLY_SFT_STEPS, stage.batch_size,
                                                                                 stage.learning_rate)})


def load_early_sft_model(target=EARLY_SFT_DIR):
    """(model, tokenizer) of the SFT model stopped early, built first (about 30 s) when not cached."""
    profile = early_sft_profile()
    if not sft.is_cached(target, profile):
        print(f"The early SFT model is not in {target} yet: building it as lesson 02 does, "
              f"with {EARLY_SFT_STEPS} steps (about 30 s).")
        sft.build_sft_model(target, profile)
    return AutoModelForCausalLM.from_pretrained(target), AutoTokenizer.from_pretrained(target)


def math_prompts(split):
    """The math prompts of the course prompts dataset: `prompt` (a conversation), `task`, `answer`."""
    return data.load("prompts")[split].filter(lambda row: row["task"] == "math")
