"""Checks for exercises/11_grpo: group advantages by hand, groups that teach nothing, a sampled and scored group."""
import torch

from .. import preference, rewards
from . import close, expect, fail, first_difference, number, passed, tensor

GROUP = [1.0, 0.0, 0.0, 0.0]  # exercise 1: the rewards of four completions of one prompt


def advantages_by_hand(advantages):
    """Exercise 1: GRPO's advantages of the group above."""
    expected = preference.group_advantages(torch.tensor(GROUP), group_size=len(GROUP))
    got = tensor(advantages, "advantages", shape=expected.shape)
    centred = torch.tensor(GROUP) - torch.tensor(GROUP).mean()
    if close(got, centred):
        fail("your advantages are centred but not scaled", "divide by the group's standard deviation (plus 1e-4)")
    if close(got, centred / (torch.tensor(GROUP).std(unbiased=False) + 1e-4)):
        fail("your advantages divide by the population standard deviation",
             "TRL (and preference.group_advantages) use the unbiased one, with n - 1: torch.std's default")
    expect(close(got, expected), f"your advantages differ, first {first_difference(got, expected)}",
           "(reward - mean of the group) / (unbiased std of the group + 1e-4)")
    passed(f"advantages {[round(a, 3) for a in got.tolist()]}: the one right answer is pushed up 3 times as hard as "
           "each wrong one is pushed down")


def zero_std_share(share_fn):
    """Exercise 2: `share_fn(rewards, group_size)` is the share of groups whose rewards are all equal."""
    generator = torch.Generator().manual_seed(0)
    cases = [(torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]), 4),
             (torch.tensor([1.0, 1.0, 0.5, 0.5, 0.0, 1.0]), 2),
             ((torch.rand(64, generator=generator) < 0.2).float(), 8)]
    for rewards_, size in cases:
        expected = (rewards_.view(-1, size).std(dim=1) == 0).float().mean().item()
        got = number(share_fn(rewards_.clone(), size), "share_fn(rewards, group_size)")
        if close(got, 1 - expected) and not close(expected, 0.5):
            fail(f"rewards {rewards_.tolist()[:16]}, groups of {size}: {got:.3f} is the share of groups that DO teach",
                 "count the groups whose rewards are all the same (standard deviation 0)")
        expect(close(got, expected), f"rewards {rewards_.tolist()[:16]}{' ...' if len(rewards_) > 16 else ''}, "
               f"groups of {size}: you say {got:.3f}, expected {expected:.3f}",
               "rewards.view(-1, group_size): one row per group; a group teaches nothing when its std is 0")
    passed("a group whose completions all score alike has advantage 0 everywhere: TRL logs its share as "
           "frac_reward_zero_std")


def sample_and_score(sample_fn, model, tokenizer, rows, group_size=4):
    """Exercise 3: `sample_fn(model, tokenizer, rows, group_size)` samples `group_size` completions per row (a
    prompts row) and returns (completions, rewards, advantages), scored as GRPO scores them."""
    torch.manual_seed(0)
    result = sample_fn(model, tokenizer, rows, group_size)
    expect(isinstance(result, tuple) and len(result) == 3, f"`sample_fn` returned {type(result).__name__}",
           "return (completions, rewards, advantages)")
    completions, got_rewards, got_advantages = result
    n = len(rows) * group_size
    expect(len(completions) == n and all(isinstance(c, str) for c in completions),
           f"{len(completions)} completions for {len(rows)} prompts x {group_size}",
           "a list of texts, the completions of each prompt next to each other")
    prompts = [row["prompt"] for row in rows for _ in range(group_size)]
    answers = [row["answer"] for row in rows for _ in range(group_size)]
    expected_rewards = torch.tensor(rewards.correctness_reward(prompts, completions, answers))
    got_rewards = tensor(got_rewards, "rewards", shape=(n,))
    tiled = rewards.correctness_reward([r["prompt"] for r in rows] * group_size, completions,
                                       [r["answer"] for r in rows] * group_size)
    if close(got_rewards, torch.tensor(tiled)) and not close(got_rewards, expected_rewards):
        fail("your rewards compare completion i with the answer of row i % len(rows)",
             "the completions of one prompt are next to each other: repeat each prompt and answer group_size times")
    expect(close(got_rewards, expected_rewards), f"your rewards differ from correctness_reward, first "
           f"{first_difference(got_rewards, expected_rewards)}", "rewards.correctness_reward(prompts, completions, answers)")
    expected_advantages = preference.group_advantages(expected_rewards, group_size)
    got_advantages = tensor(got_advantages, "advantages", shape=(n,))
    expect(close(got_advantages, expected_advantages), f"your advantages differ, first "
           f"{first_difference(got_advantages, expected_advantages)}", "preference.group_advantages(rewards, group_size)")
    groups = [completions[i:i + group_size] for i in range(0, n, group_size)]
    expect(any(len(set(g)) > 1 for g in groups), "every group's completions are identical",
           "sample: model.generate(..., do_sample=True, temperature=1.0); greedy decoding gives one answer per prompt")
    teaching = sum(expected_rewards.view(-1, group_size).std(dim=1) > 0)
    passed(f"{n} completions, mean reward {expected_rewards.mean():.2f}; {int(teaching)} of {len(rows)} groups have "
           "different rewards and teach something")
