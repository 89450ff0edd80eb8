"""Training PEFT methods on the course chats, and measuring them per task (lessons 05-07).

Every PEFT lesson trains with TRL's SFTTrainer on the course chats, with the loss on the answers only, and
measures on the held-out chats: the loss on the answers (`chat.answer_loss`), and what the answers do (right
sums, complete stories).
"""
import torch

from . import chat, world


def held_out_by_task(rows, per_task=None):
    """The held-out chats by task, {"math": [...], "fact": [...], "story": [...]}: all of them (per_task None), or
    the first `per_task` of each task that ask different questions (a real model generates slowly on a CPU)."""
    by_task = {}
    for row in rows:
        kept = by_task.setdefault(row["task"], [])
        question = chat.prompt_of(row)[-1]["content"]
        if per_task is None or (len(kept) < per_task and all(chat.prompt_of(r)[-1]["content"] != question for r in kept)):
            kept.append(row)
    return by_task


def story_rate(model, tokenizer, rows, max_new_tokens=120):
    """Share of story requests answered with a whole story (one that ends with one of the world's endings)."""
    rows = [r for r in rows if r["task"] == "story"]
    replies = chat.reply(model, tokenizer, [chat.prompt_of(r) for r in rows], max_new_tokens=max_new_tokens)
    return sum(world.ending_kind(reply) is not None for reply in replies) / len(rows)


def weights_snapshot(model):
    """A copy of every parameter, to check later which ones training changed."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed_weights(model, snapshot):
    """Names of the snapshot's parameters whose values differ now (a parameter must keep its name)."""
    now = dict(model.named_parameters())
    return [name for name, old in snapshot.items() if not torch.equal(now[name].detach(), old)]
