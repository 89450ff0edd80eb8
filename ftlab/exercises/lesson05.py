"""Checks for exercises/05_adapters: a Pfeiffer adapter's size, an adapter written by hand, a stack set up to train."""
import copy

import torch

from .. import adapters
from . import expect, fail, number, passed


def _adapter_size(model, placement, r=16):
    probe = copy.deepcopy(model)
    adapters.add_adapter(probe, "probe", bottleneck_size=r, placement=placement)
    return sum(t.numel() for t in adapters.adapter_state_dict(probe, "probe").values())


def pfeiffer_parameters(n, model):
    """Exercise 1: the parameters of a Pfeiffer adapter with bottleneck 16 on `model`."""
    n = number(n, "n_pfeiffer")
    reference = _adapter_size(model, "pfeiffer")
    hidden, layers = model.config.hidden_size, model.config.num_hidden_layers
    if n == _adapter_size(model, "houlsby"):
        fail(f"{n:,.0f} is a Houlsby adapter: two per block", "Pfeiffer puts one adapter per block, after the MLP")
    if n == 2 * hidden * 16 * layers:
        fail(f"{n:,.0f} counts the weights but not the biases", "each insertion has biases too: r in down, hidden in up")
    if n * layers == reference:
        fail(f"{n:,.0f} is one block's adapter", f"the model has {layers} blocks")
    expect(n == reference, f"{n:,.0f} is not the size of a Pfeiffer adapter with r=16 ({'too many' if n > reference else 'too few'})",
           "per insertion: down (hidden x r weights + r biases) and up (r x hidden weights + hidden biases); "
           "or add one with adapters.add_adapter and count its parameters")
    passed(f"a Pfeiffer adapter, r=16: {reference:,} parameters, {reference / model.num_parameters():.1%} of the model")


def adapter_module(adapter_class, hidden=32, r=4):
    """Exercise 2: `adapter_class(hidden_size, bottleneck_size)` is a bottleneck adapter: h + up(relu(down(h)))."""
    torch.manual_seed(0)
    mine = adapter_class(hidden, r)
    for part in ("down", "up"):
        expect(isinstance(getattr(mine, part, None), torch.nn.Linear), f"your adapter has no nn.Linear called `{part}`",
               "name the layers self.down = nn.Linear(hidden_size, bottleneck_size) and self.up = nn.Linear(bottleneck_size, "
               "hidden_size)")
    expect(tuple(mine.down.weight.shape) == (r, hidden) and tuple(mine.up.weight.shape) == (hidden, r),
           f"down is {tuple(mine.down.weight.shape)} and up {tuple(mine.up.weight.shape)} (out x in)",
           "down maps hidden_size to bottleneck_size, up maps it back")
    h = torch.randn(3, 5, hidden)
    with torch.no_grad():
        start = mine(h)
    expect(start.shape == h.shape, f"your adapter returns shape {tuple(start.shape)} for input {tuple(h.shape)}",
           "return a tensor shaped like its input: h + up(act(down(h)))")
    expect(torch.allclose(start, h), "a new adapter changes its input: the model would not start where it was",
           "initialise the up-projection's weight and bias to zero (nn.init.zeros_)")
    reference = adapters.BottleneckAdapter(hidden, r)
    with torch.no_grad():
        for layer in (reference.down, reference.up):
            layer.weight.normal_(std=0.5)
            layer.bias.normal_(std=0.5)
        mine.load_state_dict(reference.state_dict(), strict=False)
        got, expected = mine(h), reference(h)
        linear = h + reference.up(reference.down(h))
    if torch.allclose(got, linear, atol=1e-5):
        fail("with trained weights your adapter computes h + up(down(h)): no non-linearity",
             "put the ReLU between the two projections: it is what makes an adapter more than a low-rank matrix")
    if torch.allclose(got, expected - h, atol=1e-5):
        fail("your adapter returns up(relu(down(h))) without h", "add the input back: the skip connection")
    expect(torch.allclose(got, expected, atol=1e-5), "with the same trained weights your adapter differs from "
           f"ftlab's by up to {(got - expected).abs().max().item():.3g}", "h + up(relu(down(h)))")
    passed(f"your adapter starts as the identity and computes what ftlab's BottleneckAdapter computes "
           f"({sum(p.numel() for p in mine.parameters())} parameters at hidden {hidden}, r {r})")


def stack_for_training(model):
    """Exercise 3: `model` has adapters "math" and "story", both active as a stack (math first), and only the
    story adapter trains."""
    names = sorted(adapters.adapter_configs(model))
    expect({"math", "story"} <= set(names), f"the model's adapters are {names}",
           'add both: adapters.add_adapter(model, "math", ...) and adapters.add_adapter(model, "story", ...)')
    active = adapters.active_adapters(model)
    if active == ["story", "math"]:
        fail("the stack runs story first, then math", 'enable(model, "math", "story"): the order is the order they run in')
    expect(active == ["math", "story"], f"the active adapters are {active}",
           'stack both: adapters.enable(model, "math", "story") (train_adapter would leave only one active)')
    story = {f"{name}" for name in adapters.adapter_state_dict(model, "story")}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    math_trainable = sorted(n for n in trainable if ".bottlenecks.math." in n)
    expect(not math_trainable, f"{len(math_trainable)} parameters of the math adapter train, e.g. {math_trainable[:1]}",
           "freeze everything, then set requires_grad only on parameters with '.bottlenecks.story.' in their name")
    others = sorted(trainable - story)
    expect(not others, f"{len(others)} parameters outside the story adapter train, e.g. {others[:2]}",
           "model.requires_grad_(False) first")
    expect(trainable == story, f"{len(story - trainable)} of the story adapter's parameters are frozen",
           "every parameter with '.bottlenecks.story.' in its name must train")
    passed(f"stack math -> story, {sum(p.numel() for n, p in model.named_parameters() if n in story):,} parameters "
           "train: the story adapter learns on top of what the math adapter makes of the hidden states")
