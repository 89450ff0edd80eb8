"""The course in a classroom and in Colab: lesson headers, bilingual titles, the exercise notebooks.

- REPOSITORY is the one place that holds the course's address: the "Open in Colab" badges and the Colab install
  cells are written from it. Change it here, then run `python -m ftlab.classroom headers`.
- TITLES_ZH holds each lesson's Chinese title; the English one is the lesson's own title line (`# NN · ...`).
- `python -m ftlab.classroom headers` writes, in every lesson (notebooks/NN_*.ipynb) and exercise notebook
  (exercises/NN_*/NN_*_exercises.ipynb), the same three things, and rewrites them when they are out of date:
  a first markdown cell with the Colab badge and links, the title line in English and Chinese, and before the
  first code cell an install cell that sets the course up in Colab and does nothing anywhere else.
  Header cells carry no outputs (the install cell's are cleared), so a header leaves the lesson's other outputs as
  they are.
  `python -m ftlab.classroom check` lists the notebooks whose header is out of date (tests/test_classroom.py runs it).
  Adding a lesson: its Chinese title in TITLES_ZH, then `python -m ftlab.classroom headers notebooks/NN_name.ipynb`.
"""
import argparse
import re
import sys
from pathlib import Path

from .paths import NOTEBOOKS_DIR, ROOT

REPOSITORY = "https://github.com/ftlab-course/ftlab"  # the course's address: the one place to change it
BRANCH = "main"
EXERCISES_DIR = ROOT / "exercises"
GLOSSARY = ROOT / "docs" / "glossary.md"

# The Chinese beside each lesson's English title (terms as in docs/glossary.md). A new lesson adds its line here.
TITLES_ZH = {
    "00": "欢迎：课程、环境与训练的四个阶段",
    "01": "预训练：从零训练分词器与语言模型",
    "02": "监督微调（SFT）：全参数微调",
    "03": "LoRA 低秩适配",
    "04": "QLoRA 量化低秩适配与显存占用",
    "05": "适配器（瓶颈适配器）",
    "06": "提示微调、前缀微调与 P-tuning",
    "07": "参数高效微调（PEFT）方法比较",
    "08": "奖励建模",
    "09": "基于人类反馈的强化学习（RLHF）：近端策略优化（PPO）",
    "10": "直接偏好优化（DPO）及其变体",
    "11": "组相对策略优化（GRPO）与可验证奖励",
    "12": "评估、模型合并、导出与部署",
    "13": "多进程与多卡分布式训练",
    "14": "用你自己的数据微调：格式、检查、训练与部署",
}

HEADER_ID, INSTALL_ID = "ftlab-header", "ftlab-colab-install"  # fixed cell ids: rewriting a header is idempotent
TITLE_LINE = re.compile(r"^# (\d\d) · (.+)$")
CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

COLAB_COURSE = "/content/ftlab"  # where the install cell clones the course in Colab
INSTALL_CELL = '''\
# Colab only: fetch the course, install it beside Colab's torch, check the GPU, choose the profile. Elsewhere: nothing.
import os, subprocess, sys

if "google.colab" in sys.modules:
    COURSE = "{course}"
    if not os.path.isdir(COURSE):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{branch}", "{repository}", COURSE], check=True)
    sys.path.insert(0, COURSE)  # this kernel started before the install: let `import ftlab` find it now
    from ftlab import colab  # ftlab/colab.py: how, and why torch and torchvision stay Colab's

    colab.install(COURSE)
    os.environ["FTLAB_PROFILE"] = colab.choose_profile()  # gpu when torch sees the GPU; else it says why
else:
    print("Not in Colab: nothing to install.")'''


def colab_url(path):
    """The Colab address that opens `path` (a file of the repository) from the course's repository."""
    relative = Path(path).resolve().relative_to(ROOT).as_posix()
    return f"https://colab.research.google.com/github/{REPOSITORY.removeprefix('https://github.com/')}/blob/{BRANCH}/{relative}"


def install_cell_source(course=COLAB_COURSE):
    """The install cell; `course` is the folder it installs from (the Colab simulation, checks/, passes a checkout)."""
    return INSTALL_CELL.format(repository=REPOSITORY, branch=BRANCH, course=course)


def lesson_notebooks():
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def exercise_notebooks():
    """The exercise notebooks, one per lesson: exercises/NN_name/NN_name_exercises.ipynb (nbgrader's source layout:
    one folder per assignment)."""
    return sorted(EXERCISES_DIR.glob("[0-9][0-9]_*/[0-9][0-9]_*_exercises.ipynb"))


def exercise_notebook_of(lesson):
    """The exercise notebook of a lesson notebook, or None when it has none yet."""
    stem = Path(lesson).stem
    path = EXERCISES_DIR / stem / f"{stem}_exercises.ipynb"
    return path if path.exists() else None


def _relative(target, start):
    return Path(*[".."] * len(Path(start).resolve().parent.relative_to(ROOT).parts), Path(target).resolve()
                .relative_to(ROOT)).as_posix()


def header_markdown(path):
    """The first cell of a notebook: in a lesson, the Colab badge and the link to its exercises; in an exercise
    notebook, the link back to its lesson. Both link the glossary."""
    path = Path(path)
    glossary = f"[glossary 术语表]({_relative(GLOSSARY, path)})"
    if path.parent.resolve() == NOTEBOOKS_DIR.resolve():
        parts = [f"[![Open In Colab]({COLAB_BADGE})]({colab_url(path)})"]
        exercises = exercise_notebook_of(path)
        if exercises:
            parts.append(f"exercises with automatic checks: [{exercises.name}]({_relative(exercises, path)})")
        return " &nbsp; ".join(parts + [glossary])
    lesson = NOTEBOOKS_DIR / f"{path.parent.name}.ipynb"
    return f"Exercises of the lesson [{lesson.name}]({_relative(lesson, path)}) &nbsp; {glossary}"


def bilingual_title(line, path):
    """`# NN · English` (or an older bilingual line) as `# NN · English · 中文`, the Chinese from TITLES_ZH."""
    match = TITLE_LINE.match(line)
    if not match:
        raise ValueError(f"{path}: the first markdown cell must start with the title line '# NN · Title', "
                         f"not {line[:60]!r}")
    number, title = match.groups()
    if number not in TITLES_ZH:
        raise KeyError(f"{path}: lesson {number} has no Chinese title: add it to TITLES_ZH in {__file__}")
    english = title.rsplit(" · ", 1)[0] if " · " in title and CJK.search(title.rsplit(" · ", 1)[1]) else title
    chinese = TITLES_ZH[number] if path.parent.resolve() == NOTEBOOKS_DIR.resolve() else f"练习：{TITLES_ZH[number]}"
    return f"# {number} · {english} · {chinese}"


def with_header(nb, path):
    """A copy of notebook `nb` with its header cells written for `path`: any older header cells are replaced."""
    import nbformat

    cells = [nbformat.from_dict(c) for c in nb.cells if c.get("id") not in (HEADER_ID, INSTALL_ID)]
    title = next((c for c in cells if c.cell_type == "markdown"), None)
    if title is None:
        raise ValueError(f"{path}: a notebook needs a markdown title cell")
    first, newline, rest = title.source.partition("\n")
    title.source = bilingual_title(first, path) + newline + rest
    header = nbformat.v4.new_markdown_cell(header_markdown(path), id=HEADER_ID)
    # Without outputs, executed or not: what it prints outside Colab ("Not in Colab") says nothing in a committed
    # lesson. `make notebooks` rewrites the headers after executing the lessons.
    install = nbformat.v4.new_code_cell(install_cell_source(), id=INSTALL_ID)
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    cells = [header] + cells[:first_code] + [install] + cells[first_code:]
    return nbformat.from_dict(dict(nb, cells=cells))


def update_header(path, write=True):
    """Write the header of one notebook; True when it changed (with write=False: when it is out of date)."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    updated = with_header(nb, path)
    changed = nbformat.writes(updated) != nbformat.writes(nb)
    if changed and write:
        nbformat.write(updated, path)
    return changed


def all_notebooks():
    return lesson_notebooks() + exercise_notebooks()


def stale_headers(paths=None):
    """The notebooks (default: every lesson and exercise notebook) whose header is missing or out of date."""
    return [p for p in (paths or all_notebooks()) if update_header(p, write=False)]


def exercise_count(path):
    """How many exercises an exercise notebook holds: its autograded check cells (nbgrader `grade: true`)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return sum(bool(c.metadata.get("nbgrader", {}).get("grade")) and c.cell_type == "code" for c in nb.cells)


def _shown(path):
    path = Path(path).resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ftlab.classroom", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    headers = commands.add_parser("headers", help="write the Colab badge, bilingual title and install cell into "
                                                   "the notebooks given, or into every lesson and exercise notebook")
    check = commands.add_parser("check", help="list the notebooks whose header is out of date (exit status 1 if any)")
    for command in (headers, check):
        command.add_argument("paths", nargs="*", type=Path, help="notebooks (default: all of them)")
    commands.add_parser("count", help="the number of exercises of each lesson")
    args = parser.parse_args(argv)
    if args.command == "headers":
        for path in args.paths or all_notebooks():
            print(f"{'updated' if update_header(path) else 'current'}  {_shown(path)}")
    elif args.command == "check":
        stale = stale_headers(args.paths or all_notebooks())
        for path in stale:
            print(f"out of date: {_shown(path)}  (run: python -m ftlab.classroom headers {_shown(path)})")
        return 1 if stale else 0
    else:
        for path in exercise_notebooks():
            print(f"{path.parent.name}: {exercise_count(path)} exercises")
    return 0


if __name__ == "__main__":
    sys.exit(main())
