"""The course tokenizer: byte-level BPE trained on the course corpus, with a chat template fit for TRL."""
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

END_OF_TEXT = "<|endoftext|>"  # ends a document in pretraining
TURN_START, TURN_END = "<|im_start|>", "<|im_end|>"  # frame each chat turn (the ChatML format)
PAD = "<|pad|>"
SPECIAL_TOKENS = [END_OF_TEXT, TURN_START, TURN_END, PAD]

# ChatML, as Qwen models use it. The {% generation %} markers tell TRL which tokens the assistant wrote,
# so SFT can train on those alone (assistant-only loss). The end-of-turn token sits inside the markers:
# the model must learn to emit it, or it never stops talking.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def train_tokenizer(texts, vocab_size=4096, model_max_length=512):
    """Train a byte-level BPE tokenizer on `texts` and wrap it as a transformers tokenizer.

    Byte-level: any string can be encoded, there is no unknown token. The pre-tokenizer first cuts text
    into words, runs of digits and punctuation (GPT-2's rule), and BPE merges only inside those pieces.
    So a frequent number such as "19" becomes one token, and a single-digit sum is a lookup of one token.
    BPE stops merging when no pair repeats: on the small course world the vocabulary ends far below
    `vocab_size`.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=END_OF_TEXT,
        pad_token=PAD,
        additional_special_tokens=[TURN_START, TURN_END],
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
    )
