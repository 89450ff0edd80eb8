"""The course datasets in LLaMA-Factory's sharegpt format (lesson 13). The rules checked here are those of
LLaMA-Factory 0.9.5's SharegptDatasetConverter; `make llamafactory-check` also reads the exported files with
LLaMA-Factory's own code and trains on them, in its own environment."""
import json
import re

import pytest

from ftlab import data, llamafactory


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    target = tmp_path_factory.mktemp("llamafactory")
    return target, llamafactory.export(target)


def jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_registry_names_every_exported_file_with_its_format(exported):
    target, written = exported
    registry = json.loads((target / llamafactory.REGISTRY).read_text())
    assert set(registry) == set(llamafactory.DATASETS)
    for name, (dataset, split, ranking) in llamafactory.DATASETS.items():
        entry = registry[name]
        assert (target / entry["file_name"]) in written and entry["formatting"] == "sharegpt"
        assert entry["ranking"] is ranking
        assert entry["tags"] == {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                 "assistant_tag": "assistant", "system_tag": "system"}
        row = jsonl(target / entry["file_name"])[0]
        assert set(entry["columns"].values()) == set(row)  # every column the registry names, and no other


def test_every_course_row_is_exported_unchanged(exported):
    target, _ = exported
    for split in data.SPLITS["sft"]:
        rows = jsonl(target / f"sft_{split}.jsonl")
        assert [r["messages"] for r in rows] == [r["messages"] for r in data.read("sft", split)]
    for split in data.SPLITS["preferences"]:
        rows, course = jsonl(target / f"preferences_{split}.jsonl"), data.read("preferences", split)
        assert [r["messages"] for r in rows] == [r["prompt"] for r in course]
        assert [[r["chosen"]] for r in rows] == [r["chosen"] for r in course]
        assert [[r["rejected"]] for r in rows] == [r["rejected"] for r in course]


USER, ASSISTANT, SYSTEM = ({"role": r, "content": "hi"} for r in ("user", "assistant", "system"))


@pytest.mark.parametrize("row, ranking, field", [
    ({"messages": [USER]}, False, "messages"),  # an SFT row must end with the answer
    ({"messages": [SYSTEM, ASSISTANT, USER]}, False, "messages[1]"),  # the user speaks first
    ({"messages": [USER, USER]}, False, "messages[1]"),  # turns alternate
    ({"messages": []}, False, "messages"),
    ({"messages": [USER, ASSISTANT], "chosen": ASSISTANT, "rejected": ASSISTANT}, True, "messages"),  # prompt ends with user
    ({"messages": [USER], "chosen": [ASSISTANT], "rejected": ASSISTANT}, True, "chosen"),  # TRL's list, not one turn
    ({"messages": [USER], "chosen": ASSISTANT, "rejected": USER}, True, "rejected"),
])
def test_a_row_llamafactory_would_skip_is_an_error_naming_file_row_and_field(row, ranking, field):
    with pytest.raises(data.DataError, match=re.escape(f"out.jsonl, row 7, field '{field}'")):
        llamafactory.check_row(row, ranking, "out.jsonl", 7)


def test_a_system_prompt_then_one_exchange_is_a_good_row():
    llamafactory.check_row({"messages": [SYSTEM, USER, ASSISTANT]}, False)
    llamafactory.check_row({"messages": [SYSTEM, USER], "chosen": ASSISTANT, "rejected": ASSISTANT}, True)
