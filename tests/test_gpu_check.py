"""scripts/gpu_check.py, the GPU proof and benchmark, tested for what runs without a GPU:
its arguments, its wheel list, its plan, its result file and the page it renders."""
import importlib.util
import json
import zipfile
from pathlib import Path

import pytest

from ftlab.environment import pinned_versions
from ftlab.paths import ROOT

SCRIPT = ROOT / "scripts" / "gpu_check.py"
spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)

# What the lessons' gpu profile cannot run without, and the GPU machine lacks.
ESSENTIAL = {"unsloth", "unsloth_zoo", "trl", "datasets", "bitsandbytes", "peft"}


# ---------------------------------------------------------------- arguments
def test_defaults_run_every_part_in_order():
    args = gpu_check.parse_args([])
    assert args.parts == gpu_check.PARTS
    assert (args.steps, args.batch_size, args.seq_len, args.model) == (5, 8, 1024, "SmolLM2-135M")
    assert not args.plan and not args.no_install


def test_steps_parts_and_plan_are_read():
    args = gpu_check.parse_args(["--dry-run", "--steps", "2", "--parts", "sft, bench_plain", "--tiny"])
    assert args.plan and args.tiny
    assert args.steps == 2
    assert args.parts == ["sft", "bench_plain"]


@pytest.mark.parametrize("argv", [["--parts", "sft,ppo"], ["--steps", "0"], ["--seq-len", "-1"],
                                  ["--plan", "--render", "x.json"], ["--grad-ckpt", "maybe"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_results_go_to_the_device_tools_out_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu_check.parse_args([]).out == tmp_path / "gpu_results.json"
    monkeypatch.delenv("OUT")
    assert gpu_check.parse_args([]).out == ROOT / "artifacts" / "gpu_check" / "gpu_results.json"


def test_child_processes_get_the_same_settings(tmp_path):
    args = gpu_check.parse_args(["--steps", "3", "--seq-len", "256", "--tiny", "--allow-cpu", "--work", str(tmp_path)])
    argv = gpu_check.child_argv(args, "dpo", tmp_path / "dpo.json")
    child = gpu_check.parse_args(argv[2:])
    assert child.part == "dpo" and child.part_out == tmp_path / "dpo.json"
    assert (child.steps, child.seq_len, child.tiny, child.allow_cpu, child.no_install) == (3, 256, True, True, True)
    env = gpu_check.child_env(args, installed=True)
    assert env["PYTHONPATH"].split(":")[:2] == [str(args.site), str(ROOT)]
    assert env["HF_HUB_OFFLINE"] == "1" and env["UNSLOTH_DISABLE_STATISTICS"] == "1"


# ---------------------------------------------------------------- wheels
def test_the_wheel_list_has_what_the_gpu_profile_needs():
    names = {gpu_check.normalize(n) for n, _ in gpu_check.read_wheel_list()}
    assert ESSENTIAL <= names
    # The GPU machine has these already; carrying another build of them would break its CUDA stack.
    assert not names & {"torch", "torchvision", "triton", "transformers"}


def test_the_wheel_list_agrees_with_the_pins():
    pins = {gpu_check.normalize(n): v for n, v in pinned_versions().items()}
    for name, version in gpu_check.read_wheel_list():
        if gpu_check.normalize(name) in pins:
            assert version == pins[gpu_check.normalize(name)], f"{name}: wheel {version}, pinned {pins[gpu_check.normalize(name)]}"
    # bitsandbytes comes in through unsloth's own requirements: requirements.txt does not pin it (yet).
    for name in ESSENTIAL - {"bitsandbytes"}:
        assert name in pins, f"{name} is carried but requirements.txt does not pin it"


def test_a_bad_wheel_list_line_is_named(tmp_path):
    bad = tmp_path / "wheels.txt"
    bad.write_text("trl==1.15.0\nunsloth>=2026\n")
    with pytest.raises(ValueError, match="unsloth>=2026"):
        gpu_check.read_wheel_list(bad)


def _fake_wheel(path, files):
    with zipfile.ZipFile(path, "w") as z:
        for name in files:
            z.writestr(name, "x" * 100)
        z.writestr("pkg-1.0.dist-info/RECORD", "".join(f"{n},sha256=abc,100\n" for n in files)
                   + "pkg-1.0.dist-info/RECORD,,\n")


def test_slimming_drops_the_files_and_their_record_lines(tmp_path):
    wheel = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    keep = ["bitsandbytes/__init__.py", "bitsandbytes/libbitsandbytes_cpu.so", "bitsandbytes/libbitsandbytes_cuda130.so"]
    drop = ["bitsandbytes/libbitsandbytes_cuda118.so", "bitsandbytes/libbitsandbytes_rocm72.so"]
    _fake_wheel(wheel, keep + drop)
    assert gpu_check.slim_wheel(wheel, gpu_check.SLIM["bitsandbytes"]) == 2
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        record = z.read("pkg-1.0.dist-info/RECORD").decode()
    assert set(keep) <= names and not set(drop) & names
    assert all(d not in record for d in drop) and all(k in record for k in keep)


def test_missing_wheels_are_listed(tmp_path):
    (tmp_path / "trl-1.15.0-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "datasets-4.0.0-py3-none-any.whl").write_bytes(b"")  # another version than the list's
    missing = gpu_check.missing_wheels(tmp_path)
    assert "trl==1.15.0" not in missing
    assert "datasets==4.8.5" in missing and "unsloth==2026.10.9" in missing


def test_install_without_wheels_says_how_to_get_them(tmp_path):
    with pytest.raises(RuntimeError, match="fetch_gpu_wheels.sh"):
        gpu_check.install_wheels(tmp_path, tmp_path / "site")


# ---------------------------------------------------------------- model
@pytest.mark.parametrize("name, published", [("SmolLM2-135M", 134.5e6), ("Qwen2.5-0.5B", 494e6),
                                             ("Llama-3.2-1B", 1236e6)])
def test_the_parameter_count_matches_the_model(name, published):
    from ftlab.architectures import without_weights

    args = gpu_check.parse_args(["--model", name])
    config_class, settings = gpu_check.shapes()[name]
    counted = gpu_check.count_parameters(*gpu_check.model_settings(args))
    assert counted == sum(p.numel() for p in without_weights(config_class(**settings)).parameters())
    assert abs(counted / published - 1) < 0.01


def test_precision_follows_the_compute_capability(monkeypatch):
    """The course's rule, not torch.cuda.is_bf16_supported() (True on a T4 by emulation)."""
    from ftlab import profiles

    monkeypatch.setattr(profiles, "gpu_capability", lambda: (7, 5))
    assert gpu_check._precision("cuda") == {"bf16": False, "fp16": True}
    monkeypatch.setattr(profiles, "gpu_capability", lambda: (8, 0))
    assert gpu_check._precision("cuda") == {"bf16": True, "fp16": False}


# ---------------------------------------------------------------- plan, results, page
def test_plan_lists_parts_model_and_wheels(tmp_path, capsys):
    assert gpu_check.main(["--plan", "--wheels", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for part in gpu_check.PARTS:
        assert part in out
    assert "135M parameters" in out
    assert "not fetched" in out and "fetch_gpu_wheels.sh" in out
    assert "of 64 MiB" in out


FAKE = {
    "results_version": 1, "started_utc": "2026-11-28T22:00:00Z", "gpu": "NVIDIA H200", "python": "3.12.3",
    "settings": {"batch_size": 8, "seq_len": 1024, "grad_ckpt": "on", "bench_steps": 20, "warmup": 3},
    "model": {"model": "Qwen2.5-0.5B", "config": "Qwen2Config", "parameters": 494032768, "vocab_size": 151936,
              "tokenizer_vocab": 589},
    "versions": {"torch": "2.11.0", "unsloth": "2026.10.9"},
    "parts": {
        "bench_unsloth": {"ok": True, "tokens_per_second": 60000.0, "peak_memory_gib": 3.0,
                          "memory_before_training_gib": 1.0, "first_loss": 11.93, "last_loss": 9.5},
        "bench_plain": {"ok": True, "tokens_per_second": 30000.0, "peak_memory_gib": 6.0,
                        "memory_before_training_gib": 1.0, "first_loss": 11.93, "last_loss": 9.6},
        "sft": {"ok": True, "steps": 5, "losses": [12.0, 11.0], "wall_seconds": 40.0},
        "grpo": {"ok": False, "error": "RuntimeError: boom", "wall_seconds": 3.0},
    },
}


def test_results_are_summarized_and_written(tmp_path):
    results = gpu_check.summarize(json.loads(json.dumps(FAKE)))
    assert results["summary"] == {"speedup": 2.0, "memory_ratio": 0.5, "memory_saved": 0.5}
    assert results["all_ok"] is False  # grpo failed
    out = tmp_path / "r" / "gpu_results.json"
    gpu_check.write_results(results, out)
    assert json.loads(out.read_text())["summary"]["speedup"] == 2.0


def test_the_page_shows_the_numbers_and_is_rewritten_in_place():
    results = gpu_check.summarize(json.loads(json.dumps(FAKE)))
    page = "# Benchmarks\n\nmethod\n\n" + gpu_check.BEGIN + "\nnot yet run\n" + gpu_check.END + "\n\ntail\n"
    once = gpu_check.render_page(results, page)
    assert "not yet run" not in once and once.startswith("# Benchmarks") and once.endswith("tail\n")
    assert "| Unsloth | 60,000 | 3.00 |" in once and "| transformers + PEFT | 30,000 | 6.00 |" in once
    assert "**2.00x** the tokens per second" in once and "**0.50x** the peak memory (50% less)" in once
    assert "| grpo |" in once and "failed: RuntimeError: boom" in once
    assert gpu_check.render_page(results, once) == once


def test_render_command_rewrites_the_page(tmp_path, capsys):
    results, docs = tmp_path / "gpu_results.json", tmp_path / "benchmarks.md"
    results.write_text(json.dumps(FAKE))
    docs.write_text(f"# B\n{gpu_check.BEGIN}\nold\n{gpu_check.END}\n")
    assert gpu_check.main(["--render", str(results), "--docs", str(docs)]) == 0
    assert "NVIDIA H200" in docs.read_text() and "old" not in docs.read_text()


def test_the_docs_page_has_the_result_markers():
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert gpu_check.BEGIN in page and gpu_check.END in page


def test_without_a_gpu_the_run_stops_with_a_clear_result(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu_results.json"
    args = gpu_check.parse_args(["--no-install", "--out", str(out), "--work", str(tmp_path / "work"),
                                 "--docs", str(tmp_path / "page.md")])
    assert gpu_check.run(args) == 1
    results = json.loads(out.read_text())
    assert "no CUDA device" in results["setup_error"]
    assert "no CUDA device" in (tmp_path / "gpu_check.log").read_text()


def test_the_wheels_carry_everything_the_gpu_path_imports():
    """Unsloth's GPU code path (UNSLOTH_ALLOW_CPU=1), imported with only the GPU machine's packages and the
    carried ones visible, in a fresh interpreter (half a minute or so)."""
    ok, hidden, output = gpu_check.check_imports()
    assert ok, output[-4000:]
    carried = {gpu_check.normalize(n) for n, _ in gpu_check.read_wheel_list()}
    assert not carried & {gpu_check.normalize(h) for h in hidden}


def test_a_part_past_its_limit_is_stopped_and_its_output_kept(tmp_path):
    import sys

    code = "import time; print('started', flush=True); time.sleep(60)"
    output, rc = gpu_check.run_child([sys.executable, "-c", code], None, tmp_path, 3, tmp_path / "part.log")
    assert rc == "timeout" and "started" in output
    output, rc = gpu_check.run_child([sys.executable, "-c", "print('done')"], None, tmp_path, 30, tmp_path / "p.log")
    assert (rc, output.strip()) == (0, "done")
