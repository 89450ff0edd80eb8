"""Checks for exercises/12_evaluate_export: the size of an f16 GGUF file, the rows llama.cpp's RoPE needs, Q8_0
quantization by hand."""
import tempfile
from pathlib import Path

import gguf
import numpy as np
import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from .. import gguf_export
from . import expect, fail, number, passed

Q8_0 = gguf.GGMLQuantizationType.Q8_0
BLOCK = 32  # Q8_0 quantizes blocks of 32 weights


# ---------------------------------------------------------------- exercise 1
def f16_tensor_bytes(n_bytes, model, tokenizer):
    """Exercise 1: the bytes the tensors of `model` take in a GGUF file exported with dtype="f16"."""
    n_bytes = number(n_bytes, "f16_bytes")
    with tempfile.TemporaryDirectory() as tmp:  # the reference: export it, and read the file back with gguf
        path = gguf_export.export_gguf(model, tokenizer, Path(tmp) / "model-f16.gguf", dtype="f16")
        reader = gguf.GGUFReader(path)
        expected = sum(int(t.n_bytes) for t in reader.tensors)
        file_size = path.stat().st_size
    state = model.state_dict()
    tied = model.config.tie_word_embeddings and "lm_head.weight" in state
    exported = {k: v for k, v in state.items() if not (tied and k == "lm_head.weight")}
    matrices = sum(v.numel() for v in exported.values() if v.dim() > 1)
    vectors = sum(v.numel() for v in exported.values() if v.dim() == 1)
    if n_bytes == matrices + vectors:
        fail(f"{n_bytes:,.0f} is the number of exported parameters, not bytes",
             "an f16 number takes 2 bytes, an f32 one 4")
    if n_bytes == 4 * (matrices + vectors):
        fail(f"{n_bytes:,.0f} bytes is the f32 file's tensors", "in the f16 file the matrices take 2 bytes a number")
    if n_bytes == 2 * (matrices + vectors):
        fail(f"{n_bytes:,.0f} bytes stores the norm weights in f16 too",
             "the 1-D tensors (the RMSNorm weights) stay f32 in every file type: 4 bytes each")
    if tied and n_bytes == expected + 2 * state["lm_head.weight"].numel():
        fail(f"{n_bytes:,.0f} bytes counts the output matrix lm_head", "the embeddings are tied: the file has no "
             "output.weight, llama.cpp reuses token_embd for the output")
    expect(n_bytes == expected, f"{n_bytes:,.0f} bytes is not what the f16 file's tensors take "
           f"({'too many' if n_bytes > expected else 'too few'})",
           "2 bytes per number of every matrix of model.state_dict() except lm_head (tied), 4 per number of the "
           "1-D norm weights")
    passed(f"the tensors take {expected:,} bytes; the whole file is {file_size:,} bytes: the tokenizer, chat "
           "template and hyperparameters travel in it too")


# ---------------------------------------------------------------- exercise 2
def _array(value, name, shape):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        fail(f"`{name}` returned {type(value).__name__}", "return the permuted matrix, a numpy array (or a tensor)")
    expect(value.shape == shape, f"`{name}` returned shape {value.shape}, expected {shape}",
           "the same shape as the weight: only the order of its rows changes")
    return value


def _scores(wq, wk, n_heads, head_dim, hidden, layout):
    """Attention scores q·k of every head for positions 0..5, with RoPE applied in Hugging Face's layout (pairs
    i, i + d/2) or in llama.cpp's (pairs 2i, 2i + 1), to the query and key weights given."""
    x = torch.randn(6, hidden, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    q = (x @ torch.as_tensor(wq, dtype=torch.float64).T).view(6, n_heads, head_dim).transpose(0, 1)
    k = (x @ torch.as_tensor(wk, dtype=torch.float64).T).view(6, n_heads, head_dim).transpose(0, 1)
    inv_freq = 10000.0 ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(6, dtype=torch.float64)[:, None] * inv_freq  # (positions, d/2)
    if layout == "hf":
        cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
        q, k = apply_rotary_pos_emb(q[None], k[None], cos[None], sin[None])
        q, k = q[0], k[0]
    else:  # llama.cpp's Llama ("normal" RoPE): rotate neighbours
        def rotate(t):
            even, odd = t[..., 0::2], t[..., 1::2]
            out = torch.empty_like(t)
            out[..., 0::2] = even * angles.cos() - odd * angles.sin()
            out[..., 1::2] = even * angles.sin() + odd * angles.cos()
            return out
        q, k = rotate(q), rotate(k)
    return q @ k.transpose(-1, -2)


def rope_permutation(permute_fn):
    """Exercise 2: `permute_fn(weight, n_heads)` reorders the rows of W_q or W_k for llama.cpp's RoPE."""
    rng = np.random.default_rng(0)
    for n_heads, head_dim, hidden in [(4, 8, 32), (2, 16, 24), (1, 4, 4)]:
        wq = rng.standard_normal((n_heads * head_dim, hidden)).astype(np.float32)
        wk = rng.standard_normal((n_heads * head_dim, hidden)).astype(np.float32)
        got_q = _array(permute_fn(wq.copy(), n_heads), "permute_fn(weight, n_heads)", wq.shape)
        got_k = _array(permute_fn(wk.copy(), n_heads), "permute_fn(weight, n_heads)", wk.shape)
        expected = gguf_export.rope_permute(wq, n_heads)
        if np.array_equal(got_q, expected):
            continue
        case = f"{n_heads} heads of {head_dim} dimensions"
        if np.array_equal(got_q, wq):
            fail(f"{case}: your function leaves the rows where they are",
                 "per head, row i + d/2 must come right after row i: 0, d/2, 1, d/2 + 1, ...")
        if sorted(map(tuple, got_q.T)) == sorted(map(tuple, wq.T)) and not sorted(map(tuple, got_q)) == sorted(
                map(tuple, wq)):
            fail(f"{case}: your function moves the columns", "move the rows: each row is one output dimension of "
                 "a head, the columns are the model's hidden size")
        inverse = wq.reshape(n_heads, head_dim // 2, 2, hidden).swapaxes(1, 2).reshape(wq.shape)
        if np.array_equal(got_q, inverse):
            fail(f"{case}: your function does the inverse reordering (neighbours apart, into two halves)",
                 "reshape to (n_heads, 2, d/2, in): the two halves of each head, then swap those two axes")
        same = np.abs(_scores(got_q, got_k, n_heads, head_dim, hidden, "cpp")
                      - _scores(wq, wk, n_heads, head_dim, hidden, "hf")).max().item()
        fail(f"{case}: with your rows, llama.cpp's RoPE gives attention scores that differ from Hugging Face's by "
             f"up to {same:.3g}", "per head, row i + d/2 must come right after row i; the heads keep their order")
    wq = rng.standard_normal((32, 16))
    wk = rng.standard_normal((32, 16))
    gap = np.abs(_scores(gguf_export.rope_permute(wq, 4), gguf_export.rope_permute(wk, 4), 4, 8, 16, "cpp")
                 - _scores(wq, wk, 4, 8, 16, "hf")).max().item()
    unpermuted = np.abs(_scores(wq, wk, 4, 8, 16, "cpp") - _scores(wq, wk, 4, 8, 16, "hf")).max().item()
    passed(f"your rows are the converter's: llama.cpp's RoPE on them gives Hugging Face's attention scores (to "
           f"{gap:.0e}); on the rows as they were, the scores would be off by up to {unpermuted:.1f}")


# ---------------------------------------------------------------- exercise 3
def _reference_q8_0(weight):
    """gguf's Q8_0 (bit-exact with ggml's), split into (scales float16, quants int8) per block of 32."""
    raw = gguf.quants.quantize(weight, Q8_0).reshape(-1, 2 + BLOCK)
    return raw[:, :2].copy().view(np.float16).reshape(-1), raw[:, 2:].copy().view(np.int8)


def q8_0_cases(weight):
    """The check's matrices: a weight of the model, and a small one with an all-zero block."""
    tricky = np.linspace(-1, 1, 4 * BLOCK, dtype=np.float32).reshape(2, 2 * BLOCK)
    tricky[1, :BLOCK] = 0.0  # a block of zeros: its scale is 0
    return [("the weight", np.asarray(weight, dtype=np.float32)), ("a matrix with a block of zeros", tricky)]


def q8_0(quantize_fn, weight):
    """Exercise 3: `quantize_fn(weight)` returns Q8_0's (scales, quants) of a float32 matrix: per block of 32
    numbers (along each row) a float16 scale and 32 int8 values."""
    if isinstance(weight, torch.Tensor):
        weight = weight.detach().float().cpu().numpy()
    tied = 0  # values at a rounding tie, where yours may differ from gguf's by one
    for name, matrix in q8_0_cases(weight):
        try:
            with np.errstate(divide="raise", invalid="raise"):  # 0 / 0 would only warn, and cast to some int8
                result = quantize_fn(matrix.copy())
        except FloatingPointError as error:
            fail(f"{name}: your function divides by zero ({error})", "a block of zeros has scale 0: use 1 / scale "
                 "only where scale != 0 (np.where(scale == 0, 0, 1 / scale), inside np.errstate(divide='ignore'))")
        expect(isinstance(result, tuple) and len(result) == 2, f"quantize_fn returned {type(result).__name__}",
               "return (scales, quants)")
        scales, quants = (np.asarray(r.detach().cpu() if isinstance(r, torch.Tensor) else r) for r in result)
        expected_scales, expected_quants = _reference_q8_0(matrix)
        blocks = matrix.size // BLOCK
        if scales.size == matrix.shape[0] and blocks != matrix.shape[0]:
            fail(f"{name}: one scale per row ({scales.size})", f"one scale per block of {BLOCK} numbers: "
                 f"{blocks} blocks here; matrix.reshape(-1, {BLOCK}) puts one block in each row")
        expect(scales.size == blocks, f"{name}: {scales.size} scales for {blocks} blocks of {BLOCK}",
               f"matrix.reshape(-1, {BLOCK}): one block in each row, one scale per block")
        expect(quants.size == matrix.size, f"{name}: {quants.size} quantized values for {matrix.size} weights",
               "one int8 value per weight")
        expect(scales.dtype == np.float16, f"{name}: the scales are {scales.dtype}",
               "a GGUF file stores each block's scale in 2 bytes: .astype(np.float16)")
        expect(quants.dtype == np.int8, f"{name}: the quantized values are {quants.dtype}",
               "each weight becomes one byte: .astype(np.int8), after rounding")
        scales, quants = scales.reshape(-1), quants.reshape(blocks, BLOCK)
        if np.isnan(scales.astype(np.float32)).any() or not np.array_equal(scales, expected_scales):
            block = np.abs(matrix.reshape(-1, BLOCK))
            if np.allclose(scales, (block.max(axis=1) / 128).astype(np.float16)):
                fail(f"{name}: your scales divide by 128", "int8 runs from -128 to 127; Q8_0 uses -127..127, "
                     "so that the largest |weight| of a block maps to ±127: scale = max |w| / 127")
            if np.allclose(scales, (matrix.reshape(-1, BLOCK).max(axis=1) / 127).astype(np.float16)):
                fail(f"{name}: your scales use the largest weight, not the largest |weight|",
                     "a block's most negative weight may be further from 0: np.abs(block).max() / 127")
            fail(f"{name}: your scales differ from Q8_0's, e.g. block {np.flatnonzero(scales != expected_scales)[0]}",
                 "scale = (largest |weight| of the block) / 127, stored as float16")
        zero = ~np.any(matrix.reshape(-1, BLOCK), axis=1)
        if zero.any() and not np.array_equal(quants[zero], expected_quants[zero]):
            fail(f"{name}: a block of zeros does not quantize to zeros",
                 "its scale is 0: use 1 / scale only where scale != 0 (np.where(scale == 0, 0, 1 / scale))")
        block = matrix.reshape(-1, BLOCK)
        scale = np.abs(block).max(axis=1, keepdims=True) / 127
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = block * np.where(scale == 0, 0, 1 / scale)
            exact = np.abs(np.where(scale == 0, 0, block.astype(np.float64) / scale.astype(np.float64)))
        diff = np.abs(quants.astype(int) - expected_quants.astype(int))
        # A value within float rounding of a half may round either way (w / s and w * (1 / s) differ in the last bit)
        ties = (diff == 1) & (np.abs(exact - np.floor(exact) - 0.5) < 1e-4)
        if (diff > 0).any() and not np.array_equal(diff > 0, ties):
            if np.array_equal(quants, np.trunc(scaled).astype(np.int8)):
                fail(f"{name}: your values are truncated towards zero", "round to the nearest integer first "
                     "(np.round), then .astype(np.int8)")
            wrong = (diff > 0) & ~ties
            fail(f"{name}: {int(wrong.sum())} of {quants.size} quantized values differ from Q8_0's (by up to "
                 f"{int(diff.max())})", "each weight divided by its block's scale (the float32 one, before it is "
                 "stored as float16), rounded to the nearest integer")
        tied += int(ties.sum())
    scales, quants = _reference_q8_0(np.asarray(weight, dtype=np.float32))
    restored = (quants.astype(np.float32) * scales.astype(np.float32)[:, None]).reshape(np.shape(weight))
    error = np.abs(restored - weight).max()
    same = "to the bit" if not tied else f"but for {tied} value{'s' * (tied > 1)} at a rounding tie, one step apart"
    passed(f"your Q8_0 is gguf's, {same}: {BLOCK} weights in {2 + BLOCK} bytes, {8 * (2 + BLOCK) / BLOCK:g} bits "
           f"a weight instead of 16 (f16) or 32 (f32); on this weight the largest error is {error:.1e} "
           f"({error / np.abs(weight).max():.2%} of its largest value)")
