"""Export a Llama-architecture Hugging Face model to GGUF, the one-file format of llama.cpp (lesson 12).

llama.cpp's own converter (`convert_hf_to_gguf.py`) lives in the llama.cpp repository, not on PyPI, and it
refuses BPE tokenizers whose pre-tokenizer it does not recognise by hash, such as the course's own. The
`gguf` package (written by the llama.cpp project) has the writer; what a converter adds is knowing what
llama.cpp expects, and for a Llama model that fits in a page:

- the hyperparameters as `llama.*` metadata (layers, widths, heads, RoPE base, RMSNorm epsilon);
- the tokenizer: every token in id order, the BPE merges, the pre-tokenizer's name, the special token ids
  and the chat template;
- every weight under llama.cpp's tensor name, with the rows of W_q and W_k permuted (see `rope_permute`),
  and no separate output matrix when the embeddings are tied (llama.cpp then reuses `token_embd`).
"""
import json
from pathlib import Path

import gguf
import numpy as np

# llama.cpp knows a fixed list of pre-tokenizers by name. "gpt-2" is GPT-2's regex (words, runs of digits, runs
# of punctuation, each with its leading space): the regex of the byte-level pre-tokenizer the course trained.
# "smollm" splits digits one by one first, then applies the same regex: SmolLM2's.
BYTE_LEVEL = {"type": "ByteLevel", "use_regex": True}
DIGITS = {"type": "Digits", "individual_digits": True}
# A value in GGUF is f32 or f16 here: f32 keeps every weight exactly as PyTorch has it.
DTYPES = {"f32": (np.float32, gguf.LlamaFileType.ALL_F32), "f16": (np.float16, gguf.LlamaFileType.MOSTLY_F16)}


def rope_permute(weight, n_heads):
    """Reorder the rows of W_q or W_k from Hugging Face's RoPE layout to llama.cpp's (what the official converter
    does). Per head, HF rotates the pairs of dimensions (i, i + d/2); llama.cpp's Llama rotates (2i, 2i + 1).
    Moving row i + d/2 next to row i turns one into the other; q and k move alike, so q·k is unchanged."""
    rows, cols = weight.shape
    return weight.reshape(n_heads, 2, rows // n_heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def pre_tokenizer_name(spec):
    """llama.cpp's name for the pre-tokenizer of a tokenizer.json `spec`, or None when it knows none like it."""
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]

    def is_(step, kind):
        return all(step.get(k) == v for k, v in kind.items()) and not step.get("add_prefix_space")

    if len(steps) == 1 and is_(steps[0], BYTE_LEVEL):
        return "gpt-2"
    if len(steps) == 2 and is_(steps[0], DIGITS) and is_(steps[1], BYTE_LEVEL):
        return "smollm"
    return None


def tokenizer_metadata(tokenizer):
    """(tokens, token types, merges, pre-tokenizer name) of a byte-level BPE tokenizer, checked to be one llama.cpp
    reads as ours."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    normalizer = spec.get("normalizer") or {}
    normalizes = bool(normalizer) and not (normalizer.get("type") == "Sequence" and not normalizer["normalizers"])
    pre = pre_tokenizer_name(spec)
    if spec["model"]["type"] != "BPE" or pre is None or normalizes:
        raise ValueError(f"this exporter writes byte-level BPE tokenizers with GPT-2's regex (digits split first or "
                         f"not), no prefix space and no normalizer; this one has model {spec['model']['type']!r}, "
                         f"pre-tokenizer {spec.get('pre_tokenizer')}, normalizer {spec.get('normalizer')}")
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))  # byte-level strings: "Ġthe" is " the"
    special = {i for i, added in tokenizer.added_tokens_decoder.items() if added.special}  # <|im_end|> and friends
    types = [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(tokens))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    return tokens, types, merges, pre


def export_gguf(model, tokenizer, path, dtype="f32"):
    """Write `model` (a LlamaForCausalLM) and its tokenizer to one GGUF file at `path`. Returns the path."""
    config = model.config
    if config.model_type != "llama":
        raise ValueError(f"this exporter writes Llama models; this one is {config.model_type!r}")
    if (config.rope_parameters or {}).get("rope_type", "default") != "default":
        raise ValueError(f"RoPE scaling {config.rope_parameters} is not written by this exporter")
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    numpy_dtype, file_type = DTYPES[dtype]
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if len(tokenizer) != config.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens, the model's embeddings {config.vocab_size} rows")
    tokens, types, merges, pre = tokenizer_metadata(tokenizer)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    # The model's shape, as llama.cpp's Llama code reads it.
    writer.add_name(Path(config.name_or_path).name or "model")
    writer.add_file_type(file_type)
    writer.add_vocab_size(config.vocab_size)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    # The tokenizer travels inside the file: llama.cpp tokenizes and applies the chat template by itself.
    writer.add_tokenizer_model("gpt2")  # llama.cpp's name for byte-level BPE
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)  # neither the course tokenizer nor SmolLM2's adds a begin-of-text token
    if tokenizer.chat_template:  # llama.cpp skips the {% generation %} markers, as transformers does at inference
        writer.add_chat_template(tokenizer.chat_template)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # the same matrix as token_embd: llama.cpp reuses it when output.weight is absent
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ValueError(f"no llama.cpp name for the tensor {hf_name!r}")
        weight = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            weight = rope_permute(weight, config.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            weight = rope_permute(weight, config.num_key_value_heads)
        # Norm weights (1-D) stay f32 in every file type, as llama.cpp expects.
        writer.add_tensor(name, weight.astype(numpy_dtype if weight.ndim > 1 else np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def read_metadata(path):
    """{key: value} of a GGUF file's metadata (arrays shortened to their length), read with gguf's reader."""
    reader = gguf.GGUFReader(path)
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        value = field.contents()
        out[key] = f"[{len(value)} items]" if isinstance(value, list) else value
    return out
