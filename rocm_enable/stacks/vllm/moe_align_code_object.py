"""vLLM's BF16 / int4 MoE (TritonExperts, fused_experts_impl, Marlin) aligns routes with
torch.ops._moe_C.moe_align_block_size, which has no native or Triton twin in vLLM: on a build
whose _moe_C lacks the running arch the first MoE layer dies there. Route it to rocm_enable's
one-launch, sync-free Triton align (rocm_enable.ops.moe_align), same output layout.

Asked the same question as hip_code_objects' records: the offload bundles of _moe_C
(hip_code_objects.verdict_for(MOE_C_EXTENSIONS)); "unknown" keeps vLLM's op.
"""
from __future__ import annotations

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import is_wave32_rdna
from rocm_enable.stacks.vllm.hip_code_objects import MOE_C_EXTENSIONS, verdict_for


def _moe_align_without_code_object(wrapped, instance, args, kwargs):
    if not verdict_for(MOE_C_EXTENSIONS).absent:
        return wrapped(*args, **kwargs)
    from rocm_enable.ops.moe_align import vllm_moe_align_block_size

    return vllm_moe_align_block_size(*args, **kwargs)


MOE_ALIGN_TRITON = Fix(
    name="moe-align-code-object",
    title="MoE align (moe_align_block_size): Triton align when vLLM's _moe_C has no code object",
    stack="vllm",
    patches=(Patch("vllm._custom_ops:moe_align_block_size", _moe_align_without_code_object,
                   {"0.32.0": "73452dedb41e7386", "0.33.0": "73452dedb41e7386",
                    "0.34.0": "73452dedb41e7386"}),),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "Every unquantized (BF16/FP16) or int4 MoE served by vLLM's Triton experts (Qwen3.6-35B-A3B "
        "BF16, Qwen3-Next BF16) calls fused_moe.moe_align_block_size -> "
        "vllm._custom_ops.moe_align_block_size -> torch.ops._moe_C.moe_align_block_size. A vLLM "
        "built without the running arch in PYTORCH_ROCM_ARCH registers the op anyway and the first "
        "MoE layer dies with 'invalid device function'; vLLM has no Triton or torch fallback for it."
    ),
    how=(
        "Wrap vllm._custom_ops.moe_align_block_size (looked up at call time by "
        "fused_moe/moe_align_block_size.py): when the _moe_C offload bundles lack the arch, fill "
        "the caller's sorted_token_ids / expert_ids / num_tokens_post_pad (and scatter_idx) with "
        "rocm_enable's one-program Triton align: routes grouped by expert in flat order, each "
        "group padded to block_size with numel, expert id per block (0 past the end), invalid "
        "routes (ids outside the range, or mapped to -1 when vLLM passes the expert map) left "
        "out. No host sync, so CUDA/HIP-graph capture works. With the code object present or "
        "unknown, vLLM's op runs."
    ),
    upstream="audit §3.11 build-time gate; no upstream check",
    removal="when vLLM ships a Triton/torch moe_align_block_size or checks _moe_C's code objects on ROCm",
)

FIXES = (MOE_ALIGN_TRITON,)
