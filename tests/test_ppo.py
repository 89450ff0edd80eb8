"""The PPO loop's math (ftlab.ppo) on tiny tensors computed by hand, and one real iteration on a tiny model."""
import math

import pytest
import torch

from ftlab import ppo


def test_kl_penalised_rewards():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0]])
    ref_logprobs = torch.tensor([[-1.5, -2.0, -2.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # a reply of 2 tokens, then padding
    rewards, kl = ppo.kl_penalised_rewards(logprobs, ref_logprobs, torch.tensor([3.0]), mask, kl_coef=0.2)
    assert kl.tolist() == [[0.5, 0.0, 0.0]]
    assert rewards[0].tolist() == pytest.approx([-0.1, 3.0, 0.0])  # the score lands on the last reply token


def test_gae_by_hand():
    # gamma 1, lam 0.5: deltas 0, 0, 0.5 -> A = 0.125, 0.25, 0.5; returns = A + V
    rewards, values, mask = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.5, 0.5]]), torch.ones(1, 3)
    advantages, returns = ppo.gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert advantages[0].tolist() == pytest.approx([0.125, 0.25, 0.5])
    assert returns[0].tolist() == pytest.approx([0.625, 0.75, 1.0])


def test_gae_ignores_padding():
    # the padded third position carries junk that must not leak into the reply's advantages
    rewards, values, mask = torch.tensor([[0.0, 2.0, 9.0]]), torch.tensor([[1.0, 1.0, 7.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    advantages, returns = ppo.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert advantages[0].tolist() == pytest.approx([1.0, 1.0, 0.0])
    assert returns[0].tolist() == pytest.approx([2.0, 2.0, 0.0])


def test_policy_loss_clips():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 0.5]]))
    mask = torch.ones(1, 2)
    # advantage +1: ratio 1.5 is clipped to 1.2 (no extra credit), ratio 0.5 counts fully: mean(-1.2, -0.5)
    loss, clipfrac = ppo.policy_loss(new, old, torch.ones(1, 2), mask, cliprange=0.2)
    assert loss.item() == pytest.approx(-0.85) and clipfrac.item() == 0.5
    # advantage -1: the pessimistic side: ratio 1.5 counts fully (1.5), ratio 0.5 is clipped to 0.8
    loss, clipfrac = ppo.policy_loss(new, old, -torch.ones(1, 2), mask, cliprange=0.2)
    assert loss.item() == pytest.approx((1.5 + 0.8) / 2) and clipfrac.item() == 0.5


def test_value_loss_clips():
    # new value 2 moved too far from old 1: the clipped value 1.2 is further from the return 3 and counts
    loss = ppo.value_loss(torch.tensor([[2.0]]), torch.tensor([[1.0]]), torch.tensor([[3.0]]), torch.ones(1, 1), 0.2)
    assert loss.item() == pytest.approx(0.5 * 1.8 ** 2)


def test_whiten():
    x, mask = torch.tensor([1.0, 2.0, 3.0, 100.0]), torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert ppo.whiten(x, mask).tolist() == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5), 0.0], abs=1e-4)


def _tiny_models(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id, num_labels=1)
    torch.manual_seed(0)
    return LlamaForCausalLM(config), LlamaForSequenceClassification(config)


def test_one_iteration_runs_on_a_tiny_model(course_tokenizer):
    """A whole PPO iteration (rollout, scores, GAE, updates) on a random 2-layer model: shapes fit, weights move."""
    import copy

    policy, value_model = _tiny_models(course_tokenizer)
    ref = copy.deepcopy(policy)
    before = policy.model.embed_tokens.weight.clone()
    prompts = [[{"role": "user", "content": "Tell me a story."}]] * 4
    settings = ppo.PPOSettings(iterations=1, rollouts=4, max_new_tokens=5, minibatches=2, ppo_epochs=1)
    history = ppo.train(policy, ref, value_model, lambda p, r: torch.ones(len(r)), course_tokenizer, prompts, settings)
    assert len(history) == 1 and len(history[0]["replies"]) == 4
    assert 1 <= history[0]["length"] <= 5
    assert not torch.equal(before, policy.model.embed_tokens.weight)


def test_lora_policy_and_value_model(course_tokenizer):
    """A real model's PPO (lesson 09): LoRA adapters on the policy and the value model. The value model reads the
    adapted trunk and its own head; one iteration trains the adapters and the head, nothing else."""
    import copy

    from peft import LoraConfig, get_peft_model

    policy, value_model = _tiny_models(course_tokenizer)
    ref = copy.deepcopy(policy)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    plain_values = ppo.reply_token_values(value_model, ids, torch.ones_like(ids), start=2)
    policy = get_peft_model(policy, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    value_model = get_peft_model(value_model, LoraConfig(r=4, target_modules="all-linear", task_type="SEQ_CLS"))
    # LoRA starts at B = 0: the adapted value model gives the same values as the plain one
    assert torch.equal(ppo.reply_token_values(value_model, ids, torch.ones_like(ids), start=2), plain_values)

    def weights():
        return {f"{who}.{n}": p for who, model in [("policy", policy), ("value", value_model)]
                for n, p in model.named_parameters()}

    before = {n: (p.clone(), p.requires_grad) for n, p in weights().items()}
    settings = ppo.PPOSettings(iterations=1, rollouts=4, max_new_tokens=5, minibatches=2, ppo_epochs=1, learning_rate=1e-2)
    prompts = [[{"role": "user", "content": "Tell me a story."}]] * 4
    ppo.train(policy, ref, value_model, lambda p, r: torch.ones(len(r)), course_tokenizer, prompts, settings)
    changed = {n for n, p in weights().items() if not torch.equal(p, before[n][0])}
    assert changed and all(before[n][1] for n in changed)  # only trainable weights moved
    assert any("lora_" in n for n in changed if n.startswith("policy."))
    assert any("score" in n for n in changed if n.startswith("value."))  # the value head learns
