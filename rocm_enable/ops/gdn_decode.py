"""Launcher for rocm_enable's GDN decode kernel (rocm_enable.ops.gdn_kernels.gdn_packed_decode_kernel)
with the call contract of vLLM's FLA ``fused_recurrent_gated_delta_rule_packed_decode``
(fused_recurrent.py): one token per sequence from the packed [q | k | v] projection, gates from
a / b / A_log / dt_bias, the state updated in place at ``ssm_state_indices``.

Why a launch of our own on wave32 RDNA: vLLM launches one wave per (sequence, value head, 32 value
rows), so each wave holds a [32, 128] fp32 state slice, 128 VGPRs per lane (180-234 VGPRs in all on
gfx11/gfx12, 6-8 waves per SIMD; docs/gdn.md). Decode streams the state (4 MiB per token at
Qwen3-Next's 32 value heads with an fp32 state) and a streaming kernel wants many small waves in
flight: 8 value rows per program hold 32 state VGPRs per lane and launch 4x the programs. vLLM
itself moved to 4-8 rows on Blackwell and on the H200 (fused_recurrent.py of 0.33.0 / 0.34.0).

Graph-safe: no host reads; the grid comes from tensor shapes.
"""
from __future__ import annotations

# 8 value rows x K 128 per wave: 32 state VGPRs per lane, 91-104 in all on gfx11/gfx12, 0 spills
# (tests/gdn/test_gdn_isa.py); on gfx1151 / gfx1201 4 rows take 76 / 73 VGPRs, 16 rows 108 / 109,
# 32 rows (vLLM's) 180 / 188
DECODE_CONFIG = {"BV": 8, "num_warps": 1, "num_stages": 1}
MAX_K = 128  # the tile proven spill-free; larger key heads stay on vLLM's kernel
SOFTPLUS_THRESHOLD = 20.0  # as vLLM's launcher passes it


def decode_supported(mixed_qkv, a, b, initial_state, out, ssm_state_indices) -> str | None:
    """None when our kernel serves this packed-decode call, else why vLLM's must (vLLM's launcher
    then validates and raises on malformed input itself)."""
    import torch

    if initial_state.ndim != 4 or initial_state.stride(-1) != 1 or initial_state.stride(-2) != initial_state.shape[-1] \
            or initial_state.stride(-3) != initial_state.shape[-1] * initial_state.shape[-2]:
        return "state slots are not [HV, V, K] contiguous"
    HV, V, K = initial_state.shape[-3:]
    if K > MAX_K:
        return f"key head dim {K} > {MAX_K}"
    if initial_state.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return f"state dtype {initial_state.dtype}"
    if mixed_qkv.ndim != 2 or mixed_qkv.stride(-1) != 1:
        return "mixed_qkv is not 2-D with a contiguous last dim"
    qk = mixed_qkv.shape[1] - HV * V
    if qk <= 0 or qk % (2 * K) or HV % (qk // (2 * K)):
        return f"packed width {mixed_qkv.shape[1]} does not split into q/k/v heads of HV={HV}, V={V}, K={K}"
    B = mixed_qkv.shape[0]
    if a.ndim != 2 or b.ndim != 2 or a.stride(-1) != 1 or b.stride(-1) != 1 or a.shape != (B, HV) \
            or b.shape != (B, HV):
        return "a / b are not [B, HV] with a contiguous last dim"
    if ssm_state_indices.ndim != 1 or ssm_state_indices.shape[0] != B:
        return "ssm_state_indices is not [B]"
    if not out.is_contiguous() or tuple(out.shape) != (B, 1, HV, V):
        return "out is not a contiguous [B, 1, HV, V]"
    return None


def packed_decode(mixed_qkv, a, b, A_log, dt_bias, scale, initial_state, out, ssm_state_indices,
                  use_qk_l2norm_in_kernel=False, config=None):
    """(out, initial_state), as vLLM's fused_recurrent_gated_delta_rule_packed_decode returns them;
    ``config`` overrides DECODE_CONFIG (the benchmark's sweep)."""
    import triton

    from rocm_enable.ops.gdn_kernels import gdn_packed_decode_kernel

    why = decode_supported(mixed_qkv, a, b, initial_state, out, ssm_state_indices)
    if why:
        raise ValueError(f"rocm_enable GDN packed decode: {why}; use vLLM's "
                         "fused_recurrent_gated_delta_rule_packed_decode")
    cfg = config or DECODE_CONFIG
    HV, V, K = initial_state.shape[-3:]
    B = mixed_qkv.shape[0]
    H = (mixed_qkv.shape[1] - HV * V) // (2 * K)
    grid = (B * HV, triton.cdiv(V, cfg["BV"]))
    gdn_packed_decode_kernel[grid](
        mixed_qkv, a, b, A_log, dt_bias, out, initial_state, ssm_state_indices, scale,
        mixed_qkv.stride(0), a.stride(0), b.stride(0), initial_state.stride(0), ssm_state_indices.stride(0),
        H=H, HV=HV, K=K, V=V, BK=triton.next_power_of_2(K), BV=cfg["BV"],
        SOFTPLUS_THRESHOLD=SOFTPLUS_THRESHOLD, L2NORM_QK=use_qk_l2norm_in_kernel,
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return out, initial_state


def selectable_configs():
    """(kernel, launch config) pairs this module can launch on wave32 RDNA."""
    return [("gdn_packed_decode_kernel", dict(DECODE_CONFIG))]
