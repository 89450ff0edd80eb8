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
