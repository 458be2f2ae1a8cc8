"""Shared plumbing for the patch-series tests: the vLLM trees under test and their patched copies.

Each vLLM version's package is copied ONCE per session (hard links; see
rocm_enable.patches.copy_tree) and its series applied; the equivalence tests import vLLM from
that copy."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "gates"))  # the gate tests' decision snippets
sys.path.insert(0, str(HERE.parent / "attention"))  # ... and the attention selection's
sys.path.insert(0, str(HERE.parent / "layers"))  # ... and the BF16 MoE ops'
sys.path.insert(0, str(HERE.parent / "gdn"))  # ... and the GDN prefill / decode kernels'
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "scripts"))

from rocm_enable import patches as rp  # noqa: E402
from sim_harness import VllmUnderTest, vllm_versions_under_test  # noqa: E402
from trees import installed_root  # noqa: E402

SERIES_ROOT = REPO / "patches" / "vllm"


@pytest.fixture(scope="session")
def series_root() -> Path:
    return SERIES_ROOT


@pytest.fixture(scope="session")
def versions_under_test() -> list[VllmUnderTest]:
    found = vllm_versions_under_test()
    if not found:
        pytest.skip("no vLLM installed")
    return found


@pytest.fixture(scope="session")
def patched_trees(tmp_path_factory, versions_under_test) -> dict[str, tuple[Path, list]]:
    """version -> (root of the patched copy, [PatchCheck] of each patch of its series)."""
    out = {}
    for vllm in versions_under_test:
        series = SERIES_ROOT / vllm.version
        if not (series / "series").is_file():
            continue
        dest = tmp_path_factory.mktemp(f"vllm-{vllm.version}-patched")
        out[vllm.version] = (dest, rp.patched_copy(installed_root(vllm), series, dest))
    return out


@pytest.fixture(scope="session")
def plugin_decisions():
    """(vllm, arch) -> the plugin side's decisions on unpatched vLLM (cached for the session)."""
    import equivalence as eq

    cache: dict = {}

    def get(vllm: VllmUnderTest, arch: str) -> dict:
        key = (vllm.version, arch)
        if key not in cache:
            cache[key] = eq.run_decisions(vllm, arch, plugin=True)
        return cache[key]

    return get


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into node ids
def pytest_collection_modifyitems(config, items):
    """Each equivalence test runs in the xdist group of its (vLLM version, arch) plugin side
    (equivalence.decisions_group), as does test_broken's decision test (its own mark), so
    plugin_decisions' two simulated processes for 0.33.0 on gfx1151 run once per run."""
    import equivalence as eq

    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec else {}
        if ("plugin_decisions" in getattr(item, "fixturenames", ()) and "arch" in params
                and "vllm_under_test" in params and not item.get_closest_marker("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(
                eq.decisions_group(params["vllm_under_test"].version, params["arch"])))
