"""Lesson 07's measurements: peak memory, one table row from a real run, and parameter counts of real models."""
import json
import subprocess
import sys

import pytest
import torch
from peft import LoraConfig, PromptTuningConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, set_seed
from trl import SFTTrainer

from ftlab import adapters, architectures, base_model, chat, data, lora, memory, peak_memory, peft_compare, sft
from ftlab.paths import ROOT
from ftlab.profiles import PROFILES

MIB = 2 ** 20
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU peak is read from /proc")


@linux_only
def test_peak_memory_sees_what_a_block_allocates_even_after_a_bigger_block():
    with peak_memory.PeakMemory("cpu") as big:
        x = torch.ones(200 * MIB // 4)  # 200 MiB, touched
        del x
    with peak_memory.PeakMemory("cpu") as small:
        y = torch.ones(40 * MIB // 4)
        del y
    assert 190 * MIB < big.used < 260 * MIB, big.used / MIB
    # freed memory went back to the system, so the second block is not hidden in the first one's leftovers
    assert 35 * MIB < small.used < 100 * MIB, small.used / MIB


REUSED_HOLE = """
import ctypes, torch
from ftlab import peak_memory
libc = ctypes.CDLL(None)
libc.mallopt(-3, 2 ** 29)  # M_MMAP_THRESHOLD: large blocks from malloc's heap, as after its threshold has risen
libc.mallopt(-1, 2 ** 30)  # M_TRIM_THRESHOLD: and freed ones stay there
hole = torch.ones(60 * 2 ** 18)
keep = torch.ones(1000)  # after the hole, so the heap's top cannot shrink over it
del hole
with peak_memory.PeakMemory("cpu") as peak:
    y = torch.ones(40 * 2 ** 18)  # 40 MiB, fits in the freed 60 MiB
    del y
print(peak.used)
"""


@linux_only
def test_peak_memory_sees_a_block_that_reuses_memory_malloc_had_freed():
    # What CI met: a tensor placed in a hole that malloc kept resident from earlier work added nothing to the
    # process's memory, and the block read 0. Its own process, because the malloc settings are process-wide.
    out = subprocess.run([sys.executable, "-c", REUSED_HOLE], capture_output=True, text=True, check=True)
    used = int(out.stdout.split()[-1])
    assert 35 * MIB < used < 100 * MIB, used / MIB


@pytest.mark.parametrize("config_class,model_class", [(LlamaConfig, LlamaForCausalLM), (Qwen2Config, Qwen2ForCausalLM)])
def test_lora_count_by_arithmetic_equals_peft(config_class, model_class):
    config = config_class(vocab_size=64, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                          num_attention_heads=6, num_key_value_heads=2)  # grouped-query: k, v narrower than q
    for targets in peft_compare.LORA_TARGETS.values():
        torch.manual_seed(0)
        model = get_peft_model(model_class(config), LoraConfig(r=4, target_modules=list(targets)))
        assert model.get_nb_trainable_parameters()[0] == memory.lora_parameter_count(config, 4, targets)


def test_real_models_on_the_meta_device():
    config = architectures.real_config("Qwen2.5-0.5B")
    everything = peft_compare.LORA_TARGETS["all linear"]
    built = peft_compare.lora_parameters_on_meta("Qwen2.5-0.5B", 16, everything)
    # 24 layers x 16 x (in + out) summed over q, k, v, o, gate, up, down
    assert built == memory.lora_parameter_count(config, 16, everything) == 24 * 16 * 22912
    assert (peft_compare.adapter_parameters_on_meta("Qwen2.5-0.5B", 64, "pfeiffer")
            == adapters.adapter_parameters(896, 24, 64, "pfeiffer"))


def test_seed_check_names_what_falls_outside():
    rows = [dict(family="LoRA", setting="r=8, q, v", model=m, share=s) for m, s in [("a", 0.0005), ("b", 0.0004)]]
    rows += [dict(family="LoRA", setting="r=16, all linear", model=m, share=s) for m, s in [("a", 0.02), ("b", 0.005)]]
    sentences = peft_compare.outline_check(rows, "LoRA")
    assert sentences[0] == "LoRA: 1 of 4 settings fall inside the rule of thumb, 0.1% to 1%."
    assert "below it: LoRA r=8, q, v on every model (0.04% to 0.05%)." in sentences[1]
    assert "above it: LoRA r=16, all linear on a (2.00%)." in sentences[2]
    assert len(sentences) == 3


def test_learning_rates_by_model_kind_and_folder_names():
    cpu, real, gpu = PROFILES["cpu"], PROFILES["real"], PROFILES["gpu"]
    assert peft_compare.learning_rate(cpu, "LoRA") == cpu.stage("peft_compare").learning_rate
    # the real and gpu profiles train the same kind of model: the same rates, whatever the profile's name
    for method in ("LoRA", "full fine-tuning", "IA3", "adapter (Houlsby)", "P-tuning"):
        assert peft_compare.learning_rate(real, method) == peft_compare.learning_rate(gpu, method)
    assert peft_compare.learning_rate(real, "full fine-tuning") < peft_compare.learning_rate(cpu, "full fine-tuning")
    assert peft_compare.slug("adapter (Houlsby)") == "adapter-houlsby"


@pytest.mark.parametrize("profile", ["cpu", "real"])
def test_the_rates_are_those_chosen_on_the_validation_split(profile):
    """scripts/lr_select.py recorded each method's validation loss per rate (docs/lr-select-07-<profile>.json):
    lesson 07 trains each method at the rate with the lowest."""
    chosen = json.loads((ROOT / "docs" / f"lr-select-07-{profile}.json").read_text())
    assert set(chosen) == {"full fine-tuning", "LoRA", "DoRA", "IA3", "adapter (Houlsby)", "prompt tuning",
                           "prefix tuning", "P-tuning"}
    for method, losses in chosen.items():
        best = min(losses, key=losses.get)
        assert peft_compare.learning_rate(PROFILES[profile], method) == float(best), (method, losses)


def tiny_run(tokenizer, model, output_dir):
    chats = data.load("sft")
    args = sft.sft_config(output_dir, PROFILES["cpu"], "peft_compare", max_steps=3, per_device_train_batch_size=4,
                          eval_strategy="no", disable_tqdm=True)
    rows = chats["train"].select(range(12))
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=rows.map(chat.prompt_completion, remove_columns=rows.column_names))
    with peak_memory.PeakMemory("cpu") as peak:
        trainer.train()
    test_rows = [next(r for r in chats["test"] if r["task"] == task) for task in ("math", "story")]
    return trainer, peak, test_rows


@pytest.mark.parametrize("method", ["full", "LoRA", "prompt tuning", "adapter"])
def test_a_row_from_a_real_run(course_tokenizer, tmp_path, method):
    set_seed(0)
    model = LlamaForCausalLM(base_model.base_model_config(course_tokenizer))
    if method == "LoRA":
        model = get_peft_model(model, LoraConfig(r=2, target_modules=list(lora.LLAMA_LINEARS)))
    elif method == "prompt tuning":
        model = get_peft_model(model, PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"))
    elif method == "adapter":
        adapters.add_adapter(model, "task", bottleneck_size=4)
        adapters.train_adapter(model, "task")
    trainer, peak, test_rows = tiny_run(course_tokenizer, model, tmp_path / "run")
    row = peft_compare.measure(method, trainer, peak, test_rows, tmp_path / "saved")

    trainable = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values() if p.requires_grad)
    assert row.trainable == trainable and (row.share == 1.0) == (method == "full")
    assert row.seconds_per_step > 0 and 0 <= row.score <= 1 and row.held_out_loss > 0
    if sys.platform.startswith("linux"):
        # What the measurement can promise on any machine: the peak is at least the weights (a tiny run may add
        # nothing the allocator had not kept), and full fine-tuning's AdamW states, two fp32 numbers per weight
        # allocated during the run and alive at its end, must show.
        assert row.peak_memory >= peft_compare.weight_bytes(model)
        if method == "full":
            assert peak.used > 4 * trainable, (peak.used, trainable)
    files = [f for f in (tmp_path / "saved" / method.lower().replace(" ", "-")).rglob("*") if f.is_file()]
    assert row.saved_bytes == sum(f.stat().st_size for f in files)
    weights = sum(f.stat().st_size for f in files if f.suffix == ".safetensors")
    assert weights >= 4 * trainable  # every trained number is saved, in fp32
    if method != "full":  # the adapter or prompt alone, not the model
        assert weights < 4 * sum(p.numel() for p in model.parameters()) / 2
