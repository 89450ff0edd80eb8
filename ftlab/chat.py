"""Talking to a chat model and measuring it: the one way the course renders, encodes, generates and scores chats.

A conversation is a list of {"role", "content"} messages. For training and scoring, its last message is the
assistant's answer, and only the answer's tokens count, found as TRL's SFTTrainer finds them for a prompt-completion
pair: the chat template renders the prompt with the assistant's turn opened, and the whole conversation; the
answer is what follows their common prefix. That works with any chat template, with or without
{% generation %} markers. Padding sides are passed to each call: the shared tokenizer is never changed.
"""
import re

import torch

from .tokenizer import TURN_END


def prompt_completion(row):
    """A course chat row ({"messages", ...}) as the prompt-completion pair TRL's trainers take."""
    return {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]}


def encode(tokenizer, conversation):
    """{"input_ids", "completion_mask"} of a conversation that ends with the assistant's answer."""
    prompt = tokenizer.apply_chat_template(conversation[:-1], add_generation_prompt=True, return_dict=True)["input_ids"]
    ids = tokenizer.apply_chat_template(conversation, return_dict=True)["input_ids"]
    shared = 0
    while shared < min(len(prompt), len(ids)) and prompt[shared] == ids[shared]:
        shared += 1
    return {"input_ids": ids, "completion_mask": [0] * shared + [1] * (len(ids) - shared)}


def answer_batch(tokenizer, conversations, device):
    """Token ids of whole conversations, right-padded, with labels on the answers' tokens only (-100 elsewhere)."""
    encoded = [encode(tokenizer, c) for c in conversations]
    width = max(len(e["input_ids"]) for e in encoded)

    def padded(rows, fill):
        return torch.tensor([row + [fill] * (width - len(row)) for row in rows], device=device)

    return {"input_ids": padded([e["input_ids"] for e in encoded], tokenizer.pad_token_id),
            "attention_mask": padded([[1] * len(e["input_ids"]) for e in encoded], 0),
            "labels": padded([[t if m else -100 for t, m in zip(e["input_ids"], e["completion_mask"])]
                              for e in encoded], -100)}


@torch.no_grad()
def answer_loss(model, tokenizer, conversations, batch_size=16):
    """Mean cross-entropy per answer token: what SFT lowers, measured on held-out conversations, for any model."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(conversations), batch_size):
        batch = answer_batch(tokenizer, conversations[start:start + batch_size], model.device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits = logits[:, -batch["input_ids"].shape[1]:]  # prompt tuning's virtual tokens come first: not scored
        labels = batch["labels"][:, 1:]  # the logits at position t predict token t+1
        total += torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels.flatten(),
                                                   reduction="sum").item()
        count += (labels != -100).sum().item()
    return total / count


def stop_tokens(model, tokenizer):
    """The ids that end a reply: the model's and the tokenizer's end-of-sequence, and ChatML's end of turn."""
    configured = model.generation_config.eos_token_id
    ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(TURN_END),
           *(configured if isinstance(configured, list) else [configured])}
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


@torch.no_grad()
def reply(model, tokenizer, conversations, max_new_tokens=32, batch_size=32):
    """Greedy replies to conversations (lists of messages ending with the user's turn)."""
    model.eval()
    replies = []
    for start in range(0, len(conversations), batch_size):
        texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                 for c in conversations[start:start + batch_size]]
        # left padding: every row's prompt ends where generation starts
        batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                          add_special_tokens=False).to(model.device)
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=stop_tokens(model, tokenizer), pad_token_id=tokenizer.pad_token_id)
        replies += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return replies


SUM = r"(\d+)\s*([+-])\s*(\d+)"  # a sum or a difference as the course's questions and replies write it


def is_correct(task, question, response, answer):
    """Whether `response` answers `question` right.

    Math: the number after the reply's last '=' must be the answer, and a sum written just before that '=' must be
    the question's own (or, for '+', its operands swapped): "8+9=15" does not answer "What is 8+7?", though 15 is
    right. A reply without '=' is read by its last number ("The answer is 15."). Facts: the answer word appears."""
    if task == "math":
        asked = re.search(SUM, question)
        if asked is None:
            raise ValueError(f"math question {question!r} holds no sum such as 3+4")
        if "=" not in response:
            numbers = re.findall(r"-?\d+", response)
            return bool(numbers) and numbers[-1] == answer
        written, result = response.rsplit("=", 1)
        result = re.match(r"\s*(-?\d+)", result)
        if result is None or result.group(1) != answer:
            return False
        written = re.search(SUM + r"\s*$", written)
        a, op, b = asked.groups()
        allowed = {(a, op, b), (b, op, a)} if op == "+" else {(a, op, b)}
        return written is None or written.groups() in allowed
    if task == "fact":
        return answer in re.findall(r"[a-z]+", response.lower())
    raise ValueError(f"task {task!r} has no checkable answer")


def question_of(prompt):
    """The user's last words in a conversation (a list of messages), or the prompt itself when it is text."""
    return prompt[-1]["content"] if isinstance(prompt, list) else prompt


def prompt_of(row):
    """The conversation up to the user's last turn, from an sft row (messages) or a prompts row (prompt)."""
    messages = row["prompt"] if "prompt" in row else row["messages"]
    return messages[:-1] if messages[-1]["role"] == "assistant" else messages


def distinct_questions(rows):
    """The rows whose conversation up to the question has not appeared before: a greedy model answers a repeated
    question the same way, so each distinct question counts once."""
    seen, out = set(), []
    for r in rows:
        key = repr(prompt_of(r))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def problem_of(task, question):
    """What a question asks, whatever its phrasing: the sum ("6+4") or the fact's subject ("cow"). Questions on one
    problem are not independent evidence (`ftlab.stats`)."""
    if task == "math":
        return "".join(re.search(SUM, question).groups())
    subject = re.search(r"\b(?:a|an|the) (\w+)", question)
    return subject.group(1) if subject else question


def grade(model, tokenizer, rows, max_new_tokens=32):
    """[(problem, right)] for each distinct checkable question (math and fact tasks), answered greedily: what an
    accuracy and its interval (`ftlab.stats`) are computed from."""
    rows = distinct_questions([r for r in rows if r["task"] in ("math", "fact")])
    prompts = [prompt_of(r) for r in rows]
    replies = reply(model, tokenizer, prompts, max_new_tokens)
    return [(problem_of(r["task"], question_of(p)), is_correct(r["task"], question_of(p), resp, r["answer"]))
            for r, p, resp in zip(rows, prompts, replies)]


def accuracy(model, tokenizer, rows, max_new_tokens=32):
    """Share of the distinct checkable questions (math and fact tasks) a model answers correctly, greedily."""
    graded = grade(model, tokenizer, rows, max_new_tokens)
    return sum(right for _, right in graded) / len(graded)
