"""Where the course keeps things, and how it writes them without leaving anything half-written."""
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COURSE_DATA_DIR = ROOT / "data"
NOTEBOOKS_DIR = ROOT / "notebooks"
# Models the lessons build (the course base model, checkpoints, adapters). Not committed: rebuilt by ftlab.
ARTIFACTS = Path(os.environ.get("FTLAB_ARTIFACTS", ROOT / "artifacts"))
# The data files the lessons read: the course's own; in a smoke run (FTLAB_SMOKE=1, ftlab.profiles) a copy whose
# test splits keep their first rows, so that its measurements are quick (ftlab.data.write_smoke_copy).
SMOKE_DATA_DIR = ARTIFACTS / "smoke-data"
DATA_DIR = SMOKE_DATA_DIR if os.environ.get("FTLAB_SMOKE") == "1" else COURSE_DATA_DIR


@contextmanager
def atomic_dir(target):
    """Yield an empty temporary folder beside `target`; when the block succeeds it becomes `target`.

    A crash or a stopped kernel inside the block leaves `target` as it was (or absent), never half-written.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path, text):
    """Write a text file through a temporary file and one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates the file private to its owner
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
