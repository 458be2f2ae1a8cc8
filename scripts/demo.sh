#!/usr/bin/env bash
# The main job on a fresh machine: set up (scripts/setup.sh, idempotent) and show what rocm-enable
# does for Qwen3-Coder-Next-FP8 on a Strix Halo (gfx1151): for each op family, what vLLM runs
# without the plugin and with it, decided by vLLM's own code under a simulated gfx1151.
# Arguments replace the default ones, e.g. `bash scripts/demo.sh --model Qwen/Qwen3.6-27B-FP8 --arch gfx1100`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
    set -- --model Qwen/Qwen3-Coder-Next-FP8 --arch gfx1151
fi
exec .venv/bin/rocm-enable explain "$@"
