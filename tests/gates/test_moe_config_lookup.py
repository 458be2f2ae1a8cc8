"""moe-config-board-names: vLLM's real tuned-config lookup on a simulated Strix Halo."""
import pytest

from sim_harness import run_python

pytestmark = pytest.mark.vllm_sim

LOOKUP = """
import vllm.plugins
import vllm.model_executor.layers.fused_moe.fused_moe as fm
from vllm.platforms import current_platform
def look():
    fm.get_moe_configs.cache_clear()
    cfg = fm.get_moe_configs(128, 768, "int4_w4a16")
    return None if cfg is None else sorted(cfg)
before = look()
vllm.plugins.load_general_plugins()
result = {"device": current_platform.get_device_name(), "before": before, "after": look()}
"""


def test_strix_halo_finds_vllms_own_8060s_file(vllm_under_test):
    out = run_python(LOOKUP, arch="gfx1151", vllm=vllm_under_test)["result"]
    assert out["device"] == "AMD Radeon 8060S" or "8060S" in out["device"]
    assert out["before"] is None  # vLLM's own lookup misses its own Radeon_8060S_Graphics file
    assert out["after"] and 1 in out["after"]  # batch-size keys of that file


def test_other_boards_unchanged(vllm_under_test):
    out = run_python(LOOKUP, arch="gfx942", vllm=vllm_under_test)["result"]
    assert out["before"] is None and out["after"] is None
