"""FP8 MoE checkpoints on GPUs without FP8 compute: select rocm_enable's W8A16 experts
(audit gates C1, C2, C3; vLLM 0.33's emulated W8A8 TritonExperts)."""
from __future__ import annotations

from rocm_enable.engine.calls import bound_arguments
from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import lacks_fp8_compute

# 0.34.0 moved the oracle's per-backend probing into Fp8MoEKernelOracle and reads the activation
# format from FusedMoEConfig.activation_format; the decision order is unchanged.
ORACLE_FINGERPRINTS = {"0.32.0": "90d59bc66b0de2db", "0.33.0": "2f68ddd89f8f589b",
                       "0.34.0": "74db62263222f845"}

# select_fp8_moe_backend is imported by name into each FP8 MoE method's module; every binding
# on the path of the target checkpoints is wrapped (modelopt / quark MoE are not target formats).
ORACLE_BINDINGS = (
    "vllm.model_executor.layers.fused_moe.oracle.fp8",
    "vllm.model_executor.layers.quantization.fp8",
    "vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors_moe"
    ".compressed_tensors_moe_w8a8_fp8",
    "vllm.model_executor.layers.quantization.online.fp8",
)
USER_BACKENDS_SERVED = ("auto", "triton")


def _activation_format(config):
    """The expert activation format vLLM's oracle asks its kernels about, as it computes it:
    FusedMoEConfig.activation_format from 0.34.0 on, the parallel config's flag before."""
    import vllm.model_executor.layers.fused_moe.modular_kernel as mk

    if hasattr(type(config), "activation_format"):
        return config.activation_format
    if config.moe_parallel_config.use_batched_activation_format:
        return mk.FusedMoEActivationFormat.BatchedExperts
    return mk.FusedMoEActivationFormat.Standard


def _select_w8a16_experts(wrapped, instance, args, kwargs):
    a = bound_arguments(wrapped, args, kwargs)
    config, weight_key, activation_key = a["config"], a["weight_key"], a["activation_key"]
    if config.moe_backend not in USER_BACKENDS_SERVED:
        return wrapped(*args, **kwargs)  # an explicit other backend keeps vLLM's own answer

    from vllm.model_executor.layers.fused_moe.oracle.fp8 import Fp8MoeBackend

    from rocm_enable.stacks.vllm.w8a16_experts import experts_class

    cls = experts_class()
    # The experts are Standard-format only: a batched (DeepEP low-latency, NIXL EP) deployment
    # is refused here and keeps vLLM's answer.
    supported, _ = cls.is_supported_config(cls, config, weight_key, activation_key,
                                           _activation_format(config))
    if not supported:
        return wrapped(*args, **kwargs)
    # TRITON: vLLM's weight-format conversion and quant-config construction for TRITON are
    # what these experts expect (checkpoint layout, fp32 scales, no shuffling).
    return Fp8MoeBackend.TRITON, cls


FP8_MOE_W8A16 = Fix(
    name="fp8-moe-w8a16",
    title="FP8 MoE on GPUs without FP8 compute: W8A16 Triton experts",
    stack="vllm",
    patches=tuple(
        Patch(f"{module}:select_fp8_moe_backend", _select_w8a16_experts, ORACLE_FINGERPRINTS)
        for module in ORACLE_BINDINGS
    ),
    condition=lacks_fp8_compute,
    versions=">=0.32.0,<0.35",
    why=(
        "vLLM 0.32.0 accepts FP8 MoE only where supports_fp8() (on_cdna() or on_rdna4()), so "
        "gfx1151/gfx1100 FP8 checkpoints (Qwen3-Next-80B-A3B-FP8, Qwen3-Coder-Next-FP8, "
        "Qwen3.6-35B-A3B-FP8) fail at model construction with 'No FP8 MoE backend supports the "
        "deployment configuration.' (gates C2/C3), and with VLLM_ROCM_USE_AITER=1 with 'FP8 MoE "
        "backend AITER does not support ...' (C1). vLLM 0.33.0 made supports_fp8() true on all "
        "RDNA, so the same checkpoints select TritonExperts in W8A8 mode: activations are "
        "quantized to FP8 (2.6e-2 relative error per GEMM) and every FP8 byte of both operands "
        "goes through a 9-compare select ladder on gfx11 (768 instructions per WMMA)."
    ),
    how=(
        "Wrap select_fp8_moe_backend (each module binding on the path) so that, when the arch "
        "lacks FP8 compute and --moe-backend is auto or triton, the oracle returns "
        "(TRITON, RocmW8A16Fp8Experts) for block-128, per-channel and per-tensor FP8 weights: the "
        "experts keep the checkpoint's e4m3 bytes, decode them with shift-and-mask to fp16 bit "
        "patterns (2^8 folded into a copy of the scales) and multiply bf16/fp16 activations "
        "without quantizing them. Any other request (another backend, a batched activation "
        "format) is answered by vLLM's own oracle. vLLM 0.34.0 rewrote the oracle's body around "
        "Fp8MoEKernelOracle and FusedMoEConfig.activation_format (same order of decisions, and "
        "with VLLM_ROCM_USE_AITER it now drops AITER on RDNA instead of raising); the wrapper asks "
        "our experts about the format the running vLLM computes."
    ),
    upstream="audit C1/C2/C3; vLLM 0.33.0 supports_fp8() on_rdna(); vLLM PR #52985 (W8A16 FP8 on gfx90a)",
    removal="when vLLM ships a W8A16 FP8 MoE experts class selected on archs without FP8 compute",
    gates=("C1", "C2", "C3"),
)

FIXES = (FP8_MOE_W8A16,)
