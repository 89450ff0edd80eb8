"""The cpu profile must never touch the network: no model, tokenizer or dataset from a hub."""
import json
import os
import subprocess
import sys

# Runs in a fresh interpreter, so nothing imported by the test session hides a connection.
# Every TCP/UDP connection and every DNS lookup is recorded and refused.
SCRIPT = r"""
import json, socket, sys
attempts = []
real_connect = socket.socket.connect
def guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        attempts.append(repr(address))
        raise OSError("network blocked by ftlab's offline test")
    return real_connect(self, address)
def guarded_lookup(host, *args, **kwargs):
    attempts.append(f"lookup {host}")
    raise socket.gaierror("network blocked by ftlab's offline test")
socket.socket.connect = guarded_connect
socket.socket.connect_ex = guarded_connect
socket.getaddrinfo = guarded_lookup

import dataclasses, pathlib
import ftlab
ftlab.setup()  # no argument: the profile comes from FTLAB_PROFILE, as in the notebooks
from transformers import AutoModelForCausalLM, AutoTokenizer
from ftlab import base_model, data, evaluate
from ftlab.profiles import PROFILES, Stage

data.load("sft")
data.load("preferences")
tiny = dataclasses.replace(PROFILES["cpu"], stages={"pretrain": Stage(steps=2, batch_size=4, learning_rate=3e-3)})
folder = pathlib.Path(sys.argv[1])
base_model.build_base_model(folder, tiny)
model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
evaluate.arithmetic_accuracy(model, tokenizer, [(1, "+", 2)])
print("ATTEMPTS=" + json.dumps(attempts))
"""


def test_the_cpu_profile_opens_no_network_connection(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}  # setup() must set them itself
    env.update(FTLAB_PROFILE="cpu", FTLAB_ARTIFACTS=str(tmp_path / "artifacts"))
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "base")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    attempts = json.loads(done.stdout.split("ATTEMPTS=")[-1])
    assert attempts == [], f"the cpu profile tried to reach the network: {attempts}"
