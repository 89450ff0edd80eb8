"""Automatic checks for the exercise notebooks (exercises/NN_name/): one module per lesson, `lessonNN`.

A check takes the learner's answer (a number, a tensor, a function, a model) and compares it with a reference it
computes itself from the same model and data, never with a number written down here. A wrong answer raises an
AssertionError that says what is wrong and gives a hint (and, for the usual mistakes, names the mistake); a right
one prints what was verified. CI proves both directions: autograding the solutions gives full marks
(exercises/test_assignments.py) and every check fails on wrong answers (tests/test_exercises.py).
"""
import math

import torch


def fail(problem, hint):
    """Stop with what is wrong and what to try."""
    raise AssertionError(f"{problem}\nHint: {hint}")


def expect(condition, problem, hint):
    if not condition:
        fail(problem, hint)


def passed(message):
    print(f"✓ {message}")


def number(value, name):
    """`value` as a float (a Python number or a one-element tensor), or a failure that says what it is instead."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(f"`{name}` should be a number, but it is {type(value).__name__}: {value!r:.80}",
             f"assign the number to `{name}` (a Python float, or a one-element tensor)")
    return float(value)


def tensor(value, name, shape=None):
    """`value` as a float tensor (of `shape` when given), or a failure that says what it is instead."""
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value, dtype=torch.float32)
        except (TypeError, ValueError):
            fail(f"`{name}` should be a tensor, but it is {type(value).__name__}",
                 "return a torch tensor (or a list of numbers)")
    if shape is not None and tuple(value.shape) != tuple(shape):
        fail(f"`{name}` has shape {tuple(value.shape)}, expected {tuple(shape)}",
             "one value per position of the input: keep the batch and position dimensions")
    return value.detach().float()


def close(a, b, rel=1e-4, abs_tol=1e-6):
    """Numbers or tensors equal up to float rounding."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
        return a.shape == b.shape and torch.allclose(a, b, rtol=rel, atol=abs_tol)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def first_difference(got, expected):
    """'at [i, j]: got x, expected y' for the first position where two tensors differ (for messages)."""
    where = (~torch.isclose(got, expected, rtol=1e-4, atol=1e-6)).nonzero()
    if len(where) == 0:
        return "no difference"
    index = tuple(where[0].tolist())
    return f"at {list(index)}: got {got[index].item():.5g}, expected {expected[index].item():.5g}"
