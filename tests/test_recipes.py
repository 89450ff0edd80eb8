"""Each lesson's recipe runs outside the course (issue 16).

A lesson tags the cells a learner would copy into a project of their own `recipe`: loading the model and the data,
the training configuration and the trainer, the training. Those cells call the libraries only. This test checks that
by reading them (no name that comes from ftlab), then writes them as one script into a temporary folder outside the
repository and runs it as `__main__`, in the real profile (SmolLM2-135M-Instruct on the CPU, offline), as a smoke
run (three steps a stage, `Profile.smoke_run`). One fresh Python process runs the six scripts in turn (`runpy`, each
with its own globals in its own folder), so the libraries' imports, about 13 s a process, are paid once: a name a
script does not define or import is still an error, only process-wide settings (environment variables, Unsloth's
patches) carry over, and each script makes those itself in its first lines.

What a recipe takes from the lesson is named, not computed: `P`, the profile's numbers (steps, batch size, learning
rate, precision, sequence length, seed); `START`, the folder or hub id of the start model; `DATA`, the folder of the
course's data files; `RUNS`, where trainers write; `ADAPTERS`, where adapters are kept. The script's first lines
set them, as a learner's own script would (with their own model, data and numbers).
"""
import ast
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from ftlab.paths import DATA_DIR, NOTEBOOKS_DIR, ROOT
from ftlab.profiles import SMOKE_STEPS

spec = importlib.util.spec_from_file_location("call_counts", ROOT / "scripts" / "call_counts.py")
call_counts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(call_counts)
cell_sources = call_counts.cell_sources

# The lessons with a recipe, and the kind of start model each takes (ftlab.models.start_model).
RECIPES = {"02_sft": "base", "03_lora": "base", "04_qlora_memory": "base", "06_prompt_tuning": "base",
           "08_reward_modeling": "chat", "10_dpo": "chat"}

PREAMBLE = """\
# What the lesson's earlier cells set: the profile's numbers (a smoke run's, {steps} steps), the start model, the data.
from pathlib import Path

import ftlab
from ftlab import models

P = ftlab.setup("real", quiet=True).smoke_run()
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


# Runs each script of argv[1] ({lesson: folder}) in its folder, as `python recipe.py` would, and reports each one.
RUNNER = """
import gc, json, os, runpy, sys, time, traceback
results = {}
for lesson, folder in json.loads(sys.argv[1]).items():
    os.chdir(folder)
    started = time.perf_counter()
    try:
        runpy.run_path("recipe.py", run_name="__main__")
        failure = None
    except BaseException:
        failure = traceback.format_exc()
    results[lesson] = {"seconds": round(time.perf_counter() - started), "failure": failure}
    gc.collect()
print("RESULTS=" + json.dumps(results))
"""


@pytest.fixture(scope="module")
def recipe_runs(tmp_path_factory):
    """Every recipe written as a script in a folder of its own, outside the repository, and run."""
    folders = {}
    for lesson, kind in RECIPES.items():
        folder = tmp_path_factory.mktemp(lesson)
        assert not folder.is_relative_to(ROOT)
        script = PREAMBLE.format(steps=SMOKE_STEPS, kind=kind, data=str(DATA_DIR))
        (folder / "recipe.py").write_text(script + "\n\n".join(cell_sources(notebook(lesson), "recipe")) + "\n")
        folders[lesson] = str(folder)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FTLAB_PROFILE")}
    run = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(folders)], cwd=next(iter(folders.values())),
                         env=env, capture_output=True, text=True, timeout=1800)
    assert "RESULTS=" in run.stdout, f"the recipes' process failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    return json.loads(run.stdout.split("RESULTS=")[-1])


@pytest.mark.parametrize("lesson", RECIPES)
def test_a_recipe_runs_as_a_script_outside_the_course(lesson, recipe_runs):
    print(f"{lesson}: {recipe_runs[lesson]['seconds']} s")
    assert recipe_runs[lesson]["failure"] is None, f"{lesson}'s recipe failed:\n{recipe_runs[lesson]['failure']}"
