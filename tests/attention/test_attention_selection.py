"""rdna-attention: vLLM's real attention selector (RocmPlatform.get_attn_backend_cls) under
simulated archs, vLLM 0.32.0 and 0.33.0, before and after the plugin loads in one process."""
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
try:
    result["by_name"] = AttentionBackendEnum["ROCM_RDNA_ATTN"].get_path()
except Exception as exc:
    result["by_name"] = f"raises {type(exc).__name__}"
"""
SELECT = SELECT.replace(
    '    by_name = AttentionBackendEnum["ROCM_RDNA_ATTN"].name if "ROCM_RDNA_ATTN" in after.values() or True else None\n', "")

OURS = "ROCM_RDNA_ATTN"
TARGETS = ("qwen3-next/bf16/b544", "qwen3.6-27b/bf16/b1056", "qwen3.6/fp16/b16", "head128/bf16/b16")
VLLM_KEEPS = ("fp8-kv/b544", "head96/bf16/b16")


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100", "gfx1201"])
def test_wave32_rdna_selects_rdna_backend(arch, vllm_under_test):
    out = run_python(SELECT, arch=arch, vllm=vllm_under_test)["result"]
    # vLLM's own answer on these archs: ROCM_ATTN (priority 0, gate I1)
    assert all(out["before"][k] == "ROCM_ATTN" for k in TARGETS), out["before"]
    assert all(out["after"][k] == OURS for k in TARGETS), out["after"]
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
    assert out["after"]["qwen3-next/bf16/b544"] == "ROCM_ATTN"
