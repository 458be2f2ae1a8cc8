"""rms-norm-not-aiter-hip: vLLM's real IR-priority decision under simulated archs, without and with."""
import pytest

from sim_harness import run_python

pytestmark = pytest.mark.vllm_sim

DECIDE = """
import types
from vllm.config.compilation import CompilationConfig, CompilationMode, CUDAGraphMode
cc = CompilationConfig(mode=CompilationMode.VLLM_COMPILE, backend="inductor",
                       cudagraph_mode=CUDAGraphMode.FULL_AND_PIECEWISE)
from vllm.platforms import current_platform
def decide():
    prio = current_platform.get_default_ir_op_priority(types.SimpleNamespace(compilation_config=cc))
    return {"rms_norm": list(prio.rms_norm), "fused_add_rms_norm": list(prio.fused_add_rms_norm)}
before = decide()
if os.environ.get("LOAD_PLUGIN") == "1":
    import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""
AITER_ENV = {"VLLM_ROCM_USE_AITER": "1", "VLLM_ROCM_USE_AITER_RMSNORM": "1", "LOAD_PLUGIN": "1"}


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100"])
def test_gfx11_keeps_rms_norm_off_aiter(arch, vllm_under_test):
    out = run_python(DECIDE, arch=arch, vllm=vllm_under_test, env=AITER_ENV)["result"]
    assert out["before"]["rms_norm"][0] == "aiter"  # vLLM's own decision: the gfx9-only kernel first
    assert "aiter" not in out["after"]["rms_norm"] and "aiter" not in out["after"]["fused_add_rms_norm"]
    assert out["after"]["rms_norm"] == out["before"]["rms_norm"][1:]


def test_disable_toggle_restores_vllm(vllm_under_test):
    env = dict(AITER_ENV, ROCM_ENABLE_DISABLE="rms-norm-not-aiter-hip")
    out = run_python(DECIDE, arch="gfx1151", vllm=vllm_under_test, env=env)["result"]
    assert out["after"] == out["before"] and out["after"]["rms_norm"][0] == "aiter"


@pytest.mark.parametrize("arch", ["gfx942", "gfx950", "gfx1201"])
def test_other_archs_unchanged(arch, vllm_under_test):
    out = run_python(DECIDE, arch=arch, vllm=vllm_under_test, env=AITER_ENV)["result"]
    assert out["after"] == out["before"]
