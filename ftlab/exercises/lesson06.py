"""Checks for exercises/06_prompt_tuning: a soft prompt's size, its start from text, and reading it in by hand."""
import copy

import torch
from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

from . import expect, fail, first_difference, number, passed, tensor

INIT_TEXT = "Tell the story, then stop."  # 16 tokens of the course tokenizer


def _prompt_model(model, n, **init):
    return get_peft_model(copy.deepcopy(model), PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n,
                                                                   **init))


def prompt_parameters(counts, model):
    """Exercise 1: {n: trainable parameters} of prompt tuning with n = 4, 16 and 64 virtual tokens."""
    expect(isinstance(counts, dict) and set(counts) == {4, 16, 64}, f"`counts` is {counts!r:.80}",
           "a dict with the keys 4, 16 and 64, each mapped to a number of parameters")
    hidden = model.config.hidden_size
    for n, value in sorted(counts.items()):
        value = number(value, f"counts[{n}]")
        reference = _prompt_model(model, n).get_nb_trainable_parameters()[0]
        if value == n:
            fail(f"counts[{n}] = {n} counts vectors, not numbers", f"each virtual token is a vector of hidden_size = {hidden}")
        if value == n * model.config.vocab_size:
            fail(f"counts[{n}] counts a vocabulary row per token", "a soft prompt is n vectors of the hidden size, "
                 "not n tokens' probabilities")
        expect(value == reference, f"counts[{n}] = {value:,.0f}, but prompt tuning with {n} virtual tokens trains "
               f"{'fewer' if value > reference else 'more'}", "n vectors of the model's hidden size; "
               "or build it with get_peft_model(model, PromptTuningConfig(...)) and count its trainable parameters")
    passed(f"{counts[16]:,} parameters for 16 virtual tokens, {counts[16] / model.num_parameters():.2%} of the model; "
           "each extra token costs one more position of attention at every call")


def text_init_vectors(vectors, model, tokenizer, text=INIT_TEXT, n=40):
    """Exercise 2: the n initial vectors of a soft prompt started from `text`, built by hand."""
    expected = _prompt_model(model, n, prompt_tuning_init=PromptTuningInit.TEXT, prompt_tuning_init_text=text,
                             tokenizer_name_or_path=tokenizer.name_or_path).get_prompt_embedding_to_save("default").float()
    got = tensor(vectors, "init_vectors")
    expect(got.shape == expected.shape, f"`init_vectors` has shape {tuple(got.shape)}, expected {tuple(expected.shape)}",
           f"{n} vectors of the hidden size: one per virtual token")
    ids = tokenizer(text)["input_ids"]
    embeddings = model.get_input_embeddings().weight.detach().float()
    if len(ids) < n and torch.allclose(got[:len(ids)], embeddings[ids]) and not torch.allclose(got, expected):
        fail(f"the first {len(ids)} vectors are right; the text has only {len(ids)} tokens for {n} virtual tokens",
             "repeat the text's token ids until there are enough, then cut to n (PEFT's rule)")
    expect(torch.allclose(got, expected, atol=1e-6), f"`init_vectors` differs from PEFT's start, first {first_difference(got, expected)}",
           "the embeddings (model.get_input_embeddings()) of the text's token ids, repeated to n tokens and cut")
    passed(f"{n} vectors: the {len(ids)} tokens of the text, repeated and cut, as PEFT starts them")


def soft_prompt_logits(forward, model, n=4):
    """Exercise 3: `forward(model, prompt_vectors, input_ids)` reads a soft prompt in front of the input by hand and
    returns the logits at the input's positions, as PEFT's prompt-tuned model computes them."""
    torch.manual_seed(0)
    peft_model = _prompt_model(model, n).eval()
    prompt = peft_model.get_prompt_embedding_to_save("default").detach()
    ids = torch.randint(model.config.vocab_size, (2, 6), device=model.device)
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits[:, n:].float()
        got = forward(copy.deepcopy(model).eval(), prompt, ids)
    got = tensor(getattr(got, "logits", got), "forward(...)")
    if got.shape[1] == n + ids.shape[1]:
        fail(f"your logits have {got.shape[1]} positions: the {n} virtual tokens' too",
             f"return the logits at the input's positions only: logits[:, {n}:]")
    expect(got.shape == expected.shape, f"your logits have shape {tuple(got.shape)}, expected {tuple(expected.shape)}",
           "one row of logits per input position")
    expect(torch.allclose(got, expected, atol=1e-4), f"your logits differ from PEFT's, first {first_difference(got, expected)}",
           "inputs_embeds = torch.cat([prompt_vectors expanded to the batch, model.get_input_embeddings()(input_ids)], "
           "dim=1), then model(inputs_embeds=inputs_embeds)")
    passed("your forward pass equals PEFT's: a soft prompt is nothing but extra input vectors")
