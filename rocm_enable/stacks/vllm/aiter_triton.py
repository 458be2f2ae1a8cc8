"""aiter on RDNA: its Triton kernels, never its gfx9-only HIP kernels (audit B3, B5, H1, A10, G5).

vLLM has two aiter switches: the CDNA3+ umbrella (`@if_aiter_supported`: HIP/CK/asm and Triton) and
an RDNA4-only one (`is_rdna_aiter_enabled()`: `on_rdna4()` and aiter enabled) for the Triton
kernels. gfx11 is in neither, although aiter's Triton kernels compile for it (aiter's own Triton
attention configs name gfx1100/gfx1151: aiter/ops/triton/attention/unified_attention.py
select_2d_config, aiter/ops/triton/_triton_kernels/flash_attn_triton_amd/utils.py). The question
asked here is `aiter_triton_only()` (wave32 RDNA, aiter Triton kernels yes, aiter HIP kernels no),
site by site, each answered where vLLM asks it and nowhere else:

  H1/B5  GDN fused decode (aiter Triton conv1d-update + fused_rearrange_sigmoid_gated_delta_rule):
         `is_rdna_gdn_triton_kernels_available()` -> aiter-gdn-triton-decode.

  B3/A10 aiter Triton unified attention -> aiter-unified-attention-rdna. vLLM ranks
         ROCM_AITER_UNIFIED_ATTN first when `is_rdna_aiter_enabled()` (platforms/rocm.py:509 in
         0.32.0, :562 in 0.33.0), read only inside `_get_backend_priorities`, which only
         `RocmPlatform.get_valid_backends` calls (rocm.py:683 / :737). So the switch is answered
         for this arch during get_valid_backends only; the global predicate (read by the fusion pass
         manager at import, compilation/passes/pass_manager.py:21) stays vLLM's. What the backend
         needs on gfx11, read in both versions (v1/attention/backends/rocm_aiter_unified_attn.py,
         0.32.0 line / 0.33.0 line):
           construction  `from aiter.ops.triton.unified_attention import unified_attention`
                         (181 / 187): Triton; `supports_quant_query_input = not on_gfx11()`
                         (187 / 193): vLLM already keeps the query in bf16/fp16 on gfx11; 0.33's
                         shuffled KV layout is gfx1250-only (198).
           forward       causal: aiter's Triton `unified_attention` (274 / 305); non-causal:
                         vLLM's Triton unified attention (304 / 336); encoder: vLLM's Triton
                         context_attention_fwd. No torch.ops.vllm.rocm_aiter_* op.
           KV write      `ops.reshape_and_cache_flash` (343 / 396): vLLM's `_C_cache_ops` HIP op
                         (not aiter); routed to vLLM's Triton twin when `_C` has no code object
                         for the arch (hip_code_objects.C_OPS_NATIVE).
           fusion hooks  `fused_rope_kvcache_supported` / `fused_qk_norm_rope_kvcache_supported`
                         return `is_enabled()` (CDNA umbrella: off); but
                         `fused_qk_norm_mrope_kvcache_supported` returns `IS_AITER_FOUND`
                         (360-361 / 413-414), and QkNormRopeKvCacheFusionPass would then call
                         aiter's HIP `fused_qk_norm_mrope_3d_cache_pts_quant_shuffle`
                         (_aiter_ops.py:3747 / 4104). That pass is on by default only with
                         `is_enabled()` (config/vllm.py enable_qk_norm_rope_kvcache), but a user can
                         set pass_config.fuse_qk_norm_rope_kvcache: the record answers False there.
  G5     aiter Triton RoPE -> aiter-triton-rope. `is_triton_rotary_embed_enabled()` is behind the
         CDNA umbrella (_aiter_ops.py:2421-2424 / 2609-2612), and the op it selects,
         torch.ops.vllm.rocm_aiter_triton_rotary_embedding (get_triton_rotary_embedding_op,
         3078-3079 / 3372-3373), is registered by `register_ops_once()` only on CDNA3+/RDNA4, at
         vllm._aiter_ops import (4731 / 5243), before any plugin runs. The record answers the
         switch with vLLM's own body (`_AITER_ENABLED and _TRITON_ROTARY_EMBED`) and, when the op is
         missing, registers it exactly as register_ops_once does (vLLM's direct_register_custom_op
         with vLLM's _triton_rotary_embedding_impl, which calls aiter's Triton
         rope_cached_thd_positions_offsets_2c_fwd_inplace), the first time RotaryEmbedding asks
         for it (model construction, before compilation).
  vLLM 0.34.0 moved its RDNA switch to on_rdna() (gfx11 and gfx12): the GDN decode check is
  fixed upstream there, the attention ranking is vLLM's own (the backend is offered, after vLLM's
  default backend off RDNA4), and register_ops_once registers the aiter ops on every RDNA arch.

  B4, the aiter fusion passes: NOT widened (0.32/0.33; 0.34.0 widens them itself). They key on `is_rdna_aiter_enabled()` itself, and
         widening that predicate is not safe on gfx11: compilation/passes/pass_manager.py imports
         rocm_aiter_fusion whenever `is_rdna_aiter_enabled()` holds, and its pattern classes look
         up torch.ops.vllm.rocm_aiter_* ops (rmsnorm/fp8 group quant fusions) at class creation,
         which register_ops_once registers only on CDNA3+/RDNA4 at import. See
         tests/gates/test_aiter_triton.py::test_widening_rdna_switch_is_unsafe.
"""
from __future__ import annotations

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.engine.scoped import answered
from rocm_enable.gates.capabilities import aiter_triton_only


def _aiter_triton_arch_admitted():
    """vLLM's RDNA aiter checks read on_rdna4() from vllm.platforms.rocm at call time; let it answer
    for this arch (aiter_triton_only holds) during one check, so aiter presence, VLLM_ROCM_USE_AITER
    and the kernel-import probe are still vLLM's own."""
    import vllm.platforms.rocm as rocm

    return answered(rocm, "on_rdna4", lambda: True)


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
    # 0.34.0 renamed the check are_rdna_gdn_triton_kernels_available() and bases it on
    # is_rdna_aiter_enabled(), which became on_rdna() (gfx11 and gfx12) and aiter enabled.
    fixed_upstream_in="0.34.0",
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
        "answer when it is imported, which vLLM does after loading general plugins. vLLM 0.34.0 "
        "fixed it upstream: are_rdna_gdn_triton_kernels_available() (renamed) requires "
        "is_rdna_aiter_enabled(), now on_rdna() on every gfx11/gfx12 arch."
    ),
    upstream="audit B3/B5/H1 (replacement: on_gfx1x() plus a per-kernel availability probe)",
    removal="when vLLM gates aiter's Triton GDN kernels on Triton support instead of on_rdna4()",
    gates=("B3", "B5", "H1"),
)


# ---- B3/A10: aiter's Triton unified attention in the ROCm attention priority list ------------

UNIFIED_ATTENTION_MODULE = "aiter.ops.triton.unified_attention"
ROPE_MODULE = "aiter.ops.triton.rope.rope"


def _aiter_module_present(name: str) -> bool:
    """aiter ships the module (found, not imported: aiter's own meta-path finder maps the old
    aiter.ops.triton.<name> paths onto its reorganised tree)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _rdna_aiter_switch_for_this_arch():
    """rocm_aiter_ops.is_rdna_aiter_enabled() answers vLLM's own check (aiter found,
    VLLM_ROCM_USE_AITER) with on_rdna4() answering for this arch -- while the ROCm attention
    priority list is computed, and nowhere else."""
    from vllm._aiter_ops import rocm_aiter_ops

    vllms_check = vars(rocm_aiter_ops)["is_rdna_aiter_enabled"].__func__

    def for_this_arch(cls):
        with _aiter_triton_arch_admitted():
            return vllms_check(cls)

    return answered(rocm_aiter_ops, "is_rdna_aiter_enabled", classmethod(for_this_arch))


def _valid_backends_with_aiter_unified_attention(wrapped, instance, args, kwargs):
    from vllm._aiter_ops import rocm_aiter_ops

    with _aiter_triton_arch_admitted():
        wanted = rocm_aiter_ops.is_rdna_aiter_enabled()  # vLLM's check: aiter found, env set
    # probe the module only then: find_spec imports aiter's parent packages
    if not (wanted and _aiter_module_present(UNIFIED_ATTENTION_MODULE)):
        return wrapped(*args, **kwargs)
    with _rdna_aiter_switch_for_this_arch():
        return wrapped(*args, **kwargs)


def _no_aiter_hip_mrope_kvcache_fusion(wrapped, instance, args, kwargs):
    # aiter's fused qk-norm + MRoPE + KV-cache kernel is HIP (aiter/ops/fused_qk_norm_mrope_cache_quant.py
    # -> csrc): no code object on an arch where aiter_hip_kernels_supported() is false.
    return False


AITER_UNIFIED_ATTENTION = Fix(
    name="aiter-unified-attention-rdna",
    title="Attention: aiter's Triton unified attention offered on every RDNA arch (not RDNA4 only)",
    stack="vllm",
    patches=(
        # 0.34.0 offers the backend on every RDNA arch itself (is_rdna_aiter_enabled() is
        # on_rdna()) and ranks it after its default backend off RDNA4 on purpose: vLLM's ranking
        # stands.
        Patch("vllm.platforms.rocm:RocmPlatform.get_valid_backends",
              _valid_backends_with_aiter_unified_attention,
              {"0.32.0": "599b1a9be347c9f9", "0.33.0": "599b1a9be347c9f9"},
              fixed_upstream_in="0.34.0"),
        Patch("vllm.v1.attention.backends.rocm_aiter_unified_attn:"
              "RocmAiterUnifiedAttentionImpl.fused_qk_norm_mrope_kvcache_supported",
              _no_aiter_hip_mrope_kvcache_fusion,
              {"0.32.0": "546bcd4639a05ccb", "0.33.0": "546bcd4639a05ccb",
               "0.34.0": "546bcd4639a05ccb"}),
        # relied on, not wrapped: the RDNA switch that _get_backend_priorities reads
        Patch("vllm._aiter_ops:rocm_aiter_ops.is_rdna_aiter_enabled", None,
              {"0.32.0": "dcb4e0c601992ae0", "0.33.0": "dcb4e0c601992ae0"},
              fixed_upstream_in="0.34.0"),
    ),
    condition=aiter_triton_only,
    versions=">=0.32.0,<0.35",
    why=(
        "With aiter installed and VLLM_ROCM_USE_AITER=1, vLLM puts ROCM_AITER_UNIFIED_ATTN (aiter's "
        "Triton unified attention, which carries its own RDNA/gfx1151 launch configs) first on "
        "RDNA4 only: _get_backend_priorities keys it on is_rdna_aiter_enabled() = on_rdna4() "
        "(audit B3/A10). On gfx11 vLLM already admits the backend when it is named with "
        "--attention-backend (the impl even keeps the query unquantized on gfx11), so only the "
        "default ranking excludes it by name. Its fused qk-norm+MRoPE+KV-cache hook answers "
        "IS_AITER_FOUND, which would hand a user-enabled fusion pass aiter's HIP kernel."
    ),
    how=(
        "Wrap RocmPlatform.get_valid_backends (the only caller of _get_backend_priorities): when "
        "aiter ships aiter.ops.triton.unified_attention, is_rdna_aiter_enabled() answers vLLM's "
        "own check (aiter found, VLLM_ROCM_USE_AITER) with on_rdna4() answering for this arch, for "
        "that call only; vLLM then ranks and validates the backend as on RDNA4 (rdna-attention, "
        "when applied, still puts ROCM_RDNA_ATTN before it). The global switch (fusion passes, "
        "FP8 GEMM) is not widened. fused_qk_norm_mrope_kvcache_supported answers False. "
        "vLLM 0.34.0: is_rdna_aiter_enabled() became on_rdna() (and aiter enabled), so vLLM itself "
        "offers the backend on gfx11, ranked first on RDNA4 and after its default backend "
        "elsewhere (ROCM_ATTN; TRITON_ATTN on gfx1100, which 0.34.0 prefers there); the "
        "ranking part ends there (vLLM's order stands) and only the fusion hook is answered."
    ),
    upstream="audit B3/A10 (replacement: on_gfx1x() plus a per-kernel availability probe)",
    removal="when vLLM ranks aiter's Triton unified attention by an aiter-Triton probe instead of on_rdna4()",
    gates=("B3", "A10"),
)


# ---- G5: aiter's Triton RoPE ---------------------------------------------------------------

ROPE_OP = "rocm_aiter_triton_rotary_embedding"


def _aiter_umbrella_admits_this_arch():
    """@if_aiter_supported reads vllm._aiter_ops.is_aiter_found_and_supported at call time; let it
    answer 'aiter found' (ROCm, aiter importable) for the one check, so the decorated body -- vLLM's
    own env checks -- decides."""
    import vllm._aiter_ops as aiter_ops

    return answered(aiter_ops, "is_aiter_found_and_supported", lambda: bool(aiter_ops.IS_AITER_FOUND))


def _triton_rope_on_triton_only_arch(wrapped, instance, args, kwargs):
    with _aiter_umbrella_admits_this_arch():
        answer = wrapped(*args, **kwargs)  # vLLM's body: VLLM_ROCM_USE_AITER and _TRITON_ROPE
    if answer and _aiter_module_present(ROPE_MODULE):
        return answer
    return wrapped(*args, **kwargs)  # vLLM's own answer (the umbrella's None here)


def _register_triton_rope_op(wrapped, instance, args, kwargs):
    import torch

    if not hasattr(torch.ops.vllm, ROPE_OP):
        # The registration register_ops_once() makes on CDNA3+/RDNA4 at import (before plugins):
        # vLLM's own op function, no fake (it mutates query and key in place).
        import vllm._aiter_ops as aiter_ops

        aiter_ops.direct_register_custom_op(op_name=ROPE_OP, op_func=aiter_ops._triton_rotary_embedding_impl,
                                            mutates_args=["query", "key"])
    return wrapped(*args, **kwargs)


AITER_TRITON_ROPE = Fix(
    name="aiter-triton-rope",
    title="RoPE: aiter's Triton rotary embedding on RDNA when VLLM_ROCM_USE_AITER_TRITON_ROPE=1",
    stack="vllm",
    patches=(
        Patch("vllm._aiter_ops:rocm_aiter_ops.is_triton_rotary_embed_enabled",
              _triton_rope_on_triton_only_arch,
              {"0.32.0": "940d2b9ec7cedbb9", "0.33.0": "940d2b9ec7cedbb9",
               "0.34.0": "940d2b9ec7cedbb9"}),
        Patch("vllm._aiter_ops:rocm_aiter_ops.get_triton_rotary_embedding_op",
              _register_triton_rope_op,
              {"0.32.0": "a1917c08cd98f579", "0.33.0": "a1917c08cd98f579",
               "0.34.0": "a1917c08cd98f579"}),
        # relied on, not wrapped: the function the op runs and the registration we repeat
        Patch("vllm._aiter_ops:_triton_rotary_embedding_impl", None,
              {"0.32.0": "b3286a50cb295058", "0.33.0": "b3286a50cb295058",
               "0.34.0": "b3286a50cb295058"}),
        Patch("vllm._aiter_ops:rocm_aiter_ops.register_ops_once", None,
              {"0.32.0": "c78283bd4dfabc13", "0.33.0": "64e946366f0ed996",
               "0.34.0": "380dd5f420d29d97"}),
    ),
    condition=aiter_triton_only,
    versions=">=0.32.0,<0.35",
    why=(
        "RotaryEmbedding uses aiter's Triton RoPE (aiter.ops.triton.rope) when "
        "is_triton_rotary_embed_enabled() holds, which is behind the CDNA3+ umbrella "
        "(@if_aiter_supported, audit G5): RDNA3/3.5 and RDNA4 never get it, although the kernel "
        "is plain Triton. The op it dispatches to (torch.ops.vllm.rocm_aiter_triton_rotary_embedding) "
        "is registered at vllm._aiter_ops import only on CDNA3+/RDNA4, so widening the switch "
        "alone would fail at model construction."
    ),
    how=(
        "On archs where aiter_triton_only() holds and aiter ships aiter.ops.triton.rope.rope, the "
        "umbrella answers 'aiter found' for this one check, so vLLM's own "
        "VLLM_ROCM_USE_AITER and VLLM_ROCM_USE_AITER_TRITON_ROPE decide. "
        "get_triton_rotary_embedding_op registers the op first when it is missing, with vLLM's "
        "direct_register_custom_op and _triton_rotary_embedding_impl, as register_ops_once does "
        "on CDNA3+/RDNA4. vLLM 0.34.0 changed register_ops_once (it now registers on every RDNA "
        "arch, gfx11 included, and drops topk_sigmoid and gfx11's sparse-attention indexer); the "
        "RoPE registration it repeats is unchanged, so on 0.34.0 with aiter the op is already "
        "there and only the switch is answered."
    ),
    upstream="audit G5 (replacement: register the Triton-only aiter ops and gate them on an aiter-Triton probe)",
    removal="when vLLM enables aiter's Triton RoPE on RDNA (registration and switch outside the CDNA umbrella)",
    gates=("G5",),
)

FIXES = (AITER_GDN_TRITON_DECODE, AITER_UNIFIED_ATTENTION, AITER_TRITON_ROPE)
