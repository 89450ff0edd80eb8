import ftlab

# As in every lesson: the profile first, then the Hugging Face libraries (Unsloth must come before them).
ftlab.setup("cpu", quiet=True)

import pytest  # noqa: E402

from ftlab import base_model, tokenizer  # noqa: E402


@pytest.fixture(scope="session")
def course_tokenizer():
    """The course tokenizer, trained on the whole corpus (a few seconds)."""
    return tokenizer.train_tokenizer(base_model.corpus_texts())
