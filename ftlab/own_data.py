"""Your own data (lesson 14, `ftlab finetune`): the formats datasets come in, converted to one chat format (TRL's
`messages`), checked for the failures that spoil fine-tuning runs before a step is trained, deduplicated and split.

Formats, told apart by their fields (a CSV file holds the flat ones, alpaca and prompt_completion):
- openai: `messages`, a list of {"role": "system" | "user" | "assistant", "content": ...};
- sharegpt: `conversations`, a list of {"from": "system" | "human" | "gpt", "value": ...}, and an optional `system`;
- alpaca: `instruction`, an optional `input`, `output`, and an optional `system`;
- prompt_completion: `prompt` and `completion`, two texts.

Rows are read here, then handed to `datasets.Dataset.from_list`: `datasets`' own JSON and CSV loaders stop at the
first broken line with a parser's message that names neither the row nor the field.
"""
import csv
import io
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from .data import SEED, DataError, bad_field, check_messages, check_text, read
from .paths import DATA_DIR, atomic_write_text

FORMATS = {"openai": ("messages",), "sharegpt": ("conversations",), "alpaca": ("instruction", "output"),
           "prompt_completion": ("prompt", "completion")}
SPEAKERS = {"system": "system", "human": "user", "gpt": "assistant"}  # ShareGPT's names for the three roles
SHOWN = 5  # bad rows named in one error; the rest are counted
EXAMPLES_DIR = DATA_DIR / "examples"
GENERATION_MARKER = re.compile(r"{%-?\s*generation\s*-?%}")  # where a template marks the reply for assistant_only_loss


# ---------------------------------------------------------------- reading and converting
def read_rows(path):
    """[(row number, row)] of a .json file (a list of objects: row n is the n-th), a .jsonl file (row n is line n)
    or a .csv file (row n is line n, line 1 being the header). Raises DataError naming the file and the row."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        rows.append((n, json.loads(line)))
                    except json.JSONDecodeError as err:
                        raise DataError(f"{path}, row {n}: not valid JSON ({err.msg}, column {err.colno})") from None
        return rows
    if suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
        if not isinstance(rows, list):
            raise DataError(f"{path}: expected a JSON list of rows, got {type(rows).__name__}")
        return list(enumerate(rows, start=1))
    if suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            rows = [(reader.line_num, row) for row in reader]
        for n, row in rows:
            if None in row:  # more cells than the header names
                raise DataError(f"{path}, row {n}: {len(row[None]) + len(row) - 1} cells, the header names "
                                f"{len(row) - 1}")
        return rows
    raise DataError(f"{path}: unknown file type {suffix!r}, expected .json, .jsonl or .csv")


def detect_format(path, rows):
    """The format whose fields the first row has."""
    if not rows:
        raise DataError(f"{path}: no rows")
    n, first = rows[0]
    if not isinstance(first, dict):
        raise DataError(f"{path}, row {n}: expected an object with fields, got {type(first).__name__}")
    for name, fields in FORMATS.items():
        if set(fields) <= set(first):
            return name
    raise DataError(f"{path}, row {n}: fields {sorted(first)} fit no known format; expected "
                    + "; ".join(f"{name}: {', '.join(fields)}" for name, fields in FORMATS.items()))


def to_messages(fmt, row, where):
    """One row of format `fmt` as a list of messages ending with the assistant's reply. `where` = (file, row)."""
    if not isinstance(row, dict):
        raise DataError(f"{where[0]}, row {where[1]}: expected an object with fields, got {type(row).__name__}")
    for field in FORMATS[fmt]:
        if row.get(field) is None:
            raise bad_field(*where, field, "missing")
    if fmt == "openai":
        check_messages(row["messages"], where, "messages", last_role="assistant")
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    system = row.get("system") or ""
    check_text(system, where, "system", allow_empty=True)
    messages = [{"role": "system", "content": system}] if system.strip() else []
    if fmt == "sharegpt":
        turns = row["conversations"]
        if not isinstance(turns, list) or not turns:
            raise bad_field(*where, "conversations", "expected a non-empty list of turns")
        for i, turn in enumerate(turns):
            at = f"conversations[{i}]"
            if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
                raise bad_field(*where, at, "expected a turn {'from': ..., 'value': ...}")
            if turn["from"] not in SPEAKERS:
                raise bad_field(*where, f"{at}.from", f"unknown speaker {turn['from']!r}, expected one of "
                                                      f"{', '.join(SPEAKERS)}")
            check_text(turn["value"], where, f"{at}.value", allow_empty=turn["from"] != "gpt")
            messages.append({"role": SPEAKERS[turn["from"]], "content": turn["value"]})
        if turns[-1]["from"] != "gpt":
            raise bad_field(*where, f"conversations[{len(turns) - 1}].from", "the last turn must be gpt's: the "
                                                                             "reply to learn")
        return messages
    if fmt == "alpaca":
        check_text(row["instruction"], where, "instruction")
        extra = row.get("input") or ""
        check_text(extra, where, "input", allow_empty=True)
        check_text(row["output"], where, "output")
        user = f"{row['instruction']}\n\n{extra}" if extra.strip() else row["instruction"]
        return messages + [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]
    check_text(row["prompt"], where, "prompt")
    check_text(row["completion"], where, "completion")
    return messages + [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]


def load(path, fmt=None):
    """A dataset file as a `datasets.Dataset` with `messages` and `source` ("file, row n": where each came from).

    Every row is converted and checked; when some are bad, DataError names the first few (file, row, field) and
    counts the rest, and nothing is returned: a run never trains on the rows that happened to parse."""
    from datasets import Dataset

    rows = read_rows(path)
    fmt = fmt or detect_format(path, rows)
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    converted, errors = [], []
    for n, row in rows:
        try:
            converted.append({"messages": to_messages(fmt, row, (path, n)), "source": f"{Path(path).name}, row {n}"})
        except DataError as err:
            errors.append(str(err))
    if errors:
        more = f"\n... and {len(errors) - SHOWN} more" if len(errors) > SHOWN else ""
        raise DataError(f"{len(errors)} of {len(rows)} rows of {path} ({fmt}) are broken:\n"
                        + "\n".join(errors[:SHOWN]) + more)
    return Dataset.from_list(converted)


def deduplicate(dataset):
    """(dataset without repeated conversations, how many were dropped): a repeat in both train and test would
    measure memory, not learning."""
    seen, keep = set(), []
    for i, messages in enumerate(dataset["messages"]):
        key = json.dumps(messages, sort_keys=True, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return dataset.select(keep), len(dataset) - len(keep)


def split(dataset, validation=0.1, test=0.1, seed=0):
    """A DatasetDict of train, validation (for choices: learning rate, when to stop) and test (reported once),
    shuffled with `seed`; validation and test get at least one row each."""
    from datasets import DatasetDict

    order = list(range(len(dataset)))
    random.Random(seed).shuffle(order)
    n_val, n_test = max(1, round(validation * len(order))), max(1, round(test * len(order)))
    if n_val + n_test >= len(order):
        raise ValueError(f"{len(order)} rows are too few for a validation and a test split")
    return DatasetDict(test=dataset.select(order[:n_test]), validation=dataset.select(order[n_test:n_test + n_val]),
                       train=dataset.select(order[n_test + n_val:]))


# ---------------------------------------------------------------- checks before training
@dataclass
class Problem:
    check: str  # which check found it
    message: str

    def __str__(self):
        return f"[{self.check}] {self.message}"


def rendered(tokenizer, messages, **kwargs):
    return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


def check_template_renders(dataset, tokenizer):
    """Every conversation renders with the model's chat template: some templates refuse a role (Gemma's raises
    "System role not supported") or turns out of order (Mistral's wants user and assistant to alternate)."""
    refused = []
    for messages, n in zip(dataset["messages"], dataset["source"]):
        try:
            rendered(tokenizer, messages)
        except Exception as err:  # jinja2's TemplateError, or what the template raises itself
            refused.append(f"{n}: {err}")
    if refused:
        return [Problem("template", f"{len(refused)} conversations do not render with the model's chat template: "
                                    + "; ".join(refused[:SHOWN]))]
    return []


def check_lengths(dataset, tokenizer, max_length):
    """Conversations longer than `max_length` tokens, which training truncates from the end: how many, how many
    tokens are cut, and how many replies lose every token (those rows then train nothing)."""
    from . import chat

    too_long, cut, emptied = [], 0, []
    for messages, n in zip(dataset["messages"], dataset["source"]):
        encoded = chat.encode(tokenizer, messages)
        length = len(encoded["input_ids"])
        if length > max_length:
            too_long.append(n)
            cut += length - max_length
            if sum(encoded["completion_mask"][:max_length]) == 0:
                emptied.append(n)
    if not too_long:
        return []
    message = (f"{len(too_long)} of {len(dataset)} conversations are longer than max_length={max_length} tokens "
               f"({_rows(too_long)}): truncation would cut {cut} tokens from their ends")
    if emptied:
        message += f", every reply token of {len(emptied)} of them ({_rows(emptied)})"
    return [Problem("length", message + ". Raise max_length, or shorten or drop those rows.")]


def check_labels(dataset, tokenizer, max_length):
    """Rows whose labels would all be masked with the loss on the replies only: an empty reply, or a prompt that
    fills `max_length` by itself. Such a row trains nothing; when every row is one, the loss is 0 and nothing
    learns, silently."""
    from . import chat

    masked = [n for messages, n in zip(dataset["messages"], dataset["source"])
              if sum(chat.encode(tokenizer, messages)["completion_mask"][:max_length]) == 0]
    if not masked:
        return []
    every = " (every row: the loss would be 0 and nothing would train)" if len(masked) == len(dataset) else ""
    return [Problem("labels", f"{len(masked)} of {len(dataset)} rows have no reply token left to learn from"
                              f"{every}: {_rows(masked)}")]


def check_generation_markers(tokenizer, assistant_only_loss):
    """TRL's `assistant_only_loss=True` finds the replies by `{% generation %}` markers in the chat template, which
    few templates have; without them it raises at the first batch. Prompt-completion rows with
    `completion_only_loss` (what the course trains with) need no markers."""
    if assistant_only_loss and not GENERATION_MARKER.search(tokenizer.chat_template or ""):
        return [Problem("markers", "assistant_only_loss=True needs {% generation %} markers in the chat template, "
                                   "and this one has none: train on prompt-completion rows with "
                                   "completion_only_loss=True instead (lesson 02), or use a template with markers")]
    return []


def check_eos(tokenizer):
    """The template must close a reply with the EOS token, the one generation stops at: a model fine-tuned on
    replies that end in another token never learns to stop, and writes until max_new_tokens (the "endless
    repetition" of many forum threads)."""
    text = rendered(tokenizer, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "REPLY"}])
    after = text.split("REPLY", 1)[1]
    if tokenizer.eos_token is None or tokenizer.eos_token not in after:
        return [Problem("eos", f"the template ends a reply with {after!r}, which does not hold the EOS token "
                               f"{tokenizer.eos_token!r}: a fine-tuned model would not stop. Set the tokenizer's "
                               f"eos_token to the template's end of turn (and the model's generation_config too)")]
    return []


def check_vocabulary(tokenizer, config):
    """The tokenizer must not hand out ids past the model's embedding table (tokens added without
    `model.resize_token_embeddings(len(tokenizer))`): an IndexError on a CPU, a device-side assert on a GPU."""
    if len(tokenizer) > config.vocab_size:
        return [Problem("vocabulary", f"the tokenizer has {len(tokenizer)} tokens and the model's embeddings "
                                      f"{config.vocab_size} rows: call model.resize_token_embeddings(len(tokenizer))")]
    return []


def run_checks(dataset, tokenizer, config, max_length, assistant_only_loss=False):
    """Every check before training, in the order a run would meet the failures; [] when all pass."""
    return (check_vocabulary(tokenizer, config) + check_eos(tokenizer)
            + check_generation_markers(tokenizer, assistant_only_loss) + check_template_renders(dataset, tokenizer)
            + check_lengths(dataset, tokenizer, max_length) + check_labels(dataset, tokenizer, max_length))


def check_serving_template(tokenizer, serving_template, messages):
    """After export: the prompt the server builds (from the template stored in the exported file, rendered as
    llama.cpp's Python binding renders it) must be the prompt training used. [] when they match."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(serving_template, eos_token=tokenizer.eos_token or "",
                                    bos_token=tokenizer.bos_token or "")
    served = formatter(messages=messages).prompt
    trained = rendered(tokenizer, messages, add_generation_prompt=True)
    if served != trained:
        return [Problem("serving", f"the served prompt differs from the trained one:\n  trained: {trained!r}\n"
                                   f"  served:  {served!r}")]
    return []


def _rows(numbers):  # "file, row 3; file, row 9 and 4 more"
    shown = "; ".join(str(n) for n in numbers[:SHOWN])
    return shown + (f" and {len(numbers) - SHOWN} more" if len(numbers) > SHOWN else "")


# ---------------------------------------------------------------- the course's example files (data/examples)
def example_files():
    """{file name: text} of the example files: chats of the course's `sft_train.jsonl` written in each format, as
    other people's datasets come (data/examples/README.md). The files overlap on purpose: 12 chats appear in two
    of them, and the course's chats repeat some short questions word for word: deduplication finds both."""
    rng = random.Random(SEED)
    chats = [r["messages"] for r in read("sft", "train")]
    chats = [c for c in chats if len(c[-1]["content"]) < 400]  # the shorter stories: a real model trains on a CPU
    rng.shuffle(chats)
    parts = [chats[i * 48:(i + 1) * 48] for i in range(5)]
    parts[3][:12] = [c for c in parts[2] if c[0]["role"] != "system"][:12]  # the overlap: the same chats

    def split_system(c):
        return (c[0]["content"], c[1:]) if c[0]["role"] == "system" else ("", c)

    alpaca = []
    for i, c in enumerate(parts[0]):
        system, (user, reply) = split_system(c)
        row = {"instruction": "Answer the question." if i % 3 == 0 else user["content"],
               "input": user["content"] if i % 3 == 0 else "", "output": reply["content"]}
        alpaca.append(row | ({"system": system} if system else {}))
    sharegpt = []
    for first, second in zip(parts[1][0::2], parts[1][1::2]):  # two questions in one conversation
        system, turns = split_system(first)
        turns = turns + split_system(second)[1]
        row = {"conversations": [{"from": {"user": "human", "assistant": "gpt"}[m["role"]], "value": m["content"]}
                                 for m in turns]}
        sharegpt.append(row | ({"system": system} if system else {}))
    openai = [{"messages": c} for c in parts[2]]
    completions = [{"prompt": split_system(c)[1][0]["content"], "completion": c[-1]["content"]} for c in parts[3]]
    with_csv = [{"prompt": split_system(c)[1][0]["content"], "completion": c[-1]["content"]} for c in parts[4]]

    def jsonl(rows):
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    table = [["prompt", "completion"]] + [[r["prompt"], r["completion"]] for r in with_csv]
    return {"alpaca.json": json.dumps(alpaca, ensure_ascii=False, indent=1) + "\n",
            "sharegpt.json": json.dumps(sharegpt, ensure_ascii=False, indent=1) + "\n",
            "openai.jsonl": jsonl(openai), "prompt_completion.jsonl": jsonl(completions), "qa.csv": _csv(table)}


def write_examples(target=EXAMPLES_DIR):
    """Write the example files (each through a temporary file and a rename); returns their paths."""
    written = []
    for name, text in example_files().items():
        atomic_write_text(Path(target) / name, text)
        written.append(Path(target) / name)
    return written


def _csv(table):
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(table)
    return out.getvalue()
