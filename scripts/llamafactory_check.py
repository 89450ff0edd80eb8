"""LLaMA-Factory on the course, checked with LLaMA-Factory's own code (lesson 13; `make llamafactory-check`).

Run from the repository root with the LLaMA-Factory environment's Python (.venv-llamafactory/bin/python), after
`ftlab llamafactory-export` (the datasets, and the models the configs start from). It checks, and fails loudly:
1. the exported datasets, read through LLaMA-Factory's registry parser and sharegpt converter, give back every
   course row unchanged (LLaMA-Factory skips a row it cannot read with only a warning);
2. its `chatml` template writes exactly the token ids of the course chat template, on every held-out chat,
   while `qwen` does not (it adds Qwen's default system prompt where a chat has none);
3. `llamafactory-cli train` runs the LoRA config (lesson 03) for 100 of its 300 steps: the loss falls and the
   adapter is saved; and the DPO config (lesson 10) for 20 of its 50 steps: the held-out pairs are ranked right.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

from llamafactory.data.converter import get_dataset_converter
from llamafactory.data.parser import get_dataset_list
from llamafactory.data.template import get_template_and_fix_tokenizer
from llamafactory.hparams import DataArguments
from omegaconf import OmegaConf
from transformers import AutoTokenizer

DATASET_DIR = "artifacts/llamafactory/data"
MODEL = "artifacts/base"
# The course file behind each registered dataset
COURSE = {"course_sft": "data/sft_train.jsonl", "course_sft_test": "data/sft_test.jsonl",
          "course_preferences": "data/preferences_train.jsonl",
          "course_preferences_test": "data/preferences_test.jsonl"}


def jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def expected(row):
    """(system prompt, prompt turns, reply turns) of a course row, as LLaMA-Factory should read it."""
    turns = row["messages"] if "messages" in row else row["prompt"]
    replies = [turns[-1]] if "messages" in row else [row["chosen"][0], row["rejected"][0]]
    turns = turns[:-1] if "messages" in row else turns
    system = turns[0]["content"] if turns[0]["role"] == "system" else ""
    return system, [t for t in turns if t["role"] != "system"], replies


def check_datasets():
    data_args = DataArguments(dataset_dir=DATASET_DIR)
    for name, attr in zip(COURSE, get_dataset_list(list(COURSE), DATASET_DIR)):
        convert = get_dataset_converter(attr.formatting, attr, data_args)
        exported, course = jsonl(Path(DATASET_DIR) / attr.dataset_name), jsonl(COURSE[name])
        assert len(exported) == len(course), (name, len(exported), len(course))
        for n, (row, original) in enumerate(zip(exported, course), start=1):
            read = convert(row)
            got = (read["_system"], read["_prompt"], read["_response"])
            assert got == expected(original), f"{name}, row {n}: LLaMA-Factory reads {got}"
        print(f"{name}: {len(exported)} rows read back unchanged ({attr.formatting}, ranking={attr.ranking})")


def template_ids(template_name, chats):
    """Token ids of each chat through LLaMA-Factory's template `template_name` (on a fresh tokenizer, which it
    changes: the end-of-sequence token becomes <|im_end|>)."""
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    template = get_template_and_fix_tokenizer(tokenizer, DataArguments(template=template_name))
    out = []
    for chat in chats:
        system, prompt, replies = expected(chat)
        prompt_ids, answer_ids = template.encode_oneturn(tokenizer, prompt + replies, system)
        out.append(prompt_ids + answer_ids)
    return out


def check_template():
    chats = jsonl("data/sft_test.jsonl")
    course = AutoTokenizer.from_pretrained(MODEL)  # with the course chat template, as saved in lesson 01
    reference = [course.apply_chat_template(c["messages"], return_dict=True)["input_ids"] for c in chats]
    chatml = template_ids("chatml", chats)
    assert chatml == reference, "the chatml template does not write the course chat template's tokens"
    qwen = template_ids("qwen", chats)
    differ = sum(q != r for q, r in zip(qwen, reference))
    no_system = sum(c["messages"][0]["role"] != "system" for c in chats)
    print(f"template chatml: all {len(chats)} held-out chats give the course template's token ids; "
          f"qwen: {differ} differ (the {no_system} without a system prompt get Qwen's default one)")
    assert differ == no_system > 0


def train(config, steps, eval_steps):
    """Run `llamafactory-cli train config` for `steps` steps; return its log and the seconds it took."""
    command = ["llamafactory-cli", "train", config, f"max_steps={steps}", f"eval_steps={eval_steps}"]
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / command[0]), *command[1:]], check=True)
    seconds = time.perf_counter() - start
    output_dir = Path(OmegaConf.load(config).output_dir)
    return output_dir, json.loads((output_dir / "trainer_state.json").read_text())["log_history"], seconds, command


def check_training():
    # Lesson 03: LoRA SFT on the course chats.
    output_dir, log, seconds, command = train("configs/llamafactory/lora_sft.yaml", 100, 50)
    losses = [h["loss"] for h in log if "loss" in h]
    evals = [h["eval_loss"] for h in log if "eval_loss" in h]
    print(f"{' '.join(command)}: {seconds:.0f} s; training loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
          f"held-out loss {evals[0]:.3f} -> {evals[-1]:.3f}")
    assert losses[-1] < 0.6 * losses[0] and evals[-1] < evals[0], (losses, evals)
    assert (output_dir / "adapter_model.safetensors").exists() and (output_dir / "adapter_config.json").exists()

    # Lesson 10: DPO on the course preference pairs, from the course SFT model. Before the first step the policy
    # is its reference: every implicit reward is 0 and no pair is ranked right.
    output_dir, log, seconds, command = train("configs/llamafactory/dpo.yaml", 20, 10)
    final = [h for h in log if "eval_rewards/accuracies" in h][-1]
    print(f"{' '.join(command)}: {seconds:.0f} s; held-out preference accuracy {final['eval_rewards/accuracies']:.2f}"
          f" (0 at the start), DPO loss {final['eval_loss']:.3f} (log 2 = 0.693 at the start)")
    assert final["eval_rewards/accuracies"] > 0.8 and final["eval_loss"] < 0.6, final


if __name__ == "__main__":
    check_datasets()
    check_template()
    check_training()
    print("LLaMA-Factory check passed")
