"""Talking to a chat model and checking its answers: the measure of every lesson after pretraining."""
import re

import torch

from .tokenizer import TURN_END


@torch.no_grad()
def reply(model, tokenizer, conversations, max_new_tokens=32):
    """Greedy replies to a batch of conversations (lists of messages ending with the user's turn)."""
    model.eval()
    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    stop = [tokenizer.convert_tokens_to_ids(TURN_END), tokenizer.eos_token_id]
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                         eos_token_id=stop, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def is_correct(task, response, answer):
    """Math: the number after the last '=' (or the last number) is the answer. Facts: the answer word appears."""
    if task == "math":
        numbers = re.findall(r"=\s*(-?\d+)", response) or re.findall(r"-?\d+", response)
        return bool(numbers) and numbers[-1] == answer
    if task == "fact":
        return answer in re.findall(r"[a-z]+", response.lower())
    raise ValueError(f"task {task!r} has no checkable answer")


def prompt_of(row):
    """The conversation up to the user's last turn, from an sft row (messages) or a prompts row (prompt)."""
    messages = row["prompt"] if "prompt" in row else row["messages"]
    return messages[:-1] if messages[-1]["role"] == "assistant" else messages


def accuracy(model, tokenizer, rows, batch_size=64, max_new_tokens=32):
    """Share of checkable rows (math and fact tasks) a model answers correctly, greedily."""
    rows = [r for r in rows if r["task"] in ("math", "fact")]
    right = 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        responses = reply(model, tokenizer, [prompt_of(r) for r in chunk], max_new_tokens)
        right += sum(is_correct(r["task"], resp, r["answer"]) for r, resp in zip(chunk, responses))
    return right / len(rows)
