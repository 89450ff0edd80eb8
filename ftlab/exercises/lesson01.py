"""Checks for exercises/01_pretraining: perplexity, a tokenizer that splits digits, the next-token loss."""
import math

import torch
import torch.nn.functional as F

from ..tokenizer import END_OF_TEXT
from . import close, expect, fail, number, passed

SENTENCE = "Once upon a time, there was a little cat named Max."
DIGITS_SAMPLE = "Max found 12 kites. 12+34=46 and 19-7=12."


@torch.no_grad()
def _loss(model, tokenizer, text):
    ids = tokenizer(text, return_tensors="pt").input_ids.to(model.device)
    return model(input_ids=ids, labels=ids).loss.item()


def perplexity(value, model, tokenizer, text=SENTENCE):
    """Exercise 1: the model's perplexity on `text`."""
    value = number(value, "perplexity")
    loss = _loss(model.eval(), tokenizer, text)
    if close(value, loss, rel=1e-3):
        fail(f"{value:.4f} is the loss (nats per token), not the perplexity", "perplexity = exp(loss): math.exp")
    if close(value, 2 ** loss, rel=1e-3):
        fail(f"{value:.4f} is 2 ** loss", "the loss is in nats (natural logarithm): use math.exp, not 2 **")
    expect(value >= 1, f"{value:.4f} is below 1, and no perplexity is",
           "perplexity = exp(mean loss per token) is at least 1: one equally likely choice")
    expect(close(value, math.exp(loss), rel=1e-3),
           f"{value:.4f} is not the perplexity of this model on {text!r}",
           "tokenize the sentence, call model(input_ids=ids, labels=ids), take exp of its .loss")
    passed(f"loss {loss:.3f} nats per token, perplexity {value:.2f}: the model hesitates between about "
           f"{value:.0f} tokens at each step of this sentence")


def digit_tokenizer(train):
    """Exercise 2: `train(texts)` trains a byte-level BPE tokenizer that keeps every digit a token of its own."""
    from ..base_model import corpus_texts

    tokenizer = train(corpus_texts()[:2000])
    expect(hasattr(tokenizer, "convert_ids_to_tokens"),
           f"`train` returned {type(tokenizer).__name__}, not a transformers tokenizer",
           "wrap the trained `tokenizers.Tokenizer` in PreTrainedTokenizerFast, as ftlab.tokenizer.train_tokenizer does")
    ids = tokenizer(DIGITS_SAMPLE, add_special_tokens=False).input_ids
    pieces = [tokenizer.decode([i]) for i in ids]
    expect(tokenizer.decode(ids) == DIGITS_SAMPLE,
           f"decoding the tokens of {DIGITS_SAMPLE!r} gives {tokenizer.decode(ids)!r}",
           "keep the byte-level pre-tokenizer (after the digit splitter) and decoders.ByteLevel()")
    merged = [p for p in pieces if sum(ch.isdigit() for ch in p) > 1]
    expect(not merged, f"tokens with several digits remain: {merged}",
           "split digits before BPE sees them: pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits="
           "True), pre_tokenizers.ByteLevel(add_prefix_space=False)])")
    expect(any(len(p.strip()) > 2 and p.strip().isalpha() for p in pieces),
           f"no word became one token: {pieces}",
           "train BPE on the texts (tokenizer.train_from_iterator with a BpeTrainer), as train_tokenizer does")
    expect(tokenizer.eos_token == END_OF_TEXT, f"the tokenizer's end of text is {tokenizer.eos_token!r}",
           f"keep the course's special tokens: eos_token={END_OF_TEXT!r}, as train_tokenizer does")
    passed(f"{len(tokenizer)} tokens; {DIGITS_SAMPLE!r} -> {pieces}")


def next_token_loss(loss_fn, model, tokenizer):
    """Exercise 3: `loss_fn(logits, input_ids)` is the mean next-token cross-entropy, equal to the model's loss."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 11, generator=generator)
    ids = torch.randint(11, (2, 7), generator=generator)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1))
    got = number(loss_fn(logits, ids), "loss_fn(logits, input_ids)")
    if close(got, F.cross_entropy(logits.reshape(-1, 11), ids.reshape(-1)).item()):
        fail("your loss compares the logits at each position with the token at the same position",
             "the logits at position t predict token t+1: compare logits[:, :-1] with input_ids[:, 1:]")
    if close(got, F.cross_entropy(logits[:, 1:].reshape(-1, 11), ids[:, :-1].reshape(-1)).item()):
        fail("your loss is shifted the wrong way", "logits[:, :-1] (all but the last) predict input_ids[:, 1:]")
    if close(got, F.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1), reduction="sum").item()):
        fail("your loss is the sum over the tokens", "average over the predicted tokens (reduction='mean')")
    expect(close(got, expected.item()),
           f"on random logits of shape (2, 7, 11) your loss is {got:.5f}, the next-token cross-entropy is "
           f"{expected.item():.5f}",
           "flatten batch and positions: F.cross_entropy(logits[:, :-1].reshape(-1, vocab), input_ids[:, 1:].reshape(-1))")
    ids = tokenizer(SENTENCE, return_tensors="pt").input_ids.to(model.device)
    with torch.no_grad():
        output = model.eval()(input_ids=ids, labels=ids)
    got = number(loss_fn(output.logits, ids), "loss_fn(logits, input_ids)")
    expect(close(got, output.loss.item(), rel=1e-4),
           f"on the model's logits your loss is {got:.5f}, the model's own loss is {output.loss.item():.5f}",
           "compute in float32: logits.float()")
    passed(f"your loss equals the model's own: {got:.4f}")
