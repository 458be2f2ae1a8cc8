"""Launcher for rocm_enable's GDN chunk-state kernel (rocm_enable.ops.gdn_kernels), with the call
contract of vLLM's FLA ``chunk_gated_delta_rule_fwd_h`` (chunk_delta_h.py), and the launch
configuration it uses on wave32 RDNA.

The one launch configuration (no autotuning: one compile per shape, nothing timed at start-up) is
the one AOT compiles show free of VGPR spills and scratch on gfx1151, gfx1100 and gfx1201 at
K = V = 128 (tests/gdn/test_gdn_isa.py, docs/gdn.md). Graph-safe: no host reads; output shapes
come from tensor shapes and the caller's chunk_indices.
"""
from __future__ import annotations

# BV 32 x 8 waves: S^T tile [128, 32] fp32 spread over 256 lanes; 217 VGPRs on gfx11, 145 on gfx12,
# 0 spills. (BV 16 x 4 waves is also spill-free but compiles 3x slower; BV 32 x 4 waves, BV 16 x 8
# waves and any num_stages > 1 spill on gfx1151.)
CHUNK_STATE_CONFIG = {"BV": 32, "num_warps": 8, "num_stages": 1}
MAX_K = 128  # the state tile above is what was proven spill-free; larger heads stay on vLLM's kernel


def chunk_state_supported(k, gk=None, chunk_size: int = 64, cu_seqlens=None, chunk_indices=None,
                          chunk_offsets=None) -> str | None:
    """None when our kernel serves this call, else why vLLM's kernel must (a short reason)."""
    if gk is not None:
        return "per-key gates (gk, KDA) are not implemented"
    if k.shape[-1] > MAX_K:
        return f"head dim {k.shape[-1]} > {MAX_K}"
    if chunk_size & (chunk_size - 1) or chunk_size < 16:
        return f"chunk size {chunk_size} is not a power of two >= 16"
    if cu_seqlens is not None and (chunk_indices is None or chunk_offsets is None):
        # computing them needs a host read (vLLM's prepare_chunk_indices); vLLM's GDN metadata
        # passes both precomputed, so only other callers take vLLM's path
        return "variable-length call without precomputed chunk_indices/chunk_offsets"
    return None


def chunk_gated_delta_rule_fwd_h(k, w, u, g=None, gk=None, initial_state=None, output_final_state=False,
                                 chunk_size=64, save_new_value=True, cu_seqlens=None, chunk_indices=None,
                                 chunk_offsets=None, use_exp2=False):
    """(h [B, NT, H, V, K] in k's dtype, v_new like u or None, final state [N, H, V, K] fp32 or None),
    as vLLM's chunk_gated_delta_rule_fwd_h returns them."""
    import torch
    import triton

    from rocm_enable.ops.gdn_kernels import gdn_chunk_state_kernel

    why = chunk_state_supported(k, gk, chunk_size, cu_seqlens, chunk_indices, chunk_offsets)
    if why:
        raise ValueError(f"rocm_enable GDN chunk-state kernel: {why}; use vLLM's chunk_gated_delta_rule_fwd_h")
    B, T, Hg, K = k.shape
    H, V = u.shape[-2], u.shape[-1]
    BT = chunk_size
    if cu_seqlens is None:
        N, NT = B, triton.cdiv(T, BT)
    else:
        N, NT = cu_seqlens.shape[0] - 1, chunk_indices.shape[0]
    h = k.new_empty(B, NT, H, V, K)
    final_state = k.new_empty(N, H, V, K, dtype=torch.float32) if output_final_state else None
    v_new = torch.empty_like(u) if save_new_value else None
    cfg = CHUNK_STATE_CONFIG
    grid = (triton.cdiv(V, cfg["BV"]), N * H)
    gdn_chunk_state_kernel[grid](
        k, u, w, v_new, g, h, initial_state, final_state, cu_seqlens, chunk_offsets, T,
        H=H, Hg=Hg, K=K, V=V, BT=BT, BK=triton.next_power_of_2(K), BV=cfg["BV"],
        USE_G=g is not None, USE_INITIAL_STATE=initial_state is not None,
        STORE_FINAL_STATE=output_final_state, SAVE_NEW_VALUE=save_new_value,
        IS_VARLEN=cu_seqlens is not None, USE_EXP2=use_exp2,
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return h, v_new, final_state


def selectable_configs():
    """(kernel, launch config) pairs this module can launch on wave32 RDNA."""
    return [("gdn_chunk_state_kernel", dict(CHUNK_STATE_CONFIG))]


def isa_cases(arch: str):
    """(kernel, JITFunction, launch args, config kwargs, options) for rocm_enable.ops.gdn_isa: every
    selectable config at the Qwen3-Next / Qwen3.6 shape, in the varlen + initial-state form vLLM's
    prefill uses."""
    import os

    import triton.language as tl

    from rocm_enable.isa import _t, load_compilable_kernels
    from rocm_enable.ops.gdn_isa import BT, H_K, H_V, K, T_TOKENS, V

    mod = load_compilable_kernels(os.path.join(os.path.dirname(os.path.abspath(__file__)), "gdn_kernels.py"),
                                  "_rocm_enable_isa_gdn_kernels")
    bf, f32, i32 = tl.bfloat16, tl.float32, tl.int32
    big = 1 << 28
    for kernel, cfg in selectable_configs():
        args = dict(k=_t(bf, big), v=_t(bf, big), w=_t(bf, big), v_new=_t(bf, big), g=_t(f32, big),
                    h=_t(bf, big), h0=_t(f32, big), ht=_t(f32, big), cu_seqlens=_t(i32), chunk_offsets=_t(i32),
                    T=T_TOKENS, H=H_V, Hg=H_K, K=K, V=V, BT=BT, BK=K, BV=cfg["BV"], USE_G=True,
                    USE_INITIAL_STATE=True, STORE_FINAL_STATE=True, SAVE_NEW_VALUE=True, IS_VARLEN=True,
                    USE_EXP2=False)
        opts = {"num_warps": cfg["num_warps"], "num_stages": cfg["num_stages"]}
        yield kernel, getattr(mod, kernel), args, {"BV": cfg["BV"]}, opts
