import dataclasses
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from ftlab import base_eval, base_model, paths
from ftlab.profiles import PROFILES, Stage

# The real recipe at a size a unit test can afford: a few steps, small batches.
TINY = dataclasses.replace(PROFILES["cpu"], stages={"pretrain": Stage(steps=8, batch_size=4, learning_rate=3e-3)})


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    return (base_model.build_base_model(first, TINY), first), (base_model.build_base_model(second, TINY), second)


def test_the_base_model_has_about_a_million_parameters(course_tokenizer):
    model = LlamaForCausalLM(base_model.base_model_config(course_tokenizer))
    n = sum(p.numel() for p in model.parameters())
    assert 0.9e6 < n < 1.5e6, n


def test_same_seed_same_machine_same_loss_curve(two_builds):
    (first, _), (second, _) = two_builds
    losses = [[(h["step"], h.get("loss"), h.get("eval_loss")) for h in t.state.log_history if "step" in h]
              for t in (first, second)]
    assert len(losses[0]) > 4 and losses[0] == losses[1]


def test_saved_as_safetensors_and_reloads_to_the_same_logits(two_builds):
    (trainer, folder), _ = two_builds
    assert (folder / "model.safetensors").exists()
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt")) and not list(folder.glob("*.pkl"))
    reloaded = AutoModelForCausalLM.from_pretrained(folder)
    ids = torch.tensor([[5, 6, 7, 8]])
    trainer.model.eval()
    with torch.no_grad():
        assert torch.allclose(trainer.model(ids).logits, reloaded(ids).logits, atol=1e-6)


def test_cache_is_used_when_the_recipe_matches_and_rebuilt_when_not(two_builds):
    _, (_, folder) = two_builds
    assert base_model.is_cached(folder, TINY)
    assert not base_model.is_cached(folder, PROFILES["cpu"])  # another number of steps: another model
    recipe = json.loads((folder / "recipe.json").read_text())
    (folder / "recipe.json").write_text(json.dumps({**recipe, "corpus_sha256": "changed"}))
    assert not base_model.is_cached(folder, TINY)
    assert not base_model.is_cached(folder / "missing", TINY)


def test_an_interrupted_save_leaves_the_old_model(tmp_path):
    target = tmp_path / "base"
    target.mkdir()
    (target / "recipe.json").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with paths.atomic_dir(target) as tmp:
            (tmp / "model.safetensors").write_text("half")
            raise KeyboardInterrupt  # a learner stops the kernel mid-save
    assert [p.name for p in tmp_path.iterdir()] == ["base"]
    assert [p.name for p in target.iterdir()] == ["recipe.json"]


def test_checks_run_on_a_model(two_builds, course_tokenizer):
    (trainer, folder), _ = two_builds
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    accuracy = base_eval.arithmetic_accuracy(trainer.model, tok, [(1, "+", 1), (3, "-", 2)])
    assert 0.0 <= accuracy <= 1.0
    assert base_eval.perplexity(0.0) == 1.0
