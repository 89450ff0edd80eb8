"""Training PEFT methods on the course chats, and measuring them per task (lessons 05-07).

Every PEFT lesson trains with TRL's SFTTrainer on the course chats, with the loss on the assistant's answers
only, and measures on the held-out chats: the loss on the answers, and what the answers do (right sums,
complete stories).
"""
import torch
from trl.chat_template_utils import get_training_chat_template, has_generation_markers

from . import base_model, chat, world
from .sft import sft_config


def load_start_model(profile):
    """(model, tokenizer) every PEFT run starts from: the course base model (cpu), or the profile's hub model in
    bf16 (gpu), loaded with plain transformers so that PEFT's and ftlab's own layers see every module call."""
    if profile.name == "cpu":
        return base_model.load_base_model()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(profile.model_name, dtype=torch.bfloat16, device_map="cuda")
    return model, AutoTokenizer.from_pretrained(profile.model_name)


def peft_sft_config(output_dir, profile, stage, **overrides):
    """Lesson 02's SFTConfig for the PEFT training `stage` of the profile, with evaluation off: the PEFT
    lessons measure by themselves, per task."""
    defaults = {"eval_strategy": "no", "logging_steps": max(1, profile.stage(stage).steps // 10)}
    return sft_config(output_dir, profile, stage, **(defaults | overrides))


def answer_mask_batch(tokenizer, rows, device):
    """Token ids of whole chats with labels on the assistant's tokens only (-100 elsewhere), right-padded."""
    template = tokenizer.chat_template
    if not has_generation_markers(template):  # a hub model's template: TRL's patched copy marks the answers
        template = get_training_chat_template(tokenizer)
    encoded = [tokenizer.apply_chat_template(r["messages"], chat_template=template, tokenize=True, return_dict=True,
                                             return_assistant_tokens_mask=True) for r in rows]
    width = max(len(e["input_ids"]) for e in encoded)
    pad = tokenizer.pad_token_id

    def padded(values, fill):
        return torch.tensor([list(v) + [fill] * (width - len(v)) for v in values], device=device)

    ids = padded([e["input_ids"] for e in encoded], pad)
    attention = padded([[1] * len(e["input_ids"]) for e in encoded], 0)
    labels = padded([[t if m else -100 for t, m in zip(e["input_ids"], e["assistant_masks"])] for e in encoded], -100)
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


@torch.no_grad()
def held_out_loss(model, tokenizer, rows, batch_size=32):
    """Mean cross-entropy per answer token on `rows` (chats): what SFTTrainer minimises, on held-out chats."""
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = answer_mask_batch(tokenizer, rows[start:start + batch_size], model.device)
        n = int((batch["labels"][:, 1:] != -100).sum())  # the model shifts labels by one position
        total += model(**batch).loss.item() * n
        tokens += n
    return total / tokens


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
