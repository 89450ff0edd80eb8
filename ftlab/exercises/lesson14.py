"""Checks for exercises/14_own_data: a ShareGPT row as messages, the rows truncation leaves nothing to learn from,
and a split that keeps every question on one side."""
import json

from .. import chat, own_data
from . import expect, fail, passed


def _examples(name):
    path = own_data.EXAMPLES_DIR / name
    return [row for _, row in own_data.read_rows(path)]


# ---------------------------------------------------------------- exercise 1
def sharegpt_rows(convert):
    """Exercise 1: `convert(row)` turns a ShareGPT row into a list of {"role", "content"} messages."""
    rows = _examples("sharegpt.json") + [
        {"system": "Answer in one word.", "conversations": [{"from": "human", "value": "What does a cow say?"},
                                                            {"from": "gpt", "value": "moo"}]}]
    for n, row in enumerate(rows, start=1):
        expected = own_data.to_messages("sharegpt", row, ("sharegpt.json", n))
        got = convert(row)
        expect(isinstance(got, list) and all(isinstance(m, dict) for m in got),
               f"row {n}: you returned {type(got).__name__}", "return a list of {'role': ..., 'content': ...} dicts")
        if got and any("from" in m or "value" in m for m in got):
            fail(f"row {n}: your messages keep ShareGPT's keys: {got[0]}", "each turn becomes {'role': ..., "
                                                                           "'content': ...}")
        roles = [m.get("role") for m in got]
        if {"human", "gpt"} & set(roles):
            fail(f"row {n}: roles {roles}", "ShareGPT's 'human' is the 'user', its 'gpt' the 'assistant'")
        if row.get("system") and expected[1:] == got:
            fail(f"row {n} has a `system` field, and your messages start with {got[0]}",
                 "a ShareGPT row's `system` field becomes a first message with the role 'system'")
        expect(got == expected, f"row {n}: you gave {json.dumps(got)[:300]}\nexpected {json.dumps(expected)[:300]}",
               "one message per turn, in order, after the system prompt when there is one")
    passed(f"{len(rows)} ShareGPT rows converted as own_data.load converts them")


# ---------------------------------------------------------------- exercise 2
def masked_rows(find, tokenizer):
    """Exercise 2: `find(conversations, tokenizer, max_length)` gives the indices of the conversations whose reply
    loses every token when training truncates them to `max_length` tokens."""
    conversations = [c for name in ("openai.jsonl", "qa.csv")
                     for c in own_data.load(own_data.EXAMPLES_DIR / name)["messages"]]
    encoded = [chat.encode(tokenizer, c) for c in conversations]
    for max_length in (16, 24, 48):
        expected = [i for i, e in enumerate(encoded) if sum(e["completion_mask"][:max_length]) == 0]
        got = find(conversations, tokenizer, max_length)
        expect(isinstance(got, (list, tuple, set)), f"you returned {type(got).__name__}", "return a list of indices")
        got = sorted(got)
        longer = [i for i, e in enumerate(encoded) if len(e["input_ids"]) > max_length]
        if got == longer and got != expected:
            fail(f"max_length={max_length}: you listed the {len(longer)} conversations longer than max_length; "
                 f"{len(expected)} of them lose their whole reply", "truncation cuts from the end: a long "
                 "conversation whose prompt is short keeps its reply's first tokens, and still trains")
        expect(got == expected, f"max_length={max_length}: you found {got[:10]}, expected {expected[:10]} "
               f"({len(expected)} in all)", "chat.encode(tokenizer, conversation) gives input_ids and the "
               "completion_mask: a row trains nothing when its mask holds no 1 in the first max_length positions")
    passed(f"{len(conversations)} conversations, three lengths: the rows that would train nothing, found")


# ---------------------------------------------------------------- exercise 3
def question_of(conversation):
    """The text a leak is judged by: the conversation's user turns."""
    return tuple(m["content"] for m in conversation if m["role"] == "user")


def split_by_question(split_fn):
    """Exercise 3: `split_fn(conversations, test_share, seed)` returns (train, test), two lists of conversations,
    with no question (the user turns) on both sides and about `test_share` of them in test."""
    conversations = [c for name in ("openai.jsonl", "prompt_completion.jsonl", "qa.csv")
                     for c in own_data.load(own_data.EXAMPLES_DIR / name)["messages"]]
    for seed in (0, 1):
        result = split_fn(conversations, 0.2, seed)
        expect(isinstance(result, tuple) and len(result) == 2, f"you returned {type(result).__name__}",
               "return (train, test)")
        train, test = result
        key = lambda c: json.dumps(c, sort_keys=True)  # noqa: E731
        expect(sorted(map(key, train + test)) == sorted(map(key, conversations)),
               f"train and test hold {len(train)} + {len(test)} conversations, the data {len(conversations)}",
               "every conversation goes to exactly one side, none dropped, none copied")
        shared = {question_of(c) for c in train} & {question_of(c) for c in test}
        if shared:
            fail(f"seed {seed}: {len(shared)} questions are on both sides, e.g. {sorted(shared)[0]}",
                 "group the conversations by question first, then send whole groups to one side")
        share = len(test) / len(conversations)
        expect(0.15 <= share <= 0.25, f"seed {seed}: {len(test)} of {len(conversations)} in test ({share:.0%})",
               "fill test group by group until it holds about test_share of the conversations")
    expect(split_fn(conversations, 0.2, 0)[1] != split_fn(conversations, 0.2, 1)[1],
           "seeds 0 and 1 gave the same test set", "shuffle the groups with random.Random(seed)")
    passed(f"{len(conversations)} conversations split 80/20 with no question on both sides, at two seeds")
