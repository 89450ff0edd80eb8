"""What users trip on in SFT (lesson 02): the chat template round trip, the loss mask on the answers, and
resuming an interrupted run from its checkpoint."""
import pytest
import torch
from transformers import LlamaForCausalLM, set_seed
from trl import SFTTrainer

from ftlab import base_model, chat, data, sft
from ftlab.profiles import PROFILES
from ftlab.tokenizer import TURN_END


@pytest.fixture(scope="module")
def chats():
    return data.load("sft")


def test_chat_template_round_trip(course_tokenizer, chats):
    for row in chats["train"].select(range(20)):
        text = course_tokenizer.apply_chat_template(row["messages"], tokenize=False)
        ids = course_tokenizer.apply_chat_template(row["messages"], return_dict=True)["input_ids"]
        assert course_tokenizer.decode(ids) == text
        assert course_tokenizer(text, add_special_tokens=False)["input_ids"] == ids
        for message in row["messages"]:
            assert f"<|im_start|>{message['role']}\n{message['content']}{TURN_END}\n" in text


def test_the_loss_mask_covers_exactly_the_answer_and_its_end_of_turn(course_tokenizer, chats):
    for row in chats["train"].select(range(20)):
        rows = sft.loss_mask(course_tokenizer, row["messages"])
        trained = course_tokenizer.decode([i for _, i, t in rows if t])
        assert trained == row["messages"][-1]["content"] + TURN_END + "\n"
        assert "".join(tok for tok, _, _ in rows) == course_tokenizer.apply_chat_template(row["messages"], tokenize=False)


def tiny_trainer(tokenizer, chats, output_dir, **overrides):
    set_seed(0)
    model = LlamaForCausalLM(base_model.base_model_config(tokenizer))
    args = sft.sft_config(output_dir, PROFILES["cpu"], **({
        "max_steps": 6, "per_device_train_batch_size": 4, "logging_steps": 1, "eval_strategy": "no",
        "save_strategy": "steps", "save_steps": 3, "disable_tqdm": True} | overrides))
    pairs = chats["train"].select(range(48)).map(chat.prompt_completion, remove_columns=chats["train"].column_names)
    return SFTTrainer(model=model, args=args, train_dataset=pairs, processing_class=tokenizer)


def test_trl_labels_match_the_mask(course_tokenizer, chats, tmp_path):
    trainer = tiny_trainer(course_tokenizer, chats, tmp_path)
    for n in range(8):
        example = trainer.train_dataset[n]
        rows = sft.loss_mask(course_tokenizer, chats["train"][n]["messages"])
        assert example["input_ids"] == [i for _, i, _ in rows]
        assert [label != -100 for label in example["labels"]] == [t for _, _, t in rows]


def last_loss(trainer):
    return [h["loss"] for h in trainer.state.log_history if "loss" in h][-1]


def test_an_interrupted_run_resumes_to_the_same_loss(course_tokenizer, chats, tmp_path):
    uninterrupted = tiny_trainer(course_tokenizer, chats, tmp_path / "straight")
    uninterrupted.train()

    first = tiny_trainer(course_tokenizer, chats, tmp_path / "resumed")
    first.add_callback(sft.Disconnect(step=4))  # one step after checkpoint-3: that step is lost
    with pytest.raises(KeyboardInterrupt):
        first.train()
    assert sorted(p.name for p in (tmp_path / "resumed").glob("checkpoint-*")) == ["checkpoint-3"]

    second = tiny_trainer(course_tokenizer, chats, tmp_path / "resumed")  # fresh weights, as after a restart
    second.train(resume_from_checkpoint=True)
    assert second.state.global_step == 6
    assert last_loss(second) == pytest.approx(last_loss(uninterrupted), abs=1e-5)
    for a, b in zip(uninterrupted.model.parameters(), second.model.parameters()):
        assert torch.allclose(a, b, atol=1e-5)
