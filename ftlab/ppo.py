"""RLHF with PPO, written out (lesson 09): TRL 1.15 no longer ships a PPO trainer, so here is a small one.

It follows the design of TRL's former `PPOTrainer` (the "N implementation details of RLHF with PPO"):
four models (a policy being trained, a frozen reference, a frozen reward model, a value model), and each
iteration does
1. rollouts: the policy samples a reply to each prompt of a batch;
2. scoring: the reward model scores each whole conversation once;
3. per-token rewards: -kl_coef * (log pi - log pi_ref) at every reply token (the KL leash), plus the score
   at the reply's last token;
4. advantages with GAE from the per-token rewards and the value model's estimates;
5. a few epochs of minibatch updates with PPO's clipped policy loss and clipped value loss.
The math of steps 3-5 is in small functions tested on hand-computed tensors (tests/test_ppo.py).
"""
from dataclasses import dataclass

import torch

from .tokenizer import TURN_END


@dataclass
class PPOSettings:
    """The knobs of one PPO run, with TRL's former defaults where they suit the course model."""
    iterations: int = 40
    rollouts: int = 32  # prompts (and replies) per iteration
    learning_rate: float = 5e-5
    kl_coef: float = 0.3  # beta: the strength of the KL leash to the reference
    gamma: float = 1.0  # no discounting inside one reply
    lam: float = 0.95  # GAE: 0 trusts the value model, 1 trusts the sampled rewards
    cliprange: float = 0.2  # how far one update may move the probability ratio
    cliprange_value: float = 0.2
    vf_coef: float = 0.1  # weight of the value loss
    ppo_epochs: int = 2
    minibatches: int = 2
    max_new_tokens: int = 96
    temperature: float = 1.0
    seed: int = 0


# ---------------------------------------------------------------- the math (tested by hand)
def kl_penalised_rewards(logprobs, ref_logprobs, scores, mask, kl_coef):
    """Per-token rewards: -kl_coef * (log pi - log pi_ref) on every reply token, plus the reward model's score
    on the last one. log pi - log pi_ref, summed over a reply, estimates KL(pi || pi_ref) of that reply."""
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = mask.sum(1).long() - 1  # index of each reply's last token
    rewards[torch.arange(len(scores), device=rewards.device), last] += scores.to(rewards.device)
    return rewards, kl


def gae(rewards, values, mask, gamma=1.0, lam=0.95):
    """Generalised advantage estimation, backwards over the tokens of each reply; returns (advantages, returns).

    delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1}; after the reply's last token
    V and A are 0 (the episode is over). returns = A + V are the value model's targets.
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    next_value = next_advantage = rewards.new_zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    return advantages, advantages + values


def whiten(x, mask, eps=1e-8):
    """(x - mean) / std over the masked entries: advantages on one scale, batch after batch."""
    mean = (x * mask).sum() / mask.sum()
    var = (((x - mean) * mask) ** 2).sum() / mask.sum()
    return (x - mean) * torch.rsqrt(var + eps) * mask


def masked_mean(x, mask):
    return (x * mask).sum() / mask.sum()


def policy_loss(logprobs, old_logprobs, advantages, mask, cliprange=0.2):
    """PPO's clipped surrogate: the ratio pi/pi_old may help the loss only within [1 - clip, 1 + clip].
    Returns (loss, share of tokens where the clip was active)."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - cliprange, 1 + cliprange)
    return masked_mean(torch.max(unclipped, clipped), mask), masked_mean((clipped > unclipped).float(), mask)


def value_loss(values, old_values, returns, mask, cliprange_value=0.2):
    """Squared error to the returns, with the new values clipped near the old ones (the pessimistic of the two)."""
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    return 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)


# ---------------------------------------------------------------- the models
def reply_token_logprobs(model, ids, attention, start, temperature=1.0):
    """log pi(token) of every token from position `start` on (the reply), from one forward pass."""
    logits = model(input_ids=ids, attention_mask=attention).logits[:, start - 1:-1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, ids[:, start:, None]).squeeze(-1)


def reply_token_values(value_model, ids, attention, start):
    """The value model's estimate at every reply token: its score head applied to every hidden state,
    not only the last one (a sequence classifier's trunk is `.model`; with a LoRA adapter, the adapted model's)."""
    classifier = value_model.get_base_model() if hasattr(value_model, "get_base_model") else value_model
    hidden = classifier.model(input_ids=ids, attention_mask=attention).last_hidden_state
    return classifier.score(hidden[:, start - 1:-1]).squeeze(-1).float()


@torch.no_grad()
def rollout(policy, tokenizer, prompts, settings):
    """Sample one reply per prompt. Returns ids (prompt + reply, left-padded prompts), attention mask,
    reply mask (reply tokens up to and including <|im_end|>), reply texts, and the reply start position."""
    policy.eval()
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    # left padding: every prompt ends where its reply starts
    batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                      add_special_tokens=False).to(policy.device)
    stop = tokenizer.convert_tokens_to_ids(TURN_END)
    ids = policy.generate(**batch, do_sample=True, temperature=settings.temperature, top_k=0, top_p=1.0,
                          max_new_tokens=settings.max_new_tokens, eos_token_id=stop,
                          pad_token_id=tokenizer.pad_token_id)
    start = batch["input_ids"].shape[1]
    reply = ids[:, start:]
    ended = (reply == stop).long()
    # a token belongs to the reply until (and including) the first <|im_end|>
    reply_mask = ((ended.cumsum(1) - ended) == 0).float()
    attention = torch.cat([batch["attention_mask"], reply_mask.long()], 1)
    replies = tokenizer.batch_decode(reply * reply_mask.long() + tokenizer.pad_token_id * (1 - reply_mask.long()),
                                     skip_special_tokens=True)
    return ids, attention, reply_mask, replies, start


# ---------------------------------------------------------------- the loop
def train(policy, ref_policy, value_model, score_fn, tokenizer, prompts, settings, on_iteration=None):
    """PPO-RLHF. `score_fn(prompts, replies)` returns one score per reply (the reward model, usually).
    Returns the history: one dict per iteration (score, kl, reward, reply length, losses)."""
    torch.manual_seed(settings.seed)
    # the trainable weights only: all of them, or the LoRA adapters (and a value model's new head)
    params = [p for model in (policy, value_model) for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, eps=1e-5)
    generator = torch.Generator().manual_seed(settings.seed)
    history = []
    for iteration in range(settings.iterations):
        chosen = torch.randint(len(prompts), (settings.rollouts,), generator=generator).tolist()
        batch_prompts = [prompts[i] for i in chosen]
        # 1-2. rollouts and scores
        ids, attention, mask, replies, start = rollout(policy, tokenizer, batch_prompts, settings)
        scores = score_fn(batch_prompts, replies)
        with torch.no_grad():
            old_logprobs = reply_token_logprobs(policy, ids, attention, start, settings.temperature)
            ref_logprobs = reply_token_logprobs(ref_policy, ids, attention, start, settings.temperature)
            old_values = reply_token_values(value_model, ids, attention, start) * mask
            # 3-4. the leash, then advantages
            rewards, kl = kl_penalised_rewards(old_logprobs, ref_logprobs, scores, mask, settings.kl_coef)
            advantages, returns = gae(rewards, old_values, mask, settings.gamma, settings.lam)
            advantages = whiten(advantages, mask)
        # 5. PPO updates on minibatches of the rollouts
        policy.train()
        value_model.train()
        stats = []
        for _ in range(settings.ppo_epochs):
            for mb in torch.randperm(settings.rollouts, generator=generator).chunk(settings.minibatches):
                logprobs = reply_token_logprobs(policy, ids[mb], attention[mb], start, settings.temperature)
                values = reply_token_values(value_model, ids[mb], attention[mb], start)
                pg_loss, clipfrac = policy_loss(logprobs, old_logprobs[mb], advantages[mb], mask[mb],
                                                settings.cliprange)
                vf_loss = value_loss(values, old_values[mb], returns[mb], mask[mb], settings.cliprange_value)
                optimizer.zero_grad()
                (pg_loss + settings.vf_coef * vf_loss).backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                stats.append((pg_loss.item(), vf_loss.item(), clipfrac.item()))
        record = {"iteration": iteration + 1, "score": scores.mean().item(), "kl": kl.sum(1).mean().item(),
                  "reward": rewards.sum(1).mean().item(), "length": mask.sum(1).mean().item(),
                  "policy_loss": sum(s[0] for s in stats) / len(stats),
                  "value_loss": sum(s[1] for s in stats) / len(stats),
                  "clipfrac": sum(s[2] for s in stats) / len(stats), "replies": replies}
        history.append(record)
        if on_iteration:
            on_iteration(record)
    return history
