"""GDN decode on wave32 RDNA: the packed one-token decode on rocm_enable's kernel, whose launch gives
each one-wave program 8 value rows of the state instead of 32.

vLLM's decode path without spec decode (qwen_gdn_linear_attn._forward_core_decode_non_spec, on by
default through VLLM_ENABLE_FLA_PACKED_RECURRENT_DECODE) calls FLA's
``fused_recurrent_gated_delta_rule_packed_decode``, imported by name into qwen_gdn_linear_attn: the
patch wraps that name where the layer looks it up. Importing this module imports nothing from vLLM
or Triton.
"""
from __future__ import annotations

import logging

from rocm_enable.engine.calls import bound_arguments
from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import is_wave32_rdna

log = logging.getLogger("rocm_enable")
LAYER = "vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn"
# fused_recurrent.fused_recurrent_gated_delta_rule_packed_decode as qwen_gdn_linear_attn imports it;
# 0.33.0 adds a Blackwell BV branch, 0.34.0 an H200 one (CUDA only; same contract and kernel)
PACKED_DECODE_FINGERPRINTS = {"0.32.0": "a989c91a1972bd1d", "0.33.0": "12f611ff537ab0eb",
                              "0.34.0": "2d6f6de79e04d549"}


def _packed_decode(wrapped, instance, args, kwargs):
    from rocm_enable.ops import gdn_decode

    try:
        a = bound_arguments(wrapped, args, kwargs)  # every decode step in eager mode
    except TypeError:  # a call vLLM's launcher itself would reject: let it say why
        return wrapped(*args, **kwargs)
    why = gdn_decode.decode_supported(a["mixed_qkv"], a["a"], a["b"], a["initial_state"], a["out"],
                                      a["ssm_state_indices"])
    if why:
        log.debug("gdn-decode-rdna: vLLM's packed decode for this call (%s)", why)
        return wrapped(*args, **kwargs)
    return gdn_decode.packed_decode(**a)


GDN_DECODE_RDNA = Fix(
    name="gdn-decode-rdna",
    title="GDN packed decode on wave32 RDNA: 8 state rows per wave instead of 32",
    stack="vllm",
    patches=(Patch(f"{LAYER}:fused_recurrent_gated_delta_rule_packed_decode", _packed_decode,
                   PACKED_DECODE_FINGERPRINTS),),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "vLLM's packed GDN decode launches one wave per (sequence, value head, 32 value rows): each "
        "wave holds a [32, 128] fp32 state slice, 128 VGPRs per lane, 180-234 VGPRs in all on "
        "gfx1151/gfx1100/gfx1201 (6-8 waves per SIMD). Decode streams the state (4 MiB per token at "
        "Qwen3-Next's 32 value heads); vLLM itself launches 4-8 rows per program on Blackwell and "
        "the H200 (0.33.0/0.34.0), but keeps 32 on ROCm."
    ),
    how=(
        "Wrap the name qwen_gdn_linear_attn calls (fused_recurrent_gated_delta_rule_packed_decode): "
        "for K <= 128 with [HV, V, K]-contiguous state slots (fp32/bf16/fp16) run "
        "rocm_enable.ops.gdn_decode.packed_decode, the same contract (packed q|k|v row, gates from "
        "a/b/A_log/dt_bias, in-place state at ssm_state_indices, slot <= 0 gives a zero output), "
        "with 8 value rows per one-wave program: 91-104 VGPRs, 12-16 waves per SIMD, 0 spills on "
        "gfx1151/gfx1100/gfx1201 (tests/gdn/test_gdn_isa.py); grid from shapes only. Other "
        "calls go to vLLM's launcher unchanged."
    ),
    upstream="issue 16 point 3; a candidate for vLLM: the ROCm RDNA branch of the launcher's BV "
             "choice (as its Blackwell/H200 branches)",
    removal="when vLLM's packed decode launches at most 8 value rows per program on RDNA",
    gates=("H6",),
)

FIXES = (GDN_DECODE_RDNA,)
