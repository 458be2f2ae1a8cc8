"""aiter on RDNA: its Triton kernels, never its gfx9-only HIP kernels (audit B3, B5, H1).

vLLM has two aiter switches: the CDNA3+ umbrella (`@if_aiter_supported`: HIP/CK/asm and Triton) and
an RDNA4-only one (`is_rdna_aiter_enabled()`: `on_rdna4()` and aiter enabled) for the Triton
kernels. gfx11 is in neither, although aiter's Triton kernels compile for it. Here the RDNA4 switch
becomes the capability question `aiter_triton_only()` (wave32 RDNA, aiter Triton kernels yes, aiter
HIP kernels no), site by site:

  H1/B5  GDN fused decode (aiter Triton conv1d-update + fused_rearrange_sigmoid_gated_delta_rule):
         `is_rdna_gdn_triton_kernels_available()` -> fixed here.
  B3/A10 aiter Triton unified attention, B4 aiter Triton FP8 blockscale GEMM, the aiter fusion
         passes: they key on `is_rdna_aiter_enabled()` itself, and widening that predicate is NOT
         safe on gfx11 yet: `rocm_aiter_ops.register_ops_once()` runs when vllm._aiter_ops is
         imported (before any plugin) and registers the `torch.ops.vllm.rocm_aiter_*` ops only on
         CDNA3+/RDNA4; compilation/passes/pass_manager.py imports rocm_aiter_fusion whenever
         `is_rdna_aiter_enabled()` holds, and its pattern classes look those ops up at class
         creation. See tests/gates/test_aiter_triton.py::test_widening_rdna_switch_is_unsafe.
"""
from __future__ import annotations

import contextlib

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import aiter_triton_only


@contextlib.contextmanager
def _aiter_triton_arch_admitted():
    """vLLM's RDNA aiter checks read on_rdna4() from vllm.platforms.rocm at call time; let it answer
    for this arch (aiter_triton_only holds) during one check, so aiter presence, VLLM_ROCM_USE_AITER
    and the kernel-import probe are still vLLM's own."""
    import vllm.platforms.rocm as rocm

    original = rocm.on_rdna4
    rocm.on_rdna4 = lambda: True
    try:
        yield
    finally:
        rocm.on_rdna4 = original


def _gdn_triton_kernels_on_triton_only_arch(wrapped, instance, args, kwargs):
    with _aiter_triton_arch_admitted():
        return wrapped(*args, **kwargs)


AITER_GDN_TRITON_DECODE = Fix(
    name="aiter-gdn-triton-decode",
    title="GDN decode: aiter's Triton fused kernels on every RDNA arch (not RDNA4 only)",
    stack="vllm",
    patches=(Patch("vllm._aiter_ops:rocm_aiter_ops.is_rdna_gdn_triton_kernels_available",
                   _gdn_triton_kernels_on_triton_only_arch,
                   {"0.32.0": "99568180d5aec359", "0.33.0": "99568180d5aec359"}),),
    condition=aiter_triton_only,
    versions=">=0.32.0,<0.34",
    why=(
        "With aiter installed and VLLM_ROCM_USE_AITER=1, Qwen3-Next/3.5/3.6 GDN layers use aiter's "
        "Triton fused conv1d-update + gated-delta-rule decode (forward_hip, "
        "GDN_AITER_TRITON_AVAILABLE) on CDNA3+ and RDNA4 only: "
        "is_rdna_gdn_triton_kernels_available() requires on_rdna4() (audit B3, B5, H1). The "
        "kernels are Triton (aiter.ops.triton.*), not aiter's gfx9 HIP code, so gfx11 is "
        "excluded by name, not by capability."
    ),
    how=(
        "Wrap rocm_aiter_ops.is_rdna_gdn_triton_kernels_available: on archs where "
        "aiter_triton_only() holds, vLLM's own check runs with on_rdna4() answering for the arch "
        "(aiter importable, VLLM_ROCM_USE_AITER, aiter.ops.triton GDN modules importable). The "
        "CDNA umbrella and every HIP-kernel switch are untouched. qwen_gdn_linear_attn reads the "
        "answer when it is imported, which vLLM does after loading general plugins."
    ),
    upstream="audit B3/B5/H1 (replacement: on_gfx1x() plus a per-kernel availability probe)",
    removal="when vLLM gates aiter's Triton GDN kernels on Triton support instead of on_rdna4()",
    gates=("B3", "B5", "H1"),
)

FIXES = (AITER_GDN_TRITON_DECODE,)
