import pytest

from ftlab import chat


@pytest.mark.parametrize("task, question, response, answer, right", [
    ("math", "What is 3+4?", "3+4=7", "7", True),
    ("math", "What is 3+4?", "3+4=8", "7", False),
    ("math", "What is 3+4?", "The answer is 7", "7", True),
    ("math", "What is 3+4?", "3+4=17", "7", False),
    ("math", "What is 3+4?", "", "7", False),
    ("math", "What is 3+4?", "4+3=7", "7", True),  # the same sum
    ("math", "What is 3+4?", " 3 + 4 = 7. So the answer is 7.", "7", True),  # a real model's words
    ("math", "What is 8+7?", "8+9=15", "15", False),  # the right number under another sum: the loophole, closed
    ("math", "Compute 9-2.", "2-9=7", "7", False),
    ("math", "9-2=?", "=7", "7", True),
    ("math", "What is 3+4?", "3+4=7 1+1=2", "7", False),  # the last equation is the answer
    ("fact", "What does a cow say?", "A cow says moo.", "moo", True),
    ("fact", "What does a cow say?", "A cow says mooo.", "moo", False),
    ("fact", "What colour is the sky?", "The sky is Blue.", "blue", True),
])
def test_answers_are_checked(task, question, response, answer, right):
    assert chat.is_correct(task, question, response, answer) is right


def test_stories_have_no_checkable_answer():
    with pytest.raises(ValueError, match="story"):
        chat.is_correct("story", "Tell me a story.", "Once upon a time", "")


def test_a_math_question_without_a_sum_is_refused():
    with pytest.raises(ValueError, match="no sum"):
        chat.is_correct("math", "What is seven?", "7", "7")


def test_prompt_of_drops_the_reply():
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert chat.prompt_of(row) == [{"role": "user", "content": "q"}]
    assert chat.prompt_of({"prompt": row["messages"][:1]}) == row["messages"][:1]
