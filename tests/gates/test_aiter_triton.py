"""aiter-gdn-triton-decode: vLLM's real GDN decode choice (GDN_AITER_TRITON_AVAILABLE, read when
qwen_gdn_linear_attn is imported) under simulated archs, with and without the plugin.

aiter is not installable here. tests/gates/fakeaiter is a STAND-IN package, put on PYTHONPATH by
this test only: it contains just the module names vLLM probes (aiter.ops.triton.* GDN modules); no
aiter kernel is executed or compiled by these tests."""
import os

import pytest

from sim_harness import run_python

pytestmark = pytest.mark.vllm_sim
FAKE_AITER = os.path.join(os.path.dirname(__file__), "fakeaiter")

DECIDE = """
import importlib
if os.environ.get("LOAD_PLUGIN") == "1":
    import vllm.plugins; vllm.plugins.load_general_plugins()
from vllm._aiter_ops import rocm_aiter_ops
import vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn as gdn
result = {"gdn_aiter_triton": gdn.GDN_AITER_TRITON_AVAILABLE,
          "rdna_aiter_enabled": rocm_aiter_ops.is_rdna_aiter_enabled(),
          "hip_umbrella": bool(rocm_aiter_ops.is_enabled())}
"""


def decide(arch, vllm, plugin, **env):
    base = {"PYTHONPATH": os.pathsep.join(p for p in (vllm.pythonpath, FAKE_AITER) if p),
            "VLLM_ROCM_USE_AITER": "1", "LOAD_PLUGIN": "1" if plugin else "0"}
    base.update(env)
    return run_python(DECIDE, arch=arch, vllm=None, env=base)["result"]


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100"])
def test_gfx11_gets_aiter_triton_gdn_decode(arch, vllm_under_test):
    before = decide(arch, vllm_under_test, plugin=False)
    after = decide(arch, vllm_under_test, plugin=True)
    assert before["gdn_aiter_triton"] is False          # vLLM: RDNA4 only
    assert after["gdn_aiter_triton"] is True
    # the HIP/CK umbrella and the broad RDNA switch stay off: no gfx9 kernel is reachable
    assert after["hip_umbrella"] is False and after["rdna_aiter_enabled"] is False


def test_aiter_env_off_keeps_fla(vllm_under_test):
    after = decide("gfx1151", vllm_under_test, plugin=True, VLLM_ROCM_USE_AITER="0")
    assert after["gdn_aiter_triton"] is False


@pytest.mark.parametrize("arch", ["gfx1201", "gfx942", "gfx950"])
def test_other_archs_unchanged(arch, vllm_under_test):
    assert decide(arch, vllm_under_test, plugin=False) == decide(arch, vllm_under_test, plugin=True)


def test_disable_toggle_restores_vllm(vllm_under_test):
    after = decide("gfx1151", vllm_under_test, plugin=True, ROCM_ENABLE_DISABLE="aiter-gdn-triton-decode")
    assert after["gdn_aiter_triton"] is False


WIDEN = """
import torch
import vllm._aiter_ops  # noqa: F401  (register_ops_once runs here, before any plugin could act)
result = {"fusion_op_registered": hasattr(torch.ops.vllm, "rocm_aiter_rmsnorm_fp8_group_quant")}
"""


@pytest.mark.parametrize("arch,registered", [("gfx1201", True), ("gfx1151", False)])
def test_widening_rdna_switch_is_unsafe(arch, registered, vllm_under_test):
    """Why B3/A10 (aiter unified attention), B4 and the fusion passes are not widened to gfx11:
    the rocm_aiter_* ops that rocm_aiter_fusion's pattern classes look up at class creation
    (imported by pass_manager whenever is_rdna_aiter_enabled() holds) are registered only on
    CDNA3+/RDNA4, at vllm._aiter_ops import. (The simulation cannot import rocm_aiter_fusion
    itself: its other imports need vLLM's compiled _C.)"""
    env = {"PYTHONPATH": os.pathsep.join(p for p in (vllm_under_test.pythonpath, FAKE_AITER) if p),
           "VLLM_ROCM_USE_AITER": "1"}
    out = run_python(WIDEN, arch=arch, vllm=None, env=env)["result"]
    assert out["fusion_op_registered"] is registered
