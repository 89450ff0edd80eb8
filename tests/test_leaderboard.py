"""The leaderboard (lesson 12): each kind of checkpoint on disk is recognised, loaded back exactly, and scored."""
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaForCausalLM

from ftlab import adapters, base_model, data, leaderboard, profiles
from ftlab.leaderboard import Checkpoint

CPU = profiles.PROFILES["cpu"]


@pytest.fixture
def tiny_model(trained_tokenizer):
    torch.manual_seed(0)
    return LlamaForCausalLM(base_model.base_model_config(trained_tokenizer)).eval()


@pytest.fixture
def saved_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "ARTIFACTS", tmp_path)  # where the profile keeps its lessons' checkpoints
    return tmp_path / "checkpoints"


def logits(model, tokenizer):
    with torch.no_grad():
        return model(**tokenizer(["3+4=7 8-5=3", "Once upon a time"], return_tensors="pt", padding=True)).logits


def test_a_saved_whole_model_loads_back_exactly(tiny_model, course_tokenizer, saved_dir):
    path = leaderboard.save_checkpoint(tiny_model, course_tokenizer, "dpo", CPU)
    assert path == saved_dir / "dpo" and (path / "model.safetensors").exists()
    checkpoint = Checkpoint("DPO", "10", "model", path)
    assert leaderboard.kind_on_disk(path) == "model" and leaderboard.missing_reason(checkpoint) is None
    model, tokenizer = leaderboard.load_checkpoint(checkpoint, CPU)
    assert torch.equal(logits(model, tokenizer), logits(tiny_model, course_tokenizer))


def test_a_saved_lora_adapter_loads_on_the_model_it_names(tiny_model, course_tokenizer, saved_dir, tmp_path):
    tiny_model.save_pretrained(tmp_path / "start")
    start = LlamaForCausalLM.from_pretrained(tmp_path / "start")  # so the adapter's config names this folder
    peft_model = get_peft_model(start, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    path = leaderboard.save_checkpoint(peft_model, course_tokenizer, "lora", CPU)
    assert (path / "adapter_config.json").exists() and not (path / "model.safetensors").exists()
    assert leaderboard.kind_on_disk(path) == "lora"
    model, tokenizer = leaderboard.load_checkpoint(Checkpoint("LoRA", "03", "lora", path), CPU)
    assert torch.allclose(logits(model, tokenizer), logits(peft_model, course_tokenizer), atol=1e-6)
    assert not torch.allclose(logits(model, tokenizer), logits(tiny_model, course_tokenizer), atol=1e-3)


def test_a_bottleneck_adapter_is_recognised_and_a_collision_is_reported(tiny_model, tmp_path):
    adapters.add_adapter(tiny_model, "math", bottleneck_size=4, placement="houlsby")
    path = adapters.save_adapter(tiny_model, "math", tmp_path / "adapters" / "math")
    assert leaderboard.kind_on_disk(path) == "bottleneck"
    assert leaderboard.missing_reason(Checkpoint("bottleneck", "05", "bottleneck", path)) is None
    reason = leaderboard.missing_reason(Checkpoint("LoRA math adapter", "03", "lora", path))
    assert "holds a bottleneck adapter" in reason
    assert "lesson 09 has not saved it" in leaderboard.missing_reason(
        Checkpoint("PPO", "09", "model", tmp_path / "nothing"))


def test_the_board_scores_models_and_lists_missing_ones_last(tiny_model, course_tokenizer, saved_dir):
    rows = list(data.load("sft")["test"].select(range(12)))
    leaderboard.save_checkpoint(tiny_model, course_tokenizer, "grpo", CPU)
    entries = [Checkpoint("PPO", "09", "model", saved_dir / "ppo"), Checkpoint("GRPO", "11", "model", saved_dir / "grpo")]
    board = leaderboard.evaluate_all(entries, rows, CPU)
    assert board[0]["missing"] and board[1]["missing"] is None
    assert set(leaderboard.MEASURES) <= set(board[1])
    low, high = board[1]["chat accuracy 95% CI"]
    assert 0 <= low <= board[1]["chat accuracy"] <= high <= 1 and board[1]["answer loss"] > 0
    table = leaderboard.table_rows(board)
    assert [row[0] for row in table] == ["GRPO", "PPO"] and "not on disk" in table[1][-1]


def test_every_course_checkpoint_has_a_known_kind_and_a_lesson():
    entries = leaderboard.checkpoints(CPU)
    assert {c.kind for c in entries} <= set(leaderboard.KINDS)
    assert all(c.lesson.isdigit() for c in entries)
    assert len({c.name for c in entries}) == len(entries)
