"""Checks for exercises/09_ppo: per-token rewards under the KL leash, a verifiable score, GAE by hand."""
import random

import torch

from .. import ppo, world
from . import close, expect, fail, first_difference, passed, tensor

# Exercise 1's rollout: two replies (the second one token shorter: its last position is padding).
LOGPROBS = torch.tensor([[-1.0, -0.5, -2.0], [-0.3, -1.2, 0.0]])
REF_LOGPROBS = torch.tensor([[-1.5, -0.5, -1.0], [-0.8, -1.0, 0.0]])
SCORES = torch.tensor([2.0, -1.0])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
KL_COEF = 0.1


def kl_rewards(rewards):
    """Exercise 1: the per-token rewards of the rollout above."""
    expected, _ = ppo.kl_penalised_rewards(LOGPROBS, REF_LOGPROBS, SCORES, MASK, KL_COEF)
    got = tensor(rewards, "rewards", shape=expected.shape)
    kl = (LOGPROBS - REF_LOGPROBS) * MASK
    if close(got, KL_COEF * kl + torch.zeros_like(kl).index_put_((torch.arange(2), MASK.sum(1).long() - 1), SCORES)):
        fail("your leash rewards moving away from the reference", "the KL term is a penalty: -kl_coef * (log pi - log pi_ref)")
    if close(got[1, 2], SCORES[1]) or close(got[1, 2], SCORES[1] - KL_COEF * kl[1, 2]):
        fail("the second reply's score sits on its padding", "put each score on the reply's last real token: "
             "mask.sum(1) - 1")
    expect(close(got, expected), f"your rewards differ, first {first_difference(got, expected)}",
           "-kl_coef * (logprobs - ref_logprobs) * mask at every token, plus the score at each reply's last token")
    passed(f"per-token rewards {got.tolist()}: the leash at every token, the score once at the end")


def happy_score(score_fn):
    """Exercise 2: `score_fn(prompts, replies)` gives 1.0 to a reply that is a story with a happy ending, else 0.0."""
    rng = random.Random(0)
    replies = [world.story(rng, ending=kind) for kind in ("happy", "sad", "plain", "happy", "sad")]
    replies += ["3+4=7", world.story_body(rng, world.story_hero(rng)), ""]
    prompts = [[{"role": "user", "content": "Tell me a story."}]] * len(replies)
    expected = torch.tensor([1.0 if world.ending_kind(r) == "happy" else 0.0 for r in replies])
    got = score_fn(prompts, replies)
    expect(isinstance(got, torch.Tensor), f"`score_fn` returned {type(got).__name__}",
           "return a float tensor, one score per reply, as ppo.train expects of a score function")
    got = tensor(got, "score_fn(prompts, replies)", shape=expected.shape)
    wrong = [i for i in range(len(replies)) if got[i] != expected[i]]
    if wrong:
        fail(f"reply {replies[wrong[0]][-70:]!r} scores {got[wrong[0]].item()}, expected {expected[wrong[0]].item()}",
             "world.ending_kind(reply) == 'happy' -> 1.0, anything else (sad, plain, no story) -> 0.0")
    passed("a verifiable reward: 1 for a real happy ending, whatever the reply's style")


def gae(gae_fn):
    """Exercise 3: `gae_fn(rewards, values, mask, gamma, lam)` returns (advantages, returns) as ppo.gae does."""
    generator = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(3, 5, generator=generator), torch.randn(3, 5, generator=generator)
    mask = torch.tensor([[1.0] * 5, [1.0] * 3 + [0.0] * 2, [1.0] * 4 + [0.0]])
    for gamma, lam in [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0)]:
        expected_adv, expected_ret = ppo.gae(rewards, values, mask, gamma, lam)
        got = gae_fn(rewards.clone(), values.clone(), mask.clone(), gamma, lam)
        expect(isinstance(got, tuple) and len(got) == 2, f"`gae_fn` returned {type(got).__name__}", "return (advantages, returns)")
        adv, ret = tensor(got[0], "advantages", shape=(3, 5)), tensor(got[1], "returns", shape=(3, 5))
        if not close(adv * mask, expected_adv) and close(adv[0], expected_adv[0]):
            fail(f"gamma={gamma}, lam={lam}: the full-length reply is right, the shorter ones are not",
                 "after a reply's last token the episode is over: the next value and advantage are 0 (use the mask)")
        expect(close(adv * mask, expected_adv), f"gamma={gamma}, lam={lam}: advantages differ, "
               f"first {first_difference(adv * mask, expected_adv)}",
               "backwards over t: delta = r_t + gamma * V_(t+1) - V_t; A_t = delta + gamma * lam * A_(t+1)")
        expect(close(ret * mask, expected_ret), f"gamma={gamma}, lam={lam}: returns differ, "
               f"first {first_difference(ret * mask, expected_ret)}", "returns = advantages + values")
    passed("your GAE equals ppo.gae for three settings of gamma and lambda, padding included")
