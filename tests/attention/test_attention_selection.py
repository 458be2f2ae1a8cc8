"""rdna-attention: vLLM's real attention selector (RocmPlatform.get_attn_backend_cls) under
simulated archs, every vLLM version under test, before and after the plugin loads in one process;
with an fp8 KV cache also the impl vLLM would build (e4m3fn cache, vLLM's own Triton KV write)."""
import pytest

from sim_harness import run_python

pytestmark = pytest.mark.vllm_sim

SELECT = """
import torch
import vllm.plugins
from vllm.config import VllmConfig, set_current_vllm_config
from vllm.platforms import current_platform
from vllm.utils.import_utils import resolve_obj_by_qualname
from vllm.v1.attention.selector import AttentionSelectorConfig
from vllm.v1.attention.backends.registry import AttentionBackendEnum

# Full-attention layers: Qwen3-Next-80B-A3B / Qwen3.6-35B-A3B / Qwen3.6-27B all use head_dim 256;
# hybrid models get enlarged KV pages (544 / 1056 at bf16), plain 16 otherwise.
CASES = {
    "qwen3-next/bf16/b544": (256, torch.bfloat16, "auto", 544),
    "qwen3.6-27b/bf16/b1056": (256, torch.bfloat16, "auto", 1056),
    "qwen3.6/fp16/b16": (256, torch.float16, "auto", 16),
    "head128/bf16/b16": (128, torch.bfloat16, "auto", 16),
    "fp8-kv/b544": (256, torch.bfloat16, "fp8", 544),
    "fp8-e4m3-kv/fp16/b16": (256, torch.float16, "fp8_e4m3", 16),
    "fp8-e5m2-kv/b544": (256, torch.bfloat16, "fp8_e5m2", 544),
    "head96/bf16/b16": (96, torch.bfloat16, "auto", 16),
}

def decide(explicit=None):
    out = {}
    for key, (hd, dt, kv, bs) in CASES.items():
        cfg = AttentionSelectorConfig(head_size=hd, dtype=dt, kv_cache_dtype=kv, block_size=bs)
        try:
            path = current_platform.get_attn_backend_cls(explicit, cfg)
            out[key] = resolve_obj_by_qualname(path).get_name()
        except Exception as exc:
            out[key] = f"raises {type(exc).__name__}: {exc}"
    return out

with set_current_vllm_config(VllmConfig()):
    before = decide()
    vllm.plugins.load_general_plugins()
    after = decide()
    explicit = decide(AttentionBackendEnum.TRITON_ATTN)
    by_name = AttentionBackendEnum["ROCM_RDNA_ATTN"].name if "ROCM_RDNA_ATTN" in after.values() or True else None
result = {"before": before, "after": after, "explicit_triton": explicit}
if after["fp8-kv/b544"] == "ROCM_RDNA_ATTN":
    # the impl vLLM builds for an fp8 layer: e4m3fn cache bytes, our kernels, vLLM's KV write
    from vllm.v1.attention.backends import triton_attn as T
    from vllm.v1.attention.ops import triton_reshape_and_cache_flash as W
    impl = AttentionBackendEnum["ROCM_RDNA_ATTN"].get_class().get_impl_cls()(
        16, 256, 0.0625, 2, None, None, "fp8")
    q = torch.empty(1, 16, 256, dtype=torch.bfloat16)
    result["fp8_impl"] = {
        "fp8_dtype": str(impl.fp8_dtype),
        "ours_uint8_cache": impl._kv_fits(q, torch.empty(1, 2, 16, 512, dtype=torch.uint8)),
        "ours_bf16_cache": impl._kv_fits(q, torch.empty(1, 2, 16, 512, dtype=torch.bfloat16)),
        "kv_write_is_vllms": impl.do_kv_cache_update.__func__ is T.TritonAttentionImpl.do_kv_cache_update,
        "triton_write_takes_fp8": W._is_supported_kv_cache_dtype("fp8"),
    }
try:
    result["by_name"] = AttentionBackendEnum["ROCM_RDNA_ATTN"].get_path()
except Exception as exc:
    result["by_name"] = f"raises {type(exc).__name__}"
"""
SELECT = SELECT.replace(
    '    by_name = AttentionBackendEnum["ROCM_RDNA_ATTN"].name if "ROCM_RDNA_ATTN" in after.values() or True else None\n', "")

OURS = "ROCM_RDNA_ATTN"
TARGETS = ("qwen3-next/bf16/b544", "qwen3.6-27b/bf16/b1056", "qwen3.6/fp16/b16", "head128/bf16/b16",
           "fp8-kv/b544", "fp8-e4m3-kv/fp16/b16")
VLLM_KEEPS = ("fp8-e5m2-kv/b544", "head96/bf16/b16")


def vllm_first_choice(arch, version):
    """vLLM's own first valid backend: ROCM_ATTN (gate I1); 0.34.0 swaps TRITON_ATTN ahead of it
    on gfx1100 / gfx1201 (get_valid_backends)."""
    from packaging.version import Version

    if Version(version) >= Version("0.34.0") and arch in ("gfx1100", "gfx1201"):
        return "TRITON_ATTN"
    return "ROCM_ATTN"


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100", "gfx1201"])
def test_wave32_rdna_selects_rdna_backend(arch, vllm_under_test):
    out = run_python(SELECT, arch=arch, vllm=vllm_under_test)["result"]
    first = vllm_first_choice(arch, vllm_under_test.version)
    assert all(out["before"][k] == first for k in TARGETS), out["before"]
    assert all(out["after"][k] == OURS for k in TARGETS), out["after"]
    # fp8 KV: e4m3fn bytes decoded by our kernels, written by vLLM's Triton reshape_and_cache_flash
    assert out["fp8_impl"] == {"fp8_dtype": "torch.float8_e4m3fn", "ours_uint8_cache": True,
                               "ours_bf16_cache": False, "kv_write_is_vllms": True,
                               "triton_write_takes_fp8": True}, out["fp8_impl"]
    # layers our kernels do not serve keep vLLM's choice
    for k in VLLM_KEEPS:
        assert out["after"][k] == out["before"][k], (k, out)
    # --attention-backend still overrides
    assert set(out["explicit_triton"].values()) - {"raises ValueError"} <= {"TRITON_ATTN"}
    assert out["explicit_triton"]["qwen3-next/bf16/b544"] == "TRITON_ATTN"
    assert out["by_name"] == "rocm_enable.stacks.vllm.attention_rdna.RdnaAttentionBackend"


def test_cdna_keeps_vllm_choice(vllm_under_test):
    out = run_python(SELECT, arch="gfx942", vllm=vllm_under_test)["result"]
    assert out["after"] == out["before"]
    assert OURS not in out["after"].values()
    assert out["by_name"].startswith("raises")  # nothing registered off wave32 RDNA


def test_disable_toggle_restores_vllm(vllm_under_test):
    out = run_python(SELECT, arch="gfx1151", vllm=vllm_under_test,
                     env={"ROCM_ENABLE_DISABLE": "rdna-attention"})["result"]
    assert out["after"] == out["before"]
    assert out["after"]["qwen3-next/bf16/b544"] == vllm_first_choice("gfx1151", vllm_under_test.version)
