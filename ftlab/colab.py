"""The course in Colab: install it beside Colab's own torch, check that torch sees the GPU, choose the profile.

Every lesson's install cell (written by ftlab/classroom.py) clones the course, then calls `install` and
`choose_profile`. Why not install the lock (requirements.txt) as it is: it pins torch 2.14.1, and PyPI's build of it
is made for CUDA 13 (drivers 580 and newer); installing it would replace the torch that Colab built for its own
CUDA and driver, maybe with one that cannot see the GPU, after downloading gigabytes. So pip installs the course
with every other pin of the lock as a constraint, and torch and torchvision held at the versions installed: pip adds
what Colab lacks (Unsloth, TRL, bitsandbytes), moves what the course needs at another version (datasets 4.0 is
one that Unsloth refuses), and leaves torch alone. Only the base install: JupyterLab, the test tools, nbgrader and
llama.cpp are extras (pyproject.toml), which Colab learners do without.
This module imports only the standard library: the cell imports it before the course's libraries are installed.
"""
import json
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

KEPT = ("torch", "torchvision")  # Colab's builds, made for its CUDA and driver
# The oldest NVIDIA driver that runs each CUDA major version (CUDA's minor-version compatibility; Linux).
MIN_DRIVER = {11: 450, 12: 525, 13: 580}
NO_GPU_RUNTIME = "choose a GPU runtime (Runtime > Change runtime type > T4 GPU), then run this cell again"


def installed_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def constraints(course):
    """pip constraints: the lock's pins, but torch and torchvision held at the installed versions."""
    lines = []
    for line in (Path(course) / "requirements.txt").read_text().splitlines():
        pin = line.split("#")[0].strip()
        if pin and pin.split("==")[0].strip().lower() not in KEPT:
            lines.append(pin)
    lines += [f"{name}=={installed_version(name)}" for name in KEPT if installed_version(name)]
    return "\n".join(lines) + "\n"


def install_command(course, constraints_file):
    return [sys.executable, "-m", "pip", "install", "--quiet", "-e", str(course), "-c", str(constraints_file)]


def is_installed(course):
    """True when ftlab is installed from `course` already (the cell ran before in this runtime)."""
    try:
        direct_url = metadata.distribution("ftlab").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return False
    url = json.loads(direct_url or "{}").get("url", "")
    return url.removeprefix("file://") == str(Path(course).resolve())


def install(course):
    """Install the course from its folder `course`, keeping torch and torchvision; once per runtime."""
    if is_installed(course):
        print(f"ftlab is installed from {course}.")
        return
    kept = {name: installed_version(name) for name in KEPT}
    imported = _imported_versions()
    print("Installing the course and the libraries Colab lacks (a minute or two); kept: "
          + ", ".join(f"{name} {version}" for name, version in kept.items()))
    with tempfile.NamedTemporaryFile("w", suffix="-constraints.txt", delete=False) as file:
        file.write(constraints(course))
    subprocess.run(install_command(course, file.name), check=True)
    changed = {name: installed_version(name) for name in KEPT if installed_version(name) != kept[name]}
    if changed:
        raise RuntimeError(f"the install changed {changed} (was {kept}): Colab's own builds must stay")
    stale = sorted(name for name, version in imported.items() if installed_version(name) != version)
    if stale:  # this kernel holds the old versions of these in memory
        print(f"Updated while already imported here: {', '.join(stale)}. Restart the session "
              "(Runtime > Restart session), then run the cells again.")
    print(f"ftlab is installed from {course}.")


def _imported_versions():
    """{distribution: version} of the installed distributions that this Python has imported modules of."""
    imported = {name.partition(".")[0] for name in sys.modules}
    return {dist: installed_version(dist) for module, dists in metadata.packages_distributions().items()
            if module in imported for dist in dists}


def nvidia_driver():
    """The NVIDIA driver's version from nvidia-smi, or None when there is no driver (no GPU in this machine)."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.split()
    return lines[0] if done.returncode == 0 and lines else None


def gpu_problem(torch):
    """None when `torch` sees a GPU; otherwise why it does not, and what to do."""
    if torch.cuda.is_available():
        return None
    if not torch.version.cuda:
        return f"this runtime has no GPU (its torch {torch.__version__} is the CPU build): {NO_GPU_RUNTIME}"
    driver = nvidia_driver()
    if driver is None:
        return f"this runtime has no GPU (no NVIDIA driver): {NO_GPU_RUNTIME}"
    cuda = int(torch.version.cuda.split(".")[0])
    if int(driver.split(".")[0]) < MIN_DRIVER.get(cuda, 0):
        return (f"the NVIDIA driver {driver} is too old for torch {torch.__version__}, built for CUDA "
                f"{torch.version.cuda}, which needs driver {MIN_DRIVER[cuda]} or newer. Colab's own torch suits "
                "its driver: if torch was replaced, Runtime > Disconnect and delete runtime, then run this cell again")
    return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU, though the NVIDIA driver {driver} "
            "is there: Runtime > Disconnect and delete runtime, then run this cell again")


def choose_profile():
    """The profile for this runtime: gpu when torch sees the GPU; else cpu, after saying why and what to do."""
    import torch

    problem = gpu_problem(torch)
    if problem is None:
        print(f"GPU: {torch.cuda.get_device_name(0)} (torch {torch.__version__}); profile: gpu")
        return "gpu"
    print(f"torch sees no GPU: {problem}.\nUntil then the lessons run in the cpu profile, on the course's tiny model.")
    return "cpu"
