"""Each lesson's recipe runs outside the course (issue 16).

A lesson tags the cells a learner would copy into a project of their own `recipe`: loading the model and the data,
the training configuration and the trainer, the training. Those cells call the libraries only. This test checks that
by reading them (no name that comes from ftlab), then writes them as one script into a temporary folder outside the
repository and runs it in a fresh Python process, in the real profile (SmolLM2-135M-Instruct on the CPU, offline),
for three steps.

What a recipe takes from the lesson is named, not computed: `P`, the profile's numbers (steps, batch size, learning
rate, precision, sequence length, seed); `START`, the folder or hub id of the start model; `DATA`, the folder of the
course's data files; `RUNS`, where trainers write; `ADAPTERS`, where adapters are kept. The script's first lines
set them, as a learner's own script would (with their own model, data and numbers).
"""
import ast
import importlib.util
import os
import subprocess
import sys
import time

import pytest

from ftlab.paths import DATA_DIR, NOTEBOOKS_DIR, ROOT

spec = importlib.util.spec_from_file_location("call_counts", ROOT / "scripts" / "call_counts.py")
call_counts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(call_counts)
cell_sources = call_counts.cell_sources

STEPS = 3  # enough for a checkpoint, an evaluation and a log line in lesson 02's settings
# The lessons with a recipe, and the kind of start model each takes (ftlab.models.start_model).
RECIPES = {"02_sft": "base", "03_lora": "base", "04_qlora_memory": "base", "06_prompt_tuning": "base",
           "08_reward_modeling": "chat", "10_dpo": "chat"}

PREAMBLE = """\
# What the lesson's earlier cells set: the profile's numbers (shortened to {steps} steps), the start model, the data.
import dataclasses
from pathlib import Path

import ftlab
from ftlab import models

P = ftlab.setup("real", quiet=True)
P = dataclasses.replace(P, stages={{name: dataclasses.replace(stage, steps={steps})
                                   for name, stage in P.stages.items()}})
START = models.start_model(P, {kind!r})
DATA = Path({data!r})
RUNS = Path("runs")
ADAPTERS = Path("adapters")
# ---------------------------------------------------------------- the lesson's recipe cells
"""


def notebook(lesson):
    return NOTEBOOKS_DIR / f"{lesson}.ipynb"


def test_every_recipe_is_listed():
    tagged = {path.stem for path in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb") if cell_sources(path, "recipe")}
    assert tagged == set(RECIPES)


def ftlab_names(sources):
    """The names that the code of `sources` imports from ftlab."""
    names = set()
    for node in ast.walk(ast.parse("\n".join(sources))):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] == "ftlab"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ftlab":
            names |= {a.asname or a.name for a in node.names}
    return names


@pytest.mark.parametrize("lesson", RECIPES)
def test_a_recipe_calls_the_libraries_only(lesson):
    """A recipe cell imports nothing from ftlab and uses no name the lesson imports from it."""
    lesson_names = ftlab_names(cell_sources(notebook(lesson))) | {"ftlab"}
    assert lesson_names - {"ftlab"}, f"{lesson} imports nothing from ftlab: is this the right check?"
    for source in cell_sources(notebook(lesson), "recipe"):
        assert not ftlab_names([source]), f"{lesson}: a recipe cell imports from ftlab:\n{source}"
        used = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
        assert not used & lesson_names, f"{lesson}: a recipe cell uses {sorted(used & lesson_names)}:\n{source}"


@pytest.mark.parametrize("lesson", RECIPES)
def test_a_recipe_runs_as_a_script_outside_the_course(lesson, tmp_path):
    assert not tmp_path.is_relative_to(ROOT)
    script = PREAMBLE.format(steps=STEPS, kind=RECIPES[lesson], data=str(DATA_DIR))
    script += "\n\n".join(cell_sources(notebook(lesson), "recipe")) + "\n"
    (tmp_path / "recipe.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FTLAB_PROFILE")}
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "recipe.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    print(f"{lesson}: {time.perf_counter() - started:.0f} s")
    assert run.returncode == 0, f"{lesson}'s recipe failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
