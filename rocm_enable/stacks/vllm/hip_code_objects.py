"""vLLM's compiled HIP ops on RDNA: use them when the loaded extension carries a code object for
the running arch, route around them when it does not (audit G4, G7, D4, F2; the build-time
PYTORCH_ROCM_ARCH gate of audit §3.11).

The question every wrapper here asks is `gates.code_objects.extensions_status(extensions, arch)`:
read from the extension's offload bundles, never from an arch list. "unknown" (no file, no bundle,
an undecodable bundle) keeps vLLM's own decision.

`_C` / `_moe_C` / `_rocm_C` ops on the Qwen3-Next / Qwen3.5 / Qwen3.6 path with rocm_enable's W8A16
MoE experts and its RDNA (or vLLM's Triton) attention, TP=1, from source reading of vLLM 0.32.0 and
0.33.0 (file:line are 0.32.0 / 0.33.0), and what happens to each here:

  routed here to a native / Triton implementation vLLM itself has (or to vLLM's own fallback):
    _C.silu_and_mul            shared-expert SiluAndMul (custom op enabled, e.g. eager)  silu-and-mul-code-object
    _rocm_C.wvSplitK / LLMM1   BF16 decode GEMMs: router gate, shared_expert_gate, lm_head  skinny-gemm-code-object
    _moe_C.topk_softmax        MoE routing, fused_topk_router.vllm_topk_softmax (33 / 33)  topk-softmax-code-object
    _C.rms_norm / fused_add_rms_norm   IR provider `vllm_c` (kernels/vllm_c.py), first in the ROCm
                               priority when not compiling with inductor (platforms/rocm.py:1345 /
                               :1416). Qwen3-Next/3.5/3.6 use GemmaRMSNorm, whose fp32 `weight + 1`
                               fails vllm_c's supports_args (weight dtype == x dtype), so these models
                               already dispatch to native; plain RMSNorm models do not  ir-vllm-c-code-object
    _C.rotary_embedding        RotaryEmbedding.forward_cuda (base.py:244) when the fused qk-norm-rope
                               -gate path is off and the rotary_embedding custom op is on  c-ops-code-object
    _C_cache_ops.reshape_and_cache_flash   KV write of ROCM_AITER_UNIFIED_ATTN
                               (rocm_aiter_unified_attn.py:343 / :396)                    c-ops-code-object
    _C.apply_repetition_penalties_   sampler, repetition_penalty != 1 (_custom_ops.py:392)  c-ops-code-object
    _C.static_scaled_fp8_quant load-time requantization of per-tensor FP8 fused shards
                               (w8a8_utils.requantize_with_max_scale -> ops.scaled_fp8_quant)  c-ops-code-object
    _C.fused_gdn_decode_post_conv_mtp   Qwen3.5/3.6 GDN decode with MTP speculative decoding,
                               VLLM_GDN_DECODE_KERNEL=cuda (the default) on 0.32.0
                               (qwen_gdn_linear_attn.py:597-649, 1844); 0.33.0 runs a Triton port on
                               ROCm (:113-123)                                             gdn-mtp-decode-code-object
  BF16/int4 MoE experts (vLLM's TritonExperts; the W8A16 experts have their own routing and sum):
    _moe_C.moe_align_block_size                                         moe-align-code-object
    _C.silu_and_mul in apply_moe_activation, _moe_C.moe_sum             moe-expert-ops-code-object
  not reached on this path (listed so nobody looks again):
    _C reshape_and_cache (ROCM_ATTN, block 16/32 only), paged_attention (HIP decode, head <= 128),
      vocab_parallel_embedding (TP>1), greedy_argmax / fused_gumbel_argmax (CPU platform only),
      weak_ref_tensor (host-side, no device code).
  W8A8 FP8 activation quant (vLLM's own FP8 path on gfx12; the W8A16 records keep it off gfx11):
    _C.per_token_group_fp8_quant, dynamic_per_token_scaled_fp8_quant, dynamic_scaled_fp8_quant and
    static_scaled_fp8_quant reached through QuantFP8.forward_hip have vLLM's own torch twin,
    QuantFP8.forward_native (what a disabled quant_fp8 runs), chosen at construction since the
    forward runs in Dynamo-traced code; the FP8 MoE's input quant (fused_moe/utils.py
    _fp8_quantize: block groups and dynamic per-token / per-tensor scales) gets torch twins
                                                                        fp8-group-quant-code-object
"""
from __future__ import annotations

import functools
import logging

from rocm_enable.engine.calls import bound_arguments
from rocm_enable.engine.record import Fix, Patch
from rocm_enable.engine.scoped import answered
from rocm_enable.gates import code_objects
from rocm_enable.gates.capabilities import is_wave32_rdna, runs_rdna3_wmma_kernels

log = logging.getLogger("vllm.rocm_enable")

# The `_C` namespace is served by `_C` (0.32 ROCm builds) and, from 0.33, partly by the stable-ABI
# library; a vLLM build compiles both for the same PYTORCH_ROCM_ARCH.
C_EXTENSIONS = ("vllm._C", "vllm._C_stable_libtorch")
ROCM_C_EXTENSIONS = ("vllm._rocm_C",)
# `_moe_C` ops come from the stable-ABI library on 0.32 and 0.33 ROCm builds (platforms/interface.py
# import_kernels); `vllm._moe_C` is kept for builds that still ship the old name.
MOE_C_EXTENSIONS = ("vllm._moe_C", "vllm._moe_C_stable_libtorch")


@functools.cache
def _verdict(extensions: tuple[str, ...], arch: str) -> code_objects.CodeObjectVerdict:
    verdict = code_objects.extensions_status(extensions, arch)
    if verdict.absent:
        log.warning("rocm-enable: %s has no code object for %s (%s); its ops on the model path "
                    "are routed to native/Triton implementations", "/".join(extensions), arch,
                    verdict.reason)
    return verdict


def verdict_for(extensions: tuple[str, ...]) -> code_objects.CodeObjectVerdict:
    from rocm_enable.runtime import active_caps

    return _verdict(extensions, active_caps().arch)


# ---- item G4: SiluAndMul -> torch.ops._C.silu_and_mul --------------------------------------

def _silu_and_mul_without_code_object(wrapped, instance, args, kwargs):
    if verdict_for(C_EXTENSIONS).absent:
        # The same math vLLM uses when the custom op is disabled (-silu_and_mul).
        return instance.forward_native(*args, **kwargs)
    return wrapped(*args, **kwargs)


SILU_AND_MUL_NATIVE = Fix(
    name="silu-and-mul-code-object",
    title="SiluAndMul: native path when vLLM's _C has no code object for this GPU",
    stack="vllm",
    patches=(Patch("vllm.model_executor.layers.activation:SiluAndMul.forward_cuda",
                   _silu_and_mul_without_code_object,
                   {"0.32.0": "e970fb78fed63b77", "0.33.0": "e970fb78fed63b77",
                    "0.34.0": "e970fb78fed63b77"}),),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "SiluAndMul.forward_cuda (used on ROCm through CustomOp.forward_hip whenever the "
        "silu_and_mul custom op is enabled, e.g. eager mode) calls torch.ops._C.silu_and_mul. A "
        "vLLM built without the running arch in PYTORCH_ROCM_ARCH (most wheels and images omit "
        "gfx1151) registers the op anyway, and the first launch dies with 'invalid device "
        "function' (audit G4 and the build-time gate)."
    ),
    how=(
        "Read the offload bundles of vllm._C (and _C_stable_libtorch): when none carries a code "
        "object for the arch (exact or LLVM generic target), SiluAndMul.forward_cuda returns "
        "vLLM's own forward_native. When the code object is present, or the bundles cannot be "
        "read, vLLM's HIP op runs as before."
    ),
    upstream="audit G4 and §3.11 build-time gate; no upstream check exists (hasattr on torch.ops succeeds for every build)",
    removal="when vLLM checks the extension's code objects (or torch.cuda.get_arch_list()) before dispatching to _C ops",
    gates=("G4",),
)


# ---- item G7: unquantized skinny GEMV (wvSplitK, LLMM1) in _rocm_C ---------------------------

def _skinny_gemm_without_code_object(wrapped, instance, args, kwargs):
    if not verdict_for(ROCM_C_EXTENSIONS).absent:
        return wrapped(*args, **kwargs)
    import torch.nn.functional as F

    # wvSplitK(a=weight [m, k], b=x [n, k], cu_count, bias) and LLMM1(a=weight, b=x, rows) both
    # return x @ weight.T (+ bias): the hipBLASLt GEMM vLLM uses for every other shape.
    weight, x = args[0], args[1]
    bias = kwargs.get("bias", args[3] if len(args) > 3 else None) if wrapped.__name__ == "wvSplitK" else None
    return F.linear(x, weight, bias)


SKINNY_GEMM_NATIVE = Fix(
    name="skinny-gemm-code-object",
    title="Skinny decode GEMV (wvSplitK, LLMM1): torch GEMM when _rocm_C has no code object",
    stack="vllm",
    patches=(
        Patch("vllm._custom_ops:wvSplitK", _skinny_gemm_without_code_object,
              {"0.32.0": "92ececf1d828acd9", "0.33.0": "92ececf1d828acd9",
               "0.34.0": "92ececf1d828acd9"}),
        Patch("vllm._custom_ops:LLMM1", _skinny_gemm_without_code_object,
              {"0.32.0": "8963552aa242fda9", "0.33.0": "8963552aa242fda9",
               "0.34.0": "8963552aa242fda9"}),
    ),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "rocm_unquantized_gemm_impl sends every bf16/fp16 decode GEMM with n<=5 tokens to "
        "_rocm_C.wvSplitK or LLMM1 on any gfx1x arch (audit G7). Without a code object for the "
        "running arch in _rocm_C, decode dies with 'invalid device function'."
    ),
    how=(
        "Wrap vllm._custom_ops.wvSplitK and LLMM1 (looked up at call time by "
        "rocm_unquantized_gemm_impl): when _rocm_C's offload bundles lack the arch, return "
        "F.linear(x, weight, bias), vLLM's own fallback GEMM for all other shapes."
    ),
    upstream="audit G7; no upstream check",
    removal="when vLLM checks _rocm_C's code objects before choosing the skinny kernels",
    gates=("G7",),
)


# ---- items D4, F2: RDNA3 W4A16 HIP kernels, gated on gfx1100 by name ------------------------

def _rdna3_kernel_arch_admitted():
    """vLLM's RDNA3 kernel checks read on_gfx1100() from vllm.platforms.rocm at call time; answer it
    with 'this gfx11 arch' for the duration of that one check, so every other condition vLLM checks
    (op registered, dtypes, group size, ...) still decides."""
    import vllm.platforms.rocm as rocm

    return answered(rocm, "on_gfx1100", lambda: True)


def _rdna3_decision(wrapped, args, kwargs, deny):
    verdict = verdict_for(ROCM_C_EXTENSIONS)
    if verdict.absent:
        return deny(f"_rocm_C has no code object for this GPU: {verdict.reason}")
    if not verdict.present:
        return wrapped(*args, **kwargs)  # cannot tell: vLLM's own answer
    with _rdna3_kernel_arch_admitted():
        return wrapped(*args, **kwargs)


def _rdna3_w4a16_can_implement(wrapped, instance, args, kwargs):
    return _rdna3_decision(wrapped, args, kwargs, lambda why: (False, why))


def _rdna3_moe_available(wrapped, instance, args, kwargs):
    return _rdna3_decision(wrapped, args, kwargs, lambda why: False)


RDNA3_KERNELS_BY_CODE_OBJECT = Fix(
    name="rdna3-kernels-code-object",
    title="RDNA3 W4A16 dense and MoE HIP kernels on every gfx11 whose _rocm_C carries them",
    stack="vllm",
    patches=(
        Patch("vllm.model_executor.kernels.linear.mixed_precision.rdna3_w4a16:"
              "RDNA3W4A16LinearKernel.can_implement", _rdna3_w4a16_can_implement,
              {"0.32.0": "4e637a90a4a9ca46", "0.33.0": "4e637a90a4a9ca46",
               "0.34.0": "1b2401d3c841f67b"}),
        Patch("vllm.model_executor.layers.fused_moe.experts.rdna3_moe:rdna3_moe_kernel_available",
              _rdna3_moe_available, {"0.32.0": "6c18fe382204d322", "0.33.0": "6c18fe382204d322",
                                     "0.34.0": "6c18fe382204d322"}),
    ),
    condition=runs_rdna3_wmma_kernels,
    versions=">=0.32.0,<0.35",
    why=(
        "RDNA3W4A16LinearKernel (gptq_gemm_rdna3) and Rdna3WNA16Experts (moe_gptq_gemm_rdna3) are "
        "wave32 WMMA HIP kernels for the RDNA3 ISA, but vLLM admits them only when "
        "'gfx1100' in the arch name (on_gfx1100(), audit F2, D4): gfx1101/1102/1150/1151 never "
        "get them even when _rocm_C was built for them, and gfx1100 gets them even from a build "
        "without a gfx1100 code object (hasattr on torch.ops succeeds for every build)."
    ),
    how=(
        "On RDNA3-ISA archs, read _rocm_C's offload bundles: code object present -> run vLLM's "
        "own check with on_gfx1100() answering for this arch (op registration, dtype, group and "
        "zero-point checks unchanged); absent -> reject with the reason, so the registry falls "
        "through to RDNAHybridW4A16 / Triton WNA16; unreadable -> vLLM's own answer. vLLM 0.34.0 "
        "only re-wrapped can_implement's reason strings in parentheses (same checks)."
    ),
    upstream="audit D4, F2 (replacement: on_gfx11() plus a code-object check)",
    removal="when vLLM gates the RDNA3 kernels on the RDNA3 ISA and the extension's code objects",
    gates=("D4", "F2"),
)


# ---- _moe_C.topk_softmax: MoE routing -------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _warn_routing_unserved(reason: str) -> None:
    """Warn once per distinct reason: the wrapper runs for every MoE layer of every decode step,
    and a model whose routing it cannot serve gives the same reason on each call. Bounded, since
    a reason may carry the token count."""
    log.warning("rocm-enable: topk-softmax-code-object cannot serve this call (%s); "
                "vLLM's _moe_C op runs", reason)


def _topk_softmax_without_code_object(wrapped, instance, args, kwargs):
    if not verdict_for(MOE_C_EXTENSIONS).absent:
        return wrapped(*args, **kwargs)
    a = bound_arguments(wrapped, args, kwargs)  # the routers call it every MoE layer
    if a["e_score_correction_bias"] is not None:
        return wrapped(*args, **kwargs)  # biased selection: not reimplemented, vLLM's op decides
    from rocm_enable.ops import topk_softmax as routing

    outputs = (a["topk_weights"], a["topk_ids"], a["token_expert_indices"], a["gating_output"])
    reason = routing.unsupported_reason(*outputs)
    if reason:
        _warn_routing_unserved(reason)
        return wrapped(*args, **kwargs)
    # One Triton launch writes all three outputs (weights, ids, token_expert_indices). Padding
    # rows (is_padding) are routed like real rows: their ids stay valid for every consumer and
    # vLLM discards their outputs.
    routing.topk_softmax(*outputs, a["renormalize"])
    return None


TOPK_SOFTMAX_NATIVE = Fix(
    name="topk-softmax-code-object",
    title="MoE routing: one Triton top-k softmax launch when vLLM's _moe_C has no code object for this GPU",
    stack="vllm",
    patches=(Patch("vllm._custom_ops:topk_softmax", _topk_softmax_without_code_object,
                   {"0.32.0": "5a10160b79179107", "0.33.0": "5a10160b79179107",
                    "0.34.0": "5a10160b79179107"}),),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "Every Qwen3-Next / Qwen3.6 MoE layer routes with FusedTopKRouter -> fused_topk -> "
        "vllm_topk_softmax -> torch.ops._moe_C.topk_softmax (softmax scoring, no correction "
        "bias), whatever experts backend runs. A vLLM built without the running arch in "
        "PYTORCH_ROCM_ARCH registers the op anyway; the first decode step dies with 'invalid "
        "device function'. vLLM has no non-HIP path for it on ROCm (aiter's topk is CDNA-only)."
    ),
    how=(
        "Wrap vllm._custom_ops.topk_softmax (looked up at call time by the routers): when the "
        "_moe_C offload bundles lack the arch, one Triton program per token "
        "(rocm_enable/ops/topk_softmax.py) writes the op's outputs into the caller's tensors: "
        "fp32 softmax over all experts, the top-k by logit with vLLM's tie rule (lower expert id "
        "wins), optional renormalisation, token_expert_indices[t, j] = j * M + t, ids in the "
        "caller's index dtype. No host sync, so CUDA/HIP graphs capture it; it replaces the torch "
        "twin's 12 launches per MoE layer (softmax, top-k + sort, sum, div, two aranges, int mul "
        "and add, three copies). Calls with a correction bias, tensors it cannot serve (named in "
        "a warning), or the code object present or unknown run vLLM's op."
    ),
    upstream="audit §3.11 build-time gate; no upstream check",
    removal="when vLLM checks _moe_C's code objects (or ships a Triton/torch routing fallback) on ROCm",
    gates=("D11",),
)


# ---- _C ops with a native / Triton twin in vLLM ----------------------------------------------

def _rotary_embedding_without_code_object(wrapped, instance, args, kwargs):
    if verdict_for(C_EXTENSIONS).absent:
        return instance.forward_native(*args, **kwargs)  # vLLM's own torch RoPE (custom op off)
    return wrapped(*args, **kwargs)


def _reshape_and_cache_flash_without_code_object(wrapped, instance, args, kwargs):
    if verdict_for(C_EXTENSIONS).absent:
        from vllm.v1.attention.ops.triton_reshape_and_cache_flash import (
            triton_reshape_and_cache_flash,
        )

        # vLLM's Triton KV write, same arguments (TRITON_ATTN and ROCM_ATTN's non-16/32 blocks use it)
        return triton_reshape_and_cache_flash(*args, **kwargs)
    return wrapped(*args, **kwargs)


def _repetition_penalties_without_code_object(wrapped, instance, args, kwargs):
    if verdict_for(C_EXTENSIONS).absent:
        import vllm._custom_ops as ops

        return ops.apply_repetition_penalties_torch(*args, **kwargs)  # vLLM's own torch twin
    return wrapped(*args, **kwargs)


def _static_fp8_quant_without_code_object(wrapped, instance, args, kwargs):
    import inspect

    if not verdict_for(C_EXTENSIONS).absent:
        return wrapped(*args, **kwargs)
    a = inspect.signature(wrapped).bind(*args, **kwargs)
    a.apply_defaults()
    a = a.arguments
    scale = a["scale"]
    per_tensor = (scale is not None and scale.numel() == 1 and a["group_shape"] in (None, (-1, -1))
                  and not a["num_token_padding"])
    if not per_tensor:
        return wrapped(*args, **kwargs)  # dynamic / per-token / group quant: vLLM's op
    import torch
    from vllm.platforms import current_platform

    x, out = a["input"], a["output"]
    dtype = current_platform.fp8_dtype()
    if out is None:
        out = torch.empty(x.shape, device=x.device, dtype=dtype)
    info = torch.finfo(dtype)
    # static_scaled_fp8_quant: clamp(x / scale) to the FP8 range, then round to FP8
    out.copy_((x.float() / scale.float().reshape(())).clamp(info.min, info.max).to(dtype))
    return out, scale


C_OPS_NATIVE = Fix(
    name="c-ops-code-object",
    title="RoPE, KV-cache write, repetition penalties, static FP8 requant: vLLM's torch/Triton twins when _C lacks this GPU",
    stack="vllm",
    patches=(
        Patch("vllm.model_executor.layers.rotary_embedding.base:RotaryEmbedding.forward_cuda",
              _rotary_embedding_without_code_object,
              {"0.32.0": "4624d967179bb23b", "0.33.0": "4624d967179bb23b",
               "0.34.0": "4624d967179bb23b"}),
        Patch("vllm._custom_ops:reshape_and_cache_flash", _reshape_and_cache_flash_without_code_object,
              {"0.32.0": "73e696f29adda802", "0.33.0": "73e696f29adda802",
               "0.34.0": "73e696f29adda802"}),
        Patch("vllm._custom_ops:apply_repetition_penalties_cuda", _repetition_penalties_without_code_object,
              {"0.32.0": "25876cc6b966c8d4", "0.33.0": "25876cc6b966c8d4",
               "0.34.0": "25876cc6b966c8d4"}),
        Patch("vllm._custom_ops:scaled_fp8_quant", _static_fp8_quant_without_code_object,
              {"0.32.0": "a6d3889d40d9ffa3", "0.33.0": "a6d3889d40d9ffa3",
               "0.34.0": "a6d3889d40d9ffa3"}),
    ),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "Four _C ops that Qwen3-Next / Qwen3.6 serving can reach on ROCm each have a torch or "
        "Triton twin inside vLLM: RotaryEmbedding.forward_cuda -> _C.rotary_embedding (custom op "
        "on, fused qk-norm-rope-gate path off), ROCM_AITER_UNIFIED_ATTN's KV write -> "
        "_C_cache_ops.reshape_and_cache_flash, the sampler's repetition penalty -> "
        "_C.apply_repetition_penalties_ (any logits on the GPU), and per-tensor FP8 checkpoint "
        "loading -> _C.static_scaled_fp8_quant. A vLLM built without the running arch dies at "
        "the first of them with 'invalid device function'."
    ),
    how=(
        "When _C's offload bundles lack the arch: RotaryEmbedding.forward_cuda returns vLLM's "
        "forward_native; reshape_and_cache_flash calls vLLM's triton_reshape_and_cache_flash; "
        "apply_repetition_penalties_cuda calls vLLM's apply_repetition_penalties_torch; "
        "scaled_fp8_quant with a per-tensor static scale quantises with torch (clamp(x / scale) "
        "to FP8). Code object present or unknown: vLLM's ops, unchanged."
    ),
    upstream="audit §3.11 build-time gate; no upstream check",
    removal="when vLLM checks _C's code objects before dispatching to these ops",
    gates=("G5",),
)


# ---- IR op provider vllm_c (rms_norm, fused_add_rms_norm) -----------------------------------

VLLM_C_PROVIDER = "vllm_c"


def _ir_priority_without_vllm_c(wrapped, instance, args, kwargs):
    import inspect

    bound = inspect.signature(wrapped).bind(*args, **kwargs)
    priority = list(bound.arguments["priority"])
    if VLLM_C_PROVIDER in priority and verdict_for(C_EXTENSIONS).absent:
        # as if vllm_c's `supported` were false: vLLM skips it and appends native if needed
        return wrapped([p for p in priority if p != VLLM_C_PROVIDER])
    return wrapped(*args, **kwargs)


IR_VLLM_C_NATIVE = Fix(
    name="ir-vllm-c-code-object",
    title="vLLM IR ops (RMSNorm): skip the vllm_c provider when _C has no code object for this GPU",
    stack="vllm",
    patches=(Patch("vllm.ir.op:IrOp._filter_priority_impls", _ir_priority_without_vllm_c,
                   {"0.32.0": "c4f0a72ad7fed5d3", "0.33.0": "c4f0a72ad7fed5d3",
                    "0.34.0": "c4f0a72ad7fed5d3"}),),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "RMSNorm and fused add+RMSNorm dispatch through vLLM IR ops; on ROCm the default priority "
        "is ['vllm_c', 'native'] whenever vLLM does not compile with inductor (enforce-eager, "
        "other backends), and the vllm_c implementation (supported on every CUDA-alike) calls "
        "_C.rms_norm / _C.fused_add_rms_norm. On a build without the running arch that launch "
        "dies. (Qwen's GemmaRMSNorm passes an fp32 weight, which vllm_c's supports_args already "
        "rejects; plain RMSNorm does not.)"
    ),
    how=(
        "Wrap IrOp._filter_priority_impls, the one place a priority list (platform default or "
        "user --ir-op-priority, set_default or set_priority) becomes the dispatch list: when _C's "
        "offload bundles lack the arch, 'vllm_c' is left out, as vLLM leaves out an unsupported "
        "provider; vLLM appends native when nothing else covers every argument."
    ),
    upstream="audit G2 and §3.11 build-time gate; no upstream check",
    removal="when vLLM's vllm_c provider reports supported=False for an extension without the arch",
    gates=("G2",),
)


# ---- 0.32: the fused HIP GDN decode for MTP speculative decoding ---------------------------

def _gdn_mtp_reason_with_code_objects(wrapped, instance, args, kwargs):
    reason = wrapped(*args, **kwargs)
    if reason is not None:
        return reason
    verdict = verdict_for(C_EXTENSIONS)
    if verdict.absent:
        return f"torch.ops._C.fused_gdn_decode_post_conv_mtp has no code object for this GPU ({verdict.reason})"
    return None


GDN_MTP_DECODE = Fix(
    name="gdn-mtp-decode-code-object",
    title="GDN MTP decode: vLLM's Triton path when _C's fused GDN decode has no code object (0.32)",
    stack="vllm",
    patches=(Patch("vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn:"
                   "QwenGatedDeltaNetAttention._fused_gdn_decode_unsupported_reason",
                   _gdn_mtp_reason_with_code_objects,
                   {"0.32.0": "f8dfe77d4dda6af9"}),),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.33",
    fixed_upstream_in="0.33.0",
    why=(
        "vLLM 0.32.0 picks the fused HIP GDN decode (_C.fused_gdn_decode_post_conv_mtp) for "
        "Qwen3.5/Qwen3.6 GDN layers with MTP speculative decoding whenever VLLM_GDN_DECODE_KERNEL "
        "is 'cuda' (the default), the model is BF16 with K=V=128, capability >= 80 (gfx11 reads as "
        "110/115) and the op is registered -- which it is in every build, code object or not "
        "(audit H3)."
    ),
    how=(
        "Wrap _fused_gdn_decode_unsupported_reason: when vLLM finds no reason of its own and _C's "
        "offload bundles lack the arch, return that as the reason. vLLM then falls back to its "
        "Triton GDN spec-decode path itself (or, if the user set VLLM_GDN_DECODE_KERNEL=cuda "
        "explicitly, raises its own ValueError with the reason). vLLM 0.33.0 runs a Triton port "
        "on ROCm (fused_mtp_decode_impl, no _C op): the record ends at 0.33."
    ),
    upstream="audit H3; vLLM 0.33 replaced the ROCm path with a Triton port",
    removal="vLLM >= 0.33 (Triton port on ROCm)",
    gates=("H3",),
)

FIXES = (SILU_AND_MUL_NATIVE, SKINNY_GEMM_NATIVE, RDNA3_KERNELS_BY_CODE_OBJECT, TOPK_SOFTMAX_NATIVE,
         C_OPS_NATIVE, IR_VLLM_C_NATIVE, GDN_MTP_DECODE)
