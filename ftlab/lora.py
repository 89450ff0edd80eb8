"""LoRA from scratch (lesson 03): the layer PEFT and Unsloth build for you, in a few lines you can read.

A frozen linear layer computes  y = W x  (W is out x in). LoRA adds a trainable low-rank update:

    y = W x + (alpha / r) * B A x        A: r x in, B: out x r, r much smaller than in and out

so training changes W by  delta W = (alpha / r) B A,  a matrix of rank at most r, with r * (in + out)
parameters instead of in * out. A starts random and B starts at zero: before training B A = 0 and the
layer gives exactly the base model's output. After training, delta W can be added into W once (merging):
the model is then as fast as the base model and needs no LoRA code at all.
"""
import math

import torch
from torch import nn

# The linear layers of a Llama (or Qwen) decoder block, the usual LoRA targets.
LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable low-rank update: base(x) + (alpha / r) * B(A(dropout(x)))."""

    def __init__(self, base: nn.Linear, r=8, alpha=16, dropout=0.0):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)  # the pretrained weight stays as it is
        self.r, self.alpha, self.scale = r, alpha, alpha / r
        self.A = nn.Parameter(torch.empty(r, base.in_features, dtype=base.weight.dtype, device=base.weight.device))
        self.B = nn.Parameter(torch.zeros(base.out_features, r, dtype=base.weight.dtype, device=base.weight.device))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as nn.Linear (and PEFT) initialise a weight
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        return self.base(x) + self.scale * (self.dropout(x) @ self.A.T @ self.B.T)

    def delta_weight(self):
        """The update LoRA adds to W: (alpha / r) B A, the same shape as W, rank at most r."""
        return self.scale * (self.B @ self.A)

    def merged(self):
        """A plain `nn.Linear` with W + (alpha / r) B A: the same outputs, no LoRA code left."""
        layer = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                          dtype=self.base.weight.dtype, device=self.base.weight.device)
        with torch.no_grad():
            layer.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                layer.bias.copy_(self.base.bias)
        return layer

    def extra_repr(self):
        return f"r={self.r}, alpha={self.alpha}"


def add_lora(model, r=8, alpha=16, dropout=0.0, targets=LLAMA_LINEARS):
    """Freeze `model` and replace each linear layer whose name ends with one of `targets` by a LoRALinear.

    Returns the list of replaced module names. Only the A and B matrices remain trainable.
    """
    model.requires_grad_(False)
    names = [name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets]
    for name in names:
        parent, child = _parent(model, name)
        setattr(parent, child, LoRALinear(getattr(parent, child), r=r, alpha=alpha, dropout=dropout))
    return names


def merge_lora(model):
    """Replace every LoRALinear by its merged `nn.Linear`, in place. Returns the model."""
    names = [name for name, module in model.named_modules() if isinstance(module, LoRALinear)]
    for name in names:
        parent, child = _parent(model, name)
        setattr(parent, child, getattr(parent, child).merged())
    return model


def _parent(model, name):
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child
