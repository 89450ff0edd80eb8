"""The course base model: a small Llama pretrained from scratch on the course corpus (lesson 01).

Lesson 01 builds it step by step; every later lesson calls `load_base_model()`, which reads it from
artifacts/base/ and, when it is missing or was built by another recipe, rebuilds it with `build_base_model()`,
the same steps as lesson 01.
"""
import hashlib

from datasets import Dataset
from transformers import (AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, Trainer,
                          TrainingArguments, default_data_collator, set_seed)

from . import cache, data
from .paths import ARTIFACTS
from .profiles import course_profile
from .tokenizer import END_OF_TEXT, train_tokenizer

BASE_DIR = ARTIFACTS / "base"
# Hidden 128, 4 layers: about 1.1M parameters, 14k tokens/s on 2 CPU cores.
MODEL_SHAPE = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4,
               "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 512}
BLOCK_SIZE = 128  # tokens per training sequence
EVAL_SHARE = 0.03  # documents held out to measure the loss on text the model never trained on


def base_model_config(tokenizer):
    return LlamaConfig(
        vocab_size=len(tokenizer),
        **MODEL_SHAPE,
        tie_word_embeddings=True,  # input and output embeddings share one matrix: a third fewer parameters here
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )


def corpus_texts():
    return [row["text"] for row in data.read("corpus", "train")]


def pretraining_blocks(tokenizer, texts, block_size=BLOCK_SIZE):
    """Token blocks for causal LM training: each document ends with <|endoftext|>, the documents are
    joined into one stream and cut into blocks of `block_size` (no padding, nothing wasted)."""
    end = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    ids = [t for ids in tokenizer(texts, add_special_tokens=False)["input_ids"] for t in ids + [end]]
    n_blocks = len(ids) // block_size
    blocks = [ids[i * block_size:(i + 1) * block_size] for i in range(n_blocks)]
    return Dataset.from_dict({"input_ids": blocks, "labels": blocks})


def split_corpus(texts, eval_share=EVAL_SHARE):
    """(train texts, held-out texts): the last documents are held out."""
    n_eval = max(1, int(len(texts) * eval_share))
    return texts[:-n_eval], texts[-n_eval:]


def pretraining_arguments(output_dir, profile):
    steps = profile.stage("pretrain").steps
    return TrainingArguments(**profile.training_settings("pretrain", output_dir),
                             weight_decay=0.1, eval_strategy="steps", eval_steps=max(1, steps // 4))


def recipe(profile=None):
    """Everything that decides the base model; a cached model built from another recipe is rebuilt."""
    profile = profile or course_profile()
    corpus_hash = hashlib.sha256(data.path("corpus", "train").read_bytes()).hexdigest()
    return {"shape": MODEL_SHAPE, "block_size": BLOCK_SIZE, "eval_share": EVAL_SHARE,
            "pretrain": vars(profile.stage("pretrain")), "seed": profile.seed, "corpus_sha256": corpus_hash}


def save_base_model(model, tokenizer, log_history, target=BASE_DIR, profile=None):
    """Save model (safetensors), tokenizer, training log and recipe together, atomically."""
    return cache.save_with_recipe(model, tokenizer, log_history, target, recipe(profile))


def is_cached(target=BASE_DIR, profile=None):
    return cache.built_from(target, recipe(profile))


def build_base_model(target=BASE_DIR, profile=None):
    """Lesson 01 in one function: tokenizer, blocks, model, pretraining, save. Returns the Trainer."""
    profile = profile or course_profile()
    texts = corpus_texts()
    tokenizer = train_tokenizer(texts)
    train_texts, eval_texts = split_corpus(texts)
    set_seed(profile.seed)  # the initial weights depend on it
    model = LlamaForCausalLM(base_model_config(tokenizer))
    trainer = Trainer(
        model=model,
        args=pretraining_arguments(ARTIFACTS / "runs" / "pretrain", profile),
        train_dataset=pretraining_blocks(tokenizer, train_texts),
        eval_dataset=pretraining_blocks(tokenizer, eval_texts),
        data_collator=default_data_collator,
    )
    trainer.train()
    save_base_model(trainer.model, tokenizer, trainer.state.log_history, target, profile)
    return trainer


def ensure_base_model(target=BASE_DIR):
    """The folder of the course base model, built first (about 2 minutes) when missing."""
    return cache.ensure(target, recipe(), build_base_model, "the course base model as lesson 01 does, about 2 minutes")


def load_base_model(target=BASE_DIR):
    """(model, tokenizer) of the course base model, built first when missing."""
    folder = ensure_base_model(target)
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
