"""The preference and RL math of lessons 08-11, on tiny tensors whose results are computed by hand."""
import math

import pytest
import torch

from ftlab import preference


def test_bradley_terry_loss_by_hand():
    # -log sigmoid(2) = log(1 + e^-2) = 0.126928; a tie costs ln 2.
    assert preference.bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.0])).item() == pytest.approx(0.126928, abs=1e-5)
    assert preference.bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(math.log(2))
    pair = preference.bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert pair.item() == pytest.approx((0.126928 + math.log(2)) / 2, abs=1e-5)  # the mean over pairs


def test_bradley_terry_sees_only_differences():
    chosen, rejected = torch.tensor([1.0, -3.0]), torch.tensor([0.5, -2.0])
    assert preference.bradley_terry_loss(chosen + 7, rejected + 7).item() == pytest.approx(
        preference.bradley_terry_loss(chosen, rejected).item())


def test_dpo_loss_by_hand():
    # policy moved chosen +2 nats and rejected -1 nat from the reference; beta 0.1: implicit rewards +0.2 and -0.1,
    # loss = -log sigmoid(0.3) = log(1 + e^-0.3) = 0.554355.
    args = torch.tensor([-8.0]), torch.tensor([-11.0]), torch.tensor([-10.0]), torch.tensor([-10.0])
    chosen, rejected = preference.dpo_implicit_rewards(*args, beta=0.1)
    assert (chosen.item(), rejected.item()) == (pytest.approx(0.2), pytest.approx(-0.1))
    assert preference.dpo_loss(*args, beta=0.1).item() == pytest.approx(0.554355, abs=1e-5)


def test_dpo_loss_is_ln2_when_policy_equals_reference():
    logps = torch.tensor([-3.0, -9.0])
    assert preference.dpo_loss(logps, logps - 1, logps, logps - 1).item() == pytest.approx(math.log(2))


def test_group_advantages_by_hand():
    # group 1: rewards 1, 0, 0, 1 -> mean 0.5, unbiased std sqrt(1/3) = 0.57735 -> +-0.866 (minus the eps effect)
    # group 2: all equal -> advantages 0: a group where every answer scores the same teaches nothing
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    advantages = preference.group_advantages(rewards, group_size=4)
    expected = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    assert advantages[:4].tolist() == pytest.approx([expected, -expected, -expected, expected], abs=1e-6)
    assert advantages[4:].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert preference.group_advantages(rewards, 4, scale=False)[:4].tolist() == [0.5, -0.5, -0.5, 0.5]


def test_group_advantages_need_whole_groups():
    with pytest.raises(RuntimeError):
        preference.group_advantages(torch.ones(6), group_size=4)


def test_reply_logps_by_hand_in_any_batching(course_tokenizer):
    """reply_logps batches replies of similar lengths together: each result must still belong to its own reply, and
    equal the reply tokens' log-probabilities summed by hand."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(course_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=course_tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    prompts = [[{"role": "user", "content": "What is 3+4?"}]] * 3
    replies = ["3+4=7 and a much longer reply than the others", "3+4=7", "seven"]
    one_by_one = preference.reply_logps(model, course_tokenizer, prompts, replies, batch_size=1)
    assert torch.allclose(preference.reply_logps(model, course_tokenizer, prompts, replies, batch_size=2), one_by_one,
                          atol=1e-4)
    prompt = course_tokenizer.apply_chat_template(prompts[1], add_generation_prompt=True, tokenize=True, return_dict=False)
    full = course_tokenizer.apply_chat_template(prompts[1] + [{"role": "assistant", "content": replies[1]}],
                                                tokenize=True, return_dict=False)
    with torch.no_grad():
        logps = torch.log_softmax(model(torch.tensor([full])).logits[0, :-1], -1)
    by_hand = sum(logps[t - 1, full[t]].item() for t in range(len(prompt), len(full)))
    assert one_by_one[1].item() == pytest.approx(by_hand, abs=1e-4)
