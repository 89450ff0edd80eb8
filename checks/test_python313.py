"""Python 3.13, Colab's: pip's resolver, asked for Python 3.13 wheels only, finds one for every package of the
course's installs (`--dry-run`: it reads the packages' metadata from the index and installs nothing).

pip evaluates the packages' environment markers (`python_version < "3.13"`) with the Python running it, not the
target's; the Colab simulation (test_colab.py), which installs and runs the course on a real Python 3.13, covers them.
"""
import json
import subprocess
import sys

from packaging.requirements import Requirement

from ftlab import colab
from ftlab.environment import declared_ranges, normalize, pinned_versions
from ftlab.paths import ROOT

# Colab runs Ubuntu 22.04 (glibc 2.35): manylinux wheels up to 2_35 install there. pip takes each platform tag as
# given, without the older ones that it implies, so all of them are listed.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(35, 16, -1)] + ["manylinux2014_x86_64"]
COLAB_TORCH = {"torch": "2.11.0", "torchvision": "0.26.0"}  # Colab's releases (checks/colab_packages.txt)
# No Python 3.13 wheel on PyPI: pip builds it from source at install (`make install` does; minutes).
SOURCE_ONLY = {"llama-cpp-python"}


def resolve(requirements, constraints, tmp_path):
    """{name: (version, url)}: what pip would install for `requirements` on Python 3.13, held to `constraints`."""
    (tmp_path / "constraints.txt").write_text("\n".join(constraints) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-",
         "--only-binary=:all:", "--python-version", "3.13", "--implementation", "cp",
         *(f"--platform={platform}" for platform in PLATFORMS), "-c", str(tmp_path / "constraints.txt"), *requirements],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {normalize(item["metadata"]["name"]): (item["metadata"]["version"], item["download_info"]["url"])
            for item in json.loads(done.stdout)["install"]}


def pins(names):
    lock = {normalize(name): version for name, version in pinned_versions().items()}
    return [f"{name}=={lock[name]}" for name in names]


def names(extra=None):
    return [normalize(Requirement(r).name) for r in declared_ranges()[extra]]


def check_wheels(resolved):
    """Every package resolved to a wheel that Python 3.13 can load."""
    for name, (version, url) in resolved.items():
        wheel = url.rsplit("/", 1)[-1]
        assert wheel.endswith(".whl") and any(tag in wheel for tag in ("-cp313-", "-abi3-", "-py3", "-py2.py3")), \
            f"{name} {version}: {wheel}"


def test_the_locked_base_install_has_python_313_wheels(tmp_path):
    resolved = resolve(pins(names()), [], tmp_path)
    check_wheels(resolved)
    print(f"Python 3.13, the lock's base install: {len(resolved)} packages, all wheels; torch {resolved['torch'][0]}")


def test_the_colab_install_has_python_313_wheels(tmp_path):
    """What the Colab cell asks pip for: the course's ranges, the lock as constraints, Colab's torch kept."""
    constraints = [line for line in colab.constraints(ROOT).splitlines()
                   if normalize(line.split("==")[0]) not in COLAB_TORCH]
    resolved = resolve(declared_ranges()[None], constraints + [f"{n}=={v}" for n, v in COLAB_TORCH.items()], tmp_path)
    check_wheels(resolved)
    assert resolved["torch"][0] == COLAB_TORCH["torch"]
    shown = ["unsloth", "transformers", "trl", "datasets", "xformers", "torchao", "bitsandbytes"]
    print(f"Python 3.13, the Colab install beside torch {COLAB_TORCH['torch']}: {len(resolved)} packages, all wheels; "
          + ", ".join(f"{name} {resolved[name][0]}" for name in shown))


def test_the_extras_have_python_313_wheels(tmp_path):
    extras = sorted(set(declared_ranges()) - {None})
    wheels = [name for extra in extras for name in names(extra) if name not in SOURCE_ONLY]
    resolved = resolve(pins(wheels), [], tmp_path)
    check_wheels(resolved)
    print(f"Python 3.13, the extras {', '.join(extras)}: {len(resolved)} packages, all wheels but "
          f"{', '.join(sorted(SOURCE_ONLY))} (no wheel on PyPI: built from source at install)")
