from transformers import AutoTokenizer

from ftlab import tokenizer as tokmod

CHAT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is 3+4?"},
    {"role": "assistant", "content": "3+4=7"},
    {"role": "user", "content": "And 2+2?"},
    {"role": "assistant", "content": "2+2=4"},
]


def test_round_trip_is_exact(course_tokenizer):
    text = "Once upon a time, there was a brave fox named Leo. 17+5=22 Ünïcode ✓ works too."
    assert course_tokenizer.decode(course_tokenizer(text)["input_ids"]) == text


def test_small_numbers_are_single_tokens(course_tokenizer):
    assert course_tokenizer.tokenize("12+7=19") == ["12", "+", "7", "=", "19"]


def test_special_tokens_encode_as_one_token_each(course_tokenizer):
    for token in tokmod.SPECIAL_TOKENS:
        assert course_tokenizer(token)["input_ids"] == [course_tokenizer.convert_tokens_to_ids(token)]
    assert course_tokenizer.eos_token == tokmod.END_OF_TEXT and course_tokenizer.pad_token == tokmod.PAD


def test_chat_template_round_trip(course_tokenizer):
    text = course_tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 3+4?<|im_end|>\n"
        "<|im_start|>assistant\n3+4=7<|im_end|>\n<|im_start|>user\nAnd 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n2+2=4<|im_end|>\n"
    )
    prompt = course_tokenizer.apply_chat_template(CHAT[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    ids = course_tokenizer.apply_chat_template(CHAT, tokenize=True, return_dict=True)["input_ids"]
    assert course_tokenizer.decode(ids) == text


def test_assistant_mask_covers_exactly_the_answers_and_their_end_token(course_tokenizer):
    """What SFT's assistant-only loss trains on: each answer plus <|im_end|>, nothing of the prompt."""
    out = course_tokenizer.apply_chat_template(CHAT, tokenize=True, return_dict=True,
                                               return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    trained = [i for i, m in zip(ids, mask) if m]
    assert course_tokenizer.decode(trained) == "3+4=7<|im_end|>2+2=4<|im_end|>"


def test_trl_accepts_the_template_for_assistant_only_loss(course_tokenizer):
    from trl.chat_template_utils import is_chat_template_stop_token_trained, has_generation_markers

    assert has_generation_markers(course_tokenizer.chat_template)
    assert is_chat_template_stop_token_trained(course_tokenizer)


def test_saved_tokenizer_reloads_identically(course_tokenizer, tmp_path):
    course_tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.apply_chat_template(CHAT, tokenize=False) == course_tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert reloaded("7+8=15 The end.")["input_ids"] == course_tokenizer("7+8=15 The end.")["input_ids"]
    assert len(reloaded) == len(course_tokenizer)
