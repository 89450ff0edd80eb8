import json

import pytest

from ftlab import data, world
from ftlab.paths import COURSE_DATA_DIR


def test_committed_files_are_what_the_generators_make():
    """data/ holds exactly what `ftlab data` writes: the data card's description stays true."""
    for (name, split), rows in data.build().items():
        assert data.read(name, split) == rows, f"{data.path(name, split)} differs from its generator"


def test_same_seed_same_world_other_seed_other_world():
    small = dict(corpus_chars=20_000)
    assert data.build(seed=7, **small) == data.build(seed=7, **small)
    assert data.build(seed=7, **small) != data.build(seed=8, **small)


def test_held_out_problems_never_appear_in_chat_training():
    train = {tuple(r["messages"][-1]["content"].split("=")[0]) for r in data.read("sft", "train") if r["task"] == "math"}
    test = {tuple(r["messages"][-1]["content"].split("=")[0]) for r in data.read("sft", "test") if r["task"] == "math"}
    assert test and not train & test


def test_validation_is_new_rows_of_the_training_world():
    """Validation (for choices) draws from the training problems and facts, the test split (only reported) from
    the held-out ones; no validation row repeats a training row."""
    def sums(split):
        return {r["messages"][-1]["content"].split("=")[0] for r in data.read("sft", split) if r["task"] == "math"}

    assert sums("validation") and sums("validation") <= sums("train") and not sums("validation") & sums("test")
    for name in ("sft", "preferences", "prompts"):
        train = {json.dumps(r, sort_keys=True) for r in data.read(name, "train")}
        validation = [json.dumps(r, sort_keys=True) for r in data.read(name, "validation")]
        assert len(validation) == len(data.read(name, "test")) == len(set(validation))
        assert not train & set(validation), f"{name}: a validation row repeats a training row"


def test_story_endings_are_recognised():
    rng = __import__("random").Random(0)
    for kind in world.ENDINGS:
        assert world.ending_kind(world.story(rng, ending=kind)) == kind
    assert world.ending_kind("Once upon a time, there was a cat. It was nice.") is None


def test_load_gives_datasets_with_the_documented_columns():
    sft = data.load("sft")
    assert set(sft) == {"train", "validation", "test"}
    assert set(sft["train"].column_names) == {"messages", "task", "answer"}
    prefs = data.load("preferences")
    assert set(prefs["test"].column_names) == {"prompt", "chosen", "rejected", "kind"}


def write_rows(tmp_path, rows, name="sft_train.jsonl"):
    file = tmp_path / name
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return file


GOOD = {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "2+2=4"}],
        "task": "math", "answer": "4"}


@pytest.mark.parametrize("broken, field, words", [
    ({k: v for k, v in GOOD.items() if k != "answer"}, "answer", "missing"),
    ({**GOOD, "messages": [{"role": "robot", "content": "hi"}, GOOD["messages"][1]]}, "messages[0].role",
     "unknown role 'robot'"),
    ({**GOOD, "messages": [GOOD["messages"][0], {"role": "assistant", "content": "  "}]}, "messages[1].content",
     "empty"),
    ({**GOOD, "answer": ""}, "answer", "empty"),
    ({**GOOD, "task": "poetry"}, "task", "unknown value 'poetry'"),
    ({**GOOD, "messages": [GOOD["messages"][0], {"role": "assistant"}]}, "messages[1].content", "missing"),
])
def test_bad_rows_are_named_by_file_row_and_field(tmp_path, broken, field, words):
    file = write_rows(tmp_path, [GOOD, GOOD, broken, GOOD])
    with pytest.raises(data.DataError) as err:
        data.read("sft", "train", file)
    message = str(err.value)
    assert str(file) in message and "row 3" in message and f"field '{field}'" in message and words in message


def test_a_line_that_is_not_json_is_named(tmp_path):
    file = tmp_path / "prompts_test.jsonl"
    file.write_text('{"prompt": [{"role": "user", "content": "hi"}], "task": "story", "answer": ""}\n{oops\n')
    with pytest.raises(data.DataError, match=r"prompts_test.jsonl, row 2: not valid JSON"):
        data.read("prompts", "test", file)


def test_preference_rows_are_checked(tmp_path):
    row = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
           "rejected": [{"role": "user", "content": "b"}], "kind": "ending"}
    file = write_rows(tmp_path, [row], "preferences_train.jsonl")
    with pytest.raises(data.DataError, match=r"row 1, field 'rejected\[0\].role': the last message must be"):
        data.read("preferences", "train", file)


def test_writing_a_bad_dataset_leaves_the_old_file_untouched(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    data.write({("sft", "train"): [GOOD]})
    before = (tmp_path / "sft_train.jsonl").read_bytes()
    with pytest.raises(data.DataError, match="row 2"):
        data.write({("sft", "train"): [GOOD, {**GOOD, "answer": ""}]})
    assert (tmp_path / "sft_train.jsonl").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["sft_train.jsonl"]


def test_a_smoke_run_reads_the_course_data_with_short_test_splits(tmp_path):
    target = data.write_smoke_copy(tmp_path / "smoke-data")
    for name, splits in data.SPLITS.items():
        for split in splits:
            course = (COURSE_DATA_DIR / f"{name}_{split}.jsonl").read_text().splitlines()
            copy = (target / f"{name}_{split}.jsonl").read_text().splitlines()
            assert copy == (course[:data.SMOKE_TEST_ROWS] if split == "test" else course)
    assert (target / "examples" / "qa.csv").read_bytes() == (COURSE_DATA_DIR / "examples" / "qa.csv").read_bytes()
    written = (target / "sft_test.jsonl").stat().st_mtime_ns
    data.write_smoke_copy(target)  # up to date: left as it is, for the processes that may be reading it
    assert (target / "sft_test.jsonl").stat().st_mtime_ns == written
