"""Is this environment the tested one? Installed versions against the pins in requirements.txt."""
from importlib import metadata

from .paths import ROOT

REQUIREMENTS = ROOT / "requirements.txt"


def pinned_versions(path=REQUIREMENTS):
    """{package: version} from the `name==version` lines of requirements.txt."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    return pins


def check_environment():
    """Rows (package, pinned, installed, ok) for every pinned package."""
    rows = []
    for name, pinned in pinned_versions().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        # A local build tag (2.14.1+cu130) is the same release as the pin.
        rows.append((name, pinned, installed, installed.split("+")[0] == pinned))
    return rows
