"""Where the memory of training goes (lesson 04): weights, gradients, optimizer states, activations.

`estimate()` is arithmetic on a model config: any Llama or Qwen2 config, the course model's or a real
model's (`ftlab.architectures`). `measure_training_peak()` trains the same config for a few steps in a
fresh Python process and reports how much its memory grew, to check the arithmetic against.

The four parts of one training step with AdamW:
- weights      every parameter, in the dtype it is stored in (4 bytes fp32, 2 bf16, about 0.5 in 4-bit);
- gradients    one per *trainable* parameter, in that parameter's dtype;
- optimizer    AdamW keeps two running averages (momentum and variance) per trainable parameter;
- activations  what the forward pass keeps for the backward pass, per token of the batch.
"""
import json
import os
import subprocess
import sys
from dataclasses import dataclass

MIB = 2 ** 20
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
# Precisions a model trains in: (bytes a weight is stored in, bytes an activation is computed in).
# "mixed": fp32 weights (the master copy the optimizer updates), bf16 (or fp16) activations through autocast,
# what Trainer(bf16=True) does with a model loaded in fp32, and what the 16-bytes-per-parameter rule counts.
# "bf16": pure bf16, weights too: half the memory, but an update smaller than 1/256 of a weight (bf16 keeps 8
# significant bits) is rounded away, as most updates at learning rate 1e-5 are.
PRECISIONS = {"fp32": (4, 4), "mixed": (4, 2), "bf16": (2, 2)}
# Bytes AdamW keeps per trainable parameter: two running averages (momentum, variance) at the parameter's width,
# or in 8 bits with one fp32 scale per block of 256 (bitsandbytes' 8-bit AdamW; its paged variant keeps the same
# bytes and moves them to CPU memory when the GPU runs out).
OPTIMIZER_STATES = {"adamw": None, "adamw_8bit": 2 * (1 + 4 / 256)}
# bitsandbytes NF4 with double quantization (what QLoRA and Unsloth use): 4 bits per weight, plus per block
# of 64 weights one 8-bit scale, plus per 256 blocks one fp32 scale of the scales.
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
LINEARS_PER_LAYER = 7  # q, k, v, o, gate, up, down: the layers LoRA targets


@dataclass
class Shape:
    """The numbers of a decoder config that the memory arithmetic needs."""
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool
    qkv_bias: bool

    @property
    def q_dim(self):
        return self.heads * self.head_dim

    @property
    def kv_dim(self):
        return self.kv_heads * self.head_dim


def shape_of(config):
    """The Shape of a transformers config (Llama, Qwen2 and their relatives)."""
    heads = config.num_attention_heads
    return Shape(
        vocab=config.vocab_size, hidden=config.hidden_size, intermediate=config.intermediate_size,
        layers=config.num_hidden_layers, heads=heads,
        kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
        tied=bool(config.tie_word_embeddings),
        qkv_bias=config.model_type == "qwen2" or bool(getattr(config, "attention_bias", False)))


def linear_shapes_by_name(config):
    """{name: (out, in)} of the 7 linear layers of one decoder layer, by their names in a Llama model."""
    s = shape_of(config)
    return {"q_proj": (s.q_dim, s.hidden), "k_proj": (s.kv_dim, s.hidden), "v_proj": (s.kv_dim, s.hidden),
            "o_proj": (s.hidden, s.q_dim), "gate_proj": (s.intermediate, s.hidden),
            "up_proj": (s.intermediate, s.hidden), "down_proj": (s.hidden, s.intermediate)}


def linear_shapes(config):
    """(out, in) of the 7 linear layers of one decoder layer: q, k, v, o, gate, up, down."""
    return list(linear_shapes_by_name(config).values())


def parameter_count(config):
    """Parameters by part, from the config alone: {embeddings, linear, norms, lm_head, total}."""
    s = shape_of(config)
    linear = s.layers * (sum(o * i for o, i in linear_shapes(config))
                         + (s.q_dim + 2 * s.kv_dim if s.qkv_bias else 0))
    parts = {"embeddings": s.vocab * s.hidden, "linear": linear,
             "norms": (2 * s.layers + 1) * s.hidden, "lm_head": 0 if s.tied else s.vocab * s.hidden}
    parts["total"] = sum(parts.values())
    return parts


def lora_parameter_count(config, r, targets=None):
    """Parameters LoRA of rank r adds to the `targets` (names; None: all 7) linear layers of every decoder layer,
    by arithmetic: r * (in + out) per matrix."""
    shapes = linear_shapes_by_name(config)
    return shape_of(config).layers * sum(r * sum(shapes[name]) for name in (targets or shapes))


def activations_per_token(config, method="full", lora_r=8, gradient_checkpointing=False):
    """Numbers (elements, not bytes) one token keeps for the backward pass, in the decoder and in the head.

    Counted operation by operation for a Llama layer in eager PyTorch with SDPA attention
    (tests/test_memory.py checks the count against what autograd really saves):
    - each RMSNorm keeps its input, its 1/rms (one number), the normalised values (for the gradient of its
      weight; not when the norm is frozen, as in LoRA) and its output, which the next linear layers keep;
    - attention keeps q and k (after the rotary embedding), v, its output and a log-sum-exp per head;
      flash-style SDPA never stores the seq x seq attention matrix;
    - the MLP keeps gate, silu(gate), up and their product (the input of down).
    With gradient checkpointing only each layer's input is kept, and one layer is recomputed at a time.
    """
    s = shape_of(config)
    norm = 3 if method == "full" else 2  # input, normalised values (full only), output; plus 1/rms below
    attention = norm * s.hidden + 1 + 2 * s.q_dim + 2 * s.kv_dim + s.heads
    mlp = norm * s.hidden + 1 + 4 * s.intermediate
    layer = attention + mlp + (LINEARS_PER_LAYER * lora_r if method != "full" else 0)  # LoRA keeps A x
    decoder = s.layers * s.hidden + layer if gradient_checkpointing else s.layers * layer
    # The final norm: a frozen output layer needs no copy of its input, so LoRA keeps only the norm's input.
    head = (3 if method == "full" else 1) * s.hidden + 1
    return {"decoder": decoder, "head": head, "logits": 3 * s.vocab}


@dataclass
class Estimate:
    """Bytes of each part of a training step's memory at its peak."""
    weights: float
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self):
        return self.weights + self.gradients + self.optimizer + self.activations

    def parts(self):
        return {"weights": self.weights, "gradients": self.gradients, "optimizer": self.optimizer,
                "activations": self.activations}


def estimate(config, batch_size, seq_len, method="full", dtype="fp32", lora_r=8, gradient_checkpointing=False,
             optimizer="adamw"):
    """Peak memory of one training step with AdamW, in bytes, by part.

    method: "full" (every weight trains), "lora" (frozen weights, LoRA of rank `lora_r` on all 7 linear
    layers of each decoder layer), "qlora" (as lora, the frozen linear weights stored in 4-bit NF4).
    dtype: a key of PRECISIONS: "fp32", "mixed" (fp32 weights, 16-bit activations) or "bf16" (pure bf16). Full
    fine-tuning keeps the gradients and AdamW states at the weights' width; LoRA adapters, their gradients and
    states are fp32 (PEFT's default). optimizer: "adamw" or "adamw_8bit" (OPTIMIZER_STATES). The logits are
    always float32 (transformers computes the loss in float32): the head keeps the log-probabilities for the
    backward pass, and the logits and their gradient exist for a moment at the peak, so three vocabulary-sized
    rows per token.
    """
    if method not in ("full", "lora", "qlora"):
        raise ValueError(f"method must be full, lora or qlora, not {method!r}")
    if dtype not in PRECISIONS or optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"dtype must be one of {', '.join(PRECISIONS)} and optimizer one of "
                         f"{', '.join(OPTIMIZER_STATES)}, not {dtype!r}, {optimizer!r}")
    width, activation_width = PRECISIONS[dtype]
    params = parameter_count(config)
    if method == "qlora":
        weights = params["linear"] * NF4_BYTES + (params["total"] - params["linear"]) * width
    else:
        weights = params["total"] * width
    if method == "full":
        trainable, trainable_width = params["total"], width
    else:
        trainable, trainable_width = lora_parameter_count(config, lora_r), BYTES["fp32"]
        weights += trainable * trainable_width
    per_token = activations_per_token(config, method, lora_r, gradient_checkpointing)
    tokens = batch_size * seq_len
    activations = tokens * ((per_token["decoder"] + per_token["head"]) * activation_width
                            + per_token["logits"] * BYTES["fp32"])
    state_bytes = OPTIMIZER_STATES[optimizer] or 2 * trainable_width
    return Estimate(weights=weights, gradients=trainable * trainable_width, optimizer=trainable * state_bytes,
                    activations=activations)


# ---------------------------------------------------------------- measuring
# Runs in a fresh interpreter, so that nothing the notebook did before counts. For each run it trains the config
# the way the Trainer does (forward, backward, AdamW step, gradients set to None) and prints its memory as JSON.
_MEASURE = r"""
import json, sys
import torch
import transformers
from ftlab.peak_memory import PeakMemory

torch.set_num_threads(1)  # memory does not depend on threads, and a busy machine does not slow one thread down


def build(run):
    torch.manual_seed(0)
    config = getattr(transformers, run["config_class"]).from_dict(run["config"])
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    if run["method"] == "lora":
        from ftlab.lora import add_lora
        add_lora(model, r=run["lora_r"])
    model.train()
    return model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)


def train(model, optimizer, ids):
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


runs = json.loads(sys.argv[1])
# A warm-up step first: torch sets up its kernels and threads once per process, memory that is not the model's.
model, optimizer = build(dict(runs[0], method="full"))
train(model, optimizer, torch.randint(0, model.config.vocab_size, (1, 8)))
results = []
for run in runs:
    model = optimizer = None
    ids = torch.randint(0, run["config"]["vocab_size"], (run["batch_size"], run["seq_len"]))
    # malloc's settings came with the process (MALLOC_MMAP_THRESHOLD_ or not): the probe leaves them as they are
    with PeakMemory("cpu", return_freed=False) as peak:
        model, optimizer = build(run)
        for _ in range(run["steps"]):
            train(model, optimizer, ids)
    results.append({"baseline": peak.start, "used": peak.used})
print("MEASURED=" + json.dumps(results))
"""


def measure_training_peaks(runs, malloc_tuned=True):
    """Measure several training runs, one after the other in one fresh process (see measure_training_peak).

    runs: dicts with config, batch_size, seq_len and optionally method ("full" or "lora"), lora_r, steps.
    Returns one {baseline, used} per run, in bytes. Linux only: the peak is read from /proc (Colab and CI are Linux).
    """
    if not sys.platform.startswith("linux"):
        raise RuntimeError(f"measuring a training run's memory reads the process's peak from /proc, which Linux has "
                           f"and {sys.platform} does not: run lesson 04's measurements on Linux (Colab is Linux)")
    from ftlab.paths import ROOT

    specs = [{"config_class": type(run["config"]).__name__, "config": run["config"].to_dict(),
              "batch_size": run["batch_size"], "seq_len": run["seq_len"], "method": run.get("method", "full"),
              "lora_r": run.get("lora_r", 8), "steps": run.get("steps", 3)} for run in runs]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    if malloc_tuned:
        env["MALLOC_MMAP_THRESHOLD_"] = str(64 * 1024)
    done = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps(specs)], env=env, capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.split("MEASURED=")[-1])


def measure_training_peak(config, batch_size, seq_len, method="full", lora_r=8, steps=3, malloc_tuned=True):
    """Train `config` for a few steps in a fresh process; return {baseline, used} in bytes.

    `used` = peak process memory (resident set size) minus the memory in use just before the model was
    built (`baseline`): torch and transformers imported and warmed up, the batch of token ids made. The probe is
    `ftlab.peak_memory.PeakMemory`, the one lesson 07 measures with.
    malloc_tuned: ask glibc to give every block of 64 KiB or more back to the system when it is freed
    (MALLOC_MMAP_THRESHOLD_). By default glibc raises that threshold as a program frees big blocks, and then
    keeps freed memory for reuse, so the process holds more than its live tensors: set it False to see that.
    """
    run = dict(config=config, batch_size=batch_size, seq_len=seq_len, method=method, lora_r=lora_r, steps=steps)
    return measure_training_peaks([run], malloc_tuned)[0]


def mib(n_bytes):
    return n_bytes / MIB
