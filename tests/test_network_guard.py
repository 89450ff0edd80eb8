"""The guard that proves the cpu and real profiles offline (ftlab.network_guard; `make test` runs every lesson and
exercise under it and fails on any line in its log). Each check runs in a fresh interpreter: the guard patches the
socket module of the process it is installed in."""
import os
import subprocess
import sys

SCRIPT = r"""
import os, socket, sys
import ftlab
ftlab.setup(sys.argv[1], quiet=True)  # installs the guard: FTLAB_NETWORK_LOG is set

server = socket.create_server(("127.0.0.1", 0))  # the loopback stays open (Jupyter's kernels, lesson 13)
socket.create_connection(server.getsockname(), timeout=5).close()
for reach in (lambda: socket.create_connection(("huggingface.co", 443), timeout=5),
              lambda: socket.socket().connect(("10.255.255.1", 443)),
              lambda: socket.gethostbyname("pypi.org")):
    try:
        reach()
    except OSError as refused:
        print("refused:", refused)
    else:
        raise SystemExit("a connection went out")
print("switches:", [os.environ.get(s) for s in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")])
"""


def test_setup_refuses_and_records_every_attempt_to_reach_another_machine(tmp_path):
    log = tmp_path / "network.log"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}  # setup() must set them itself
    env["FTLAB_NETWORK_LOG"] = str(log)
    done = subprocess.run([sys.executable, "-c", SCRIPT, "real"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.count("refused:") == 3 and "switches: ['1', '1', '1']" in done.stdout, done.stdout
    lines = log.read_text().splitlines()
    assert [line.split(": ")[1].split(", from")[0] for line in lines] == [
        "look up 'huggingface.co'", "connect to ('10.255.255.1', 443)", "look up 'pypi.org'"], lines
