"""Your own data (ftlab.own_data, lesson 14): every example format read and converted, every broken row named by
file, row and field, and each check before training catching the failure it is for."""
import copy
import io
import json
import re

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ftlab import cli, finetune, own_data
from ftlab.data import DataError

EXAMPLE_ROWS = {"alpaca.json": ("alpaca", 48), "sharegpt.json": ("sharegpt", 24), "openai.jsonl": ("openai", 48),
                "prompt_completion.jsonl": ("prompt_completion", 48), "qa.csv": ("prompt_completion", 48)}


def test_committed_examples_are_what_the_generator_makes():
    for name, text in own_data.example_files().items():
        assert (own_data.EXAMPLES_DIR / name).read_text(encoding="utf-8") == text, f"data/examples/{name} differs"


@pytest.mark.parametrize("name", EXAMPLE_ROWS)
def test_each_example_format_loads_as_chats(name):
    path = own_data.EXAMPLES_DIR / name
    fmt, rows = EXAMPLE_ROWS[name]
    assert own_data.detect_format(path, own_data.read_rows(path)) == fmt
    dataset = own_data.load(path)
    assert len(dataset) == rows and dataset.column_names == ["messages", "source"]
    for messages in dataset["messages"]:
        assert messages[-1]["role"] == "assistant" and {m["role"] for m in messages} <= {"system", "user", "assistant"}
    if fmt == "sharegpt":  # two questions per conversation
        assert all(sum(m["role"] == "user" for m in c) == 2 for c in dataset["messages"])


def test_alpaca_input_follows_the_instruction(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"instruction": "Translate.", "input": "chat", "output": "cat", "system": "Be brief."}]))
    assert own_data.load(path)["messages"][0] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Translate.\n\nchat"},
        {"role": "assistant", "content": "cat"}]


def test_duplicates_are_dropped_and_splits_are_disjoint():
    from datasets import concatenate_datasets

    every = concatenate_datasets([own_data.load(own_data.EXAMPLES_DIR / name) for name in EXAMPLE_ROWS])
    unique, dropped = own_data.deduplicate(every)
    assert dropped >= 12 and len(unique) + dropped == len(every)
    splits = own_data.split(unique, seed=3)
    texts = {name: {json.dumps(m) for m in part["messages"]} for name, part in splits.items()}
    assert sum(len(t) for t in texts.values()) == len(unique)
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["validation"]


@pytest.mark.parametrize("file, text, words", [
    ("a.jsonl", '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{"messages": [\n',
     "a.jsonl, row 2: not valid JSON"),
    ("a.jsonl", '{"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "yo"}]}\n',
     "a.jsonl, row 1, field 'messages[1].role': unknown role 'robot'"),
    ("a.jsonl", '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                '{"messages": [{"role": "user", "content": "hi"}]}\n',
     "a.jsonl, row 2, field 'messages[0].role': the last message must be the assistant's"),
    ("s.json", '[{"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "yo"}]}]',
     "s.json, row 1, field 'conversations[1].from': unknown speaker 'bot'"),
    ("s.json", '[{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}, '
               '{"from": "human", "value": "and?"}]}]', "field 'conversations[2].from': the last turn must be gpt's"),
    ("a.json", '[{"instruction": "Say hi.", "output": "hi"}, {"instruction": "Say yo."}]', "a.json, row 2, field 'output': missing"),
    ("a.json", '[{"instruction": "Say hi.", "output": ""}]', "a.json, row 1, field 'output': is empty"),
    ("p.csv", 'prompt,completion\nhi,yo\nhi,yo,extra\n', "p.csv, row 3: 3 cells, the header names 2"),
    ("p.csv", 'question,reply\nhi,yo\n', "p.csv, row 2: fields ['question', 'reply'] fit no known format"),
    ("p.txt", 'hi', "unknown file type '.txt'"),
])
def test_broken_rows_are_named_by_file_row_and_field(tmp_path, file, text, words):
    path = tmp_path / file
    path.write_text(text)
    with pytest.raises(DataError, match=None) as caught:
        own_data.load(path)
    assert words in str(caught.value).replace(str(tmp_path) + "/", "")


def test_many_broken_rows_are_counted_not_all_listed(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt": "hi", "completion": ""}) + "\n" for _ in range(9)))
    message = str(pytest.raises(DataError, own_data.load, path).value)
    assert message.startswith("9 of 9 rows") and "and 4 more" in message and message.count("is empty") == 5


# ---------------------------------------------------------------- checks before training, on the course tokenizer
@pytest.fixture
def chats(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 3+4?"},
                          {"role": "assistant", "content": "3+4=7"}]},
            {"messages": [{"role": "user", "content": "Tell me a story."},
                          {"role": "assistant", "content": "Once upon a time, there was a cat. " * 8}]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return own_data.load(path)


@pytest.fixture
def chat_tokenizer(course_tokenizer):
    """The course tokenizer as a chat model has it: replies end with <|im_end|>, the EOS (lesson 02's SFT sets it)."""
    course_tokenizer.eos_token = "<|im_end|>"
    return course_tokenizer


def config_for(tokenizer, extra=0):
    return LlamaConfig(vocab_size=len(tokenizer) + extra)


def test_a_sound_dataset_passes_every_check(chats, chat_tokenizer):
    assert own_data.run_checks(chats, chat_tokenizer, config_for(chat_tokenizer), max_length=192) == []


def test_each_check_catches_its_failure(chats, course_tokenizer):
    def found(problems):
        return {p.check for p in problems}

    assert found(own_data.check_vocabulary(course_tokenizer, config_for(course_tokenizer, extra=-1))) == {"vocabulary"}
    # the course's base tokenizer ends documents with <|endoftext|>, and its chat template ends replies with <|im_end|>
    assert "would not stop" in str(own_data.check_eos(course_tokenizer)[0])
    course_tokenizer.eos_token = "<|im_end|>"
    assert own_data.check_eos(course_tokenizer) == []
    no_markers = copy.deepcopy(course_tokenizer)
    no_markers.chat_template = re.sub(r"{%-? ?(end)?generation ?%}", "", course_tokenizer.chat_template)
    assert own_data.check_generation_markers(course_tokenizer, assistant_only_loss=True) == []
    assert found(own_data.check_generation_markers(no_markers, assistant_only_loss=True)) == {"markers"}
    assert own_data.check_generation_markers(no_markers, assistant_only_loss=False) == []
    no_system = copy.deepcopy(course_tokenizer)
    no_system.chat_template = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
                               "supported') }}{% endif %}" + course_tokenizer.chat_template)
    problem = own_data.check_template_renders(chats, no_system)[0]
    assert "1 conversations" in problem.message and "c.jsonl, row 1: System role not supported" in problem.message
    long = own_data.check_lengths(chats, course_tokenizer, max_length=60)[0].message
    assert "1 of 2 conversations are longer than max_length=60" in long and "c.jsonl, row 2" in long
    emptied = own_data.check_lengths(chats, course_tokenizer, max_length=20)[0].message
    assert "every reply token of 2 of them" in emptied
    masked = own_data.check_labels(chats, course_tokenizer, max_length=20)[0].message
    assert "2 of 2 rows have no reply token left" in masked and "the loss would be 0" in masked
    assert own_data.check_labels(chats, course_tokenizer, max_length=192) == []


def test_the_served_prompt_is_compared_with_the_trained_one(chat_tokenizer):
    course_tokenizer = chat_tokenizer
    messages = [{"role": "user", "content": "What is 3+4?"}]
    assert own_data.check_serving_template(course_tokenizer, course_tokenizer.chat_template, messages) == []
    other = course_tokenizer.chat_template.replace("'<|im_start|>assistant\\n' }}{%- endif %}",
                                                    "'<|im_start|>assistant' }}{%- endif %}")
    assert other != course_tokenizer.chat_template
    problem = own_data.check_serving_template(course_tokenizer, other, messages)[0]
    assert problem.check == "serving" and "trained:" in problem.message and "served:" in problem.message


# ---------------------------------------------------------------- `ftlab finetune`, end to end on a tiny model
def tiny_start(folder, tokenizer):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_finetune_runs_the_lessons_path_on_a_file(tmp_path, chat_tokenizer):
    start = tiny_start(tmp_path / "start", chat_tokenizer)
    summary = finetune.run(own_data.EXAMPLES_DIR / "qa.csv", model_name=start, output=tmp_path / "out",
                           out=io.StringIO())
    assert summary["rows"] == 48 and summary["problems"] == 0
    assert summary["answer loss after"] < summary["answer loss before"]
    assert (tmp_path / "out" / "merged" / "config.json").exists() and (tmp_path / "out" / "model-f32.gguf").exists()
    assert summary["served prompt = trained prompt"] is True


def test_finetune_stops_at_a_failed_check_with_exit_status_1(tmp_path, course_tokenizer, capsys):
    start = tiny_start(tmp_path / "start", course_tokenizer)  # the base tokenizer: EOS is not the end of a reply
    with pytest.raises(SystemExit) as stopped:
        cli.main(["finetune", "--data", str(own_data.EXAMPLES_DIR / "qa.csv"), "--model", start,
                  "--output", str(tmp_path / "out")])
    assert stopped.value.code == 1
    shown = capsys.readouterr().out
    assert "[eos]" in shown and "problems         1" in shown and not (tmp_path / "out").exists()


def test_finetune_names_a_broken_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "hi", "completion": "Hello."}\n{"prompt": "hi"}\n')
    with pytest.raises(SystemExit, match="bad.jsonl, row 2, field 'completion': missing"):
        cli.main(["finetune", "--data", str(path), "--check-only"])
