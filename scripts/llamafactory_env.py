"""Build LLaMA-Factory's own environment beside the course's (lesson 13; `make llamafactory` runs this).

    .venv/bin/python scripts/llamafactory_env.py .venv-llamafactory

Why a second environment: LLaMA-Factory 0.9.5 (the newest) requires transformers <= 5.6, trl <= 0.24,
peft <= 0.18.1 and datasets <= 4.0; the course pins transformers 5.17, trl 1.15, peft 0.21.2 and datasets 4.8.5
(Unsloth's versions). Both cannot live in one environment.
Why it shares torch: a second CUDA build of torch is 5.5 GB, and LLaMA-Factory's torchaudio requirement would
pull torch 2.9.1 (about 7 GB). So the new environment gets its own pure-Python libraries from
requirements-llamafactory.txt, and sees the course's torch (with triton and the CUDA libraries: nothing else)
through a folder of links named in a .pth file.
Why a torchaudio stand-in: LLaMA-Factory imports torchaudio at the top of llamafactory/data/mm_plugin.py and uses
it only to read audio files. No torchaudio build exists for torch 2.14 (torchaudio 2.9.1 pins torch 2.9.1 and its
library fails to load under 2.14), so a module that refuses any use stands in for it; text training never calls it.
LLaMA-Factory itself is installed with --no-deps for the same reason: its metadata asks for torchaudio, gradio and
torchdata, which `llamafactory-cli train` does not import.
"""
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements-llamafactory.txt"
LLAMAFACTORY = "llamafactory==0.9.5"
SHARED = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")  # the distributions taken from the course environment
TORCHAUDIO_STANDIN = '''"""Not torchaudio: a stand-in in the course's LLaMA-Factory environment (scripts/llamafactory_env.py says why).
LLaMA-Factory imports torchaudio at start-up and calls it only for audio data, which the course has none of."""


def __getattr__(name):
    raise ImportError(f"torchaudio.{name}: torchaudio is not installed here (no build exists for this torch); "
                      "the course's LLaMA-Factory environment trains on text only")
'''


def shared_distributions():
    """The course environment's torch, triton and CUDA-library distributions."""
    return sorted({d.metadata["Name"].lower().replace("_", "-"): d for d in metadata.distributions()
                   if SHARED.match(d.metadata["Name"].lower().replace("_", "-"))}.items())


def link_shared(target):
    """A folder of links to the files of the shared distributions (their top-level packages and metadata)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for _, dist in shared_distributions():
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (target / top).exists():
                (target / top).symlink_to(source)
    return target


def torch_python_requirements():
    """torch's own pure-Python requirements (sympy, networkx, ...), installed in the new environment."""
    return [r for r in metadata.requires("torch") if ";" not in r]


def build(env):
    env = Path(env).resolve()
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    python = env / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    shared = link_shared(env / "shared-from-course")
    (site / "course-torch.pth").write_text(f"{shared}\n")
    (site / "torchaudio").mkdir()
    (site / "torchaudio" / "__init__.py").write_text(TORCHAUDIO_STANDIN)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS), *torch_python_requirements()], check=True)
    subprocess.run([*pip, "--no-deps", LLAMAFACTORY], check=True)  # last: pip then lists no unmet requirements
    subprocess.run([str(python), "-c", "import torch, llamafactory.train.tuner; print('LLaMA-Factory', "
                    "llamafactory.__version__ if hasattr(llamafactory, '__version__') else '', 'with torch', "
                    "torch.__version__)"], check=True)
    print(f"LLaMA-Factory environment ready in {env} (shares torch from {sysconfig.get_paths()['purelib']})")


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else ROOT / ".venv-llamafactory")
