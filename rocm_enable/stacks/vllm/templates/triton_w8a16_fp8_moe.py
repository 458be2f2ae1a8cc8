# SPDX-License-Identifier: Apache-2.0
# SPDX-FileCopyrightText: Copyright contributors to the vLLM project
"""Fused MoE experts for FP8 checkpoints on GPUs without FP8 compute (W8A16).

``RocmW8A16Fp8Experts`` keeps the FP8 e4m3 expert weights exactly as the
TRITON backend loads them (checkpoint layout, fp32 block-128 / per-channel /
per-tensor scales) and asks the prepare step for unquantized bf16/fp16
activations. The Triton kernels decode the weights with integer operations
(no FP8 conversion instructions needed), so this runs on gfx90a and RDNA3/3.5,
where FP8 W8A8 either has no kernel or is emulated with activation
quantization.
"""

import torch

import vllm.model_executor.layers.fused_moe.modular_kernel as mk
from vllm.model_executor.layers.fused_moe.activation import MoEActivation
from vllm.model_executor.layers.fused_moe.topk_weight_and_reduce import (
    TopKWeightAndReduceNoOP,
)
from vllm.model_executor.layers.quantization.utils.quant_utils import (
    kFp8Dynamic128Sym,
    kFp8DynamicTensorSym,
    kFp8DynamicTokenSym,
    kFp8Static128BlockSym,
    kFp8StaticChannelSym,
    kFp8StaticTensorSym,
)
from vllm.model_executor.layers.quantization.utils.w8a16_fp8 import kernel_family
from vllm.model_executor.layers.quantization.utils.w8a16_fp8.dequant import (
    check_fp8_weights_finite,
    fold_fp8_scale_for_fp16_bits,
)
from vllm.model_executor.layers.quantization.utils.w8a16_fp8.moe import (
    fused_experts_w8a16,
)
from vllm.platforms import current_platform

_WEIGHT_KEYS = {kFp8Static128BlockSym, kFp8StaticChannelSym, kFp8StaticTensorSym}
# Whatever activation scheme the checkpoint declares, the kernel keeps
# activations in 16 bits (W8A16): a declared FP8 scheme is accepted, not applied.
_ACTIVATION_KEYS = {
    None,
    kFp8Dynamic128Sym,
    kFp8DynamicTokenSym,
    kFp8StaticTensorSym,
    kFp8DynamicTensorSym,
}


class RocmW8A16Fp8Experts(mk.FusedMoEExpertsModular):
    """FP8 e4m3 weights (block-128, per-channel or per-tensor scales) x
    bf16/fp16 activations, fp32 accumulation, integer-op dequantization."""

    def __init__(self, moe_config, quant_config, max_num_tokens=None, num_dispatchers=None):
        super().__init__(moe_config, quant_config)
        # The kernels read e4m3 bytes as fp16 bit patterns worth 2^-8 of their
        # value; the 2^8 goes into a private copy of the (small) scales, once.
        self._w13_scale = fold_fp8_scale_for_fp16_bits(quant_config.w1_scale)
        self._w2_scale = fold_fp8_scale_for_fp16_bits(quant_config.w2_scale)
        self._arch_family = kernel_family()
        self._weights_checked = False

    @property
    def expects_unquantized_inputs(self) -> bool:
        return True

    @staticmethod
    def activation_format():
        return mk.FusedMoEActivationFormat.Standard

    @staticmethod
    def _supports_current_device() -> bool:
        return (
            current_platform.is_rocm()
            and not current_platform.has_native_fp8_compute()
        )

    @staticmethod
    def _supports_no_act_and_mul() -> bool:
        return False

    @staticmethod
    def _supports_quant_scheme(weight_key, activation_key) -> bool:
        return weight_key in _WEIGHT_KEYS and activation_key in _ACTIVATION_KEYS

    @staticmethod
    def _supports_activation(activation) -> bool:
        return activation == MoEActivation.SILU

    @staticmethod
    def _supports_parallel_config(moe_parallel_config) -> bool:
        return not moe_parallel_config.use_all2all_kernels

    def finalize_weight_and_reduce_impl(self):
        return TopKWeightAndReduceNoOP()

    def workspace_shapes(
        self,
        M,
        N,
        K,
        topk,
        global_num_experts,
        local_num_experts,
        expert_tokens_meta,
        activation,
    ):
        # The kernels allocate their own intermediates; only the output shape.
        return (0,), (0,), (M, K)

    def _check_weights_once(self, w1, w2):
        # NaN encodings would decode to finite numbers; refuse them once,
        # outside CUDA graph capture.
        if self._weights_checked or torch.cuda.is_current_stream_capturing():
            return
        check_fp8_weights_finite(w1, "w13_weight")
        check_fp8_weights_finite(w2, "w2_weight")
        self._weights_checked = True

    def apply(
        self,
        output,
        hidden_states,
        w1,
        w2,
        topk_weights,
        topk_ids,
        activation,
        global_num_experts,
        expert_map,
        a1q_scale,
        a2_scale,
        workspace13,
        workspace2,
        expert_tokens_meta,
        apply_router_weight_on_input,
    ):
        self._check_weights_once(w1, w2)
        if expert_map is None:
            # Every expert is local, and fused shared experts sit after the routed ones as
            # global ids E.. that vLLM's count (E) leaves out: the routing must span all
            # w1.shape[0] experts, or the sorted path drops them.
            global_num_experts = w1.shape[0]
        fused_experts_w8a16(
            hidden_states,
            w1,
            w2,
            self._w13_scale,
            self._w2_scale,
            topk_weights,
            topk_ids,
            block_shape=self.block_shape,
            activation="silu",
            apply_router_weight_on_input=apply_router_weight_on_input,
            global_num_experts=global_num_experts,
            expert_map=expert_map,
            output=output,
            arch_family=self._arch_family,
        )
