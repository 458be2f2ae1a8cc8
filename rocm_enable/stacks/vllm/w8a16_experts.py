"""vLLM modular-kernel experts class around rocm_enable's W8A16 FP8 MoE kernels.

Built on first use (it subclasses vLLM's `FusedMoEExpertsModular`, so importing this module
imports vLLM's fused-MoE package). It keeps FP8 weights exactly as vLLM loaded them and asks the
prepare step for unquantized (bf16/fp16) activations.
"""
from __future__ import annotations

import functools

import torch

from rocm_enable.ops import w8a16_ops
from rocm_enable.ops.fp8_dequant import check_fp8_weights_finite, fold_fp8_scale_for_fp16_bits
from rocm_enable.ops.moe_w8a16 import workspace_sizes


def _weight_keys():
    from vllm.model_executor.layers.quantization.utils import quant_utils as q

    return {q.kFp8Static128BlockSym, q.kFp8StaticChannelSym, q.kFp8StaticTensorSym}


def _activation_keys():
    # Whatever activation scheme the checkpoint declares, this kernel keeps activations in
    # 16 bits (W8A16), so a declared FP8 activation scheme is accepted and not applied.
    from vllm.model_executor.layers.quantization.utils import quant_utils as q

    return {None, q.kFp8Dynamic128Sym, q.kFp8DynamicTokenSym, q.kFp8StaticTensorSym,
            q.kFp8DynamicTensorSym}


@functools.cache
def experts_class():
    import vllm.model_executor.layers.fused_moe.modular_kernel as mk
    from vllm.model_executor.layers.fused_moe.activation import MoEActivation
    from vllm.model_executor.layers.fused_moe.topk_weight_and_reduce import (
        TopKWeightAndReduceNoOP,
    )
    from vllm.platforms import current_platform

    from rocm_enable.runtime import active_caps

    class RocmW8A16Fp8Experts(mk.FusedMoEExpertsModular):
        """FP8 e4m3 weights (block-128, per-channel or per-tensor scales) x bf16/fp16
        activations, fp32 accumulation, integer-op dequantization (rocm_enable.ops)."""

        def __init__(self, moe_config, quant_config, max_num_tokens=None, num_dispatchers=None):
            super().__init__(moe_config, quant_config)
            # The kernels read e4m3 bytes as fp16 bit patterns worth 2^-8 of their value;
            # the 2^8 goes into a private copy of the (small) scale tensors, once.
            self._w13_scale = fold_fp8_scale_for_fp16_bits(quant_config.w1_scale)
            self._w2_scale = fold_fp8_scale_for_fp16_bits(quant_config.w2_scale)
            self._arch_family = active_caps().kernel_family
            self._weights_checked = False

        @property
        def expects_unquantized_inputs(self) -> bool:
            return True

        @staticmethod
        def activation_format():
            return mk.FusedMoEActivationFormat.Standard

        @staticmethod
        def _supports_current_device() -> bool:
            return current_platform.is_rocm()

        @staticmethod
        def _supports_no_act_and_mul() -> bool:
            return False

        @staticmethod
        def _supports_quant_scheme(weight_key, activation_key) -> bool:
            return weight_key in _weight_keys() and activation_key in _activation_keys()

        @staticmethod
        def _supports_activation(activation) -> bool:
            return activation == MoEActivation.SILU

        @staticmethod
        def _supports_parallel_config(moe_parallel_config) -> bool:
            return not moe_parallel_config.use_all2all_kernels

        def finalize_weight_and_reduce_impl(self):
            return TopKWeightAndReduceNoOP()

        def workspace_shapes(self, M, N, K, topk, global_num_experts, local_num_experts,
                             expert_tokens_meta, activation):
            # N = w13 rows (2 x intermediate). Laid out like vLLM's TritonExperts, which may
            # alias the output onto workspace13: see moe_w8a16.workspace_sizes.
            ws13, ws2 = workspace_sizes(M, topk, N // 2, K)
            return (ws13,), (ws2,), (M, K)

        def _check_weights_once(self, w1, w2):
            # NaN encodings would decode to finite numbers; refuse them once, outside capture.
            if self._weights_checked or torch.cuda.is_current_stream_capturing():
                return
            check_fp8_weights_finite(w1, "w13_weight")
            check_fp8_weights_finite(w2, "w2_weight")
            self._weights_checked = True

        def apply(self, output, hidden_states, w1, w2, topk_weights, topk_ids, activation,
                  global_num_experts, expert_map, a1q_scale, a2_scale, workspace13, workspace2,
                  expert_tokens_meta, apply_router_weight_on_input):
            self._check_weights_once(w1, w2)
            if expert_map is None:
                # Every expert is local, and fused shared experts (fused_shared_expert.py) sit
                # after the routed ones as global ids E.. that vLLM's count (E) leaves out: the
                # routing must span all w1.shape[0] experts, or the sorted path drops them.
                global_num_experts = w1.shape[0]
            w8a16_ops.w8a16_fused_experts(
                output, hidden_states, w1, w2, self._w13_scale, self._w2_scale, topk_weights,
                topk_ids, expert_map, workspace13.reshape(-1), workspace2.reshape(-1),
                None if self.block_shape is None else list(self.block_shape),
                apply_router_weight_on_input, global_num_experts, self._arch_family,
            )

    return RocmW8A16Fp8Experts
