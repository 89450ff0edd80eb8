"""Is this environment the tested one? Installed versions against the lock (requirements.txt) and the ranges
(pyproject.toml); and the optional libraries (extras), with how to install one that a lesson needs."""
import importlib
import re
import tomllib
from importlib import metadata

from .paths import ROOT

REQUIREMENTS = ROOT / "requirements.txt"
PYPROJECT = ROOT / "pyproject.toml"
# Colab's own builds, which its install cell keeps (ftlab/colab.py says why): any release within the course's
# range is as good as the pinned one.
KEPT_FROM_HOST = ("torch", "torchvision")
# The modules of the extras, what needs each, and its extra in pyproject.toml.
EXTRAS = {
    "llama_cpp": ("llama-cpp", "Running a GGUF file in llama.cpp (lesson 12)"),
    "nbgrader": ("classroom", "Releasing and autograding the exercises"),
    "playwright": ("test", "The browser test"),
}


def normalize(name):
    """A distribution's name as the packaging standards compare them: torch_vision, Torch.Vision -> torch-vision."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions(path=REQUIREMENTS):
    """{package: version} from the `name==version` lines of requirements.txt."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    return pins


def declared_ranges(path=PYPROJECT):
    """{extra: [requirement, ...]} from pyproject.toml; the base install (what the lessons need) under None."""
    project = tomllib.loads(path.read_text())["project"]
    return {None: project["dependencies"], **project.get("optional-dependencies", {})}


def _installed(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_environment():
    """Rows (package, pinned, installed, ok): every package of the base install, and each package of an extra that
    is installed. ok: the pinned version is installed (a local build tag, 2.14.1+cu130, is the same release); for
    torch and torchvision, where Colab keeps its own builds, any release within the course's range."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    ranges = {normalize(r.name): r.specifier for r in map(Requirement, declared_ranges()[None])}
    rows = []
    for name, pinned in pinned_versions().items():
        installed = _installed(name)
        if installed is None and normalize(name) not in ranges:
            continue  # an extra that this environment does without
        ok = installed is not None and installed.split("+")[0] == pinned
        if installed and not ok and normalize(name) in KEPT_FROM_HOST:
            ok = Version(installed) in ranges[normalize(name)]
        rows.append((name, pinned, installed or "missing", ok))
    return rows


def require(module):
    """Import `module`, a library of one of ftlab's extras, or say which extra brings it and how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as missing:
        if missing.name != module or module not in EXTRAS:
            raise
        extra, purpose = EXTRAS[module]
        packages = ", ".join(declared_ranges()[extra])
        raise ModuleNotFoundError(
            f"{purpose} needs the extra '{extra}' of ftlab ({packages}), which the base install leaves out. "
            f"Install it with  pip install -e \"{ROOT}[{extra}]\"  (in a notebook: %pip install ..., then restart "
            "the kernel); `make install` installs every extra.", name=module) from None
