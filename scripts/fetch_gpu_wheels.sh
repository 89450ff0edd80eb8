#!/usr/bin/env bash
# Build .gpu_wheels/ (gitignored): the wheels scripts/gpu_check.py installs on the GPU machine, which has no
# internet. Run it here, where pip reaches a package index, just before the device run.
# The list is scripts/gpu_wheels.txt; unsloth and bitsandbytes are slimmed to fit the 64 MiB carry limit.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
rm -rf .gpu_wheels
exec "$PYTHON" scripts/gpu_check.py --fetch-wheels "$@"
