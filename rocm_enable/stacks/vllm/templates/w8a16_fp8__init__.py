# SPDX-License-Identifier: Apache-2.0
# SPDX-FileCopyrightText: Copyright contributors to the vLLM project
"""W8A16 FP8 Triton kernels: FP8 e4m3fn weights, bf16/fp16 activations, fp32 accumulation.

For GPUs whose matrix units cannot multiply FP8 operands
(``RocmPlatform.has_native_fp8_compute()`` is False: gfx90a, RDNA3, RDNA3.5).
The checkpoint's e4m3 weight bytes stay in memory as they are and are decoded
to fp16 with integer operations inside the GEMM (``dequant.py``); activations
are never quantized. One GEMM kernel (``triton_kernels.py``) serves the fused
MoE experts (``moe.py``) and dense linears (``linear.py``); launch
configurations come from ``configs/<kernel family>.json`` (no autotuning).

The modules of this package other than this one are generated from
rocm-enable's ``rocm_enable/ops`` by its ``scripts/build_vllm_patches.py`` and
kept identical to them.
"""

from vllm.platforms import current_platform


def kernel_family() -> str:
    """The launch-configuration family (``configs/<family>.json``) of this GPU:
    wave size, matrix-unit shape and register file decide it."""
    if not current_platform.is_rocm():
        return "nvidia"
    from vllm.platforms.rocm import on_gfx11, on_gfx12x

    if on_gfx11():
        return "rdna3"
    if on_gfx12x():
        return "rdna4"
    return "cdna"
