import ftlab

# As in every lesson: the profile first, then the Hugging Face libraries (Unsloth must come before them).
ftlab.setup("cpu", quiet=True)

import copy  # noqa: E402

import pytest  # noqa: E402

from ftlab import base_model, tokenizer  # noqa: E402


@pytest.fixture(scope="session")
def trained_tokenizer():
    """The course tokenizer, trained once on the whole corpus (a few seconds)."""
    return tokenizer.train_tokenizer(base_model.corpus_texts())


@pytest.fixture
def course_tokenizer(trained_tokenizer):
    """A fresh copy for each test: trainers change a tokenizer in place (SFTTrainer sets its eos token)."""
    return copy.deepcopy(trained_tokenizer)
