import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from ftlab import adapters
from ftlab.parameters import trainable_parameters

SHAPE = dict(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64)


def tiny_model(kind="llama", seed=0):
    torch.manual_seed(seed)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**SHAPE)).eval()
    return Qwen2ForCausalLM(Qwen2Config(**SHAPE)).eval()


BATCH = {"input_ids": torch.tensor([[1, 5, 9, 3, 7, 2], [4, 4, 8, 1, 0, 6]])}


def logits(model):
    with torch.no_grad():
        return model(**BATCH).logits


def perturb(model, name, seed):
    """Give adapter `name` non-zero weights, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if f".bottlenecks.{name}." in param_name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
@pytest.mark.parametrize("placement", ["houlsby", "pfeiffer"])
def test_a_new_adapter_is_the_identity_and_has_the_counted_parameters(kind, placement):
    model = tiny_model(kind)
    before = logits(model)
    total_before = model.num_parameters()
    adapters.add_adapter(model, "a", bottleneck_size=4, placement=placement)
    adapters.enable(model, "a")
    assert torch.allclose(logits(model), before, atol=1e-6)
    added = model.num_parameters() - total_before
    assert added == adapters.adapter_parameters(32, 2, 4, placement)
    assert added == 2 * len(adapters.PLACEMENTS[placement]) * (2 * 32 * 4 + 4 + 32)


def test_train_adapter_freezes_everything_else():
    model = tiny_model()
    adapters.add_adapter(model, "a", bottleneck_size=4)
    adapters.add_adapter(model, "b", bottleneck_size=4)
    adapters.train_adapter(model, "b")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".bottlenecks.b." in n for n in trainable)
    assert trainable_parameters(model) == (adapters.adapter_parameters(32, 2, 4), model.num_parameters())
    assert adapters.active_adapters(model) == ["b"]
    # a training step moves the adapter and nothing else
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    loss = model(**BATCH, labels=BATCH["input_ids"]).loss
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)


def test_switch_disable_and_stack():
    model = tiny_model()
    base = logits(model)
    for i, name in enumerate(["a", "b"]):
        adapters.add_adapter(model, name, bottleneck_size=4, placement="pfeiffer")
        perturb(model, name, seed=i)
    adapters.enable(model, "a")
    only_a = logits(model)
    adapters.enable(model, "b")
    only_b = logits(model)
    assert not torch.allclose(only_a, base) and not torch.allclose(only_b, only_a)
    adapters.disable(model)
    assert torch.equal(logits(model), base)

    # a stack passes the MLP's output through a, then b
    mlp = model.model.layers[0].mlp
    x = torch.randn(1, 3, 32)
    adapters.disable(model)
    raw = mlp(x)
    adapters.enable(model, "a", "b")
    assert torch.allclose(mlp(x), mlp.bottlenecks["b"](mlp.bottlenecks["a"](raw)))
    adapters.enable(model, "b", "a")
    assert torch.allclose(mlp(x), mlp.bottlenecks["a"](mlp.bottlenecks["b"](raw)))


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model()
    adapters.add_adapter(model, "math", bottleneck_size=4, placement="houlsby", non_linearity="gelu")
    perturb(model, "math", seed=3)
    adapters.enable(model, "math")
    expected = logits(model)
    saved = adapters.save_adapter(model, "math", tmp_path / "math")
    assert sorted(p.name for p in saved.iterdir()) == [adapters.CONFIG_FILE, adapters.WEIGHTS_FILE]

    fresh = tiny_model()  # same seed: the same base weights
    assert adapters.load_adapter(fresh, saved, name="sums") == "sums"
    assert adapters.adapter_configs(fresh)["sums"]["non_linearity"] == "gelu"
    adapters.enable(fresh, "sums")
    assert torch.allclose(logits(fresh), expected, atol=1e-6)


def test_mistakes_are_reported(tmp_path):
    model = tiny_model()
    adapters.add_adapter(model, "a", bottleneck_size=4)
    with pytest.raises(ValueError, match="already"):
        adapters.add_adapter(model, "a")
    with pytest.raises(KeyError, match="no adapter called 'b'"):
        adapters.enable(model, "b")
    saved = adapters.save_adapter(model, "a", tmp_path / "a")
    other = LlamaForCausalLM(LlamaConfig(**{**SHAPE, "num_hidden_layers": 3}))
    with pytest.raises(ValueError, match="does not fit"):
        adapters.load_adapter(other, saved)


def test_max_output_difference_keeps_the_active_adapters():
    model = tiny_model()
    adapters.add_adapter(model, "a", bottleneck_size=4)
    adapters.enable(model, "a")
    assert adapters.max_output_difference(model, BATCH) == 0.0
    perturb(model, "a", seed=1)
    assert adapters.max_output_difference(model, BATCH) > 0
    assert adapters.active_adapters(model) == ["a"]


def test_adapters_on_a_model_without_weights():
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**SHAPE))
    adapters.add_adapter(model, "a", bottleneck_size=8, placement="houlsby")
    assert trainable_parameters(model)[1] - LlamaForCausalLM(LlamaConfig(**SHAPE)).num_parameters() \
        == adapters.adapter_parameters(32, 2, 8, "houlsby")
