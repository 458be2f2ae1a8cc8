"""FP8 dense linears on GPUs without FP8 compute: select rocm_enable's W8A16 kernels
(audit gates E1, E2, E3; per-channel "FP8-Dynamic" checkpoints fail outright without it)."""
from __future__ import annotations

from rocm_enable.engine.calls import bound_arguments
from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import lacks_fp8_compute

LINEAR = "vllm.model_executor.kernels.linear"


def _w8a16_kernel_for(possible_kernels):
    """Our kernel for one of vLLM's FP8 kernel tables, or None for any other table."""
    import vllm.model_executor.kernels.linear as linear

    from rocm_enable.stacks.vllm import w8a16_linear

    if possible_kernels is linear._POSSIBLE_FP8_BLOCK_KERNELS:
        return w8a16_linear.block_kernel_class()
    if possible_kernels in (linear._POSSIBLE_FP8_KERNELS, linear._POSSIBLE_WFP8A16_KERNELS):
        return w8a16_linear.scaled_mm_kernel_class()
    return None


def _prefer_w8a16_kernel(wrapped, instance, args, kwargs):
    a = bound_arguments(wrapped, args, kwargs)
    ours = None if a["force_kernel"] is not None else _w8a16_kernel_for(a["possible_kernels"])
    if ours is not None:
        import vllm.model_executor.kernels.linear as linear

        ok, _ = linear.is_supported_and_can_implement_kernel(ours, a["config"],
                                                             a["compute_capability"])
        if ok:  # VLLM_DISABLED_KERNELS=<our class name> still wins, as for vLLM's own kernels
            return ours
    return wrapped(*args, **kwargs)


FP8_LINEAR_W8A16 = Fix(
    name="fp8-linear-w8a16",
    title="FP8 dense linears on GPUs without FP8 compute: W8A16 Triton GEMM",
    stack="vllm",
    patches=(
        Patch(f"{LINEAR}:choose_scaled_mm_linear_kernel", _prefer_w8a16_kernel,
              {"0.32.0": "ea41ee067f517671", "0.33.0": "ea41ee067f517671",
               "0.34.0": "ea41ee067f517671"}),
    ),
    condition=lacks_fp8_compute,
    versions=">=0.32.0,<0.35",
    why=(
        "On gfx1151/gfx1100 vLLM's ROCm FP8 kernel table has no kernel for per-tensor or "
        "per-channel FP8 weights, so FP8-Dynamic checkpoints fail at the first quantized linear "
        "with 'Failed to find a kernel that can implement the ScaledMM linear layer' (E1), the "
        "ROCm W8A16 FP8 table is empty (E3), and block-128 checkpoints run "
        "TritonFp8BlockScaledMMKernel, which quantizes activations to FP8 and decodes both "
        "operands through a select ladder on gfx11 (E2)."
    ),
    how=(
        "Wrap choose_scaled_mm_linear_kernel: for vLLM's FP8 block, FP8 per-tensor/per-channel "
        "and W8A16 FP8 tables (and no forced kernel) return RocmW8A16Fp8BlockLinearKernel or "
        "RocmW8A16Fp8ScaledMMKernel when they can implement the layer. They keep e4m3 weights, "
        "fold 2^8 into the weight scale at weight-processing time, and multiply bf16/fp16 "
        "activations unquantized. Every other table and request is vLLM's own choice."
    ),
    upstream="audit E1/E2/E3/E8; vLLM PR #52985 (Triton W8A16 FP8 linear, gfx90a)",
    removal="when vLLM's ROCm FP8 linear tables hold a W8A16 kernel chosen on archs without FP8 compute",
    gates=("E1", "E2", "E3"),
)

FIXES = (FP8_LINEAR_W8A16,)
