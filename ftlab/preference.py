"""The math of learning from preferences, written out on tensors (lessons 08-11).

Each function is a few lines that TRL's trainers also compute inside; here they can be read and tested
on tiny hand-computed numbers (tests/test_preference_math.py).
"""
import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen_rewards, rejected_rewards):
    """-log sigmoid(r_chosen - r_rejected), averaged: the reward model's loss (lesson 08).

    Bradley-Terry says P(chosen is preferred) = sigmoid(r_chosen - r_rejected); the loss is the negative
    log-likelihood of the human choices. Only differences of rewards matter: adding a constant changes nothing.
    """
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


def dpo_implicit_rewards(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    """(chosen, rejected) implicit rewards beta * log(pi / pi_ref) of whole replies (lesson 10).

    DPO's insight: the policy that maximises reward under a KL leash of strength beta satisfies
    r(x, y) = beta * log(pi(y|x) / pi_ref(y|x)) + a term that depends on x only, which cancels in a pair.
    """
    return beta * (policy_chosen_logps - ref_chosen_logps), beta * (policy_rejected_logps - ref_rejected_logps)


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1):
    """The Bradley-Terry loss on the implicit rewards: DPO is a reward model hidden inside the policy."""
    chosen, rejected = dpo_implicit_rewards(policy_chosen_logps, policy_rejected_logps,
                                            ref_chosen_logps, ref_rejected_logps, beta)
    return bradley_terry_loss(chosen, rejected)


def group_advantages(rewards, group_size, scale=True, eps=1e-4):
    """GRPO's advantages: each completion's reward minus its group's mean, divided by the group's std
    (lesson 11). A group is the `group_size` completions of one prompt, consecutive in `rewards`.

    No value model is needed: the other answers to the same prompt are the baseline. A group whose
    answers all score the same gets advantage 0 everywhere: it teaches nothing.
    """
    grouped = rewards.view(-1, group_size)
    advantages = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:  # torch.std is the unbiased estimate, as in TRL
        advantages = advantages / (grouped.std(dim=1, keepdim=True) + eps)
    return advantages.view(-1)


@torch.no_grad()
def reply_logps(model, tokenizer, prompts, replies, batch_size=32):
    """Summed log-probabilities log pi(reply | prompt) of whole replies, as DPO scores them (lessons 10)."""
    model.eval()
    prompt_ids = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=False)
                  for p in prompts]
    full_ids = [tokenizer.apply_chat_template(p + [{"role": "assistant", "content": r}], tokenize=True,
                                              return_dict=False) for p, r in zip(prompts, replies)]
    out = torch.empty(len(prompts))
    order = sorted(range(len(prompts)), key=lambda i: len(full_ids[i]))  # batches of similar lengths: little padding
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(full_ids[i]) for i in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id)
        reply_mask = torch.zeros(len(chunk), width)
        for row, i in enumerate(chunk):
            ids[row, :len(full_ids[i])] = torch.tensor(full_ids[i])
            reply_mask[row, len(prompt_ids[i]):len(full_ids[i])] = 1  # the reply's tokens (and its <|im_end|>)
        attention = (torch.arange(width) < torch.tensor([len(full_ids[i]) for i in chunk])[:, None]).long()
        logits = model(input_ids=ids.to(model.device), attention_mask=attention.to(model.device)).logits[:, :-1]
        logits = logits.float().cpu()
        # log softmax at the next token only: its logit minus the log-sum-exp (a real model's vocabulary is large)
        token_logps = logits.gather(-1, ids[:, 1:, None]).squeeze(-1) - logits.logsumexp(-1)
        out[chunk] = (token_logps * reply_mask[:, 1:]).sum(-1)
    return out


def preference_report(model, tokenizer, rows, reference_logps, beta=0.1):
    """How a trained policy ranks held-out pairs, measured as DPO measures it: the implicit reward
    beta * log(pi / pi_ref) of each reply, with `reference_logps` = (chosen, rejected) of the starting model.

    accuracy: share of pairs whose chosen reply gained more log-probability than the rejected one;
    margin: mean implicit-reward gap; logp_chosen: mean log pi(chosen), which pure DPO tends to push down.
    """
    prompts = [r["prompt"] for r in rows]
    chosen = reply_logps(model, tokenizer, prompts, [r["chosen"][-1]["content"] for r in rows])
    rejected = reply_logps(model, tokenizer, prompts, [r["rejected"][-1]["content"] for r in rows])
    reward_chosen, reward_rejected = dpo_implicit_rewards(chosen, rejected, *reference_logps, beta)
    margins = reward_chosen - reward_rejected
    return {"accuracy": (margins > 0).float().mean().item(), "margin": margins.mean().item(),
            "margins": margins, "logp_chosen": chosen.mean().item(), "logp_rejected": rejected.mean().item()}
