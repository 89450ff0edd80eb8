"""Checks for exercises/04_qlora_memory: AdamW's states, the longest sequence that fits, where LoRA saves half."""
from transformers import LlamaConfig

from .. import memory
from ..architectures import real_config
from . import close, expect, fail, number, passed

GPU_BYTES = 24 * 2 ** 30  # a 24 GiB GPU
STEP = 256  # sequence lengths in steps of 256 tokens
WIDTH_STEP = 64


def adamw_bytes(n_bytes):
    """Exercise 1: the bytes of AdamW's states when Llama-3.2-1B is fully fine-tuned in fp32."""
    value = number(n_bytes, "adamw_bytes")
    config = real_config("Llama-3.2-1B")
    reference = memory.estimate(config, batch_size=1, seq_len=1, method="full", dtype="fp32").optimizer
    if close(value, reference / 2, rel=1e-3):
        fail(f"{value:.3g} bytes is one state per parameter", "AdamW keeps two: the momentum m and the variance v")
    if close(value, reference / 2 ** 30, rel=1e-3) or close(value, reference / 1e9, rel=1e-3):
        fail(f"{value:g} looks like gigabytes", "give the number of bytes")
    if close(value, reference / 4, rel=1e-3) or close(value, reference / 8, rel=1e-3):
        fail(f"{value:.3g} counts states, not bytes", "an fp32 number takes 4 bytes")
    expect(close(value, reference, rel=1e-3),
           f"{value:.4g} bytes is not the size of AdamW's states here ({'too many' if value > reference else 'too few'})",
           "parameters from memory.parameter_count(config)['total'] (tied embeddings count once), "
           "times 2 states, times 4 bytes")
    passed(f"AdamW's states of Llama-3.2-1B: {reference / 1e9:.1f} GB, twice the fp32 weights")


def _longest(gradient_checkpointing):
    config = real_config("Qwen2.5-7B")
    length = 0
    while memory.estimate(config, 1, length + STEP, "qlora", "bf16", 8, gradient_checkpointing).total <= GPU_BYTES:
        length += STEP
    return length


def longest_sequence(longest, longest_checkpointed):
    """Exercise 2: the longest sequence (a multiple of 256) Qwen2.5-7B trains on with QLoRA on 24 GiB, batch 1,
    without and with gradient checkpointing."""
    config = real_config("Qwen2.5-7B")
    for value, name, checkpointing in [(longest, "longest", False), (longest_checkpointed, "longest_checkpointed", True)]:
        value = number(value, name)
        expected = _longest(checkpointing)
        expect(value % STEP == 0, f"`{name}` = {value:g} is not a multiple of {STEP}", f"try lengths {STEP}, {2 * STEP}, ...")
        total = memory.estimate(config, 1, int(value), "qlora", "bf16", 8, checkpointing).total
        expect(total <= GPU_BYTES, f"`{name}` = {value:g} tokens needs {total / 2 ** 30:.1f} GiB by the estimate, "
               f"more than 24 GiB", "take the longest length whose estimate(...).total is at most 24 * 2**30 bytes")
        expect(value == expected, f"`{name}` = {value:g} fits, and so does {value + STEP:g}",
               f"keep adding {STEP} tokens while memory.estimate(config, 1, length, 'qlora', 'bf16', 8, "
               f"gradient_checkpointing={checkpointing}).total stays at most 24 GiB")
    passed(f"{int(longest):,} tokens, and {int(longest_checkpointed):,} with gradient checkpointing: the logits "
           f"(3 x {config.vocab_size:,} float32 numbers per token) are what remains")


def course_shaped(hidden):
    """The course model's shape (vocabulary 585, 4 layers, 4 heads, MLP 4x wider) at another width."""
    return LlamaConfig(vocab_size=585, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True)


def _ratio(hidden):
    config = course_shaped(hidden)
    return (memory.estimate(config, 32, 128, "lora", "fp32", 8).total
            / memory.estimate(config, 32, 128, "full", "fp32").total)


def half_memory_width(hidden):
    """Exercise 3: the smallest width (a multiple of 64) at which LoRA r=8 needs at most half the memory of full
    fine-tuning, for the course-shaped model at batch 32 x 128 tokens in fp32."""
    hidden = number(hidden, "hidden")
    expect(hidden % WIDTH_STEP == 0 and hidden > 0, f"{hidden:g} is not a positive multiple of {WIDTH_STEP}",
           "scan the widths 64, 128, 192, ...")
    ratio = _ratio(int(hidden))
    expect(ratio <= 0.5, f"at width {hidden:g} LoRA still needs {ratio:.0%} of full fine-tuning's memory",
           "go wider: the weights grow with width squared, the activations only with width")
    smaller = _ratio(int(hidden) - WIDTH_STEP) if hidden > WIDTH_STEP else 1.0
    expect(smaller > 0.5, f"width {hidden - WIDTH_STEP:g} already halves the memory ({smaller:.1%})",
           "find the smallest such width: scan upwards from 64 and stop at the first")
    base = _ratio(128)
    passed(f"at width {hidden:g} LoRA needs {ratio:.1%} of the memory of full fine-tuning (at the course "
           f"model's width 128: {base:.0%}): activations dominate small models, and LoRA does not shrink them")
