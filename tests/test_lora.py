"""The from-scratch LoRA layer (lesson 03): exact at initialisation, the same as PEFT's, merges exactly."""
import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import LlamaForCausalLM

from ftlab import base_model, lora, memory
from ftlab.parameters import trainable_parameters

TARGETS = list(lora.LLAMA_LINEARS)


@pytest.fixture(scope="module")
def tiny_model(trained_tokenizer):
    torch.manual_seed(0)
    return LlamaForCausalLM(base_model.base_model_config(trained_tokenizer)).eval()


def ids():
    return torch.randint(0, 500, (2, 12), generator=torch.Generator().manual_seed(1))


def randomise_b(model, seed=0):
    """Give every B matrix random values, as training would: otherwise B = 0 makes every check trivial."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".B") or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)


def test_a_lora_layer_gives_exactly_the_base_output_at_initialisation():
    base = nn.Linear(32, 16)
    layer = lora.LoRALinear(base, r=4, alpha=8)
    x = torch.randn(5, 32)
    assert torch.equal(layer(x), base(x))  # B = 0: not close, equal
    assert torch.count_nonzero(layer.A) > 0 and torch.count_nonzero(layer.B) == 0
    assert not base.weight.requires_grad and layer.A.requires_grad and layer.B.requires_grad


def test_the_update_is_alpha_over_r_times_b_a_of_rank_r():
    layer = lora.LoRALinear(nn.Linear(32, 16), r=4, alpha=8)
    with torch.no_grad():
        layer.B.normal_()
    x = torch.randn(5, 32)
    expected = x @ (layer.base.weight + 2.0 * layer.B @ layer.A).T + layer.base.bias
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert torch.linalg.matrix_rank(layer.delta_weight()) == 4


def test_lora_on_a_model_changes_nothing_at_init_and_trains_only_a_and_b(tiny_model):
    model = copy.deepcopy(tiny_model)
    names = lora.add_lora(model, r=8, alpha=16)
    assert len(names) == 7 * model.config.num_hidden_layers
    with torch.no_grad():
        assert torch.equal(model(ids()).logits, tiny_model(ids()).logits)
    trainable, total = trainable_parameters(model)
    shapes = [(m.base.out_features, m.base.in_features) for m in model.modules() if isinstance(m, lora.LoRALinear)]
    assert trainable == 8 * sum(o + i for o, i in shapes) == memory.lora_parameter_count(model.config, 8)
    assert total == trainable + trainable_parameters(tiny_model)[1]


def test_merging_gives_the_same_logits_and_plain_linear_layers(tiny_model):
    model = copy.deepcopy(tiny_model)
    lora.add_lora(model, r=8, alpha=16)
    randomise_b(model)
    with torch.no_grad():
        before = model(ids()).logits
        assert not torch.allclose(before, tiny_model(ids()).logits, atol=1e-3)  # B is no longer zero
        lora.merge_lora(model)
        after = model(ids()).logits
    assert not any(isinstance(m, lora.LoRALinear) for m in model.modules())
    assert torch.allclose(before, after, atol=1e-4)


def test_the_layer_computes_what_peft_computes(tiny_model):
    """Same A and B in both: the same logits. PEFT's LoRA is this layer, with more options."""
    ours = copy.deepcopy(tiny_model)
    lora.add_lora(ours, r=8, alpha=16)
    randomise_b(ours)
    theirs = get_peft_model(copy.deepcopy(tiny_model), LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS))
    with torch.no_grad():
        for name, module in ours.named_modules():
            if isinstance(module, lora.LoRALinear):
                peft_layer = theirs.base_model.model.get_submodule(name)
                peft_layer.lora_A["default"].weight.copy_(module.A)
                peft_layer.lora_B["default"].weight.copy_(module.B)
        assert torch.allclose(ours(ids()).logits, theirs(ids()).logits, atol=1e-5)
    assert trainable_parameters(ours)[0] == sum(p.numel() for p in theirs.parameters() if p.requires_grad)


def test_peft_merge_and_unload_matches_the_unmerged_model(tiny_model):
    model = get_peft_model(copy.deepcopy(tiny_model), LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS))
    randomise_b(model)
    with torch.no_grad():
        unmerged = model(ids()).logits
        merged = model.merge_and_unload()
        assert (unmerged - merged(ids()).logits).abs().max() < 1e-4
