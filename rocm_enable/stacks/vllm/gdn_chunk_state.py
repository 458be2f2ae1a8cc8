"""GDN chunked prefill on wave32 RDNA: the inter-chunk state recurrence runs on rocm_enable's
spill-free kernel (rocm_enable.ops.gdn) instead of vLLM's chunk_gated_delta_rule_fwd_kernel_h_blockdim64.

Importing this module imports nothing from vLLM or Triton; the wrapper reaches the launcher through
the module attribute at call time.
"""
from __future__ import annotations

import logging

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import is_wave32_rdna

log = logging.getLogger("rocm_enable")
FLA = "vllm.third_party.flash_linear_attention.ops"
# chunk_gated_delta_rule_fwd_h as chunk.py imports it; 0.34.0 casts the kernel's offsets to int64
# before multiplying and annotates the return tuple (the launcher's contract is unchanged).
CHUNK_STATE_FINGERPRINTS = {"0.32.0": "bcfb8c8a075cc5db", "0.33.0": "bcfb8c8a075cc5db",
                            "0.34.0": "b6aab37fbe472f8c"}


def _route_chunk_state(wrapped, instance, args, kwargs):
    import inspect

    from rocm_enable.ops import gdn

    bound = inspect.signature(wrapped).bind(*args, **kwargs)
    bound.apply_defaults()
    a = bound.arguments
    why = gdn.chunk_state_supported(a["k"], a["gk"], a["chunk_size"], a["cu_seqlens"], a["chunk_indices"],
                                    a["chunk_offsets"])
    if why:
        log.debug("gdn-chunk-state-rdna: vLLM's kernel for this call (%s)", why)
        return wrapped(*args, **kwargs)
    return gdn.chunk_gated_delta_rule_fwd_h(**a)


GDN_CHUNK_STATE_RDNA = Fix(
    name="gdn-chunk-state-rdna",
    title="GDN prefill state recurrence on a kernel that does not spill VGPRs on wave32 RDNA",
    stack="vllm",
    patches=(
        Patch(f"{FLA}.chunk:chunk_gated_delta_rule_fwd_h", _route_chunk_state, CHUNK_STATE_FINGERPRINTS),
    ),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "Every autotune candidate of vLLM's chunk_gated_delta_rule_fwd_kernel_h_blockdim64 spills on "
        "gfx11/gfx12 at the Qwen3-Next/Qwen3.6 GDN shape (K=V=128): 256 VGPRs plus 57-1,525 spilled "
        "to scratch on gfx1151 (rocm-enable isa --gdn, docs/gdn.md). It holds the [BV, 128] fp32 state "
        "as [BV, 64] quarters and transposes them into and out of every tl.dot; on WMMA layouts those "
        "transposes cost registers. This kernel runs once per GDN layer per prefill (36 of 48 layers "
        "in Qwen3-Next)."
    ),
    how=(
        "Wrap chunk_gated_delta_rule_fwd_h as chunk.py calls it: for K <= 128 without per-key gates "
        "(and, for variable-length batches, with the chunk_indices/chunk_offsets vLLM's GDN metadata "
        "precomputes) launch rocm_enable.ops.gdn_kernels.gdn_chunk_state_kernel, which keeps the "
        "state transposed as one [K, BV] tile so both products are plain dots (BV 32, 8 waves, one "
        "config: 0 spills, 0 scratch on gfx1151/gfx1100/gfx1201). Same outputs (h, v_new, final "
        "state), same shapes and dtypes; other calls keep vLLM's kernel."
    ),
    upstream="issue 16 point 3 (H6); candidate for FLA: a transposed-state variant for wave32 WMMA",
    removal="when vLLM's FLA chunk_delta_h kernel compiles without VGPR spills on gfx11/gfx12",
    gates=("H6",),
)

FIXES = (GDN_CHUNK_STATE_RDNA,)
