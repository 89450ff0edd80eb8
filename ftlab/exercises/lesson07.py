"""Checks for exercises/07_peft_compared: IA3's and prefix tuning's sizes, one parameter budget for every method,
DoRA merged by hand."""
import copy

import torch
from peft import IA3Config, PrefixTuningConfig, get_peft_model

from .. import adapters, memory, peft_compare
from . import close, expect, fail, first_difference, number, passed, tensor

VIRTUAL_TOKENS = 16  # the lesson's prefix tuning


def _peft_trainable(model, config):
    return get_peft_model(copy.deepcopy(model), config).get_nb_trainable_parameters()[0]


def ia3_and_prefix_parameters(n_ia3, n_prefix, model):
    """Exercise 1: the trainable parameters of the lesson's IA3 and prefix tuning configs on `model`."""
    n_ia3, n_prefix = number(n_ia3, "n_ia3"), number(n_prefix, "n_prefix")
    config = model.config
    layers, hidden = config.num_hidden_layers, config.hidden_size
    kv_dim = memory.shape_of(config).kv_dim
    ia3 = _peft_trainable(model, IA3Config(target_modules=["k_proj", "v_proj", "down_proj"],
                                           feedforward_modules=["down_proj"], task_type="CAUSAL_LM"))
    if n_ia3 == layers * (2 * kv_dim + hidden) and n_ia3 != ia3:
        fail(f"n_ia3 = {n_ia3:,.0f} scales down_proj's output", "down_proj is a feedforward module: IA3 scales its "
             f"INPUT, the MLP's inner activations ({config.intermediate_size} per block), not its output")
    if n_ia3 * layers == ia3:
        fail(f"n_ia3 = {n_ia3:,.0f} is one block's IA3 vectors", f"the model has {layers} blocks")
    expect(n_ia3 == ia3, f"n_ia3 = {n_ia3:,.0f} is not the size of the lesson's IA3 "
           f"({'too many' if n_ia3 > ia3 else 'too few'})",
           "one number per channel it scales: the outputs of k_proj and v_proj, the input of down_proj; per block")
    prefix = _peft_trainable(model, PrefixTuningConfig(num_virtual_tokens=VIRTUAL_TOKENS, task_type="CAUSAL_LM"))
    if n_prefix == VIRTUAL_TOKENS * hidden:
        fail(f"n_prefix = {n_prefix:,.0f} is prompt tuning's size (n d)",
             "prefix tuning puts its vectors into every layer's attention, as keys and as values")
    if 2 * n_prefix == prefix:
        fail(f"n_prefix = {n_prefix:,.0f} counts the keys or the values, not both",
             "each virtual token has a key and a value in each layer")
    if n_prefix * layers == prefix:
        fail(f"n_prefix = {n_prefix:,.0f} is one layer's prefix", f"the model has {layers} layers")
    expect(n_prefix == prefix, f"n_prefix = {n_prefix:,.0f} is not the size of prefix tuning with "
           f"{VIRTUAL_TOKENS} virtual tokens ({'too many' if n_prefix > prefix else 'too few'})",
           "2 n L d_kv: a key and a value of the key-value width for each of n tokens in each of L layers")
    passed(f"IA3 trains {ia3:,} numbers and prefix tuning {prefix:,}, "
           f"{ia3 / model.num_parameters():.2%} and {prefix / model.num_parameters():.2%} of the model")


# ---------------------------------------------------------------- exercise 2
SETTINGS = ("LoRA rank", "bottleneck", "virtual tokens")


def _sizes(config):
    """The parameters each method trains at a setting s: LoRA of rank s on all seven linear layers, a Houlsby
    adapter with bottleneck s, prompt tuning with s virtual tokens."""
    return {"LoRA rank": lambda s: memory.lora_parameter_count(config, s),
            "bottleneck": lambda s: adapters.adapter_parameters(config.hidden_size, config.num_hidden_layers, s,
                                                                "houlsby"),
            "virtual tokens": lambda s: s * config.hidden_size}


def _lora_without_gqa(config):
    """LoRA's size per rank when k_proj and v_proj are taken as wide as q_proj (the mistake on GQA models)."""
    shapes = [(config.hidden_size if out < config.hidden_size and inp == config.hidden_size else out, inp)
              for out, inp in memory.linear_shapes(config)]
    return lambda r: config.num_hidden_layers * r * sum(out + inp for out, inp in shapes)


def _largest(size, budget):
    setting = 0
    while size(setting + 1) <= budget:
        setting += 1
    return setting


def budget_cases(model):
    """(name, config, budget): the course model at two budgets (the lesson's about 16k and more), and a real
    architecture with grouped-query attention, from its published config (no download)."""
    from ..architectures import real_config

    return [("the course model", model.config, 16_000), ("the course model", model.config, 100_000),
            ("Qwen2.5-0.5B", real_config("Qwen2.5-0.5B"), 5_000_000)]


def equal_budget(settings_fn, model):
    """Exercise 2: `settings_fn(config, budget)` returns, for each method, its largest setting whose trainable
    parameters stay within `budget`: {"LoRA rank": r, "bottleneck": b, "virtual tokens": n}."""
    found = []
    for name, config, budget in budget_cases(model):
        got = settings_fn(config, budget)
        expect(isinstance(got, dict) and set(got) == set(SETTINGS),
               f"settings_fn returned {got!r:.120}", f"return a dict with the keys {', '.join(SETTINGS)}")
        for key, size in _sizes(config).items():
            value = number(got[key], f'settings["{key}"]')
            expect(value == int(value) and value >= 0, f"{name}, budget {budget:,}: {key} {value:g}",
                   "a setting is a whole number")
            value, expected = int(value), _largest(size, budget)
            if key == "LoRA rank" and value != expected and value == _largest(_lora_without_gqa(config), budget):
                fail(f"{name}, budget {budget:,}: LoRA rank {value} counts k_proj and v_proj as wide as q_proj",
                     "this model has grouped-query attention: k_proj and v_proj output num_key_value_heads x "
                     "head_dim numbers, fewer than hidden_size (memory.linear_shapes(config) has the shapes)")
            if key == "bottleneck" and value > expected and value == _largest(lambda b: size(b) // 2, budget):
                fail(f"{name}, budget {budget:,}: bottleneck {value} is sized for one insertion per block",
                     "a Houlsby adapter has two insertions per block, one after attention, one after the MLP")
            if value > expected:
                fail(f"{name}, budget {budget:,}: {key} {value} trains {size(value):,} parameters, over the "
                     f"budget", "count with the formulas of the lesson's first table")
            if value < expected:
                fail(f"{name}, budget {budget:,}: {key} {value + 1} trains {size(value + 1):,} parameters, still "
                     f"within the budget", "the largest setting that fits: one more would still fit")
        found.append((name, budget, {key: int(got[key]) for key in SETTINGS}, config))
    name, budget, settings, config = found[0]
    sizes = _sizes(config)
    passed(f"{name} with {budget:,} parameters: " + ", ".join(
        f"{key} {settings[key]} ({sizes[key](settings[key]):,})" for key in SETTINGS)
        + f". One rank of LoRA costs {sizes['LoRA rank'](1):,} parameters here: on a narrow model LoRA's "
        "smallest step is a large one")


# ---------------------------------------------------------------- exercise 3
def _q_proj(peft_model, layer):
    return peft_model.base_model.model.get_submodule(f"model.layers.{layer}.self_attn.q_proj")


@torch.no_grad()
def dora_merged_weight(weight, peft_model, layer=0):
    """Exercise 3: block `layer`'s q_proj weight after merging a DoRA adapter into it, computed by hand."""
    dora = _q_proj(peft_model, layer)
    expect("default" in getattr(dora, "lora_magnitude_vector", {}), "this model's q_proj has no DoRA magnitude",
           "build it with LoraConfig(..., use_dora=True)")
    expected = copy.deepcopy(peft_model).merge_and_unload().get_submodule(
        f"model.layers.{layer}.self_attn.q_proj").weight.float()
    got = tensor(weight, "merged", shape=expected.shape)
    if close(got, expected, rel=1e-4, abs_tol=1e-5):
        base = dora.base_layer.weight.float()
        passed(f"your merged DoRA weight is PEFT's merge_and_unload(): each output channel of W + s B A, rescaled "
               f"to its learned length (moved W by up to {(expected - base).abs().max().item():.4f})")
        return
    W = dora.base_layer.weight.float()
    update = dora.scaling["default"] * (dora.lora_B["default"].weight.float() @ dora.lora_A["default"].weight.float())
    m = dora.lora_magnitude_vector["default"].weight.float()
    direction = W + update
    if close(got, direction, rel=1e-4, abs_tol=1e-5):
        fail("`merged` is the plain LoRA merge, W + s B A", "DoRA then rescales each output channel (each row): "
             "magnitude / norm of that row of W + s B A")
    if close(got, direction / direction.norm(dim=1, keepdim=True), rel=1e-4, abs_tol=1e-5):
        fail("`merged` has rows of length 1: the direction without the magnitude",
             "multiply each row by the learned magnitude: q_proj.lora_magnitude_vector['default'].weight")
    if close(got, m[:, None] * direction / direction.norm(dim=0, keepdim=True), rel=1e-4, abs_tol=1e-5):
        fail("`merged` divides by the norms of the columns", "the norm is per output channel: over each row, "
             "torch.linalg.norm(W + s B A, dim=1)")
    if close(got, m[:, None] * direction / W.norm(dim=1, keepdim=True), rel=1e-4, abs_tol=1e-5):
        fail("`merged` divides by the norms of W's rows, before the update", "the norm is taken of W + s B A")
    no_scale = W + update / dora.scaling["default"]
    if close(got, m[:, None] * no_scale / no_scale.norm(dim=1, keepdim=True), rel=1e-4, abs_tol=1e-5):
        fail("`merged` leaves out LoRA's scale", "the update is scaling['default'] * B @ A")
    fail(f"`merged` differs from what merge_and_unload() gives, first {first_difference(got, expected)}",
         "m[:, None] * (W + s B A) / norm of each row of (W + s B A), with W = q_proj.base_layer.weight, "
         "s = q_proj.scaling['default'], m = q_proj.lora_magnitude_vector['default'].weight")
