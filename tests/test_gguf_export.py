"""The GGUF exporter (lesson 12): the file llama.cpp reads back computes what PyTorch computes."""
import copy

import gguf
import numpy as np
import pytest
import torch
import llama_cpp
from llama_cpp import Llama
from tokenizers import pre_tokenizers
from transformers import LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from ftlab import base_model, gguf_export

TEXTS = ["Once upon a time, there was a small rabbit named Sam.", "3+4=7 8-5=3 12+9=", "It's Sam's hat!",
         "two  spaces,   three, and a tab\there", "new\nline\n\nand trailing spaces   ", "ünïcödé 🙂",
         "<|im_start|>user\nCompute 6+4.<|im_end|>\n<|im_start|>assistant\n"]


@pytest.fixture(scope="module")
def tiny_model(trained_tokenizer):
    torch.manual_seed(0)
    return LlamaForCausalLM(base_model.base_model_config(trained_tokenizer)).eval()


@pytest.fixture(scope="module")
def exported(tiny_model, trained_tokenizer, tmp_path_factory):
    return gguf_export.export_gguf(tiny_model, trained_tokenizer, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="module")
def llm(exported):
    # the attention cache in f32 (llama.cpp's default is f16, which moves the logits by about 4e-4)
    model = Llama(model_path=str(exported), n_ctx=256, logits_all=True, type_k=llama_cpp.GGML_TYPE_F32,
                  type_v=llama_cpp.GGML_TYPE_F32, verbose=False)
    yield model
    model.close()


def rope(x, base=10000.0, interleaved=False):
    """Rotate the pairs of one head's dimensions by position: HF pairs (i, i + d/2), llama.cpp (2i, 2i + 1)."""
    positions, d = x.shape
    angles = torch.arange(positions)[:, None] * base ** (-torch.arange(0, d, 2) / d)  # (positions, d/2)
    cos, sin = angles.cos(), angles.sin()
    a, b = (x[:, 0::2], x[:, 1::2]) if interleaved else (x[:, :d // 2], x[:, d // 2:])
    rotated_a, rotated_b = a * cos - b * sin, a * sin + b * cos
    if interleaved:
        return torch.stack([rotated_a, rotated_b], dim=-1).flatten(1)
    return torch.cat([rotated_a, rotated_b], dim=1)


def test_the_permuted_rows_give_the_same_attention_scores_under_llama_cpp_rope():
    torch.manual_seed(0)
    n_heads, head_dim, hidden, positions = 2, 8, 12, 5
    w_q, w_k = torch.randn(n_heads * head_dim, hidden), torch.randn(n_heads * head_dim, hidden)
    x = torch.randn(positions, hidden)
    permuted_q = torch.from_numpy(gguf_export.rope_permute(w_q.numpy(), n_heads))
    permuted_k = torch.from_numpy(gguf_export.rope_permute(w_k.numpy(), n_heads))
    for h in range(n_heads):
        rows = slice(h * head_dim, (h + 1) * head_dim)
        hf = rope(x @ w_q[rows].T) @ rope(x @ w_k[rows].T).T
        cpp = rope(x @ permuted_q[rows].T, interleaved=True) @ rope(x @ permuted_k[rows].T, interleaved=True).T
        assert torch.allclose(hf, cpp, atol=1e-4)
    assert not torch.equal(permuted_q, w_q)  # it is a real reordering, not the identity


def test_the_file_holds_the_llama_tensors_and_the_tokenizer(exported, tiny_model, trained_tokenizer):
    reader = gguf.GGUFReader(exported)
    tensors = {t.name: t for t in reader.tensors}
    config = tiny_model.config
    assert "output.weight" not in tensors  # tied embeddings: llama.cpp reuses token_embd
    assert len(tensors) == 2 + 9 * config.num_hidden_layers
    q = tensors["blk.0.attn_q.weight"]
    expected = gguf_export.rope_permute(tiny_model.model.layers[0].self_attn.q_proj.weight.detach().numpy(),
                                        config.num_attention_heads)
    assert np.array_equal(np.asarray(q.data).reshape(expected.shape), expected)
    assert np.array_equal(np.asarray(tensors["token_embd.weight"].data),
                          tiny_model.model.embed_tokens.weight.detach().numpy())
    metadata = gguf_export.read_metadata(exported)
    assert metadata["general.architecture"] == "llama" and metadata["tokenizer.ggml.pre"] == "gpt-2"
    assert metadata["llama.block_count"] == config.num_hidden_layers
    assert metadata["tokenizer.ggml.eos_token_id"] == trained_tokenizer.eos_token_id
    assert reader.fields["tokenizer.ggml.tokens"].contents()[:2] == ["<|endoftext|>", "<|im_start|>"]
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    assert types[:4] == [gguf.TokenType.CONTROL] * 4 and set(types[4:]) == {gguf.TokenType.NORMAL}


@pytest.mark.parametrize("text", TEXTS)
def test_llama_cpp_tokenizes_like_the_course_tokenizer(llm, trained_tokenizer, text):
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == trained_tokenizer(text).input_ids
    ids = trained_tokenizer(text).input_ids
    assert llm.detokenize(ids, special=True).decode() == trained_tokenizer.decode(ids)


def test_llama_cpp_computes_the_logits_pytorch_computes(llm, tiny_model, trained_tokenizer):
    ids = trained_tokenizer(TEXTS[0] + " " + TEXTS[1]).input_ids
    llm.reset()
    llm.eval(ids)
    with torch.no_grad():
        expected = tiny_model(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(llm.scores[:len(ids)] - expected).max() < 1e-5


def test_f16_halves_the_two_dimensional_weights(tiny_model, trained_tokenizer, exported, tmp_path):
    half = gguf_export.export_gguf(tiny_model, trained_tokenizer, tmp_path / "half.gguf", dtype="f16")
    tensors = {t.name: t.tensor_type for t in gguf.GGUFReader(half).tensors}
    assert tensors["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.F16
    assert tensors["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32
    assert half.stat().st_size < 0.6 * exported.stat().st_size


def test_what_it_cannot_write_is_refused_with_the_reason(tiny_model, course_tokenizer, tmp_path):
    qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(course_tokenizer), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2))
    with pytest.raises(ValueError, match="'qwen2'"):
        gguf_export.export_gguf(qwen, course_tokenizer, tmp_path / "qwen.gguf")
    with pytest.raises(ValueError, match="bf8"):
        gguf_export.export_gguf(tiny_model, course_tokenizer, tmp_path / "x.gguf", dtype="bf8")
    metaspace = copy.deepcopy(course_tokenizer)
    metaspace.backend_tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()  # SentencePiece-style
    with pytest.raises(ValueError, match="Metaspace"):
        gguf_export.export_gguf(tiny_model, metaspace, tmp_path / "y.gguf")
    course_tokenizer.add_tokens(["<|extra|>"])  # one token more than the model has embeddings for
    with pytest.raises(ValueError, match="618 tokens"):
        gguf_export.export_gguf(tiny_model, course_tokenizer, tmp_path / "z.gguf")
    assert not list(tmp_path.glob("*.gguf"))  # refused before anything is written
