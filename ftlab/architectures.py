"""Real model architectures, as numbers: what memory and PEFT lessons compute on, offline.

The numbers are copied from each model's published config.json on the Hugging Face hub, so that the lessons
can build these configs (and models without weights, on the meta device) with no network.
"""
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

REAL_MODELS = {
    # name: (config class, settings from the model's config.json)
    "Qwen2.5-0.5B": (Qwen2Config, dict(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True)),
    "Llama-3.2-1B": (LlamaConfig, dict(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, tie_word_embeddings=True)),
    "Qwen2.5-7B": (Qwen2Config, dict(
        vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False)),
    "Llama-2-7B": (LlamaConfig, dict(
        vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False)),
    "Llama-3.1-8B": (LlamaConfig, dict(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False)),
    "Llama-3.1-70B": (LlamaConfig, dict(
        vocab_size=128256, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
        num_attention_heads=64, num_key_value_heads=8, tie_word_embeddings=False)),
}

# Parameter counts the model cards publish, to check the numbers above against.
PUBLISHED_PARAMETERS = {"Qwen2.5-0.5B": 0.49e9, "Llama-3.2-1B": 1.24e9, "Qwen2.5-7B": 7.62e9,
                        "Llama-2-7B": 6.74e9, "Llama-3.1-8B": 8.03e9, "Llama-3.1-70B": 70.6e9}


def real_config(name):
    config_class, settings = REAL_MODELS[name]
    return config_class(**settings)


def without_weights(config):
    """A model of `config` with every tensor on the meta device: shapes and counts, no memory, no download."""
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def model_without_weights(name):
    """A real model (by name, from REAL_CONFIGS) without weights."""
    return without_weights(real_config(name))
