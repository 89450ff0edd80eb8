"""Checks for exercises/03_lora: LoRA's parameter count, its scale (with and without rsLoRA), merging by hand."""
import copy

import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from ..lora import LLAMA_LINEARS
from . import close, expect, fail, first_difference, number, passed, tensor

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]


def _lora_trainable(model, targets, r=8):
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets)))
    return peft_model.get_nb_trainable_parameters()[0]


def attention_lora_parameters(n, model):
    """Exercise 1: the parameters LoRA of rank 8 on q, k, v and o adds to `model`."""
    n = number(n, "n_lora")
    reference = _lora_trainable(model, ATTENTION)
    layers = model.config.num_hidden_layers
    if n == _lora_trainable(model, LLAMA_LINEARS):
        fail(f"{n:,.0f} counts all seven linear layers of each block",
             "attention only: q_proj, k_proj, v_proj and o_proj, not the MLP's gate_proj, up_proj, down_proj")
    if n * layers == reference:
        fail(f"{n:,.0f} is one block's share", f"the model has {layers} blocks, each with its own LoRA matrices")
    expect(n == reference, f"{n:,.0f} is not what LoRA r=8 on the attention layers adds "
           f"({'too many' if n > reference else 'too few'})",
           "each adapted layer of shape (out, in) gets A (r x in) and B (out x r): r * (in + out) parameters; "
           "or build it with get_peft_model(model, LoraConfig(...)) and count the trainable parameters")
    total = model.num_parameters()
    passed(f"LoRA r=8 on the attention layers adds {reference:,} parameters, {reference / total:.1%} of the "
           f"model's {total:,}")


CASES = [(16, 8, False), (16, 8, True), (32, 64, False), (32, 64, True), (8, 1, True)]


def _peft_scaling(alpha, r, use_rslora):
    """The scale PEFT itself applies to B A, read from a LoRA layer it built."""
    toy = nn.Sequential()
    toy.add_module("proj", nn.Linear(4, 4))
    peft_model = get_peft_model(toy, LoraConfig(r=r, lora_alpha=alpha, use_rslora=use_rslora, target_modules=["proj"]))
    return peft_model.base_model.model.proj.scaling["default"]


def lora_scale(scale):
    """Exercise 2: `scale(alpha, r, use_rslora)` is the factor PEFT multiplies B A by."""
    for alpha, r, use_rslora in CASES:
        got, expected = number(scale(alpha, r, use_rslora), "scale(alpha, r, use_rslora)"), _peft_scaling(alpha, r, use_rslora)
        if not close(got, expected):
            hint = ("rsLoRA divides by the square root of the rank: alpha / sqrt(r)" if use_rslora
                    else "plain LoRA divides alpha by the rank: alpha / r")
            fail(f"scale(alpha={alpha}, r={r}, use_rslora={use_rslora}) = {got:g}, PEFT uses {expected:g}", hint)
    passed("your scale is PEFT's, with and without rsLoRA: at r=64 rsLoRA's update is 8 times stronger than "
           "plain LoRA's for the same alpha")


def _q_proj(model, layer):
    return model.get_submodule(f"model.layers.{layer}.self_attn.q_proj")


@torch.no_grad()
def merged_weight(weight, peft_model, layer=0):
    """Exercise 3: the q_proj weight of block `layer` after merging LoRA into it, computed by hand."""
    merged = copy.deepcopy(peft_model).merge_and_unload()
    expected = _q_proj(merged, layer).weight.float()
    lora_layer = peft_model.base_model.model.get_submodule(f"model.layers.{layer}.self_attn.q_proj")
    base = lora_layer.base_layer.weight.float()
    got = tensor(weight, "merged")
    expect(got.shape == expected.shape, f"`merged` has shape {tuple(got.shape)}, q_proj's weight {tuple(expected.shape)}",
           "B (out x r) @ A (r x in) has the shape of W (out x in): multiply B by A, not A by B")
    if not close(got, expected, rel=1e-4, abs_tol=1e-5):
        if close(got, base):
            fail("`merged` is the base weight W itself", "add LoRA's update: W + scaling * B @ A")
        delta = lora_layer.lora_B["default"].weight.float() @ lora_layer.lora_A["default"].weight.float()
        if close(got, base + delta):
            fail("`merged` is W + B @ A without the scale",
                 "multiply the update by the layer's scaling['default'] (alpha / r)")
        fail(f"`merged` differs from what merge_and_unload() gives, first {first_difference(got, expected)}",
             "W = q_proj.base_layer.weight; A = q_proj.lora_A['default'].weight; B = q_proj.lora_B['default'].weight")
    passed(f"your merged weight equals PEFT's merge_and_unload(): the update changed W by at most "
           f"{(expected - base).abs().max().item():.4f}")
