# SPDX-License-Identifier: Apache-2.0
# SPDX-FileCopyrightText: Copyright contributors to the vLLM project
"""Dense FP8 linears on GPUs without FP8 compute (W8A16 Triton GEMM).

Both kernels keep the checkpoint's e4m3 weight bytes, never quantize
activations, and fold the 2^8 exponent re-bias of the fp16 bit trick into the
layer's weight-scale parameter once, at weight-processing time. They are
supported where ``RocmPlatform.has_native_fp8_compute()`` is False (gfx90a,
RDNA3/3.5), where vLLM otherwise has no per-tensor/per-channel FP8 kernel and
emulates block FP8 with activation quantization.
"""

from vllm.model_executor.kernels.linear.scaled_mm.BlockScaledMMLinearKernel import (
    Fp8BlockScaledMMLinearKernel,
)
from vllm.model_executor.kernels.linear.scaled_mm.ScaledMMLinearKernel import (
    FP8ScaledMMLinearKernel,
    ScaledMMLinearKernel,
)
from vllm.model_executor.layers.quantization.utils.quant_utils import (
    kFp8Static128BlockSym,
    kFp8StaticChannelSym,
    kFp8StaticTensorSym,
)
from vllm.model_executor.layers.quantization.utils.w8a16_fp8 import kernel_family
from vllm.model_executor.layers.quantization.utils.w8a16_fp8.dequant import (
    check_fp8_weights_finite,
    fold_fp8_scale_for_fp16_bits,
)
from vllm.model_executor.layers.quantization.utils.w8a16_fp8.linear import (
    linear_w8a16,
)
from vllm.model_executor.utils import replace_parameter
from vllm.platforms import current_platform

_FP16_ACTIVATIONS = ("bfloat16", "float16")


def _supported(cls, compute_capability: int | None = None) -> tuple[bool, str | None]:
    if not current_platform.is_rocm():
        return False, "requires ROCm."
    if current_platform.has_native_fp8_compute():
        return False, "is for GPUs without FP8 compute."
    return True, None


def _activation_dtype_ok(config) -> tuple[bool, str | None]:
    dtype = getattr(config, "input_dtype", None)
    if dtype is not None and str(dtype).rsplit(".", 1)[-1] not in _FP16_ACTIVATIONS:
        return False, f"activations must be bf16 or fp16, not {dtype}"
    return True, None


def _fold_scale_in_place(layer, name: str) -> None:
    replace_parameter(
        layer, name, fold_fp8_scale_for_fp16_bits(getattr(layer, name).data)
    )


class RocmW8A16Fp8BlockLinearKernel(Fp8BlockScaledMMLinearKernel):
    """Block-128x128 FP8 weights x bf16/fp16 activations (no activation
    quantization)."""

    apply_input_quant = False
    is_supported = classmethod(_supported)

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

    def apply_block_scaled_mm(self, A, B, As, Bs):
        return linear_w8a16(
            A, B, Bs, block_shape=list(self.weight_group_shape),
            arch_family=kernel_family(),
        )


class RocmW8A16Fp8ScaledMMKernel(FP8ScaledMMLinearKernel):
    """Per-tensor or per-channel FP8 weights x bf16/fp16 activations."""

    is_supported = classmethod(_supported)

    def __init__(self, c, layer_param_names):
        # No activation quantizer: activations stay 16-bit, and the W8A16
        # configs carry no activation key at all.
        ScaledMMLinearKernel.__init__(self, c, layer_param_names)

    @classmethod
    def can_implement(cls, c):
        if c.weight_quant_key not in (kFp8StaticTensorSym, kFp8StaticChannelSym):
            return False, "needs per-tensor or per-channel FP8 weights"
        return _activation_dtype_ok(c)

    def process_weights_after_loading(self, layer):
        w_name, s_name = self.layer_param_names[:2]
        check_fp8_weights_finite(
            getattr(layer, w_name), f"{type(layer).__name__}.{w_name}"
        )
        _fold_scale_in_place(layer, s_name)

    def apply_weights(self, layer, x, bias=None):
        w, w_s, _, _ = self._get_layer_params(layer)
        x_2d = x.reshape(-1, x.shape[-1])
        out_dtype = self.config.out_dtype or x.dtype
        return self.apply_scaled_mm(
            A=x_2d, B=w, out_dtype=out_dtype, As=None, Bs=w_s, bias=bias,
            output_shape=[*x.shape[:-1], w.shape[1]],
        )

    def apply_scaled_mm(self, *, A, B, out_dtype, As, Bs, bias, output_shape):
        # The weight arrives as (K, N); the kernel reads (N, K) rows.
        out = linear_w8a16(A, B.t(), Bs, bias=bias, arch_family=kernel_family())
        return out.to(out_dtype).view(*output_shape)
