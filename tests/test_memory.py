"""The memory arithmetic (lesson 04): parameter counts from configs, activations as autograd keeps them,
and the whole estimate against the measured memory of a training process."""
import pytest
import torch
from transformers import LlamaForCausalLM

from ftlab import architectures, base_model, lora, memory


@pytest.fixture(scope="module")
def course_config(trained_tokenizer):
    return base_model.base_model_config(trained_tokenizer)


def test_parameter_count_from_the_config_matches_the_course_model(course_config):
    model = LlamaForCausalLM(course_config)
    assert memory.parameter_count(course_config)["total"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(architectures.REAL_MODELS))
def test_parameter_count_from_the_config_matches_the_real_models(name):
    model = architectures.model_without_weights(name)
    assert memory.parameter_count(architectures.real_config(name))["total"] == sum(
        p.numel() for p in model.parameters())


def saved_for_backward(model, ids):
    """Elements per token that autograd keeps for the backward pass: every tensor saved by an operation,
    each storage once, the parameters left out (they are weights, not activations)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids)
    return sum(saved.values()) / 4 / ids.numel()


@pytest.mark.parametrize("method", ["full", "lora"])
def test_activations_per_token_are_what_autograd_keeps(course_config, method):
    torch.manual_seed(0)
    model = LlamaForCausalLM(course_config).train()
    if method == "lora":
        lora.add_lora(model, r=8)
    counted = saved_for_backward(model, torch.randint(0, course_config.vocab_size, (4, 64)))
    per_token = memory.activations_per_token(course_config, method, lora_r=8)
    # The estimate counts the logits three times (kept log-probabilities, logits, their gradient); autograd keeps one.
    kept = per_token["decoder"] + per_token["head"] + per_token["logits"] / 3
    assert abs(kept - counted) / counted < 0.02, (kept, counted)


def test_estimate_parts_for_full_fine_tuning_in_fp32(course_config):
    n = memory.parameter_count(course_config)["total"]
    e = memory.estimate(course_config, batch_size=2, seq_len=8)
    assert (e.weights, e.gradients, e.optimizer) == (4 * n, 4 * n, 8 * n)  # 16 bytes per parameter
    assert e.total == sum(e.parts().values())


def test_mixed_precision_keeps_16_bytes_per_parameter_and_8_bit_adamw_shrinks_the_states(course_config):
    n = memory.parameter_count(course_config)["total"]
    mixed = memory.estimate(course_config, 2, 8, "full", "mixed")
    assert (mixed.weights + mixed.gradients + mixed.optimizer) == 16 * n  # fp32 master weights, grads, two states
    pure = memory.estimate(course_config, 2, 8, "full", "bf16")
    assert (pure.weights + pure.gradients + pure.optimizer) == 8 * n and pure.activations == mixed.activations
    eight_bit = memory.estimate(course_config, 2, 8, "full", "mixed", optimizer="adamw_8bit")
    assert eight_bit.optimizer == pytest.approx(2 * n, rel=0.02) and eight_bit.weights == mixed.weights
    with pytest.raises(ValueError, match="optimizer"):
        memory.estimate(course_config, 2, 8, optimizer="sgd")


def test_lora_and_qlora_shrink_what_they_should():
    config = architectures.real_config("Qwen2.5-7B")
    full = memory.estimate(config, 1, 1024, "full", "bf16")
    lora_ = memory.estimate(config, 1, 1024, "lora", "bf16")
    qlora = memory.estimate(config, 1, 1024, "qlora", "bf16")
    assert lora_.optimizer < full.optimizer / 100 and lora_.weights < full.weights * 1.01
    assert qlora.weights < lora_.weights / 2.5
    assert qlora.gradients == lora_.gradients


def test_the_estimate_is_within_15_percent_of_the_measured_process_memory(course_config):
    """The lesson's claim, on a small batch to keep the test short: a fresh process trains the course model."""
    measured = memory.measure_training_peak(course_config, batch_size=8, seq_len=128)
    estimated = memory.estimate(course_config, batch_size=8, seq_len=128).total
    assert abs(estimated - measured["used"]) / measured["used"] < 0.15, (estimated, measured)
