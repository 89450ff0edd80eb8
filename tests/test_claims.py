"""A lesson's claims: checked, printed, recorded for `make robustness`, and summarised over settings."""
import importlib.util
import json

import pytest

from ftlab import claims
from ftlab.paths import ROOT


def test_a_claim_says_whether_it_holds_and_prints_the_measure(capsys, monkeypatch):
    monkeypatch.delenv("FTLAB_CLAIMS", raising=False)
    monkeypatch.delenv("FTLAB_CLAIMS_KEEP_GOING", raising=False)
    assert claims.holds("gain", 0.42, ">=", 0.3)
    assert not claims.holds("gain", 0.2, ">=", 0.3)
    assert not claims.holds("loss", 1.0, "<", 1.0)
    out = capsys.readouterr().out
    assert "✓ gain: 0.42 >= 0.3" in out and "✗ FAILS: gain: 0.2 >= 0.3" in out
    with pytest.raises(ValueError, match="operator"):
        claims.holds("gain", 1, "=>", 0)


def test_claims_are_recorded_with_the_seed_and_the_kernels(tmp_path, monkeypatch):
    record = tmp_path / "claims.jsonl"
    monkeypatch.setenv("FTLAB_CLAIMS", str(record))
    monkeypatch.setenv("FTLAB_SEED", "3")
    monkeypatch.setenv("FTLAB_LESSON", "02_sft")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("FTLAB_CLAIMS_KEEP_GOING", raising=False)
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
