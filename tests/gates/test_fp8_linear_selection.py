"""fp8-linear-w8a16: vLLM's real dense FP8 kernel selection on simulated archs, before/after."""
import pytest

from shared_sim import ON_ONE_WORKER, run_shared

pytestmark = [pytest.mark.vllm_sim, ON_ONE_WORKER]

SELECT = """
import torch, vllm.plugins
from vllm.config import VllmConfig, set_current_vllm_config
import vllm.model_executor.kernels.linear as linear
from vllm.model_executor.layers.quantization.utils import quant_utils as q
CASES = {
    "block128": (q.kFp8Static128BlockSym, q.create_fp8_quant_key(static=False, group_shape=q.GroupShape(1, 128))),
    "channel": (q.kFp8StaticChannelSym, q.kFp8DynamicTokenSym),
    "tensor": (q.kFp8StaticTensorSym, q.kFp8DynamicTensorSym),
}
def decide():
    out = {}
    for name, (wk, ak) in CASES.items():
        try:
            k = linear.init_fp8_linear_kernel(activation_quant_key=ak, weight_quant_key=wk,
                input_dtype=torch.bfloat16, out_dtype=torch.bfloat16, weight_shape=(4096, 2048))
            out[name] = type(k).__name__
        except Exception as exc:
            out[name] = f"raises {type(exc).__name__}: {str(exc)[:80]}"
    try:
        k = linear.init_wfp8_a16_linear_kernel(activation_quant_key=None,
            weight_quant_key=q.kFp8StaticChannelSym, weight_shape=(4096, 2048),
            input_dtype=torch.bfloat16, out_dtype=torch.bfloat16)
        out["w8a16-channel"] = type(k).__name__
    except Exception as exc:
        out["w8a16-channel"] = f"raises {type(exc).__name__}: {str(exc)[:80]}"
    return out
with set_current_vllm_config(VllmConfig()):
    before = decide()
    vllm.plugins.load_general_plugins()
    result = {"before": before, "after": decide()}
"""
SCALED = "RocmW8A16Fp8ScaledMMKernel"
BLOCK = "RocmW8A16Fp8BlockLinearKernel"
NO_KERNEL = "raises ValueError: Failed to find a kernel that can implement the ScaledMM linear layer"


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100"])
def test_no_fp8_arch_selects_w8a16_linear(arch, vllm_under_test):
    out = run_shared(SELECT, arch=arch, vllm=vllm_under_test)["result"]
    # vLLM's own answers (both versions): per-channel/per-tensor and W8A16 fail, block emulates W8A8.
    assert out["before"]["block128"] == "TritonFp8BlockScaledMMKernel"
    for case in ("channel", "tensor", "w8a16-channel"):
        assert out["before"][case].startswith(NO_KERNEL), (case, out["before"][case])
    assert out["after"] == {"block128": BLOCK, "channel": SCALED, "tensor": SCALED,
                            "w8a16-channel": SCALED}


@pytest.mark.parametrize("arch", ["gfx1201", "gfx942"])
def test_fp8_arch_keeps_vllm_kernels(arch, vllm_under_test):
    out = run_shared(SELECT, arch=arch, vllm=vllm_under_test)["result"]
    assert out["after"] == out["before"]
    assert BLOCK not in out["after"].values() and SCALED not in out["after"].values()


def test_disabled_kernels_env_and_toggle_restore_vllm(vllm_under_test):
    out = run_shared(SELECT, arch="gfx1151", vllm=vllm_under_test,
                     env={"ROCM_ENABLE_DISABLE": "fp8-linear-w8a16"})["result"]
    assert out["after"] == out["before"]
    out = run_shared(SELECT, arch="gfx1151", vllm=vllm_under_test,
                     env={"VLLM_DISABLED_KERNELS": BLOCK})["result"]
    assert out["after"]["block128"] == "TritonFp8BlockScaledMMKernel"
    assert out["after"]["channel"] == SCALED
