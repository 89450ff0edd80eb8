"""Measuring a base model (lesson 01), which has never seen a chat: greedy two-shot completions, arithmetic and fact
accuracy, perplexity. (Chat models are measured by ftlab.chat.)"""
import math

import torch

from . import world

# Two worked examples before the question: a base model has never seen a chat, only the corpus.
TWO_SHOT = "3+4=7 8-5=3 "


@torch.no_grad()
def complete(model, tokenizer, prompts, max_new_tokens=24, stop_token=None):
    """Greedy continuations of `prompts` (a batch, left-padded), without the prompt, special tokens dropped."""
    model.eval()
    # left padding: generation continues from the right end of each row
    batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left").to(model.device)
    stop = tokenizer.convert_tokens_to_ids(stop_token) if stop_token else tokenizer.eos_token_id
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                         eos_token_id=stop, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def arithmetic_accuracy(model, tokenizer, problems=None):
    """Share of single-digit problems a model completes correctly after the two-shot prefix."""
    problems = problems or world.all_small_problems()
    prompts = [f"{TWO_SHOT}{a}{op}{b}=" for a, op, b in problems]
    answers = complete(model, tokenizer, prompts, max_new_tokens=3)
    right = [answer.split(" ")[0].strip() == str(world.solve(*p)) for answer, p in zip(answers, problems)]
    return sum(right) / len(right)


def fact_accuracy(model, tokenizer):
    """Share of animal sounds a model completes correctly after "A cow says"."""
    animals = list(world.SOUNDS)
    answers = complete(model, tokenizer, [f"A {a} says" for a in animals], max_new_tokens=3)
    right = [answer.split()[0].rstrip(".") == world.SOUNDS[a] if answer.split() else False
             for answer, a in zip(answers, animals)]
    return sum(right) / len(right)


def perplexity(loss):
    """exp(mean token loss): the number of equally likely tokens the model is choosing between."""
    return math.exp(loss)
