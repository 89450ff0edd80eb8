"""The cpu and real profiles must never touch the network: no model, tokenizer or dataset from a hub."""
import json
import os
import subprocess
import sys

# Runs in a fresh interpreter, so nothing imported by the test session hides a connection.
# Every TCP/UDP connection and every DNS lookup is recorded and refused.
GUARD = r"""
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
"""
CPU_SCRIPT = GUARD + r"""
import dataclasses, pathlib
import ftlab
ftlab.setup()  # no argument: the profile comes from FTLAB_PROFILE, as in the notebooks
from transformers import AutoModelForCausalLM, AutoTokenizer
from ftlab import base_eval, base_model, data
from ftlab.profiles import PROFILES, Stage

data.load("sft")
data.load("preferences")
tiny = dataclasses.replace(PROFILES["cpu"], stages={"pretrain": Stage(steps=2, batch_size=4, learning_rate=3e-3)})
folder = pathlib.Path(sys.argv[1])
base_model.build_base_model(folder, tiny)
model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
base_eval.arithmetic_accuracy(model, tokenizer, [(1, "+", 2)])
print("ATTEMPTS=" + json.dumps(attempts))
"""


# The real profile: the model converted from the package's file, then a lesson's cells (load through Unsloth as
# lesson 02 does, one SFT step on the course chats, a greedy reply).
REAL_SCRIPT = GUARD + r"""
import ftlab
P = ftlab.setup()
from trl import SFTTrainer
from unsloth import FastLanguageModel
from ftlab import chat, models, sft
model, tokenizer = FastLanguageModel.from_pretrained(models.start_model(P, "base"), max_seq_length=P.max_seq_length,
                                                     dtype=P.dtype, load_in_4bit=False, full_finetuning=True)
args = sft.sft_config(P.artifacts / "runs" / "offline", P, max_steps=1, per_device_train_batch_size=2,
                      eval_strategy="no", disable_tqdm=True)
SFTTrainer(model=model, args=args, train_dataset=sft.chat_splits()["train"].select(range(4)),
           processing_class=tokenizer).train()
print(chat.reply(model, tokenizer, [[{"role": "user", "content": "What is 2+3?"}]], max_new_tokens=8))
print("ATTEMPTS=" + json.dumps(attempts))
"""


def attempted_connections(script, profile, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}  # setup() must set them itself
    env.update(FTLAB_PROFILE=profile, FTLAB_ARTIFACTS=str(tmp_path / "artifacts"))
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "base")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("ATTEMPTS=")[-1])


def test_the_cpu_profile_opens_no_network_connection(tmp_path):
    attempts = attempted_connections(CPU_SCRIPT, "cpu", tmp_path)
    assert attempts == [], f"the cpu profile tried to reach the network: {attempts}"


def test_the_real_profile_opens_no_network_connection(tmp_path):
    attempts = attempted_connections(REAL_SCRIPT, "real", tmp_path)
    assert attempts == [], f"the real profile tried to reach the network: {attempts}"
