import pytest

from ftlab import chat


@pytest.mark.parametrize("task, response, answer, right", [
    ("math", "3+4=7", "7", True),
    ("math", "3+4=8", "7", False),
    ("math", "The answer is 7", "7", True),
    ("math", "3+4=17", "7", False),
    ("math", "", "7", False),
    ("fact", "A cow says moo.", "moo", True),
    ("fact", "A cow says mooo.", "moo", False),
    ("fact", "The sky is Blue.", "blue", True),
])
def test_answers_are_checked(task, response, answer, right):
    assert chat.is_correct(task, response, answer) is right


def test_stories_have_no_checkable_answer():
    with pytest.raises(ValueError, match="story"):
        chat.is_correct("story", "Once upon a time", "")


def test_prompt_of_drops_the_reply():
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert chat.prompt_of(row) == [{"role": "user", "content": "q"}]
    assert chat.prompt_of({"prompt": row["messages"][:1]}) == row["messages"][:1]
