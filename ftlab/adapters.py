"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020) for any Llama-style model.

PEFT has no bottleneck adapter, and AdapterHub's `adapters` library pins transformers 4.x (this course runs
transformers 5), so here is one in a page. An adapter is a small two-layer network with a skip connection,
inserted after a sublayer of every block:

    h  ->  h + W_up · relu(W_down · h)        W_down: hidden -> r,  W_up: r -> hidden,  r << hidden

W_up starts at zero, so a new adapter is exactly the identity and the model is unchanged until it trains.
The adapters live inside the model (so the Trainer and the optimizer see them) and run through forward hooks
on the sublayers (so the model's own code and weights stay as they are). The API follows PEFT and AdapterHub:
add_adapter, train_adapter, enable (one name: switch; several: stack), disable, save_adapter, load_adapter,
print_trainable_parameters.
"""
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .parameters import trainable_parameters
from .paths import atomic_dir

# Where the adapters go in each block. Houlsby: after attention and after the MLP (twice the adapters);
# Pfeiffer: after the MLP only, which measured as good at half the parameters and half the added latency.
PLACEMENTS = {"houlsby": ("self_attn", "mlp"), "pfeiffer": ("mlp",)}
NON_LINEARITIES = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"


class BottleneckAdapter(nn.Module):
    """h + up(act(down(h))): down-projection to `bottleneck_size`, non-linearity, up-projection, residual."""

    def __init__(self, hidden_size, bottleneck_size, non_linearity="relu", device=None):
        super().__init__()
        self.down = nn.Linear(hidden_size, bottleneck_size, device=device)
        self.act = NON_LINEARITIES[non_linearity]()
        self.up = nn.Linear(bottleneck_size, hidden_size, device=device)
        nn.init.zeros_(self.up.weight)  # zero up-projection: the adapter starts as the identity
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden):
        # The adapter computes in its own dtype (fp32) even when the model runs in bf16, then casts back.
        x = hidden.to(self.down.weight.dtype)
        return hidden + self.up(self.act(self.down(x))).to(hidden.dtype)


def decoder_blocks(model):
    """The Llama-style blocks of a model (modules with `self_attn` and `mlp`), also inside a PEFT wrapper."""
    return [m for m in model.modules() if hasattr(m, "self_attn") and hasattr(m, "mlp")]


def _run_active_adapters(sublayer, args, output):
    """Forward hook on a sublayer: pass its output through the active adapters, in order (a stack)."""
    hidden = output[0] if isinstance(output, tuple) else output  # attention returns (output, weights)
    for name in sublayer.active_bottlenecks:
        hidden = sublayer.bottlenecks[name](hidden)
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def _sublayers(model, placement):
    return [getattr(block, part) for block in decoder_blocks(model) for part in PLACEMENTS[placement]]


def add_adapter(model, name, bottleneck_size=16, placement="pfeiffer", non_linearity="relu"):
    """Insert a new adapter called `name` into every block (inactive until `enable` or `train_adapter`)."""
    if name in adapter_configs(model):
        raise ValueError(f"the model already has an adapter called {name!r}")
    config = {"bottleneck_size": bottleneck_size, "placement": placement, "non_linearity": non_linearity}
    hidden_size = model.config.get_text_config().hidden_size
    for sublayer in _sublayers(model, placement):
        if not hasattr(sublayer, "bottlenecks"):  # the first adapter on this sublayer: add the hook once
            sublayer.bottlenecks = nn.ModuleDict()
            sublayer.active_bottlenecks = []
            sublayer.register_forward_hook(_run_active_adapters)
        device = next(sublayer.parameters()).device
        sublayer.bottlenecks[name] = BottleneckAdapter(hidden_size, bottleneck_size, non_linearity, device)
    if not hasattr(model, "bottleneck_configs"):
        model.bottleneck_configs = {}
    model.bottleneck_configs[name] = config
    return model


def adapter_configs(model):
    """{name: config} of the adapters in the model."""
    return getattr(model, "bottleneck_configs", {})


def _hooked_sublayers(model):
    return [m for m in model.modules() if hasattr(m, "active_bottlenecks")]


def enable(model, *names):
    """Make `names` the active adapters: one name switches to that adapter, several stack them in that order."""
    for name in names:
        if name not in adapter_configs(model):
            raise KeyError(f"no adapter called {name!r}; the model has {sorted(adapter_configs(model))}")
    for sublayer in _hooked_sublayers(model):
        sublayer.active_bottlenecks = [n for n in names if n in sublayer.bottlenecks]
    return model


def disable(model):
    """No adapter runs: the model computes exactly what the base model computes."""
    return enable(model)


def active_adapters(model):
    return list(dict.fromkeys(n for m in _hooked_sublayers(model) for n in m.active_bottlenecks))


def train_adapter(model, name):
    """Freeze every weight except adapter `name`'s, and make it the only active adapter (as AdapterHub does)."""
    enable(model, name)
    for param_name, param in model.named_parameters():
        param.requires_grad = f".bottlenecks.{name}." in param_name
    return model


def adapter_state_dict(model, name):
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if f".bottlenecks.{name}." in k}


def save_adapter(model, name, directory):
    """Save one adapter as safetensors with its config (a few kB), atomically; the base model is not saved."""
    with atomic_dir(directory) as tmp:
        save_file(adapter_state_dict(model, name), tmp / WEIGHTS_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps({"name": name, **adapter_configs(model)[name]}, indent=1))
    return Path(directory)


def load_adapter(model, directory, name=None):
    """Add the adapter saved in `directory` to `model` (under `name`, default: its saved name); returns the name."""
    config = json.loads((Path(directory) / CONFIG_FILE).read_text())
    saved_name = config.pop("name")
    name = name or saved_name
    add_adapter(model, name, **config)
    weights = load_file(Path(directory) / WEIGHTS_FILE)
    weights = {k.replace(f".bottlenecks.{saved_name}.", f".bottlenecks.{name}."): v for k, v in weights.items()}
    missing = set(adapter_state_dict(model, name)) - set(weights)
    if missing:
        raise ValueError(f"{directory} does not fit this model: no weights for {sorted(missing)[:3]} ...")
    model.load_state_dict(weights, strict=False)
    return name


def print_trainable_parameters(model):
    """The report PEFT's `print_trainable_parameters()` prints, for any model."""
    trainable, total = trainable_parameters(model)
    print(f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}")


def adapter_parameters(hidden_size, num_layers, bottleneck_size, placement="pfeiffer"):
    """Parameters of one adapter on a model, by arithmetic: per insertion 2·hidden·r weights + r + hidden biases."""
    return num_layers * len(PLACEMENTS[placement]) * (2 * hidden_size * bottleneck_size + bottleneck_size + hidden_size)


@torch.no_grad()
def max_output_difference(model, batch):
    """Largest absolute difference between the logits with no adapter and with the currently active ones."""
    active = active_adapters(model)
    with_adapters = model(**batch).logits
    disable(model)
    without = model(**batch).logits
    enable(model, *active)
    return (with_adapters - without).abs().max().item()
