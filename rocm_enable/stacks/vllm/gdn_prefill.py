"""GDN chunked prefill on wave32 RDNA with no kernel that spills VGPRs.

vLLM's FLA prefill (chunk.chunk_gated_delta_rule_fwd) runs six kernels. On gfx11/gfx12 at the
Qwen3-Next / Qwen3.6 shape (K = V = 128, chunk 64) AOT compiles show (docs/gdn.md):
  - every candidate of chunk_gated_delta_rule_fwd_kernel_h_blockdim64 (state recurrence) and of
    recompute_w_u_fwd_kernel (WY recompute) spills: those two run on rocm_enable's kernels
    (rocm_enable.ops.gdn: same contracts, one spill-free launch config each);
  - chunk_local_cumsum, chunk_scaled_dot_kkt, solve_tril's merge_16x16_to_64x64_inverse_kernel and
    chunk_fwd_kernel_o have spill-free candidates among others that spill: for the call their
    autotuners hold only the candidate rocm_enable.ops.gdn.VLLM_NO_SPILL_CANDIDATE names.

One patch, on the pipeline function, because the launchers it calls are the targets of
gdn-autotune-lds (LDS pruning, still in effect for every vLLM kernel this leaves in place). The
pipeline itself is rocm_enable.ops.gdn.chunk_gated_delta_rule_fwd_rdna, which the source patch
carries into vLLM's tree too.
Importing this module imports nothing from vLLM or Triton.
"""
from __future__ import annotations

import importlib
import logging

from rocm_enable.engine.calls import bound_arguments
from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import is_wave32_rdna

log = logging.getLogger("rocm_enable")
FLA = "vllm.third_party.flash_linear_attention.ops"
# chunk.chunk_gated_delta_rule_fwd: identical in 0.32.0, 0.33.0 and 0.34.0
PIPELINE_FINGERPRINTS = {"0.32.0": "e3522950b1da9162", "0.33.0": "e3522950b1da9162", "0.34.0": "e3522950b1da9162"}


def _prefill(wrapped, instance, args, kwargs):
    from rocm_enable.ops import gdn

    a = bound_arguments(wrapped, args, kwargs)
    chunk = importlib.import_module(f"{FLA}.chunk")
    why = gdn.prefill_supported(a["k"], a["v"], chunk.FLA_CHUNK_SIZE, a["cu_seqlens"], a["chunk_indices"],
                                a["chunk_offsets"])
    if why:
        log.debug("gdn-prefill-rdna: vLLM's kernels for this call (%s)", why)
        return wrapped(*args, **kwargs)
    return gdn.chunk_gated_delta_rule_fwd_rdna(chunk, **a)


GDN_PREFILL_RDNA = Fix(
    name="gdn-prefill-rdna",
    title="GDN chunked prefill on wave32 RDNA: no kernel that spills VGPRs",
    stack="vllm",
    patches=(Patch(f"{FLA}.chunk:chunk_gated_delta_rule_fwd", _prefill, PIPELINE_FINGERPRINTS),),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "At the Qwen3-Next/Qwen3.6 GDN shape (K=V=128, chunk 64), every autotune candidate of vLLM's "
        "chunk_gated_delta_rule_fwd_kernel_h_blockdim64 (57-1,525 spilled VGPRs on gfx1151) and of "
        "recompute_w_u_fwd_kernel (38-584) spills on gfx11/gfx12, and chunk_fwd_kernel_o and "
        "merge_16x16_to_64x64_inverse_kernel time candidates that spill (their two-wave ones). "
        "Spills go to scratch memory in the prefill of 36 of Qwen3-Next's 48 layers. AOT table for "
        "every candidate on gfx1151/gfx1100/gfx1201: docs/gdn.md (python -m rocm_enable.ops.gdn_isa)."
    ),
    how=(
        "Wrap chunk.chunk_gated_delta_rule_fwd (what ChunkGatedDeltaRuleFunction calls): at K = V = 128, "
        "chunk 64 (for variable-length batches with the chunk_indices/chunk_offsets vLLM's GDN metadata "
        "precomputes) run the "
        "same six steps with rocm_enable.ops.gdn_kernels' spill-free state-recurrence and WY kernels "
        "(transposed [K, BV] state tile; one [64, 64] block of w or u per program) and vLLM's other "
        "four kernels autotuned over only their spill-free candidate "
        "(rocm_enable.ops.gdn.VLLM_NO_SPILL_CANDIDATE). Same outputs, shapes and dtypes; 0 spills, "
        "0 scratch for every kernel and config on gfx1151/gfx1100/gfx1201 (tests/gdn/test_gdn_isa.py). "
        "Other calls run vLLM's pipeline unchanged."
    ),
    upstream="issue 16 point 3 (H6); candidates for FLA: a transposed-state chunk_delta_h and a "
             "block-per-program recompute_w_u for wave32 WMMA",
    removal="when vLLM's FLA prefill kernels compile without VGPR spills on gfx11/gfx12",
    gates=("H6",),
)

FIXES = (GDN_PREFILL_RDNA,)
