"""The course in LLaMA-Factory's terms (lesson 13): its dataset files and registry, written from the course data.

LLaMA-Factory (github.com/hiyouga/LLaMA-Factory) trains from a YAML config with `llamafactory-cli train`, and
finds datasets by name in a registry, `dataset_info.json`, that gives each file's format and column names.
`export()` writes the course's SFT chats and preference pairs in its "sharegpt" format with that registry;
configs/llamafactory/ holds the configs that redo lessons 02 (full SFT), 03 (LoRA) and 10 (DPO) with them.

How LLaMA-Factory 0.9.5 reads a sharegpt row (llamafactory/data/converter.py, SharegptDatasetConverter):
- `messages` is the conversation; a first `system` turn becomes the system prompt, then user and assistant
  turns alternate, user first;
- an SFT row has an even number of turns after the system prompt: it ends with the answer;
- a preference row (`"ranking": true` in the registry) has an odd number (the prompt ends with the user's
  turn), and `chosen` and `rejected` are each ONE assistant turn: a dict, not a list as in TRL's format.
LLaMA-Factory skips a row that breaks these rules with a warning; `check_row` makes it an error here.
"""
import json

from . import data
from .paths import ARTIFACTS, atomic_write_text

EXPORT_DIR = ARTIFACTS / "llamafactory" / "data"
REGISTRY = "dataset_info.json"
# Our messages use the role names TRL uses; the registry's tags tell LLaMA-Factory so.
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
        "system_tag": "system"}
# Registered name -> (course dataset, split, is it preference pairs)
DATASETS = {
    "course_sft": ("sft", "train", False),
    "course_sft_validation": ("sft", "validation", False),
    "course_sft_test": ("sft", "test", False),
    "course_preferences": ("preferences", "train", True),
    "course_preferences_validation": ("preferences", "validation", True),
    "course_preferences_test": ("preferences", "test", True),
}


def sft_row(row):
    """A course chat as LLaMA-Factory's sharegpt SFT row (the conversation is already in that shape)."""
    return {"messages": row["messages"]}


def preference_row(row):
    """A course preference pair as a sharegpt ranking row: the prompt's turns, and one turn each for the
    chosen and the rejected reply."""
    return {"messages": row["prompt"], "chosen": row["chosen"][0], "rejected": row["rejected"][0]}


def registry_entry(file_name, ranking):
    """The dataset_info.json entry that tells LLaMA-Factory how to read one exported file."""
    entry = {"file_name": file_name, "formatting": "sharegpt", "ranking": ranking,
             "columns": {"messages": "messages"}, "tags": TAGS}
    if ranking:
        entry["columns"] |= {"chosen": "chosen", "rejected": "rejected"}
    return entry


def check_row(row, ranking, file="<rows>", n=0):
    """Raise data.DataError, naming file, row and field, where LLaMA-Factory would skip the row."""
    def bad(field, message):
        return data.DataError(f"{file}, row {n}, field '{field}': {message}")

    turns = row.get("messages")
    if not isinstance(turns, list) or not turns:
        raise bad("messages", "expected a non-empty list of turns")
    start = 1 if turns[0].get("role") == TAGS["system_tag"] else 0
    for i, turn in enumerate(turns[start:], start=start):
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if turn.get("role") != expected or not isinstance(turn.get("content"), str):
            raise bad(f"messages[{i}]", f"expected a turn of the {expected} (turns alternate, user first), "
                                        f"got {turn!r}")
    if (len(turns) - start) % 2 != (1 if ranking else 0):
        ends = "the user's turn (the prompt)" if ranking else "the assistant's turn (the answer)"
        raise bad("messages", f"{len(turns) - start} turns after the system prompt: the last must be {ends}")
    if ranking:
        for field in ("chosen", "rejected"):
            reply = row.get(field)
            if not isinstance(reply, dict) or reply.get("role") != "assistant" or not reply.get("content"):
                raise bad(field, f"expected one assistant turn {{'role': 'assistant', 'content': ...}}, got {reply!r}")


def export(target=EXPORT_DIR):
    """Write the course SFT chats and preference pairs as LLaMA-Factory datasets, with their registry.
    Returns the paths written. Every row is checked first."""
    written, registry = [], {}
    for name, (dataset, split, ranking) in DATASETS.items():
        convert = preference_row if ranking else sft_row
        rows = [convert(row) for row in data.read(dataset, split)]
        file = target / f"{dataset}_{split}.jsonl"
        for n, row in enumerate(rows, start=1):
            check_row(row, ranking, file, n)
        atomic_write_text(file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        registry[name] = registry_entry(file.name, ranking)
        written.append(file)
    atomic_write_text(target / REGISTRY, json.dumps(registry, indent=2) + "\n")
    return [*written, target / REGISTRY]
