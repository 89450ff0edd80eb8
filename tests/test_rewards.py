"""Lesson 11's reward functions and the reward model's recipe, without training anything."""
from ftlab import rewards


def test_correctness_reward_reads_the_final_number():
    completions = ["3+4=7", "3+4=8", "The answer is 7", "2+5=7", [{"role": "assistant", "content": "3+4=7"}]]
    assert rewards.correctness_reward(completions, answer=["7"] * 5) == [1.0, 0.0, 0.0, 1.0, 1.0]


def test_format_reward_wants_one_equation():
    assert rewards.format_reward(["3+4=7", " 9-2=7 ", "3+4=7 and more", "seven", "3+4="]) == [0.5, 0.5, 0.0, 0.0, 0.0]


def test_final_number():
    assert rewards.final_number("1+1=2 2+2=4") == "4"
    assert rewards.final_number("no equation 5") is None


def test_reward_model_recipe_depends_on_the_sft_recipe():
    recipe = rewards.recipe()
    assert recipe["sft"]["sft"]["steps"] > 0 and recipe["reward"]["steps"] > 0
