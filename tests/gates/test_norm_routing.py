"""rms-norm-not-aiter-hip (A13: the platform default) and rms-norm-aiter-ir-priority (B8: a priority
the user names): vLLM's real IR-priority decision under simulated archs, without and with."""
import os

import pytest

from shared_sim import ON_ONE_WORKER, run_shared

pytestmark = [pytest.mark.vllm_sim, ON_ONE_WORKER]

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
    out = run_shared(DECIDE, arch=arch, vllm=vllm_under_test, env=AITER_ENV)["result"]
    assert out["before"]["rms_norm"][0] == "aiter"  # vLLM's own decision: the gfx9-only kernel first
    assert "aiter" not in out["after"]["rms_norm"] and "aiter" not in out["after"]["fused_add_rms_norm"]
    assert out["after"]["rms_norm"] == out["before"]["rms_norm"][1:]


def test_disable_toggle_restores_vllm(vllm_under_test):
    env = dict(AITER_ENV, ROCM_ENABLE_DISABLE="rms-norm-not-aiter-hip")
    out = run_shared(DECIDE, arch="gfx1151", vllm=vllm_under_test, env=env)["result"]
    assert out["after"] == out["before"] and out["after"]["rms_norm"][0] == "aiter"


@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
def test_other_archs_unchanged(arch, vllm_under_test):
    out = run_shared(DECIDE, arch=arch, vllm=vllm_under_test, env=AITER_ENV)["result"]
    assert out["after"] == out["before"]


def test_rdna4_follows_vllm_then_drops_aiter(vllm_under_test):
    """gfx1201 has no aiter HIP kernels either. Before 0.34.0 vLLM's default kept aiter off RDNA4
    (`not on_rdna4()`), so nothing changes; 0.34.0 dropped that term, vLLM puts aiter first there
    too, and the record takes it out."""
    from packaging.version import Version

    out = run_shared(DECIDE, arch="gfx1201", vllm=vllm_under_test, env=AITER_ENV)["result"]
    if Version(vllm_under_test.version) < Version("0.34.0"):
        assert out["after"] == out["before"] and "aiter" not in out["before"]["rms_norm"]
    else:
        assert out["before"]["rms_norm"][0] == "aiter"
        assert out["after"]["rms_norm"] == out["before"]["rms_norm"][1:]
        assert "aiter" not in out["after"]["fused_add_rms_norm"]


# ---- rms-norm-aiter-ir-priority (B8): a priority the user names ------------------------------

FAKE_AITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakeaiter")

USER_PRIORITY = """
import torch
from vllm import ir
from vllm.config import CompilationConfig, KernelConfig, VllmConfig
from vllm.config.compilation import CompilationMode
from vllm.config.kernel import IrOpPriorityConfig
def decide():
    # --ir-op-priority rms_norm=aiter,fused_add_rms_norm=aiter, as vLLM's arg parser builds it
    user = IrOpPriorityConfig(rms_norm=["aiter"], fused_add_rms_norm=["aiter"])
    vc = VllmConfig(kernel_config=KernelConfig(ir_op_priority=user),
                    compilation_config=CompilationConfig(mode=CompilationMode.NONE))
    vc.kernel_config.ir_op_priority.set_default()          # what every worker does at start
    x = torch.randn(4, 64, dtype=torch.bfloat16); w = torch.ones(64, dtype=torch.bfloat16)
    return {"rms_norm": list(vc.kernel_config.ir_op_priority.rms_norm),
            "fused_add_rms_norm": list(vc.kernel_config.ir_op_priority.fused_add_rms_norm),
            "dispatch_rms_norm": ir.ops.rms_norm.dispatch(x, w, 1e-6).provider,
            "dispatch_fused_add": ir.ops.fused_add_rms_norm.dispatch(x, x.clone(), w, 1e-6).provider,
            "aiter_impl_supported": ir.ops.rms_norm.impls["aiter"].supported}
before = decide()
if os.environ.get("LOAD_PLUGIN") == "1":
    import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""


def user_priority(arch, vllm, **env):
    base = {"PYTHONPATH": os.pathsep.join(p for p in (vllm.pythonpath, FAKE_AITER) if p),
            "LOAD_PLUGIN": "1"}
    base.update(env)
    return run_shared(USER_PRIORITY, arch=arch, vllm=None, env=base)["result"]


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100", "gfx1201"])
def test_user_aiter_priority_dropped_where_aiter_hip_cannot_run(arch, vllm_under_test):
    out = user_priority(arch, vllm_under_test)
    b, a = out["before"], out["after"]
    # B8: aiter's implementation is "supported" wherever aiter imports, so vLLM dispatches to it
    assert b["aiter_impl_supported"] is True
    assert b["rms_norm"][0] == "aiter" and b["dispatch_rms_norm"] == b["dispatch_fused_add"] == "aiter"
    assert a["rms_norm"] == b["rms_norm"][1:] and "aiter" not in a["fused_add_rms_norm"]
    assert a["dispatch_rms_norm"] == a["dispatch_fused_add"] == "vllm_c"   # vLLM's own next choice


@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
def test_user_aiter_priority_cdna_unchanged(arch, vllm_under_test):
    out = user_priority(arch, vllm_under_test)
    assert out["after"] == out["before"] and out["after"]["dispatch_rms_norm"] == "aiter"


def test_user_aiter_priority_disable_restores_vllm(vllm_under_test):
    out = user_priority("gfx1151", vllm_under_test, ROCM_ENABLE_DISABLE="rms-norm-aiter-ir-priority")
    assert out["after"] == out["before"] and out["after"]["dispatch_rms_norm"] == "aiter"
