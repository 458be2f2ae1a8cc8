# SPDX-License-Identifier: Apache-2.0
# SPDX-FileCopyrightText: Copyright contributors to the vLLM project
"""Paged attention for wave32 RDNA GPUs (RDNA3, RDNA3.5, RDNA4).

Kernels and launch planning: ``vllm/v1/attention/ops/rocm_rdna_attn.py``.
Everything else is the Triton attention backend's: KV-cache layout and spec,
metadata builder, KV-cache update (reshape_and_cache) and validation. The
impl runs the RDNA kernels for the plain causal decoder case (16-bit KV cache,
no ALiBi / soft-cap / sinks / sliding window / fused output quantization) and
hands any other call to TritonAttentionImpl.forward.

Why a separate backend: at head_dim 256 (every full-attention layer of
Qwen3-Next and Qwen3.5/3.6) the ROCM_ATTN and TRITON_ATTN kernels spill VGPRs
on gfx11 (a 16 x 256 bf16 WMMA operand held in registers takes 128 VGPRs per
lane) and launch only seqs x kv_heads decode programs. These kernels compute
Q K^T in 64-wide head-dim chunks, load one block-table entry per key tile,
split the KV range until about two programs per CU exist (flash-decoding),
and take tiles and warps from the device (wave size, LDS, CU count).
"""

import torch

from vllm.platforms import current_platform
from vllm.v1.attention.backend import AttentionType
from vllm.v1.attention.backends.triton_attn import (
    TritonAttentionBackend,
    TritonAttentionImpl,
    TritonAttentionMetadataBuilder,
)
from vllm.v1.attention.ops import rocm_rdna_attn as ops

_OURS_KV_DTYPES = ("auto", "float16", "bfloat16")


class RdnaAttentionMetadataBuilder(TritonAttentionMetadataBuilder):
    """The Triton metadata builder plus one flash-decoding scratch buffer,
    allocated here (before any CUDA-graph capture) at its upper bound, so its
    address never changes."""

    def __init__(self, kv_cache_spec, layer_names, vllm_config, device):
        super().__init__(kv_cache_spec, layer_names, vllm_config, device)
        self.rdna_target = ops.target_from_device(device)
        qpkv = max(1, self.num_heads_q // self.num_heads_kv)
        self.rdna_scratch = ops.alloc_scratch(
            self.rdna_target, self.num_heads_kv, qpkv, self.headdim, device
        )

    def build(self, common_prefix_len, common_attn_metadata, fast_build=False):
        md = super().build(common_prefix_len, common_attn_metadata, fast_build)
        md.rdna_scratch = self.rdna_scratch
        md.rdna_target = self.rdna_target
        return md


class RdnaAttentionImpl(TritonAttentionImpl):
    def _ours(self, query, kv_cache, attn_metadata, output_scale, output_block_scale):
        return (
            attn_metadata is not None
            and getattr(attn_metadata, "rdna_scratch", None) is not None
            and self.attn_type == AttentionType.DECODER
            and self.kv_cache_dtype in _OURS_KV_DTYPES
            and not self._is_per_token_head_quant
            and query.dtype in ops.SUPPORTED_DTYPES
            and kv_cache.dtype == query.dtype
            and self.head_size in ops.SUPPORTED_HEAD_DIMS
            and self.num_queries_per_kv <= 64
            and self.alibi_slopes is None
            and not self.logits_soft_cap
            and self.sinks is None
            and self.sliding_window == (-1, -1)
            and getattr(self, "chunk_lookback", -1) == -1
            and output_scale is None
            and output_block_scale is None
            and attn_metadata.causal is True
            and attn_metadata.mm_prefix_range_tensor is None
            and getattr(attn_metadata, "rswa_window", None) is None
        )

    def forward(
        self,
        layer,
        query,
        key,
        value,
        kv_cache,
        attn_metadata,
        output,
        output_scale=None,
        output_block_scale=None,
    ):
        if not self._ours(
            query, kv_cache, attn_metadata, output_scale, output_block_scale
        ):
            return super().forward(
                layer,
                query,
                key,
                value,
                kv_cache,
                attn_metadata,
                output,
                output_scale=output_scale,
                output_block_scale=output_block_scale,
            )
        n = attn_metadata.num_actual_tokens
        # [blocks, kv_heads, block, 2 * hd] -> K/V [blocks, block, kv_heads, hd]
        key_cache, value_cache = kv_cache.transpose(1, 2).split(self.head_size, dim=-1)
        ops.paged_attention(
            query[:n],
            key_cache,
            value_cache,
            output[:n],
            attn_metadata.block_table,
            attn_metadata.seq_lens,
            attn_metadata.query_start_loc,
            attn_metadata.max_query_len,
            self.scale,
            attn_metadata.rdna_target,
            attn_metadata.rdna_scratch,
        )
        return output


class RdnaAttentionBackend(TritonAttentionBackend):
    supported_dtypes = [torch.float16, torch.bfloat16]
    supported_kv_cache_dtypes = list(_OURS_KV_DTYPES)

    @staticmethod
    def get_name() -> str:
        return "ROCM_RDNA_ATTN"

    @staticmethod
    def get_impl_cls():
        return RdnaAttentionImpl

    @staticmethod
    def get_builder_cls():
        return RdnaAttentionMetadataBuilder

    @classmethod
    def supports_head_size(cls, head_size: int) -> bool:
        return head_size in ops.SUPPORTED_HEAD_DIMS

    @classmethod
    def supports_attn_type(cls, attn_type: str) -> bool:
        return attn_type == AttentionType.DECODER

    @classmethod
    def supports_compute_capability(cls, capability) -> bool:
        # Tiles, warps and KV splits are planned for wave32 RDNA.
        if not current_platform.is_rocm():
            return False
        from vllm.platforms.rocm import on_rdna

        return on_rdna()

    # Features the RDNA kernels do not implement: the selector then keeps
    # looking down the priority list.
    @classmethod
    def supports_sink(cls) -> bool:
        return False

    @classmethod
    def supports_sliding_window(cls) -> bool:
        return False

    @classmethod
    def supports_rswa(cls) -> bool:
        return False

    @classmethod
    def supports_non_causal(cls) -> bool:
        return False

    @classmethod
    def supports_mm_prefix(cls) -> bool:
        return False

    @classmethod
    def supports_batch_invariance(cls) -> bool:
        return False

    @classmethod
    def supports_alibi_sqrt(cls) -> bool:
        return False
