"""A lesson's claims about what its training did, checked with a margin, and recorded for `make robustness`.

A lesson states what its training changed ("SFT raises held-out accuracy by at least 30 points") and asserts it:

    assert claims.holds("held-out accuracy gain (points)", after - before, ">=", 0.30)

`holds` prints the claim with the measured value and returns whether it holds. The threshold is not the value of
one run: it comes from the spread measured over seeds and CPU kernel settings, with a margin (`make robustness`
prints that table), so a lesson fails when it stops teaching what it says, not when the rounding changes.

When FTLAB_CLAIMS names a file, every claim is also appended to it as one JSON line (what `make robustness`
collects); with FTLAB_CLAIMS_KEEP_GOING=1 as well, a claim that fails is recorded and the lesson runs on, so one
run measures every claim of every lesson. In a smoke run (FTLAB_SMOKE=1, `profiles`), a few steps per stage, the
claims are printed and recorded but not asserted: such a run proves the code, not the effect.
"""
import json
import operator
import os

from .profiles import session_seed, smoke_requested

OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def holds(claim, value, op, threshold):
    """Whether `value op threshold` holds (op: ">=", ">", "<=", "<"); prints it, records it under FTLAB_CLAIMS."""
    if op not in OPERATORS:
        raise ValueError(f"claim {claim!r}: operator {op!r} is not one of {', '.join(OPERATORS)}")
    value = float(value)
    ok = OPERATORS[op](value, threshold)
    failed = "✗ (smoke run: not asserted)" if smoke_requested() else "✗ FAILS:"
    print(f"{'✓' if ok else failed} {claim}: {value:.4g} {op} {threshold:g}")
    _record(claim, value, op, threshold, ok)
    return ok or smoke_requested() or os.environ.get("FTLAB_CLAIMS_KEEP_GOING") == "1"


def _record(claim, value, op, threshold, ok):
    path = os.environ.get("FTLAB_CLAIMS")
    if not path:
        return
    row = {"claim": claim, "value": value, "op": op, "threshold": threshold, "holds": ok, "seed": session_seed(),
           "lesson": os.environ.get("FTLAB_LESSON", ""), "kernels": kernel_setting()}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def kernel_setting():
    """Which CPU kernels torch may use: "default", or the limits set in the environment (as on an older CPU)."""
    limits = [f"{name}={os.environ[name]}" for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
              if os.environ.get(name)]
    return " ".join(limits) or "default"
