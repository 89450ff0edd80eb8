"""Classroom and Colab: lesson headers, the Colab install cell, the exercise notebooks' nbgrader layout."""
import os
import re
import subprocess
import sys
import types

import nbformat
import pytest

from ftlab import classroom, colab
from ftlab.paths import ROOT

# Lessons whose checked exercises are still to be written; CI says so when one of them gets its exercise notebook.
PENDING_EXERCISES = set()


def test_every_notebook_has_a_current_header():
    stale = classroom.stale_headers()
    assert not stale, ("out-of-date header (Colab badge, bilingual title, install cell) in "
                       f"{[str(p.relative_to(ROOT)) for p in stale]}: run python -m ftlab.classroom headers PATH")


def test_every_lesson_has_a_chinese_title():
    numbers = {p.name[:2] for p in classroom.lesson_notebooks()}
    assert numbers <= set(classroom.TITLES_ZH), f"add the Chinese titles of {numbers - set(classroom.TITLES_ZH)}"


def test_headers_are_idempotent_and_replace_old_ones(tmp_path):
    lesson = classroom.lesson_notebooks()[0]
    nb = nbformat.read(lesson, as_version=4)
    once = classroom.with_header(nb, lesson)
    assert nbformat.writes(classroom.with_header(once, lesson)) == nbformat.writes(once)
    ids = [c.get("id") for c in once.cells]
    assert ids.count(classroom.HEADER_ID) == 1 and ids.count(classroom.INSTALL_ID) == 1
    assert ids.index(classroom.INSTALL_ID) < next(i for i, c in enumerate(once.cells)
                                                 if c.cell_type == "code" and c.get("id") != classroom.INSTALL_ID)
    assert once.cells[0].source.count(classroom.colab_url(lesson)) == 1
    title = once.cells[1].source.splitlines()[0]
    assert title.endswith(" · " + classroom.TITLES_ZH[lesson.name[:2]]) and title.count(" · ") == 2


def test_a_title_line_is_required(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Lesson without a title")])
    with pytest.raises(ValueError, match="title line"):
        classroom.with_header(nb, classroom.NOTEBOOKS_DIR / "99_new.ipynb")


def install_cell(path):
    cell = next(c for c in nbformat.read(path, as_version=4).cells if c.get("id") == classroom.INSTALL_ID)
    assert cell.source == classroom.install_cell_source() and not cell.get("outputs")
    return cell.source


def forbid(*args, **kwargs):
    raise AssertionError(f"the install cell ran a command outside Colab: {args}")


def test_the_install_cell_does_nothing_outside_colab(monkeypatch, capsys):
    source = install_cell(classroom.lesson_notebooks()[0])
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", forbid)
    monkeypatch.setattr(subprocess, "Popen", forbid)
    monkeypatch.setattr(os, "system", forbid)
    environment, path, cwd = dict(os.environ), list(sys.path), os.getcwd()
    exec(compile(source, "install cell", "exec"), {})
    assert dict(os.environ) == environment and sys.path == path and os.getcwd() == cwd
    assert capsys.readouterr().out == "Not in Colab: nothing to install.\n"


def test_the_install_cell_sets_the_course_up_in_colab(monkeypatch):
    source = install_cell(classroom.exercise_notebooks()[0])
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    commands, installed = [], []
    monkeypatch.setattr(subprocess, "run", lambda command, check: commands.append(command))
    monkeypatch.setattr(os.path, "isdir", lambda path: False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(colab, "install", installed.append)  # ftlab.colab, tested in tests/test_colab.py
    monkeypatch.setattr(colab, "choose_profile", lambda: "gpu")
    monkeypatch.setenv("FTLAB_PROFILE", "cpu")  # restored after the test
    exec(compile(source, "install cell", "exec"), {})
    [clone] = commands
    assert clone[:2] == ["git", "clone"] and classroom.REPOSITORY in clone and classroom.BRANCH in clone
    assert clone[-1] == classroom.COLAB_COURSE and installed == [clone[-1]] and sys.path[0] == clone[-1]
    assert os.environ["FTLAB_PROFILE"] == "gpu"


def test_the_install_cell_installs_from_the_folder_given():
    """The Colab simulation (checks/test_colab.py) runs the cell with this one change: the folder."""
    here = classroom.install_cell_source(course="/some/checkout")
    assert here.replace("/some/checkout", classroom.COLAB_COURSE) == classroom.install_cell_source()


def nbgrader_cells(path):
    return [(c, c.metadata.get("nbgrader", {})) for c in nbformat.read(path, as_version=4).cells]


@pytest.mark.parametrize("path", classroom.exercise_notebooks(), ids=lambda p: p.parent.name)
def test_exercise_notebooks_are_nbgrader_assignments(path):
    lesson = classroom.NOTEBOOKS_DIR / f"{path.parent.name}.ipynb"
    assert lesson.exists(), f"{path} has no lesson {lesson}"
    cells = nbgrader_cells(path)
    grade_ids = [meta["grade_id"] for _, meta in cells if meta]
    assert len(grade_ids) == len(set(grade_ids)), "grade ids must be unique"
    for cell, meta in cells:
        has_solution = "### BEGIN SOLUTION" in cell.source
        assert has_solution == bool(meta.get("solution")), f"{meta.get('grade_id')}: solution markers and metadata disagree"
        assert cell.source.count("### BEGIN SOLUTION") == cell.source.count("### END SOLUTION")
        if meta.get("grade"):
            assert cell.cell_type == "code" and meta["locked"] and meta["points"] > 0, meta
            assert "check." in cell.source, f"{meta['grade_id']} must call an ftlab check"
    checks = [meta for _, meta in cells if meta.get("grade")]
    points = [meta["points"] for meta in checks]
    assert 2 <= len(checks) <= 3 and points == sorted(points), f"2 or 3 exercises, easy to hard: {points}"
    for meta in checks:
        exercise = meta["grade_id"].removesuffix("-check")
        assert any(m.get("solution") and m["grade_id"].startswith(exercise + "-") for _, m in cells), \
            f"{exercise} has a check but no solution cell"


def test_every_lesson_has_exercises():
    with_exercises = {p.parent.name[:2] for p in classroom.exercise_notebooks()}
    lessons = {p.name[:2] for p in classroom.lesson_notebooks()}
    assert not with_exercises & PENDING_EXERCISES, \
        f"lessons {sorted(with_exercises & PENDING_EXERCISES)} have exercises now: remove them from PENDING_EXERCISES"
    assert lessons - PENDING_EXERCISES <= with_exercises, f"lessons without exercises: {sorted(lessons - with_exercises)}"


def test_the_exercise_table_counts_what_the_notebooks_hold():
    table = (ROOT / "exercises" / "README.md").read_text(encoding="utf-8")
    for path in classroom.exercise_notebooks():
        row = re.search(rf"^\| {path.parent.name[:2]} \|.*\| (\d) \|", table, re.M)
        assert row and int(row.group(1)) == classroom.exercise_count(path), f"exercises/README.md: {path.parent.name}"


def test_the_readme_lesson_table_is_bilingual():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for number, chinese in classroom.TITLES_ZH.items():
        row = re.search(rf"^\| {number} \|(.*)$", readme, re.M)
        assert row and chinese in row.group(1), f"README.md: lesson {number}'s row lacks its Chinese title {chinese}"


def test_the_glossary_links_lessons_that_exist():
    glossary = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(\.\./notebooks/([^)]+)\)", glossary)
    assert links, "the glossary links no lesson"
    missing = {link for link in links if not (classroom.NOTEBOOKS_DIR / link).exists()}
    assert not missing, f"docs/glossary.md links lessons that do not exist: {sorted(missing)}"

