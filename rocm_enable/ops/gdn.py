"""Launchers for rocm_enable's GDN prefill kernels (rocm_enable.ops.gdn_kernels), with the call
contracts of vLLM's FLA ``chunk_gated_delta_rule_fwd_h`` (chunk_delta_h.py) and
``recompute_w_u_fwd`` (wy_fast.py), and the launch configurations they use on wave32 RDNA.

One launch configuration per kernel (no autotuning: one compile per shape, nothing timed at
start-up): the one AOT compiles show free of VGPR spills and scratch on gfx1151, gfx1100 and gfx1201
at K = V = 128 (tests/gdn/test_gdn_isa.py, docs/gdn.md). Graph-safe: no host reads; output shapes
come from tensor shapes and the caller's chunk_indices.
"""
from __future__ import annotations

import contextlib
import importlib
import logging

log = logging.getLogger(__name__)
FLA = "vllm.third_party.flash_linear_attention.ops"
# BV 16 x 4 waves: S^T tile [128, 16] fp32 over 128 lanes (16 per lane, as BV 32 x 8 waves); 217
# VGPRs on gfx11, 160 on gfx12, 0 spills, and twice the programs of BV 32 x 8 waves (V / 16 per
# sequence and head), which the H100 stand-in ran 1.26x faster in the same sweep (docs/gdn.md).
# BV 32 x 4 waves, BV 16 x 8 waves and any num_stages > 1 spill on gfx1151.
CHUNK_STATE_CONFIG = {"BV": 16, "num_warps": 4, "num_stages": 1}
MAX_K = 128  # the state tile above is what was proven spill-free; larger heads stay on vLLM's kernel
# one [64, 64] block of u or w per program, 8 waves: 160 VGPRs on gfx1151, 0 spills
WY_CONFIG = {"BC": 64, "num_warps": 8, "num_stages": 1}

# vLLM's own FLA prefill kernels that have spill-free autotune candidates on wave32 RDNA: the one
# candidate (kwargs, num_warps, num_stages) fix gdn-prefill-rdna leaves their autotuner at the
# Qwen3-Next / Qwen3.6 shape (K = V = 128, chunk 64). Chosen from the AOT table in docs/gdn.md among
# those with 0 spills / 0 scratch within 64 KiB LDS on gfx1151, gfx1100 and gfx1201, fewest VGPRs;
# one each so that start-up compiles one kernel instead of timing 4-36 and the ISA test covers
# every config that can run.
VLLM_NO_SPILL_CANDIDATE = {
    "chunk_local_cumsum_scalar_kernel": ({}, 4, 3),
    "chunk_scaled_dot_kkt_fwd_kernel": ({"BK": 64}, 4, 2),
    "merge_16x16_to_64x64_inverse_kernel": ({}, 8, 2),
    "chunk_fwd_kernel_o": ({"BK": 64, "BV": 64}, 8, 2),
}
NO_SPILL_K, NO_SPILL_BT = 128, 64
# (FLA module, kernel) of the vLLM kernels whose autotune lists are narrowed
NARROWED = (("cumsum", "chunk_local_cumsum_scalar_kernel"),
            ("chunk_scaled_dot_kkt", "chunk_scaled_dot_kkt_fwd_kernel"),
            ("solve_tril", "merge_16x16_to_64x64_inverse_kernel"),
            ("chunk_o", "chunk_fwd_kernel_o"))


def prefill_supported(k, v, chunk_size: int, cu_seqlens=None, chunk_indices=None,
                      chunk_offsets=None) -> str | None:
    """None when the GDN prefill can run on this module's kernels (state recurrence + WY) with
    vLLM's others narrowed to VLLM_NO_SPILL_CANDIDATE -- the shape all of them were proven
    spill-free at -- else why vLLM's pipeline must run."""
    shape = (k.shape[-1], v.shape[-1], chunk_size)
    if shape != (NO_SPILL_K, NO_SPILL_K, NO_SPILL_BT):
        return f"K={shape[0]} V={shape[1]} chunk={shape[2]} is not the proven K=V={NO_SPILL_K}, chunk {NO_SPILL_BT}"
    return (chunk_state_supported(k, None, chunk_size, cu_seqlens, chunk_indices, chunk_offsets)
            or wy_supported(k, v, chunk_size, cu_seqlens, chunk_indices))


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


def wy_supported(k, v, BT: int, cu_seqlens=None, chunk_indices=None) -> str | None:
    """None when our WY kernel serves this recompute_w_u_fwd call (chunk size BT), else why vLLM's
    kernel must."""
    if max(k.shape[-1], v.shape[-1]) > 256:
        return f"head dims {k.shape[-1]}/{v.shape[-1]} > 256"
    if BT & (BT - 1) or BT < 16:
        return f"chunk size {BT} is not a power of two >= 16"
    if cu_seqlens is not None and chunk_indices is None:
        return "variable-length call without precomputed chunk_indices"
    return None


def recompute_w_u_fwd(k, v, beta, g_cumsum, A, cu_seqlens, chunk_indices=None):
    """(w [B, T, H, K] in k's dtype, u like v), as vLLM's recompute_w_u_fwd returns them."""
    import torch
    import triton

    from rocm_enable.ops.gdn_kernels import gdn_wy_kernel

    why = wy_supported(k, v, A.shape[-1], cu_seqlens, chunk_indices)
    if why:
        raise ValueError(f"rocm_enable GDN WY kernel: {why}; use vLLM's recompute_w_u_fwd")
    B, T, Hg, K = k.shape
    H, V = v.shape[-2], v.shape[-1]
    BT = A.shape[-1]
    NT = triton.cdiv(T, BT) if cu_seqlens is None else chunk_indices.shape[0]
    u = torch.empty_like(v)
    w = k.new_empty(B, T, H, K)
    cfg = WY_CONFIG
    grid = (NT, B * H, triton.cdiv(V, cfg["BC"]) + triton.cdiv(K, cfg["BC"]))
    gdn_wy_kernel[grid](k, v, beta, w, u, A, g_cumsum, cu_seqlens, chunk_indices, T, H=H, Hg=Hg, K=K, V=V,
                        BT=BT, BC=cfg["BC"], IS_VARLEN=cu_seqlens is not None,
                        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return w, u


def selectable_configs():
    """(kernel, launch config) pairs this module can launch on wave32 RDNA (the ISA proof compiles
    each: rocm_enable.ops.gdn_isa)."""
    return [("gdn_chunk_state_kernel", dict(CHUNK_STATE_CONFIG)), ("gdn_wy_kernel", dict(WY_CONFIG))]


def _autotuner(kernel):
    while kernel is not None and not hasattr(kernel, "configs"):
        kernel = getattr(kernel, "fn", None)
    return kernel


def _config_key(c):
    return c.kwargs, c.num_warps, c.num_stages


def _nearest(want, configs):
    """The candidate of ``configs`` closest to ``want`` = (kwargs, warps, stages): same tile first,
    then the nearest warp count (in powers of two), then the nearest stage count."""
    kwargs, warps, stages = want
    return min(configs, key=lambda c: (c.kwargs != kwargs, abs(c.num_warps.bit_length() - warps.bit_length()),
                                       abs((c.num_stages or 0) - stages)))


def fla_lists_built_for_nvidia() -> bool:
    """Whether FLA built its autotune lists for an NVIDIA GPU (its import-time ``is_nvidia``): the
    lent stand-in running vLLM under a simulated RDNA arch (rocm_enable.sim), not an AMD GPU."""
    return bool(getattr(importlib.import_module(f"{FLA}.utils"), "is_nvidia", False))


def no_spill_configs(kernel: str, configs, nvidia: bool = False) -> list:
    """The one candidate of ``configs`` to keep for ``kernel``: the one VLLM_NO_SPILL_CANDIDATE
    names (FLA's list on an AMD GPU always holds it). ``nvidia``: FLA built the list for an NVIDIA
    GPU, whose lists differ by design (Hopper: no 8-warp chunk_fwd_kernel_o) and on which the gfx11
    spill proof does not apply; then its nearest candidate, still one compile at engine start. On
    an AMD GPU a list without it means vLLM's list drifted: the whole list, with a warning."""
    want = VLLM_NO_SPILL_CANDIDATE[kernel]
    kept = [c for c in configs if _config_key(c) == want]
    if kept:
        return kept
    configs = list(configs)
    if nvidia and configs:
        nearest = _nearest(want, configs)
        log.info("GDN prefill (gdn-prefill-rdna) on an NVIDIA GPU: FLA built %s's candidates for it (RDNA's %s "
                 "is not among them); keeping the nearest, %s", kernel, want, _config_key(nearest))
        return [nearest]
    log.warning("GDN prefill on RDNA: vLLM's autotune list for %s no longer has %s; keeping it whole",
                kernel, want)
    return configs


@contextlib.contextmanager
def narrowed_autotune():
    """vLLM's four autotuners hold only their spill-free candidate inside the block (restored after)."""
    saved = []
    try:
        nvidia = fla_lists_built_for_nvidia()
        for module, kernel in NARROWED:
            tuner = _autotuner(getattr(importlib.import_module(f"{FLA}.{module}"), kernel, None))
            if tuner is not None:
                saved.append((tuner, tuner.configs))
                tuner.configs = no_spill_configs(kernel, tuner.configs, nvidia)
        yield
    finally:
        for tuner, configs in saved:
            tuner.configs = configs


def chunk_gated_delta_rule_fwd_rdna(chunk, q, k, v, g, beta, scale, initial_state, output_final_state,
                                    cu_seqlens=None, chunk_indices=None, chunk_offsets=None, core_attn_out=None):
    """FLA's chunk.chunk_gated_delta_rule_fwd (``chunk``: that module) with the same six steps and
    return value, rocm_enable's kernels for the WY recompute and the state recurrence and vLLM's other
    four under their spill-free candidate. The caller checks prefill_supported first."""
    import torch

    with narrowed_autotune():
        g = chunk.chunk_local_cumsum(g, chunk_size=chunk.FLA_CHUNK_SIZE, cu_seqlens=cu_seqlens,
                                     chunk_indices=chunk_indices)
        A = chunk.chunk_scaled_dot_kkt_fwd(k=k, beta=beta, g=g, cu_seqlens=cu_seqlens, chunk_indices=chunk_indices,
                                           output_dtype=torch.float32)
        A = chunk.solve_tril(A=A, cu_seqlens=cu_seqlens, chunk_indices=chunk_indices, output_dtype=k.dtype)
        w, u = recompute_w_u_fwd(k=k, v=v, beta=beta, A=A, g_cumsum=g, cu_seqlens=cu_seqlens,
                                 chunk_indices=chunk_indices)
        h, v_new, final_state = chunk_gated_delta_rule_fwd_h(
            k=k, w=w, u=u, g=g, initial_state=initial_state, output_final_state=output_final_state,
            chunk_size=chunk.FLA_CHUNK_SIZE, cu_seqlens=cu_seqlens, chunk_indices=chunk_indices,
            chunk_offsets=chunk_offsets)
        o = chunk.chunk_fwd_o(q=q, k=k, v=v_new, h=h, g=g, scale=scale, cu_seqlens=cu_seqlens,
                              chunk_indices=chunk_indices, core_attn_out=core_attn_out)
    if chunk.SUPPRESS_LEVEL < 3:
        return g, o, A, final_state, None, None, None
    return g, o, A, final_state, w, h, v_new
