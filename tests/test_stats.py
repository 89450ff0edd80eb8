"""Intervals for accuracies (ftlab.stats): the usual one for independent questions, wider when questions repeat a
problem, and a paired difference that knows when two models agree."""
import math

import pytest

from ftlab import chat, stats


def test_one_question_per_problem_gives_the_usual_interval():
    graded = [(f"p{i}", i < 30) for i in range(50)]
    share, low, high = stats.accuracy_interval(graded)
    se = math.sqrt(0.6 * 0.4 / 50 * 50 / 49)
    assert share == 0.6 and low == pytest.approx(0.6 - 1.96 * se) and high == pytest.approx(0.6 + 1.96 * se)


def test_rephrasing_a_problem_adds_no_evidence():
    once = [(f"p{i}", i < 30) for i in range(50)]
    four_times = [(problem, right) for problem, right in once for _ in range(4)]  # 4 phrasings, answered alike
    assert stats.accuracy_interval(four_times) == pytest.approx(stats.accuracy_interval(once))
    as_if_independent = [(f"q{i}", right) for i, (_, right) in enumerate(four_times)]
    width = lambda g: stats.accuracy_interval(g)[2] - stats.accuracy_interval(g)[1]  # noqa: E731
    assert width(four_times) > 1.9 * width(as_if_independent)


def test_the_interval_stays_inside_0_and_1():
    assert stats.accuracy_interval([("a", True), ("b", True)])[1:] == (1.0, 1.0)
    assert stats.accuracy_interval([("a", False), ("b", True), ("c", False)])[1] == 0.0


def test_a_paired_difference_counts_only_the_questions_answered_differently():
    a = [(f"p{i}", i < 30) for i in range(50)]
    assert stats.difference_interval(a, a) == (0.0, 0.0, 0.0)
    b = [(p, right or i == 40) for i, (p, right) in enumerate(a)]  # B also answers one more
    difference, low, high = stats.difference_interval(a, b)
    assert difference == pytest.approx(0.02) and low < 0 < high
    assert "+2 points" in stats.describe_difference(a, b) and "1 of 50 questions on 50 problems" in \
        stats.describe_difference(a, b)


def test_gradings_of_different_questions_are_refused():
    with pytest.raises(ValueError, match="different questions"):
        stats.difference_interval([("a", True)], [("b", True)])


@pytest.mark.parametrize("task, question, problem", [
    ("math", "What is 6+4?", "6+4"), ("math", "6+4=?", "6+4"), ("math", "Please solve 9-2.", "9-2"),
    ("fact", "What does a cow say?", "cow"), ("fact", "What sound does a cow make?", "cow"),
    ("fact", "What colour is the sky?", "sky"), ("fact", "What color is a sky?", "sky"),
])
def test_phrasings_of_one_problem_share_it(task, question, problem):
    assert chat.problem_of(task, question) == problem
