"""Lesson 11's reward functions, and the reward model of lessons 08-09 (its recipe, its LoRA, its saving) on a tiny
model, without training anything."""
import dataclasses

import pytest
import torch

from ftlab import models, profiles, rewards


def test_correctness_reward_reads_the_answer_to_the_sum_asked():
    completions = ["3+4=7", "3+4=8", "The answer is 7.", "2+5=7", [{"role": "assistant", "content": "3+4=7"}],
                   "3+4=8, not 7", "seven"]
    prompts = [[{"role": "user", "content": "What is 3+4?"}]] * 6 + ["Compute 3+4."]
    # the number after the last '=' counts, else the last number, and the sum written must be the one asked
    # ("2+5=7" ends in the right number under another sum): as the held-out accuracy reads answers
    assert rewards.correctness_reward(prompts, completions, answer=["7"] * 7) == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]


def test_format_reward_wants_one_equation():
    assert rewards.format_reward(["3+4=7", " 9-2=7 ", "3+4=7 and more", "seven", "3+4="]) == [0.5, 0.5, 0.0, 0.0, 0.0]


def test_format_reward_takes_a_real_models_spacing():
    # SmolLM2-135M-Instruct writes "7 + 5 = 12"
    assert rewards.format_reward(["7 + 5 = 12", "7 + 5 = 12. So the answer is 12."]) == [0.5, 0.0]


def test_pairwise_accuracy_per_kind():
    rows = [{"kind": "ending"}, {"kind": "ending"}, {"kind": "correct"}, {"kind": "correct"}]
    chosen, rejected = torch.tensor([1.0, 0.0, 2.0, 1.0]), torch.tensor([0.0, 1.0, 1.0, 1.0])  # a tie is no win
    assert rewards.pairwise_accuracy(rows, chosen, rejected) == {"correct": 0.5, "ending": 0.5, "all": 0.5}


def test_reward_model_recipe():
    course = rewards.recipe()
    assert course["start"]["sft"]["steps"] > 0 and course["reward"]["steps"] > 0  # the SFT recipe is part of it
    real = rewards.recipe(profiles.get_profile("real"))
    assert real["start"] == {"model": "SmolLM2-135M-Instruct", "lora": rewards.REWARD_LORA}


@pytest.fixture
def tiny_real_profile(tmp_path, monkeypatch, course_tokenizer):
    """The real profile with a tiny random Llama as its chat model, and its reward model saved under tmp_path."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(course_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=course_tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "chat")
    course_tokenizer.save_pretrained(tmp_path / "chat")
    monkeypatch.setattr(models, "start_model", lambda profile, kind: str(tmp_path / "chat"))
    monkeypatch.setattr(rewards, "reward_model_dir", lambda profile: tmp_path / "reward")
    return dataclasses.replace(profiles.get_profile("real"), seed=0)


def test_a_real_models_reward_model_is_a_lora_with_a_whole_head(tiny_real_profile):
    """The adapter goes on before the trainer: Unsloth's RewardTrainer on a GPU drops `peft_config`."""
    model, _ = rewards.reward_model_start(tiny_real_profile)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or "score" in name for name in trainable)
    assert any("score" in name for name in trainable)  # the new head trains in full
    assert any("lora_" in name and "mlp" in name for name in trainable)  # all-linear: the MLP too


def test_saving_merges_the_adapter(tiny_real_profile):
    """Lesson 09 loads the saved reward model as a plain model: it must score as the adapted one did."""
    from transformers import AutoModelForSequenceClassification

    model, tokenizer = rewards.reward_model_start(tiny_real_profile)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)  # as if trained: B = 0 would make the merge trivial
    prompts = [[{"role": "user", "content": "What is 3+4?"}]] * 2
    expected = rewards.score(model, tokenizer, prompts, ["3+4=7", "3+4=8"])
    folder = rewards.save_reward_model(model, tokenizer, [], tiny_real_profile)
    assert rewards.is_cached(tiny_real_profile)
    reloaded = AutoModelForSequenceClassification.from_pretrained(folder)
    assert torch.allclose(rewards.score(reloaded, tokenizer, prompts, ["3+4=7", "3+4=8"]), expected, atol=1e-5)


def test_scores_keep_their_order_in_any_batching(tiny_real_profile):
    model, tokenizer = rewards.reward_model_start(tiny_real_profile)
    prompts = [[{"role": "user", "content": "Tell me a story."}]] * 3
    replies = ["Once upon a time there was a long story with many words. The end.", "No.", "A short one. The end."]
    one_by_one = rewards.score(model, tokenizer, prompts, replies, batch_size=1)
    assert torch.allclose(rewards.score(model, tokenizer, prompts, replies, batch_size=2), one_by_one, atol=1e-5)
