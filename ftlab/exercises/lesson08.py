"""Checks for exercises/08_reward_modeling: Bradley-Terry's probability, the loss with a margin, the worst mistakes."""
import torch
import torch.nn.functional as F

from .. import rewards
from . import close, expect, fail, number, passed


def preference_probability(p, model, tokenizer, row):
    """Exercise 1: the probability, by Bradley-Terry, that the reward model prefers `row`'s chosen reply."""
    p = number(p, "p_chosen")
    chosen, rejected = (s.item() for s in rewards.pair_scores(model, tokenizer, [row]))
    reference = torch.sigmoid(torch.tensor(chosen - rejected)).item()
    if not close(p, reference, rel=1e-3):
        if close(p, chosen - rejected, rel=1e-3):
            fail(f"{p:.4f} is the score difference r_chosen - r_rejected", "turn it into a probability: sigmoid of it")
        if close(p, 1 - reference, rel=1e-3):
            fail(f"{p:.4f} is the probability of the rejected reply", "sigmoid(r_chosen - r_rejected), in that order")
        if close(p, torch.sigmoid(torch.tensor(chosen)).item(), rel=1e-3):
            fail(f"{p:.4f} is sigmoid of the chosen score alone", "Bradley-Terry compares: sigmoid(r_chosen - r_rejected)")
        expect(0 <= p <= 1, f"{p:.4f} is no probability", "sigmoid(r_chosen - r_rejected) lies between 0 and 1")
        fail(f"{p:.4f} is not the Bradley-Terry probability of this pair",
             "score both replies with rewards.pair_scores(model, tokenizer, [row]), then sigmoid(chosen - rejected)")
    passed(f"scores {chosen:+.2f} (chosen) and {rejected:+.2f} (rejected): P(chosen preferred) = {p:.3f}")


def margin_loss(loss_fn):
    """Exercise 2: `loss_fn(chosen, rejected, margin)` is the Bradley-Terry loss with TRL's margin."""
    generator = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(8, generator=generator), torch.randn(8, generator=generator)
    margin = torch.rand(8, generator=generator) * 2
    expected = -F.logsigmoid(chosen - rejected - margin).mean().item()
    got = number(loss_fn(chosen, rejected, margin), "loss_fn(chosen, rejected, margin)")
    if close(got, -F.logsigmoid(chosen - rejected + margin).mean().item()):
        fail("your margin helps the pair instead of asking more of it",
             "subtract the margin: -log sigmoid(r_chosen - r_rejected - margin); the gap must exceed it")
    if close(got, -F.logsigmoid(chosen - rejected).mean().item()):
        fail("your loss ignores the margin", "-log sigmoid(r_chosen - r_rejected - margin)")
    if close(got, -F.logsigmoid(chosen - rejected - margin).sum().item()):
        fail("your loss is the sum over the pairs", "average over the pairs: .mean()")
    expect(close(got, expected), f"on random scores your loss is {got:.5f}, TRL's {expected:.5f}",
           "-torch.nn.functional.logsigmoid(chosen - rejected - margin).mean()")
    passed("your loss is RewardTrainer's with a margin column: a pair now costs something until its gap passes the margin")


def most_wrong(indices, model, tokenizer, rows, k=5):
    """Exercise 3: the indices of the k pairs of `rows` the reward model ranks wrong most confidently."""
    chosen, rejected = rewards.pair_scores(model, tokenizer, rows)
    gaps = chosen - rejected
    reference = gaps.argsort()[:k].tolist()
    indices = [int(i) for i in indices]
    expect(len(indices) == k, f"{len(indices)} indices", f"the {k} most confident mistakes")
    right = [i for i in indices if gaps[i] > 0]
    if sorted(indices) == sorted(gaps.argsort(descending=True)[:k].tolist()):
        fail("these are the pairs the reward model ranks right most confidently",
             "a mistake is a pair whose chosen reply scores lower: sort the gaps r_chosen - r_rejected upwards")
    if right:
        fail(f"pair {right[0]} is ranked right: its chosen reply scores {gaps[right[0]].item():+.2f} above the "
             "rejected one", "a mistake has r_chosen - r_rejected < 0")
    expect(indices == reference, f"your pairs have gaps {[round(gaps[i].item(), 2) for i in indices]}, and there are "
           "more negative ones", "sort all pairs by r_chosen - r_rejected, ascending, and keep the first k, most wrong first")
    kinds = [rows[i]["kind"] for i in indices]
    passed(f"the most confident mistakes, gaps {[round(gaps[i].item(), 2) for i in indices]}, are of kinds {kinds}")
