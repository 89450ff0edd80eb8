"""Full-parameter SFT at learning rates from 1e-5 to 1e-2: what the rate buys and what it costs. `make lr-sweep`
runs this on the course model (cpu profile) and the real one (real profile: SmolLM2-135M-Instruct on the CPU).

Each rate runs lesson 02's SFT (the same start model, `sft_config`, chats and steps; only the rate changes) and
measures three losses on the model before and after:
- validation: loss on the answers of validation chats, the split a choice may be made on (here, the rate);
- test: the same on the test chats (held-out problems and facts), reported, never chosen on;
- forgetting: loss on text the model knew before SFT. For the course model, held-out blocks of its pretraining
  corpus (lesson 01). For the real model, whose pretraining corpus is not available offline, its own greedy
  replies, before SFT, to questions outside the course world: how far SFT moved it from what it did.
The table, the numbers and the plot go to docs/lr-sweep-<profile>.md, .json and .png; lesson 02 shows them.

    python scripts/lr_sweep.py --profile cpu                       # 13 minutes on 2 cores
    python scripts/lr_sweep.py --profile real --rates 1e-5 1e-4     # about 3.5 minutes a rate
"""
import argparse
import json
import time

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ftlab import base_model, chat, data, profiles, sft  # noqa: E402
from ftlab.paths import ROOT  # noqa: E402

RATES = {"cpu": [1e-5, 1e-4, 1e-3, 3e-3, 1e-2], "real": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3]}
EVAL_CHATS = {"cpu": 200, "real": 48}  # chats per split measured; a real model's evaluation costs more on a CPU
# Questions outside the course world, for the real model's forgetting: it answers them before SFT, greedily.
GENERAL_QUESTIONS = ["What is the capital of France?", "Explain photosynthesis in one sentence.",
                     "Write a haiku about the sea.", "What does a computer's CPU do?",
                     "Give me three tips for sleeping well.", "Why is the sky blue?",
                     "Translate 'good morning' into Spanish.", "What is a prime number?",
                     "Name a famous painting and its painter.", "How do vaccines work?",
                     "What is the boiling point of water?", "Describe a cat in two sentences."]


@torch.no_grad()
def block_loss(model, blocks):
    """Mean next-token loss on pretraining blocks (lesson 01's held-out measure)."""
    model.eval()
    ids = torch.tensor(blocks["input_ids"], device=model.device)
    losses = [model(input_ids=ids[i:i + 16], labels=ids[i:i + 16]).loss.item() for i in range(0, len(ids), 16)]
    return sum(losses) / len(losses)


def forgetting_probe(profile, model, tokenizer):
    """A function model -> loss on what the start model knew (see the module's docstring)."""
    if profile.course_model:
        eval_texts = base_model.split_corpus(base_model.corpus_texts())[1]
        blocks = base_model.pretraining_blocks(tokenizer, eval_texts).select(range(profile.eval_blocks))
        return lambda m: block_loss(m, blocks)
    questions = [[{"role": "user", "content": q}] for q in GENERAL_QUESTIONS]
    replies = chat.reply(model, tokenizer, questions, max_new_tokens=48)
    own = [q + [{"role": "assistant", "content": r}] for q, r in zip(questions, replies)]
    return lambda m: chat.answer_loss(m, tokenizer, own)


def measure(model, tokenizer, splits, forgetting):
    return {"validation": chat.answer_loss(model, tokenizer, splits["validation"]),
            "test": chat.answer_loss(model, tokenizer, splits["test"]), "forgetting": forgetting(model)}


def sweep(profile, rates):
    chats = data.load("sft")
    n = EVAL_CHATS[profile.name]
    splits = {s: [r["messages"] for r in chats[s].select(range(n))] for s in ("validation", "test")}
    rows = []
    for rate in rates:
        started = time.perf_counter()
        trainer = sft.sft_trainer(profile.artifacts / "runs" / "lr-sweep", profile, learning_rate=rate,
                                  eval_strategy="no", disable_tqdm=True)
        model, tokenizer = trainer.model, trainer.processing_class
        forgetting = forgetting_probe(profile, model, tokenizer)
        before = measure(model, tokenizer, splits, forgetting)
        trainer.train()
        after = measure(model, tokenizer, splits, forgetting)
        rows.append({"rate": rate, "before": before, "after": after, "seconds": time.perf_counter() - started})
        print(json.dumps(rows[-1]), flush=True)
        del trainer, model
    return rows


def report(profile, rows, steps):
    chosen = min(rows, key=lambda r: r["after"]["validation"])
    lines = [f"### {profile.name} profile: {profile.base_model}, {steps} steps of full-parameter SFT per rate",
             "", "| learning rate | validation loss | test loss | forgetting: loss on what it knew | seconds |",
             "|---|---|---|---|---|"]
    for r in rows:
        mark = " (lowest validation loss)" if r is chosen else ""
        lines.append(f"| {r['rate']:g}{mark} | {r['before']['validation']:.3f} → {r['after']['validation']:.3f} | "
                     f"{r['before']['test']:.3f} → {r['after']['test']:.3f} | "
                     f"{r['before']['forgetting']:.3f} → {r['after']['forgetting']:.3f} | {r['seconds']:.0f} |")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    rates = [r["rate"] for r in rows]
    for split, style in (("validation", "o-"), ("test", "s--")):
        axes[0].plot(rates, [r["after"][split] for r in rows], style, label=f"{split} loss after SFT")
    axes[0].axhline(rows[0]["before"]["validation"], color="C0", lw=0.8, ls=":", label="validation loss before")
    axes[1].plot(rates, [r["after"]["forgetting"] - r["before"]["forgetting"] for r in rows], "o-", color="C3")
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[0].set(title="what SFT learns", xlabel="learning rate", ylabel="answer loss")
    axes[1].set(title="what it forgets", xlabel="learning rate", ylabel="loss on what it knew: after - before")
    for ax in axes:
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    plt.tight_layout()
    image = ROOT / "docs" / f"lr-sweep-{profile.name}.png"
    fig.savefig(image, dpi=110)
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["cpu", "real"], default="cpu")
    parser.add_argument("--rates", type=float, nargs="+")
    args = parser.parse_args()
    profile = profiles.setup(args.profile)
    rows = sweep(profile, args.rates or RATES[args.profile])
    (ROOT / "docs" / f"lr-sweep-{profile.name}.json").write_text(json.dumps(rows, indent=1))
    table = report(profile, rows, profile.stage("sft").steps)
    (ROOT / "docs" / f"lr-sweep-{profile.name}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
