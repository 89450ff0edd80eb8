"""How sure a measured accuracy is: a 95% interval for the share of questions a model answers right, and for the
difference between two models graded on the same questions (`chat.grade` gives one (problem, right) pair per
distinct question).

The questions are not independent draws: the course asks the same sum in several phrasings ("What is 6+4?",
"Compute 6+4."), and a model that knows 6+4 answers them all. The interval therefore treats each *problem*, not
each question, as one draw (a cluster-robust standard error): lesson 02's held-out chats hold 104 checkable
questions on 35 problems, and the interval is about as wide as 35 independent questions would give, which is
the honest amount of evidence."""
import math
from collections import defaultdict

Z95 = 1.96  # the normal quantile of a two-sided 95% interval


def interval(values, problems):
    """(mean, low, high): the mean of `values` and its 95% interval, each problem one independent draw.

    SE^2 = G/(G-1) * sum over problems g of (sum of (v - mean) over g's questions)^2 / n^2, with G problems and n
    questions; with one question per problem it is the usual variance of a mean."""
    n, mean = len(values), sum(values) / len(values)
    deviation = defaultdict(float)
    for value, problem in zip(values, problems):
        deviation[problem] += value - mean
    groups = len(deviation)
    se = math.sqrt(groups / max(1, groups - 1) * sum(d * d for d in deviation.values())) / n
    return mean, mean - Z95 * se, mean + Z95 * se


def accuracy_interval(graded):
    """(share right, low, high) of one model's `chat.grade` result, the interval clipped to 0..1."""
    share, low, high = interval([float(right) for _, right in graded], [problem for problem, _ in graded])
    return share, max(0.0, low), min(1.0, high)


def difference_interval(graded_a, graded_b):
    """(accuracy of B - accuracy of A, low, high) for two models graded on the same questions. Pairing matters:
    only the questions the two answer differently move the difference, so it is far surer than two separate
    intervals suggest."""
    if [p for p, _ in graded_a] != [p for p, _ in graded_b]:
        raise ValueError(f"the two gradings cover different questions ({len(graded_a)} and {len(graded_b)}): "
                         "grade both models on the same rows")
    return interval([float(b) - float(a) for (_, a), (_, b) in zip(graded_a, graded_b)],
                    [problem for problem, _ in graded_a])


def describe(graded):
    """'57% (95% CI 45-68%; 104 questions on 39 problems)'."""
    share, low, high = accuracy_interval(graded)
    return f"{share:.0%} (95% CI {low:.0%}-{high:.0%}; {_counts(graded)})"


def describe_difference(graded_a, graded_b):
    """'+4 points (95% CI -6 to +14; 12 of 104 questions answered differently, 39 problems)'."""
    difference, low, high = difference_interval(graded_a, graded_b)
    differ = sum(a != b for (_, a), (_, b) in zip(graded_a, graded_b))
    return (f"{100 * difference:+.0f} points (95% CI {100 * low:+.0f} to {100 * high:+.0f}; {differ} of "
            f"{_counts(graded_a)} answered differently)")


def _counts(graded):
    return f"{len(graded)} questions on {len({problem for problem, _ in graded})} problems"
