"""fp8-moe-w8a16: vLLM's real FP8 MoE oracle on simulated archs, every vLLM under test (0.32.0,
0.33.0, 0.34.0), before and after the plugin loads (the same process, so both answers come from
one vLLM; the process is shared with the other cases of its vLLM, arch and environment)."""
import re

import pytest

from shared_sim import ON_ONE_WORKER, run_shared

pytestmark = [pytest.mark.vllm_sim, ON_ONE_WORKER]

ORACLE = """
import torch
import vllm.plugins
from vllm.config import VllmConfig, set_current_vllm_config
from vllm.model_executor.layers.fused_moe.config import FusedMoEConfig, FusedMoEParallelConfig, RoutingMethodType
from vllm.model_executor.layers.fused_moe.activation import MoEActivation
from vllm.model_executor.layers.quantization.utils import quant_utils as q
import vllm.model_executor.layers.fused_moe.oracle.fp8 as oracle
import vllm.model_executor.layers.quantization.fp8 as fp8_method
import vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors_moe.compressed_tensors_moe_w8a8_fp8 as ct_method

MODELS = {"qwen3-next": (512, 10), "qwen3.6-35b-a3b": (256, 8)}
SCHEMES = {
    "block128": (q.kFp8Static128BlockSym, q.kFp8Dynamic128Sym, False),
    "channel": (q.kFp8StaticChannelSym, q.kFp8DynamicTokenSym, True),
    "tensor": (q.kFp8StaticTensorSym, q.kFp8DynamicTensorSym, False),
}

def cfg(E, topk, backend):
    return FusedMoEConfig(num_experts=E, experts_per_token=topk, hidden_dim=2048,
        intermediate_size=512, num_local_experts=E, num_logical_experts=E,
        activation=MoEActivation.SILU, device="cuda", routing_method=RoutingMethodType.Renormalize,
        moe_parallel_config=FusedMoEParallelConfig.make_no_parallel(), in_dtype=torch.bfloat16,
        moe_backend=backend)

def decide(select):
    out = {}
    for model, (E, topk) in MODELS.items():
        for scheme, (wk, ak, cutlass) in SCHEMES.items():
            for backend in ("auto", "triton"):
                try:
                    be, cls = select(cfg(E, topk, backend), wk, ak, allow_vllm_cutlass=cutlass)
                    out[f"{model}/{scheme}/{backend}"] = f"{be.value}:{cls.__name__}"
                except Exception as exc:
                    out[f"{model}/{scheme}/{backend}"] = f"raises {type(exc).__name__}: {exc}"
    return out

with set_current_vllm_config(VllmConfig()):
    before = decide(oracle.select_fp8_moe_backend)
    vllm.plugins.load_general_plugins()
    result = {"before": before, "after": decide(oracle.select_fp8_moe_backend),
              "after_fp8_method": decide(fp8_method.select_fp8_moe_backend),
              "after_ct_method": decide(ct_method.select_fp8_moe_backend)}
"""
OURS = "TRITON:RocmW8A16Fp8Experts"
NO_BACKEND = "raises NotImplementedError: No FP8 MoE backend supports the deployment configuration."


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100"])
def test_no_fp8_arch_selects_w8a16_experts(arch, vllm_under_test):
    out = run_shared(ORACLE, arch=arch, vllm=vllm_under_test)["result"]
    for key, before in out["before"].items():
        if vllm_under_test.version == "0.32.0":
            # vLLM 0.32.0's own answer: the refusal users hit (explicit triton: a ValueError).
            expected = NO_BACKEND if key.endswith("/auto") else "raises ValueError"
            assert before.startswith(expected), (key, before)
        else:
            # vLLM 0.33.0's and 0.34.0's own answer: the emulated W8A8 TritonExperts.
            assert before == "TRITON:TritonExperts", (key, before)
    for view in ("after", "after_fp8_method", "after_ct_method"):
        assert set(out[view].values()) == {OURS}, out[view]


@pytest.mark.parametrize("arch", ["gfx1201", "gfx942"])
def test_fp8_arch_keeps_vllm_native_path(arch, vllm_under_test):
    out = run_shared(ORACLE, arch=arch, vllm=vllm_under_test)["result"]
    assert out["after"] == out["before"]
    assert all(OURS not in v for v in out["after"].values())
    assert out["before"]["qwen3-next/block128/auto"] == "TRITON:TritonExperts"


def test_aiter_env_falls_back_instead_of_raising(vllm_under_test):
    env = {"VLLM_ROCM_USE_AITER": "1", "VLLM_ROCM_USE_AITER_MOE": "1"}
    out = run_shared(ORACLE, arch="gfx1151", vllm=vllm_under_test, env=env)["result"]
    # gate C1 (0.34.0 words it "Fp8 MoE backend 'AITER' does not support ...")
    assert re.match(r"raises ValueError: FP8 MoE backend '?AITER'? does not support",
                    out["before"]["qwen3-next/block128/auto"], re.IGNORECASE), out["before"]
    assert set(out["after"].values()) == {OURS}


def test_disable_toggle_restores_vllm(vllm_under_test):
    out = run_shared(ORACLE, arch="gfx1151", vllm=vllm_under_test,
                     env={"ROCM_ENABLE_DISABLE": "fp8-moe-w8a16"})["result"]
    assert out["after"] == out["before"]
