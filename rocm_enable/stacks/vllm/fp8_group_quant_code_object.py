"""vLLM's own W8A8 FP8 paths (FP8 checkpoints on gfx12, which has native FP8; the plugin's W8A16
serves gfx11) quantise activations with `_C` ops: torch.ops._C.per_token_group_fp8_quant (block /
group quant), and through ops.scaled_fp8_quant _C.dynamic_per_token_scaled_fp8_quant,
dynamic_scaled_fp8_quant and static_scaled_fp8_quant (per-token, per-tensor, static scales). On a
build whose `_C` lacks the running arch the first FP8 layer dies in them. Found by the engine harness: a Qwen3.6 FP8 block-128 checkpoint
on simulated gfx1201 with vLLM's defaults stopped at "Could not run '_C::per_token_group_fp8_quant'".

Three callers, two moments:
  - QuantFP8 (input_quant_fp8.py), the activation quant of vLLM's FP8 linear kernels. With
    `+quant_fp8` its forward runs inside the Dynamo-traced model forward, and Dynamo traces the
    raw bytecode of a wrapt-wrapped function (wrapt proxies __code__): a wrapper on the quant
    functions would be skipped there without a word. So the choice is made when the layer is
    built: QuantFP8.__init__ is wrapped, and an instance whose forward_hip would reach `_C`
    dispatches to vLLM's own forward_native instead (pure torch, traceable, graph-capturable).
  - The FP8 MoE's activation quant (fused_moe/utils.py _fp8_quantize), which runs eagerly inside
    vLLM's fused-MoE custom op: per_token_group_quant_fp8 as that module binds it (block-FP8) gets
    a torch twin of the op, and _fp8_quantize's dynamic per-token / per-tensor case (W8A8 MoE
    without a block shape, e.g. compressed-tensors per-channel) QuantFP8.forward_native's math.
  - The Triton FP8 MoE's second activation (TritonExperts.apply, block [128, 128], SiLU): vLLM
    fuses SiLU-and-mul with the block quant, ops.silu_and_mul_per_block_quant ->
    _C.silu_and_mul_per_block_quant, also eagerly inside the fused-MoE op. The engine stopped there
    next (vLLM 0.32.0 and 0.34.0, simulated gfx1201, Qwen3.6 FP8 block-128, vLLM's defaults) once
    QuantFP8 ran native. ops.silu_and_mul_per_block_quant (looked up at call time) takes vLLM's
    unfused path instead: SiluAndMul.forward_native, then the group quant above. vLLM's compile
    passes that insert fused `_C` quant ops (act_quant_fusion, rms_quant_fusion) register their
    per-block patterns on CUDA only, and their other patterns match the `_C` quant ops that a
    native QuantFP8 no longer emits, so none fires on this path.

Asked the same question as hip_code_objects' records (the extensions' offload bundles); "unknown"
keeps vLLM's ops.
"""
from __future__ import annotations

from rocm_enable.engine.calls import bound_arguments
from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import is_wave32_rdna
from rocm_enable.stacks.vllm.hip_code_objects import C_EXTENSIONS, verdict_for

INPUT_QUANT = "vllm.model_executor.layers.quantization.input_quant_fp8"


def _reaches_c_ops(quant) -> bool:
    """Whether this QuantFP8's forward_hip ends in a `_C` op: it dispatches to forward_hip (the
    custom op is enabled on ROCm), takes neither aiter's quant nor the DeepGEMM packed-UE8M0
    branch, and wants no TMA-aligned scale layout (which forward_native does not produce)."""
    from vllm.model_executor.layers.quantization.input_quant_fp8 import QuantFP8

    return (type(quant) is QuantFP8  # subclasses (MLA's decode concat) override forward_cuda
            and quant._forward_method == quant.forward_hip
            and not quant.use_aiter
            and not (quant.use_ue8m0 and quant.use_deep_gemm_supported)
            and not quant.tma_aligned_scales)


def _quant_fp8_native_without_code_object(wrapped, instance, args, kwargs):
    wrapped(*args, **kwargs)
    if _reaches_c_ops(instance) and verdict_for(C_EXTENSIONS).absent:
        # What CustomOp dispatches to when quant_fp8 is disabled: vLLM's torch quant, decided
        # here (not traced) so that torch.compile sees only torch ops.
        instance._forward_method = instance.forward_native


def _group_quant_fp8(x, group_size: int, eps: float, dtype, column_major_scales: bool, out_q):
    """per_token_group_fp8_quant's contract, as vLLM's Triton fallback computes it: per group of
    `group_size` contiguous values, scale = max(absmax, eps) * (1 / fp8_max) in fp32 and
    q = clamp(x / scale, fp8_min, fp8_max) in the FP8 dtype; scales [..., groups], column-major
    over the last two dims if asked. Shape-only torch ops: no host sync, graph-capturable."""
    from vllm.model_executor.layers.quantization.utils.quant_utils import get_fp8_min_max

    fp8_min, fp8_max = get_fp8_min_max()
    groups = x.unflatten(-1, (-1, group_size)).float()
    scale = groups.abs().amax(dim=-1, keepdim=True).clamp(min=eps) * (1.0 / fp8_max)
    q = (groups / scale).clamp(fp8_min, fp8_max).to(dtype).flatten(-2)
    if out_q is not None:
        out_q.copy_(q)
        q = out_q
    scale = scale.squeeze(-1)
    if column_major_scales:
        scale = scale.transpose(-2, -1).contiguous().transpose(-2, -1)
    return q, scale


def _group_quant_without_code_object(wrapped, instance, args, kwargs):
    a = bound_arguments(wrapped, args, kwargs)
    x = a["x"]
    if a["use_ue8m0"] is None:  # the platform default, as the op resolves it
        from vllm.utils.deep_gemm import is_deep_gemm_e8m0_used

        a["use_ue8m0"] = is_deep_gemm_e8m0_used()
    # The op's other modes (UE8M0 scales, TMA-aligned layout) and inputs it would not take
    # (non-contiguous: vLLM runs its Triton kernel) stay vLLM's.
    plain = (not a["use_ue8m0"] and not a["tma_aligned_scales"] and x.is_contiguous()
             and x.shape[-1] % a["group_size"] == 0)
    if not plain or not verdict_for(C_EXTENSIONS).absent:
        return wrapped(*args, **kwargs)
    from vllm.platforms import current_platform

    dtype = current_platform.fp8_dtype() if a["dtype"] is None else a["dtype"]
    return _group_quant_fp8(x, a["group_size"], a["eps"], dtype, a["column_major_scales"], a["out_q"])


def _dynamic_quant_fp8(x, per_token: bool):
    """_C.dynamic_per_token_scaled_fp8_quant / dynamic_scaled_fp8_quant as QuantFP8.forward_native
    computes them: scale = max(absmax / fp8_max, 1 / (fp8_max * 512)) per token (scales [M, 1]) or
    per tensor ([1]), q = clamp(x * (1 / scale)) in the FP8 dtype. Shape-only torch ops."""
    import torch
    from vllm.model_executor.layers.quantization.utils.quant_utils import get_fp8_min_max
    from vllm.platforms import current_platform

    fp8_min, fp8_max = get_fp8_min_max()
    absmax = x.abs().amax(dim=-1, keepdim=True) if per_token else x.abs().max().unsqueeze(-1)
    scale = (absmax.to(torch.float32) / fp8_max).clamp(min=1.0 / (fp8_max * 512.0))
    q = (x.to(torch.float32) * scale.reciprocal()).clamp(fp8_min, fp8_max)
    return q.to(current_platform.fp8_dtype()), scale


def _moe_dynamic_quant_without_code_object(wrapped, instance, args, kwargs):
    a = bound_arguments(wrapped, args, kwargs)
    # Dynamic scales without a block shape: ops.scaled_fp8_quant -> _C.dynamic_*_fp8_quant (block
    # shapes go to per_token_group_quant_fp8, wrapped above; static scales: c-ops-code-object).
    if (a["block_shape"] is not None or a["A_scale"] is not None or a["A"].dim() != 2
            or not verdict_for(C_EXTENSIONS).absent):
        return wrapped(*args, **kwargs)
    return _dynamic_quant_fp8(a["A"], a["per_act_token"])


def _silu_mul_block_quant_without_code_object(wrapped, instance, args, kwargs):
    a = bound_arguments(wrapped, args, kwargs)
    x, group_size = a["input"], a["group_size"]
    from vllm.platforms import current_platform

    # FP8 without an upper bound on the scales, whole groups: the Triton FP8 MoE's call
    # (TritonExperts with block [128, 128]); a scale_ub, INT8 or ragged groups stay vLLM's.
    plain = (a["scale_ub"] is None and a["quant_dtype"] == current_platform.fp8_dtype()
             and x.dim() == 2 and x.shape[-1] % (2 * group_size) == 0)
    if not plain or not verdict_for(C_EXTENSIONS).absent:
        return wrapped(*args, **kwargs)
    import torch.nn.functional as F

    d = x.shape[-1] // 2
    # vLLM's unfused path for the same layer: SiluAndMul.forward_native, then the group quant
    return _group_quant_fp8(F.silu(x[:, :d]) * x[:, d:], group_size, 1e-10, a["quant_dtype"],
                            a["is_scale_transposed"], None)


FP8_GROUP_QUANT_NATIVE = Fix(
    name="fp8-group-quant-code-object",
    title="W8A8 FP8 activation quant (QuantFP8, FP8 MoE input quant): torch when _C lacks the arch",
    stack="vllm",
    patches=(
        Patch(f"{INPUT_QUANT}:QuantFP8.__init__", _quant_fp8_native_without_code_object,
              {"0.32.0": "e98a1e659968ba09", "0.33.0": "e98a1e659968ba09",
               "0.34.0": "e98a1e659968ba09"}),
        # guards: the branches _reaches_c_ops reads
        Patch(f"{INPUT_QUANT}:QuantFP8.forward_hip", None,
              {"0.32.0": "26a4930991a57e12", "0.33.0": "26a4930991a57e12",
               "0.34.0": "26a4930991a57e12"}),
        Patch(f"{INPUT_QUANT}:QuantFP8.forward_cuda", None,
              {"0.32.0": "cb2be0d602e926fd", "0.33.0": "cb2be0d602e926fd", "0.34.0": "cb2be0d602e926fd"}),
        Patch("vllm.model_executor.layers.fused_moe.utils:per_token_group_quant_fp8",
              _group_quant_without_code_object,
              {"0.32.0": "ab3f5a136cecc58b", "0.33.0": "ab3f5a136cecc58b",
               "0.34.0": "ab3f5a136cecc58b"}),
        # 0.33.0 added is_scale_transposed (passed to the group quant only)
        Patch("vllm.model_executor.layers.fused_moe.utils:_fp8_quantize",
              _moe_dynamic_quant_without_code_object,
              {"0.32.0": "3a5a620dcbcf68bb", "0.33.0": "4ea1e016ebcd85d6",
               "0.34.0": "4ea1e016ebcd85d6"}),
        # looked up at call time by TritonExperts.apply (`ops.`), which runs eagerly in the MoE op
        Patch("vllm._custom_ops:silu_and_mul_per_block_quant",
              _silu_mul_block_quant_without_code_object,
              {"0.32.0": "4626e653688acd5c", "0.33.0": "4626e653688acd5c",
               "0.34.0": "4626e653688acd5c"}),
    ),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "vLLM's W8A8 FP8 linear kernels quantise activations with QuantFP8, whose forward_hip "
        "(quant_fp8 custom op enabled) ends in _C.per_token_group_fp8_quant for block-FP8 "
        "checkpoints (and in _C.dynamic_per_token_scaled_fp8_quant / dynamic_scaled_fp8_quant / "
        "static_scaled_fp8_quant for per-token, per-tensor and static scales); the FP8 MoE "
        "quantises its input with per_token_group_quant_fp8 -> the same _C op (block-FP8) or "
        "ops.scaled_fp8_quant -> _C.dynamic_per_token_scaled_fp8_quant / dynamic_scaled_fp8_quant "
        "(dynamic scales without a block shape); the Triton FP8 MoE (block [128, 128], SiLU) fuses "
        "its second activation with the block quant in ops.silu_and_mul_per_block_quant -> "
        "_C.silu_and_mul_per_block_quant. A vLLM built without the running arch registers "
        "the ops anyway and the first FP8 layer dies ('invalid device function'). Seen in vLLM's "
        "own engine: Qwen3.6 FP8 block-128 on simulated gfx1201, vLLM's defaults (torch.compile "
        "+ CUDA graphs); then, with QuantFP8 native, at _C::silu_and_mul_per_block_quant in the "
        "Triton MoE (0.32.0 and 0.34.0)."
    ),
    how=(
        "Wrap QuantFP8.__init__: when _C's offload bundles lack the arch and the instance's "
        "forward_hip would reach a _C op (not aiter's quant, not DeepGEMM's packed UE8M0 "
        "scales, no TMA-aligned scales), the instance dispatches to vLLM's forward_native, as "
        "for a disabled quant_fp8 custom op. Decided at construction because torch.compile "
        "traces through wrappers on the forward path without running them. In fused_moe/utils.py "
        "(run eagerly inside the fused-MoE op), wrap per_token_group_quant_fp8 as the module binds "
        "it: plain group quant (no UE8M0, no TMA layout, contiguous input) is computed in torch "
        "with vLLM's Triton fallback's math (scale = max(absmax, eps) / fp8_max, q = clamp(x / "
        "scale)) and the op's scale layout (row- or column-major); and wrap _fp8_quantize: "
        "dynamic scales without a block shape use QuantFP8.forward_native's math (scale = "
        "max(absmax / fp8_max, 1 / (fp8_max * 512)) per token or per tensor, q = clamp(x / "
        "scale)); and wrap ops.silu_and_mul_per_block_quant (TritonExperts.apply looks it up at call "
        "time, eagerly inside the fused-MoE op): FP8 without scale_ub is vLLM's unfused path, "
        "SiluAndMul.forward_native then the group quant above, in the layout asked for. vLLM's "
        "compile fusion passes are left alone: their per-block SiLU-and-mul pattern is registered "
        "on CUDA only and their patterns match the _C quant ops a native QuantFP8 no longer emits. "
        "Code object present or unknown: vLLM's ops. 0.33.0 added _fp8_quantize's "
        "is_scale_transposed, which only reaches the group quant."
    ),
    upstream="audit §3.11 build-time gate; no upstream check",
    removal="when vLLM checks _C's code objects before choosing its FP8 quant ops on ROCm",
)

FIXES = (FP8_GROUP_QUANT_NATIVE,)
