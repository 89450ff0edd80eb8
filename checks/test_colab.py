"""The lessons' Colab install cell, run in a simulated Colab (checks/colab_simulation.py says what it keeps of Colab):
the cell installs the course from this checkout and keeps Colab's torch; then `ftlab.setup()` works and lessons 00
and 04 run top to bottom (cpu profile: this machine has no GPU, so the cell chooses it, after saying why). Lesson 04
loads a model through Unsloth in 4 bits with bitsandbytes and trains QLoRA with TRL's SFTTrainer: the packages the
install cell adds to Colab's torch, in one lesson of about a minute (lesson 02 took 3.6 minutes here).

The lessons run in a kernel of the simulated environment that, like Colab's, has imported google.colab before its
first cell; their install cell is the one of the notebooks with one change, the folder it installs from: this
checkout instead of a clone in /content. Numbers (times, what the cell installed, bytes downloaded) are printed:
`make colab-check` shows them."""
import json
import os
import shutil
import time
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from colab_simulation import Simulation
from nbclient import NotebookClient

from ftlab import classroom
from ftlab.paths import ARTIFACTS, NOTEBOOKS_DIR, ROOT

FOLDER = ROOT / "build" / "colab-simulation"
LESSONS = ["00_welcome", "04_qlora_memory"]
# Colab's kernel imports google.colab before any cell runs: the install cell looks for it in sys.modules, and
# libraries look it up with importlib (accelerate), so the stand-in has a module spec. It holds nothing else.
COLAB_STARTUP = """import importlib.machinery, sys, types

sys.modules["google.colab"] = types.ModuleType("google.colab")
sys.modules["google.colab"].__spec__ = importlib.machinery.ModuleSpec("google.colab", None)
"""


def received_bytes():
    """Bytes this machine has received over its network interfaces (not loopback)."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sum(int(line.split(":")[1].split()[0]) for line in lines if line.split(":")[0].strip() != "lo")


def installed(sim):
    """{name: version} of what pip lists in the simulation (ftlab, installed editable, left out)."""
    freeze = sim.run("-m", "pip", "freeze", "--exclude-editable", capture_output=True, text=True).stdout
    return dict(line.split("==") for line in freeze.splitlines() if "==" in line)


def kernel_spec(sim):
    """A kernel of the simulated environment, started as Colab starts its own (google.colab imported first)."""
    startup = FOLDER / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text(COLAB_STARTUP)
    spec = FOLDER / "jupyter" / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(sim.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab (simulated)", "language": "python",
        "env": {"IPYTHONDIR": str(FOLDER / "ipython"), "FTLAB_ARTIFACTS": str(FOLDER / "artifacts")}}))
    return FOLDER / "jupyter"


@pytest.fixture(scope="module")
def colab():
    started, received = time.perf_counter(), received_bytes()
    sim = Simulation(FOLDER)
    sim.build()
    print(f"simulated Colab (Python {sim.python_version()}) built in {time.perf_counter() - started:.0f} s, "
          f"{(received_bytes() - received) / 1e6:.0f} MB received")
    if (ARTIFACTS / "base").is_dir():  # lesson 01's model, if this checkout built it: lesson 04 starts from it
        shutil.copytree(ARTIFACTS / "base", FOLDER / "artifacts" / "base")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(kernel_spec(sim)))
        for name in ("FTLAB_PROFILE", "PYTHONPATH", "VIRTUAL_ENV"):  # a Colab kernel has none of these
            patch.delenv(name, raising=False)
        yield sim


def execute(lesson):
    """Run a lesson top to bottom in the simulated Colab kernel; its install cell installs from this checkout."""
    nb = nbformat.read(NOTEBOOKS_DIR / f"{lesson}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.get("id") == classroom.INSTALL_ID)
    assert cell.source == classroom.install_cell_source(), f"{lesson}: run python -m ftlab.classroom headers"
    cell.source = classroom.install_cell_source(course=str(ROOT))
    NotebookClient(nb, kernel_name="colab", timeout=900, resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}).execute()
    return nb, cell


def seconds(cell):
    """How long a cell ran, from the times nbclient recorded."""
    start, end = (datetime.fromisoformat(cell.metadata["execution"][key].replace("Z", "+00:00"))
                  for key in ("iopub.execute_input", "shell.execute_reply"))
    return (end - start).total_seconds()


def text(cell):
    return "".join(o.get("text", "") for o in cell.outputs)


def test_the_install_cell_keeps_colabs_torch_and_lessons_run(colab):
    before = installed(colab)
    assert before["torch"] == "2.11.0" and "ftlab" not in before and "unsloth" not in before
    times = {}
    for lesson in LESSONS:
        received, started = received_bytes(), time.perf_counter()
        nb, cell = execute(lesson)
        times[lesson] = time.perf_counter() - started
        print(f"{lesson}: ran top to bottom in {times[lesson]:.0f} s ({(received_bytes() - received) / 1e6:.0f} MB "
              f"received); install cell {seconds(cell):.0f} s:\n    " + text(cell).strip().replace("\n", "\n    "))
    after = installed(colab)
    assert after["torch"] == before["torch"] and after["torchvision"] == before["torchvision"]
    added = sorted(set(after) - set(before))
    moved = sorted(f"{name} {before[name]} -> {after[name]}" for name in set(before) & set(after)
                   if before[name] != after[name])
    print(f"torch {before['torch']} before and after; the install cell added {len(added)} packages "
          f"({', '.join(added)}) and moved {len(moved)}: {'; '.join(moved)}")
    assert {"unsloth", "trl", "bitsandbytes"} <= set(added)


def test_ftlab_setup_works_in_a_new_process(colab):
    done = colab.run("-c", "import ftlab; ftlab.setup()", cwd=FOLDER, capture_output=True, text=True,
                     env={k: v for k, v in os.environ.items() if k != "FTLAB_PROFILE"})
    print(done.stdout)
    assert "profile: cpu" in done.stdout
