"""A lesson's claims: checked, printed, recorded for `make robustness`, and summarised over settings."""
import importlib.util
import json

import pytest

from ftlab import claims
from ftlab.paths import ROOT


def test_a_claim_says_whether_it_holds_and_prints_the_measure(capsys, monkeypatch):
    monkeypatch.delenv("FTLAB_CLAIMS", raising=False)
    monkeypatch.delenv("FTLAB_CLAIMS_KEEP_GOING", raising=False)
    monkeypatch.delenv("FTLAB_SMOKE", raising=False)
    assert claims.holds("gain", 0.42, ">=", 0.3)
    assert not claims.holds("gain", 0.2, ">=", 0.3)
    assert not claims.holds("loss", 1.0, "<", 1.0)
    out = capsys.readouterr().out
    assert "✓ gain: 0.42 >= 0.3" in out and "✗ FAILS: gain: 0.2 >= 0.3" in out
    with pytest.raises(ValueError, match="operator"):
        claims.holds("gain", 1, "=>", 0)


def test_a_smoke_run_prints_its_claims_without_asserting_them(capsys, monkeypatch):
    monkeypatch.delenv("FTLAB_CLAIMS", raising=False)
    monkeypatch.delenv("FTLAB_CLAIMS_KEEP_GOING", raising=False)
    monkeypatch.setenv("FTLAB_SMOKE", "1")  # three steps a stage: no effect to measure
    assert claims.holds("gain", 0.2, ">=", 0.3)
    assert "✗ (smoke run: not asserted) gain: 0.2 >= 0.3" in capsys.readouterr().out


def test_claims_are_recorded_with_the_seed_and_the_kernels(tmp_path, monkeypatch):
    record = tmp_path / "claims.jsonl"
    monkeypatch.setenv("FTLAB_CLAIMS", str(record))
    monkeypatch.setenv("FTLAB_SEED", "3")
    monkeypatch.setenv("FTLAB_LESSON", "02_sft")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("FTLAB_CLAIMS_KEEP_GOING", raising=False)
    monkeypatch.delenv("FTLAB_SMOKE", raising=False)
    assert not claims.holds("gain", 0.1, ">=", 0.3)
    monkeypatch.setenv("FTLAB_CLAIMS_KEEP_GOING", "1")  # a robustness run measures every claim of a lesson
    assert claims.holds("gain", 0.1, ">=", 0.3)
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(rows) == 2 and rows[0] == {"claim": "gain", "value": 0.1, "op": ">=", "threshold": 0.3, "holds": False,
                                          "seed": 3, "lesson": "02_sft", "kernels": "ATEN_CPU_CAPABILITY=avx2"}


def robustness():
    spec = importlib.util.spec_from_file_location("robustness", ROOT / "scripts" / "robustness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_robustness_table_gives_the_spread_and_what_failed():
    module = robustness()
    names = ["seed-0", "seed-1", "seed-0-avx2"]
    row = {"lesson": "02_sft", "claim": "gain", "op": ">=", "threshold": 0.3}
    rows = {"seed-0": [row | {"value": 0.5}], "seed-1": [row | {"value": 0.7}], "seed-0-avx2": [row | {"value": 0.2}]}
    lines, failed = module.table(rows, names)
    assert lines[2] == "| 02 | gain | >= 0.3 | 0.5 / 0.6 / 0.7 (2 runs) | 0.2 | NO |" and failed == 1
    rows["seed-0-avx2"] = [row | {"value": 0.4}]
    lines, failed = module.table(rows, names)
    assert lines[2].endswith("| yes |") and failed == 0
    del rows["seed-1"][0]
    lines, failed = module.table(rows, names)
    assert "not reached in seed-1" in lines[2] and failed == 1
    assert [n for n, _ in module.settings([0, 1], 0)] == names


def committed_lesson(path, setup_line, printed):
    cells = [{"cell_type": "code", "source": "P = ftlab.setup()", "metadata": {},
              "outputs": [{"output_type": "stream", "name": "stdout", "text": setup_line}]},
             {"cell_type": "code", "source": "assert claims.holds(...)",
              "metadata": {"execution": {"iopub.execute_input": "2026-12-07T10:00:00.000000Z",
                                         "shell.execute_reply": "2026-12-07T10:00:02.500000Z"}},
              "outputs": [{"output_type": "stream", "name": "stdout", "text": printed}]}]
    path.write_text(json.dumps({"cells": cells}))
    return path


def test_the_committed_run_is_read_from_the_claims_it_printed(tmp_path):
    module = robustness()
    lesson = committed_lesson(tmp_path / "05_adapters.ipynb", "profile: cpu   seed: 0   device: CPU, 2 threads\n",
                              "✓ math loss: math adapter - story adapter: -2.56 < 0\n"
                              "✗ FAILS: whole stories: story adapter - math adapter: 0 > 0\nother output\n")
    folder = tmp_path / "seed-0"
    folder.mkdir()
    module.record_committed(lesson, folder, "cpu")
    rows = [json.loads(line) for line in (folder / "claims-05.jsonl").read_text().splitlines()]
    assert [(r["claim"], r["value"], r["op"], r["threshold"]) for r in rows] == [
        ("math loss: math adapter - story adapter", -2.56, "<", 0.0),
        ("whole stories: story adapter - math adapter", 0.0, ">", 0.0)]
    assert json.loads((folder / "done-05.json").read_text())["seconds"] == 2.5
    other_seed = committed_lesson(tmp_path / "06_prompt_tuning.ipynb", "profile: cpu   seed: 1   device: CPU\n", "")
    with pytest.raises(SystemExit, match="06_prompt_tuning.ipynb"):
        module.record_committed(other_seed, folder, "cpu")
