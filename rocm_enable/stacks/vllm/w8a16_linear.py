"""vLLM linear-kernel classes around rocm_enable's W8A16 FP8 dense GEMM.

Built on first use (they subclass vLLM's kernel base classes). Both keep the checkpoint's e4m3
weight bytes, never quantize activations, and fold the 2^8 exponent re-bias of the fp16 bit trick
into the layer's weight-scale parameter once, at weight-processing time.
"""
from __future__ import annotations

import functools

import torch

from rocm_enable.ops.fp8_dequant import check_fp8_weights_finite, fold_fp8_scale_for_fp16_bits

FP16_ACTIVATIONS = ("bfloat16", "float16")


def _arch_family() -> str:
    from rocm_enable.runtime import active_caps

    return active_caps().kernel_family


def _rocm_only(cls, compute_capability=None):
    from vllm.platforms import current_platform

    return (True, None) if current_platform.is_rocm() else (False, "runs on ROCm only")


def _activation_dtype_ok(config) -> tuple[bool, str | None]:
    dtype = getattr(config, "input_dtype", None)
    if dtype is not None and str(dtype).rsplit(".", 1)[-1] not in FP16_ACTIVATIONS:
        return False, f"activations must be bf16 or fp16, not {dtype}"
    return True, None


def _fold_scale_in_place(layer, name: str) -> None:
    from vllm.model_executor.utils import replace_parameter

    replace_parameter(layer, name, fold_fp8_scale_for_fp16_bits(getattr(layer, name).data))


def _prepare_for_calls(kernel, layer, name: str, transposed: bool) -> None:
    """Per-call decisions made once, here: the kernel family and its launch configs (the call
    itself is the opaque custom op torch.ops.rocm_enable.w8a16_linear), and a word-aligned
    weight layout so no call copies the weight. ``transposed``: vLLM stores it as (K, N)."""
    from vllm.model_executor.utils import replace_parameter

    from rocm_enable.ops.w8a16_ops import prepare_weight

    kernel._family = _arch_family()
    weight = getattr(layer, name)
    aligned = prepare_weight(weight.t() if transposed else weight, kernel._family)
    if aligned is not None:
        replace_parameter(layer, name, aligned.t() if transposed else aligned)


@functools.cache
def block_kernel_class():
    from vllm.model_executor.kernels.linear.scaled_mm.BlockScaledMMLinearKernel import (
        Fp8BlockScaledMMLinearKernel,
    )
    from vllm.model_executor.layers.quantization.utils.quant_utils import kFp8Static128BlockSym

    class RocmW8A16Fp8BlockLinearKernel(Fp8BlockScaledMMLinearKernel):
        """Block-128x128 FP8 weights x bf16/fp16 activations (no activation quantization)."""

        apply_input_quant = False
        is_supported = classmethod(_rocm_only)

        @classmethod
        def can_implement(cls, config):
            if config.weight_quant_key != kFp8Static128BlockSym:
                return False, "needs 128x128 block-scaled FP8 weights"
            return _activation_dtype_ok(config)

        def process_weights_after_loading(self, layer):
            super().process_weights_after_loading(layer)
            params = self._get_layer_params(layer)
            check_fp8_weights_finite(params.weight, f"{type(layer).__name__}.weight")
            _fold_scale_in_place(layer, params.block_scale_attr)
            _prepare_for_calls(self, layer, params.WEIGHT, transposed=False)

        def apply_block_scaled_mm(self, A, B, As, Bs):
            return torch.ops.rocm_enable.w8a16_linear(A, B, Bs, list(self.weight_group_shape),
                                                      None, self._family)

    return RocmW8A16Fp8BlockLinearKernel


@functools.cache
def scaled_mm_kernel_class():
    from vllm.model_executor.kernels.linear.scaled_mm.ScaledMMLinearKernel import (
        FP8ScaledMMLinearKernel,
        ScaledMMLinearKernel,
    )
    from vllm.model_executor.layers.quantization.utils.quant_utils import (
        kFp8StaticChannelSym,
        kFp8StaticTensorSym,
    )

    class RocmW8A16Fp8ScaledMMKernel(FP8ScaledMMLinearKernel):
        """Per-tensor or per-channel FP8 weights x bf16/fp16 activations."""

        is_supported = classmethod(_rocm_only)

        def __init__(self, c, layer_param_names):
            # Skip FP8ScaledMMLinearKernel's activation quantizer: activations stay 16-bit, and
            # vLLM's W8A16 configs carry no activation key at all.
            ScaledMMLinearKernel.__init__(self, c, layer_param_names)

        @classmethod
        def can_implement(cls, c):
            if c.weight_quant_key not in (kFp8StaticTensorSym, kFp8StaticChannelSym):
                return False, "needs per-tensor or per-channel FP8 weights"
            return _activation_dtype_ok(c)

        def process_weights_after_loading(self, layer):
            w_name, s_name = self.layer_param_names[:2]
            check_fp8_weights_finite(getattr(layer, w_name), f"{type(layer).__name__}.{w_name}")
            _fold_scale_in_place(layer, s_name)
            _prepare_for_calls(self, layer, w_name, transposed=True)

        def apply_weights(self, layer, x, bias=None):
            w, w_s, _, _ = self._get_layer_params(layer)
            x_2d = x.reshape(-1, x.shape[-1])
            out_dtype = self.config.out_dtype or x.dtype
            return self.apply_scaled_mm(A=x_2d, B=w, out_dtype=out_dtype, As=None, Bs=w_s,
                                        bias=bias, output_shape=[*x.shape[:-1], w.shape[1]])

        def apply_scaled_mm(self, *, A, B, out_dtype, As, Bs, bias, output_shape):
            # vLLM hands the weight over as (K, N); the kernel reads (N, K) rows.
            out = torch.ops.rocm_enable.w8a16_linear(A, B.t(), Bs, None, bias, self._family)
            return out.to(out_dtype).view(*output_shape)

    return RocmW8A16Fp8ScaledMMKernel
