"""Checks for exercises/10_dpo: DPO's loss by hand, the implicit-reward accuracy of a model, the IPO loss."""
import torch
import torch.nn.functional as F

from .. import preference
from . import close, expect, fail, number, passed

# Exercise 1's pair: summed log-probabilities of the chosen and rejected replies under the policy and the reference.
POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, BETA = -12.0, -15.0, -13.0, -13.5, 0.1


def dpo_loss_by_hand(loss):
    """Exercise 1: DPO's loss on the pair above."""
    loss = number(loss, "dpo_loss")
    args = [torch.tensor([v]) for v in (POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED)]
    expected = preference.dpo_loss(*args, beta=BETA).item()
    gap = (POLICY_CHOSEN - REF_CHOSEN) - (POLICY_REJECTED - REF_REJECTED)
    if close(loss, -F.logsigmoid(torch.tensor(gap)).item()):
        fail(f"{loss:.5f} leaves out beta", f"the implicit rewards are beta * log(pi / pi_ref), beta = {BETA}")
    if close(loss, -F.logsigmoid(torch.tensor(BETA * (POLICY_CHOSEN - POLICY_REJECTED))).item()):
        fail(f"{loss:.5f} leaves out the reference", "subtract the reference's log-probabilities: log pi - log pi_ref")
    if close(loss, F.logsigmoid(torch.tensor(BETA * gap)).item()):
        fail(f"{loss:.5f} is negative: the log-likelihood, not the loss", "the loss is -log sigmoid(...)")
    expect(close(loss, expected), f"{loss:.5f} is not DPO's loss on this pair",
           "-log sigmoid(beta * ((log pi(chosen) - log pi_ref(chosen)) - (log pi(rejected) - log pi_ref(rejected))))")
    passed(f"implicit rewards {BETA * (POLICY_CHOSEN - REF_CHOSEN):+.2f} and {BETA * (POLICY_REJECTED - REF_REJECTED):+.2f}: "
           f"loss {expected:.4f}, below ln 2 = 0.6931 because the policy already prefers the chosen reply more than the reference does")


def implicit_accuracy(accuracy, policy, reference, tokenizer, rows):
    """Exercise 2: the share of `rows` whose chosen reply gains more log-probability (policy vs reference) than the
    rejected one: DPO's preference accuracy of `policy`."""
    accuracy = number(accuracy, "accuracy")
    prompts = [r["prompt"] for r in rows]
    replies = {side: [r[side][-1]["content"] for r in rows] for side in ("chosen", "rejected")}
    policy_logps = {side: preference.reply_logps(policy, tokenizer, prompts, replies[side]) for side in replies}
    reference_logps = (preference.reply_logps(reference, tokenizer, prompts, replies["chosen"]),
                       preference.reply_logps(reference, tokenizer, prompts, replies["rejected"]))
    expected = preference.preference_report(policy, tokenizer, rows, reference_logps)["accuracy"]
    plain = (policy_logps["chosen"] > policy_logps["rejected"]).float().mean().item()
    if close(accuracy, plain) and not close(plain, expected):
        fail(f"{accuracy:.3f} compares log pi(chosen) with log pi(rejected) alone",
             "DPO measures the change from the reference: compare log pi - log pi_ref of the two replies")
    if close(accuracy, 100 * expected):
        fail(f"{accuracy:g} looks like a percentage", "give a share between 0 and 1")
    expect(close(accuracy, expected), f"{accuracy:.3f} is not the share of pairs with a positive implicit-reward margin",
           "preference.reply_logps for policy and reference, chosen and rejected; a pair counts when "
           "(pi_c - ref_c) - (pi_r - ref_r) > 0")
    passed(f"{expected:.0%} of the pairs gain more on the chosen side (plain log pi would say {plain:.0%})")


def ipo_loss(loss_fn):
    """Exercise 3: `loss_fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)` is IPO's loss."""
    generator = torch.Generator().manual_seed(0)
    logps = [torch.randn(6, generator=generator) * 3 - 10 for _ in range(4)]
    for beta in (0.1, 0.5):
        h = (logps[0] - logps[2]) - (logps[1] - logps[3])
        expected = ((h - 1 / (2 * beta)) ** 2).mean().item()
        got = number(loss_fn(*logps, beta), "loss_fn(...)")
        if close(got, ((beta * h - 1 / (2 * beta)) ** 2).mean().item()):
            fail(f"beta={beta}: your loss multiplies the log-ratio gap by beta, as DPO does",
                 "IPO regresses the gap itself to 1/(2 beta): (h - 1/(2 beta))^2, with no beta in front of h")
        if close(got, ((h - 1 / beta) ** 2).mean().item()) or close(got, ((h - beta / 2) ** 2).mean().item()):
            fail(f"beta={beta}: your target for the gap is not 1/(2 beta)", "the target is 1 / (2 * beta)")
        expect(close(got, expected), f"beta={beta}: your loss is {got:.5f}, IPO's {expected:.5f}",
               "h = (pi_c - ref_c) - (pi_r - ref_r); loss = mean((h - 1/(2 beta))^2)")
    passed("your IPO loss is right: unlike DPO's, it stops pushing once the gap reaches 1/(2 beta), so it cannot run off")
