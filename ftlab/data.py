"""The course datasets: build them from the world's generators, check them, load them with `datasets`.

Four datasets, each a JSONL file per split under data/ (see data/README.md, the data card):
- corpus       {"text"}                                    pretraining (lesson 01)
- sft          {"messages", "task", "answer"}              supervised fine-tuning, PEFT (lessons 02-07)
- preferences  {"prompt", "chosen", "rejected", "kind"}    reward modeling, DPO and friends (08, 10)
- prompts      {"prompt", "task", "answer"}                RL with rewards: PPO, GRPO (09, 11)
Messages are lists of {"role", "content"}, the conversational format TRL's trainers take.
"""
import json
import random
from pathlib import Path

from . import world
from .paths import COURSE_DATA_DIR, DATA_DIR, SMOKE_DATA_DIR, atomic_dir, atomic_write_text

SEED = 1234
SPLITS = {"corpus": ["train"], "sft": ["train", "validation", "test"], "preferences": ["train", "validation", "test"],
          "prompts": ["train", "validation", "test"]}
ROLES = ("system", "user", "assistant")
TASKS = ("math", "fact", "story")
PREFERENCE_KINDS = ("ending", "correct", "concise")


class DataError(ValueError):
    """A course dataset row that breaks the dataset's schema; the message names file, row and field."""


def path(name, split):
    return DATA_DIR / f"{name}_{split}.jsonl"


# ---------------------------------------------------------------- building
def build(seed=SEED, corpus_chars=1_500_000):
    """Every dataset of the course as {(name, split): rows}, the same rows for the same seed."""
    rng = random.Random(seed)
    problems_train, problems_test = world.split_subjects(rng, world.all_small_problems(), 0.2)
    facts_train, facts_test = world.split_subjects(rng, list(world.SOUNDS) + list(world.COLOURS), 0.3)

    def examples(n, problems, facts, mix):
        """n chat examples, drawn by `mix` = (share of math, share of fact); the rest are stories."""
        out = []
        for _ in range(n):
            roll = rng.random()
            if roll < mix[0]:
                out.append(world.math_example(rng, rng.choice(problems)))
            elif roll < mix[0] + mix[1]:
                out.append(world.fact_example(rng, rng.choice(facts)))
            else:
                out.append(world.story_example(rng))
        return out

    rows = {("corpus", "train"): [{"text": doc} for doc in world.corpus(rng, corpus_chars)]}
    for split, n, problems, facts in [("train", 2000, problems_train, facts_train),
                                      ("test", 200, problems_test, facts_test)]:
        rows[("sft", split)] = [sft_row(rng, ex) for ex in examples(n, problems, facts, (0.5, 0.2))]
        rows[("preferences", split)] = [preference_row(rng, problems, facts) for _ in range(n // 2)]
        rows[("prompts", split)] = [prompt_row(rng, ex) for ex in examples(n // 2, problems, facts, (0.6, 0.1))]
    # Validation, for every choice a lesson makes (when to stop, which learning rate): new rows over the training
    # problems, none equal to a training row, in the training proportions. No fact chats: every phrasing of the 15
    # training facts is already a training row. Drawn last, so the train and test files stay as they were.
    def chat_of(task):
        return examples(1, problems_train, facts_train, {"math": (1, 0), "story": (0, 0)}[task])[0]

    makers = {"sft": {"math": (125, lambda: sft_row(rng, chat_of("math"))),
                      "story": (75, lambda: sft_row(rng, chat_of("story")))},
              "prompts": {"math": (67, lambda: prompt_row(rng, chat_of("math"))),
                          "story": (33, lambda: prompt_row(rng, chat_of("story")))},
              "preferences": {kind: (n, lambda kind=kind: preference_row(rng, problems_train, facts_train, kind))
                              for kind, n in (("ending", 50), ("correct", 25), ("concise", 25))}}
    for name, by_kind in makers.items():
        seen = {json.dumps(row, sort_keys=True) for row in rows[(name, "train")]}
        rows[(name, "validation")] = []
        for n, make in by_kind.values():
            for _ in range(n):
                row = make()
                while json.dumps(row, sort_keys=True) in seen:
                    row = make()
                seen.add(json.dumps(row, sort_keys=True))
                rows[(name, "validation")].append(row)
        rng.shuffle(rows[(name, "validation")])  # kinds mixed, so that its first rows are a sample of it too
    return rows


def sft_row(rng, example):
    return {"messages": world.chat(example["question"], example["reply"], rng),
            "task": example["task"], "answer": example["answer"]}


def prompt_row(rng, example):
    return {"prompt": world.chat(example["question"], None, rng),
            "task": example["task"], "answer": example["answer"]}


def preference_row(rng, problems, facts, kind=None):
    """A prompt with a better and a worse reply. Kinds: a happy vs a sad ending of the same story (half),
    a right vs a wrong sum, a short answer vs the same answer followed by rambling. `kind` forces one."""
    roll = rng.random() if kind is None else {"ending": 0, "correct": 0.5, "concise": 0.75}[kind]
    if roll < 0.5:
        kind, hero = "ending", world.story_hero(rng)
        question, body = world.story_request(hero), world.story_body(rng, hero)
        chosen = body + " " + world.story_ending(rng, hero, "happy")
        rejected = body + " " + world.story_ending(rng, hero, "sad")
    elif roll < 0.75:
        kind, (a, op, b) = "correct", rng.choice(problems)
        question, chosen = world.math_question(a, op, b, rng), world.equation(a, op, b)
        right = world.solve(a, op, b)
        rejected = f"{a}{op}{b}={rng.choice([w for w in range(max(0, right - 2), right + 4) if w != right])}"
    else:
        kind, example = "concise", world.fact_example(rng, rng.choice(facts))
        question, chosen = example["question"], example["reply"]
        rejected = chosen + " " + " ".join(["I like to talk and talk."] * rng.randint(2, 4))
    return {"prompt": world.chat(question, None, rng),
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], "kind": kind}


def write(rows_by_file=None):
    """Write every dataset file under data/, each checked first and written atomically."""
    rows_by_file = rows_by_file or build()
    for (name, split), rows in rows_by_file.items():
        target = path(name, split)
        for n, row in enumerate(rows, start=1):
            check_row(name, row, target, n)
        atomic_write_text(target, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return sorted(path(name, split) for name, split in rows_by_file)


SMOKE_TEST_ROWS = 32  # enough for every lesson's selections (lesson 02 takes 32, lesson 12 4 of each task)


def write_smoke_copy(target=None):
    """The course's data files as a smoke run reads them (paths.SMOKE_DATA_DIR, the DATA_DIR of FTLAB_SMOKE=1):
    each test split cut to its first SMOKE_TEST_ROWS rows, every other file as it is. Written when missing or out
    of date, atomically: lesson 13's processes start together, each reading what another may be writing."""
    target = Path(target or SMOKE_DATA_DIR)
    files = {p.relative_to(COURSE_DATA_DIR): p.read_bytes() for p in COURSE_DATA_DIR.rglob("*") if p.is_file()}
    for name, splits in SPLITS.items():
        if "test" in splits:
            test = Path(f"{name}_test.jsonl")
            files[test] = b"".join(files[test].splitlines(keepends=True)[:SMOKE_TEST_ROWS])
    if all((target / f).is_file() and (target / f).read_bytes() == content for f, content in files.items()):
        return target
    with atomic_dir(target) as tmp:
        for f, content in files.items():
            (tmp / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp / f).write_bytes(content)
    return target


# ---------------------------------------------------------------- checking
def bad_field(file, row, field, message):
    return DataError(f"{file}, row {row}, field '{field}': {message}")


def check_text(value, where, field, allow_empty=False):
    if not isinstance(value, str):
        raise bad_field(*where, field, f"expected text, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise bad_field(*where, field, "is empty")


def check_messages(value, where, field, last_role=None):
    if not isinstance(value, list) or not value:
        raise bad_field(*where, field, "expected a non-empty list of messages")
    for i, message in enumerate(value):
        at = f"{field}[{i}]"
        if not isinstance(message, dict):
            raise bad_field(*where, at, "expected a message {'role': ..., 'content': ...}")
        for key in ("role", "content"):
            if key not in message:
                raise bad_field(*where, f"{at}.{key}", "missing")
        if message["role"] not in ROLES:
            raise bad_field(*where, f"{at}.role", f"unknown role {message['role']!r}, expected one of {', '.join(ROLES)}")
        check_text(message["content"], where, f"{at}.content",
                    allow_empty=message["role"] != "assistant")
    if last_role and value[-1]["role"] != last_role:
        raise bad_field(*where, f"{field}[{len(value) - 1}].role", f"the last message must be the {last_role}'s")


def _check_choice(value, where, field, choices):
    if value not in choices:
        raise bad_field(*where, field, f"unknown value {value!r}, expected one of {', '.join(choices)}")


def _check_answer(row, where):
    allow_empty = row.get("task") == "story"  # stories have no single right answer
    check_text(row["answer"], where, "answer", allow_empty=allow_empty)


def check_row(name, row, file="<rows>", n=0):
    """Raise DataError naming file, row and field when `row` does not fit dataset `name`."""
    where = (file, n)
    if not isinstance(row, dict):
        raise DataError(f"{file}, row {n}: expected a JSON object")
    required = {"corpus": ["text"], "sft": ["messages", "task", "answer"],
                "preferences": ["prompt", "chosen", "rejected", "kind"], "prompts": ["prompt", "task", "answer"]}[name]
    for field in required:
        if field not in row:
            raise bad_field(file, n, field, "missing")
    if name == "corpus":
        check_text(row["text"], where, "text")
    elif name == "sft":
        check_messages(row["messages"], where, "messages", last_role="assistant")
        _check_choice(row["task"], where, "task", TASKS)
        _check_answer(row, where)
    elif name == "preferences":
        check_messages(row["prompt"], where, "prompt", last_role="user")
        check_messages(row["chosen"], where, "chosen", last_role="assistant")
        check_messages(row["rejected"], where, "rejected", last_role="assistant")
        _check_choice(row["kind"], where, "kind", PREFERENCE_KINDS)
    else:
        check_messages(row["prompt"], where, "prompt", last_role="user")
        _check_choice(row["task"], where, "task", TASKS)
        _check_answer(row, where)


def read(name, split, file=None):
    """The rows of one dataset file, each checked; a bad row raises DataError naming file, row and field."""
    file = Path(file or path(name, split))
    rows = []
    with open(file, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{file}, row {n}: not valid JSON ({err.msg})") from None
            check_row(name, row, file, n)
            rows.append(row)
    return rows


def load(name):
    """A course dataset as a `datasets.DatasetDict`, checked row by row first.

    Under the hood this is `load_dataset("json", data_files=...)`, the call that loads any JSONL dataset.
    """
    from datasets import load_dataset

    files = {split: str(path(name, split)) for split in SPLITS[name]}
    for split, file in files.items():
        read(name, split, file)
    return load_dataset("json", data_files=files)
