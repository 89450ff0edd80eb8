import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ftlab import chat, data, peft_train, soft_prompts

CHAT = [{"role": "user", "content": "What is 3+4?"}, {"role": "assistant", "content": "3+4=7"}]


def test_labels_cover_the_answer_only(course_tokenizer):
    longer = CHAT[:1] + [{"role": "assistant", "content": "3+4=7 and more words"}]
    batch = chat.answer_batch(course_tokenizer, [CHAT, longer], "cpu")
    labelled = batch["labels"][0][batch["labels"][0] != -100]
    assert course_tokenizer.decode(labelled) == "3+4=7<|im_end|>\n"
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()  # the shorter row is padded


def test_answer_loss_and_weight_checks(course_tokenizer):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(course_tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4))
    loss = chat.answer_loss(model, course_tokenizer, [CHAT] * 3, batch_size=2)
    assert abs(loss - torch.log(torch.tensor(float(len(course_tokenizer)))).item()) < 1.0  # untrained: near ln(V)
    snapshot = peft_train.weights_snapshot(model)
    assert peft_train.changed_weights(model, snapshot) == []
    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1
    assert peft_train.changed_weights(model, snapshot) == ["lm_head.weight"]


def test_nearest_tokens_finds_the_token_itself(course_tokenizer):
    embeddings = torch.randn(len(course_tokenizer), 16)
    ids = course_tokenizer("Once upon a time")["input_ids"]
    nearest = soft_prompts.nearest_tokens(embeddings[ids] * 3.0, embeddings, course_tokenizer, k=2)
    assert [row[0][0] for row in nearest] == [course_tokenizer.decode([i]) for i in ids]
    assert all(abs(row[0][1] - 1.0) < 1e-5 and row[1][1] < row[0][1] for row in nearest)


def test_held_out_by_task_keeps_all_or_different_questions():
    rows = data.load("sft")["test"]
    everything = peft_train.held_out_by_task(rows)
    assert sum(len(task_rows) for task_rows in everything.values()) == len(rows)
    few = peft_train.held_out_by_task(rows, per_task=5)
    assert set(few) == set(everything) and all(len(task_rows) == 5 for task_rows in few.values())
    for task, task_rows in few.items():
        questions = [chat.prompt_of(r)[-1]["content"] for r in task_rows]
        assert len(set(questions)) == 5 and all(r["task"] == task for r in task_rows)
