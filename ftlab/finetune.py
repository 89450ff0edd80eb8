"""`ftlab finetune --data FILE`: lesson 14's path on a file of yours, with the lesson's functions and calls: load and
convert (ftlab.own_data), check, deduplicate and split, LoRA with TRL's SFTTrainer at the profile's settings for
lesson 14 (keeping the step with the lowest validation loss: a file of any size may overfit in that many steps),
the held-out answer loss before and after, merge, export to GGUF, and the served-prompt check; then a summary
table. `--check-only` stops after the checks. Any problem found stops the run before training, with exit
status 1, and says what to change.
"""
import sys
from pathlib import Path


def run(data, fmt=None, model_name=None, check_only=False, output=None, out=None):
    """Fine-tune on `data` as lesson 14 does; returns the summary as {measure: value}. Raises DataError for a
    broken file; returns early, with the problems in the summary, when a check fails."""
    from . import own_data
    from .profiles import setup

    out = out or sys.stdout

    P = setup(quiet=True)  # first: offline switches and Unsloth before the Hugging Face libraries
    from . import chat, models

    summary = {"file": str(data)}
    dataset = own_data.load(data, fmt)
    unique, dropped = own_data.deduplicate(dataset)
    splits = own_data.split(unique, seed=P.seed)
    summary |= {"format": fmt or own_data.detect_format(data, own_data.read_rows(data)), "rows": len(dataset),
                "repeats dropped": dropped} | {f"{name} rows": len(rows) for name, rows in splits.items()}

    from unsloth import FastLanguageModel

    start = model_name or models.start_model(P, "chat")
    print(f"loading {start}", file=out)
    model, tokenizer = FastLanguageModel.from_pretrained(start, max_seq_length=P.max_seq_length, dtype=P.dtype,
                                                         load_in_4bit=False)
    problems = own_data.run_checks(unique, tokenizer, model.config, max_length=P.max_seq_length)
    summary["problems"] = len(problems)
    for problem in problems:
        print(problem, file=out)
    if problems or check_only:
        return summary

    from trl import SFTConfig, SFTTrainer

    from . import gguf_export, lora
    from .paths import atomic_dir

    output = Path(output or P.artifacts / "own-data" / Path(data).stem)
    test_chats = list(splits["test"]["messages"])
    summary["answer loss before"] = round(chat.answer_loss(model, tokenizer, test_chats), 4)
    model = FastLanguageModel.get_peft_model(
        model, r=16, lora_alpha=32, lora_dropout=0.0, target_modules=list(lora.LLAMA_LINEARS),
        use_gradient_checkpointing="unsloth" if P.device == "cuda" else False, random_state=P.seed)
    stage = P.stage("own_data")
    args = SFTConfig(
        output_dir=str(output / "run"), max_steps=stage.steps, per_device_train_batch_size=stage.batch_size,
        learning_rate=stage.learning_rate, lr_scheduler_type="cosine", warmup_steps=max(1, stage.steps // 20),
        max_length=P.max_seq_length, completion_only_loss=True, per_device_eval_batch_size=16,
        logging_steps=max(1, stage.steps // 10), seed=P.seed, data_seed=P.seed, use_cpu=P.device == "cpu",
        report_to="none", **P.precision(),
        # your data's size is unknown here: keep the step with the lowest validation loss, not the last one
        eval_strategy="steps", eval_steps=max(1, stage.steps // 5), save_strategy="steps",
        save_steps=max(1, stage.steps // 5), load_best_model_at_end=True, metric_for_best_model="eval_loss",
        greater_is_better=False)
    pairs = {name: rows.map(chat.prompt_completion, remove_columns=rows.column_names) for name, rows in splits.items()}
    trainer = SFTTrainer(model=model, args=args, train_dataset=pairs["train"], eval_dataset=pairs["validation"],
                         processing_class=tokenizer)
    trainer.train()
    summary["step kept (lowest validation loss)"] = trainer.state.best_model_checkpoint.rsplit("-", 1)[-1]
    summary["answer loss after"] = round(chat.answer_loss(model, tokenizer, test_chats), 4)

    merged = model.merge_and_unload()
    with atomic_dir(output / "merged") as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    summary["merged model"] = str(output / "merged")
    if merged.config.model_type == "llama":  # the course's GGUF writer knows Llama models
        gguf_path = gguf_export.export_gguf(merged, tokenizer, output / "model-f32.gguf")
        served = gguf_export.read_metadata(gguf_path).get("tokenizer.chat_template", "")
        mismatch = own_data.check_serving_template(tokenizer, served, test_chats[0][:-1])
        summary |= {"gguf": str(gguf_path), "served prompt = trained prompt": not mismatch}
    return summary


def print_summary(summary, out=None):
    out = out or sys.stdout
    width = max(len(k) for k in summary)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in summary.items()), file=out)
