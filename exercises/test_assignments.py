"""The exercises as a classroom runs them, with nbgrader, in a temporary course folder (nothing is written here).

1. `nbgrader generate_assignment` makes the student version of every exercise notebook: it must hold no line of
   solution code, and a `raise NotImplementedError()` stub where each solution was.
2. The source notebooks, solutions in, are submitted as one student's work and `nbgrader autograde` executes them:
   full marks prove that every check passes on its solution (tests/test_exercises.py proves they fail on wrong ones).
Run after the lessons (`make test` does): the exercises use the models the lessons cache, and rebuild them if not.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ftlab import classroom
from ftlab.paths import ROOT

STUDENT = "solutions"
SOLUTION_REGION = re.compile(r"^[ \t]*### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION", re.S | re.M)
STUB = "raise NotImplementedError()"
ASSIGNMENTS = [p.parent.name for p in classroom.exercise_notebooks()]


def nbgrader(root, *args):
    """Run an nbgrader command with the course's nbgrader_config.py, in the course folder `root`."""
    bin_dir = str(Path(sys.executable).parent)  # nbgrader calls `alembic` from there
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), FTLAB_PROFILE="cpu")
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder where every assignment was released, and the solutions submitted and autograded."""
    root = tmp_path_factory.mktemp("course")
    nbgrader(root, "generate_assignment", "*")
    for source in classroom.exercise_notebooks():
        submitted = root / "submitted" / STUDENT / source.parent.name
        submitted.mkdir(parents=True)
        shutil.copy(source, submitted)
    nbgrader(root, "autograde", "*")
    return root


def lines(sources):
    return {line.strip() for source in sources for line in source.splitlines() if line.strip()}


@pytest.mark.parametrize("source", classroom.exercise_notebooks(), ids=lambda p: p.parent.name)
def test_student_versions_hold_no_solution(course, source):
    released = course / "release" / source.parent.name / source.name
    assert released.exists(), f"nbgrader did not release {source.name}"
    cells = nbformat.read(source, as_version=4).cells
    regions = [region for cell in cells for region in SOLUTION_REGION.findall(cell.source)]
    # the solution's lines, except those also written outside the solutions (an import, a call the task names)
    given = [SOLUTION_REGION.sub("", cell.source) for cell in cells]
    secret = {line for line in lines(regions) if not any(line in text for text in given)}
    student = nbformat.read(released, as_version=4).cells
    leaked = sorted(line for line in secret if any(line in cell.source for cell in student))
    assert regions and secret and not leaked, f"solution code in the student version of {source.name}: {leaked}"
    stubs = sum(cell.source.count(STUB) for cell in student if cell.cell_type == "code")
    assert stubs == len(regions), f"{stubs} stubs for {len(regions)} solutions: each must be replaced by a stub"
    assert not any("BEGIN SOLUTION" in cell.source for cell in student)


def test_the_solutions_get_full_marks(course):
    from nbgrader.api import Gradebook

    lost, counts = [], {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for assignment in ASSIGNMENTS:
            submission = gradebook.find_submission(assignment, STUDENT)
            grades = [grade for notebook in submission.notebooks for grade in notebook.grades]
            counts[assignment] = len(grades)
            lost += [f"{assignment} {g.name}: {g.score} of {g.max_score}" for g in grades if g.score != g.max_score]
    print("\nexercises per lesson:", ", ".join(f"{a[:2]}: {n}" for a, n in counts.items()))
    errors = []
    for entry in lost:  # the failing check's message, from the autograded notebook
        assignment, grade_id = entry.split(":")[0].split()
        notebook = next((course / "autograded" / STUDENT / assignment).glob("*.ipynb"))
        cell = next(c for c in nbformat.read(notebook, as_version=4).cells
                    if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
        errors += [f"{entry}: {o.get('evalue', '')}" for o in cell.outputs if o.output_type == "error"] or [entry]
    assert not lost, "\n".join(errors)
    assert all(2 <= n <= 3 for n in counts.values()), counts
