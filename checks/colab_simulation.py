"""Colab's GPU runtime as it is before a lesson's install cell runs, rebuilt in a fresh virtual environment.

What the simulation keeps of Colab, and what it cannot (checks/test_colab.py runs the install cell and the lessons
in it):
- Python 3.13 and pip 24.1.2, as Colab's, where this machine has a Python 3.13 (else the course environment's
  Python, and it says so);
- Colab's versions (checks/colab_packages.txt) of every package that the course's base install needs (as the
  course's own environment has them), and of what they need; the kernel (ipykernel) at Colab's version. Colab's
  other packages (about 550: TensorFlow, JAX, ...) cannot change what pip installs for the course, only slow the
  simulation down;
- torch 2.11.0 and torchvision 0.26.0, Colab's releases, but PyPI's builds: Colab's are PyTorch's CUDA 12.8 builds,
  which only PyTorch's own index serves; PyPI's are CUDA 13 builds. The install cell must keep either as it is;
- torch's CUDA libraries: Colab has them, installed with its torch. Here they would be about 3 GB to download for a
  machine with no GPU, where they are loaded at `import torch` and never used. So they are stand-ins: each is
  recorded as installed at the version torch asks for (metadata only, so pip finds torch's requirements met, as in
  Colab), and `import torch` loads the course environment's CUDA 13 libraries, already on disk, through a .pth file.
  triton and cuda-bindings, which Python code imports, are real.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from ftlab.environment import declared_ranges, normalize

HERE = Path(__file__).resolve().parent
SNAPSHOT = HERE / "colab_packages.txt"
# Colab's CUDA 12.8 stack: its torch family and the CUDA packages they bring, which PyPI's torch replaces here
CUDA_SPECIFIC = re.compile(r"^(torch|torchvision|torchaudio|torchcodec|triton|nvidia-.*|cuda-.*|cu.*-cu12)$")
STAND_IN = re.compile(r"^(nvidia-.*|cuda-toolkit)$")  # torch's CUDA libraries: shared objects only
KERNEL = "ipykernel"  # Colab's kernel, which runs the lessons


def colab_versions(path=SNAPSHOT):
    """{normalized name: version} of Colab's packages installed from an index (`name==version` lines)."""
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[normalize(name)] = version.strip()
    return pins


def find_python313():
    """A Python 3.13 interpreter (Colab's Python), or None when this machine has none."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [os.environ.get("COLAB_PYTHON"), shutil.which("python3.13"),
                  *sorted(glob.glob(str(pyenv / "versions" / "3.13*" / "bin" / "python3.13")))]
    for python in filter(None, candidates):
        done = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
                              capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip() == "True":
            return python
    return None


class Simulation:
    """A virtual environment at `folder`/venv made to look like Colab's GPU runtime before the install cell."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.venv = self.folder / "venv"
        self.python = self.venv / "bin" / "python"

    def run(self, *args, **kwargs):
        return subprocess.run([str(self.python), *args], check=True, **kwargs)

    def pip(self, *args):
        self.run("-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:", *args)

    def site_packages(self):
        return Path(self.run("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                             capture_output=True, text=True).stdout.strip())

    def python_version(self):
        return self.run("-c", "import platform; print(platform.python_version())", capture_output=True,
                        text=True).stdout.strip()

    def build(self):
        """Make the environment from nothing: Colab's pip, torch and the rest of its packages the course touches."""
        colab = colab_versions()
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        python = find_python313()
        if python is None:
            print(f"This machine has no Python 3.13 (Colab's): the simulation runs on Python {sys.version.split()[0]}")
        subprocess.run([python or sys.executable, "-m", "venv", str(self.venv)], check=True)
        self.pip(f"pip=={colab['pip']}")
        torch = [f"{name}=={colab[name].split('+')[0]}" for name in ("torch", "torchvision")]
        self.pip("--no-deps", *torch)
        site = self.site_packages()
        self.stand_in_cuda_libraries(site)
        self.pip("-c", self.write_constraints(colab), *self.colab_packages_the_course_touches(colab), KERNEL)

    def colab_packages_the_course_touches(self, colab):
        """Colab's packages that the course's base install or the kernel needs, as installed in the course's own
        environment (the one running this), less Colab's CUDA stack."""
        needed = closure([Requirement(r).name for r in declared_ranges()[None]] + [KERNEL])
        return sorted(name for name in needed & set(colab) if not CUDA_SPECIFIC.match(name))

    def write_constraints(self, colab):
        """Colab's versions as pip constraints, less its CUDA stack (torch's family among it), which PyPI's builds
        stand in for here."""
        path = self.folder / "colab-constraints.txt"
        lines = [f"{name}=={version}" for name, version in sorted(colab.items()) if not CUDA_SPECIFIC.match(name)]
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    def stand_in_cuda_libraries(self, site):
        """torch's CUDA library packages recorded as installed (metadata only), at the versions torch asks for; their
        shared objects from the course environment (a .pth file names a folder that links them). triton and
        cuda-bindings, Python packages that torch needs too, are left to pip: it installs them with Colab's packages."""
        python_version = self.python_version()
        environment = {"python_version": ".".join(python_version.split(".")[:2]), "python_full_version": python_version}
        torch = metadata.PathDistribution(next(site.glob("torch-*.dist-info")))
        needed = [r for r in map(Requirement, torch.requires or []) if not r.marker or r.marker.evaluate(environment)]
        for requirement in needed:
            if STAND_IN.match(normalize(requirement.name)):
                write_stand_in(site, requirement)
        links = self.folder / "course-cuda-libraries"
        links.mkdir()
        (links / "nvidia").symlink_to(Path(sysconfig.get_paths()["purelib"]) / "nvidia")
        (site / "course-cuda-libraries.pth").write_text(f"{links}\n")


def closure(names):
    """The normalized names of `names` and of everything they need, recursively, as installed here."""
    seen, todo = set(), [normalize(name) for name in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [normalize(r.name) for r in map(Requirement, requirements)
                 if not r.marker or r.marker.evaluate({"extra": ""})]
    return seen


def write_stand_in(site, requirement):
    """An installed distribution with nothing in it but its metadata, named and versioned as `requirement` pins."""
    (version,) = [spec.version for spec in requirement.specifier if spec.operator == "=="]
    info = site / f"{re.sub(r'[-.]+', '_', requirement.name)}-{version}.dist-info"
    info.mkdir()
    extras = "".join(f"Provides-Extra: {extra}\n" for extra in sorted(requirement.extras))
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {requirement.name}\nVersion: {version}\n{extras}"
        "Summary: stand-in of ftlab's Colab simulation: metadata only (checks/colab_simulation.py says why)\n")
    (info / "INSTALLER").write_text("ftlab-colab-simulation\n")
    (info / "RECORD").write_text("".join(f"{info.name}/{name},,\n" for name in ("METADATA", "INSTALLER", "RECORD")))
