# SPDX-License-Identifier: Apache-2.0
# SPDX-FileCopyrightText: Copyright contributors to the vLLM project
"""Paged attention for wave32 RDNA GPUs (RDNA3, RDNA3.5, RDNA4).

Kernels and launch planning: ``vllm/v1/attention/ops/rocm_rdna_attn.py``.
Everything else is the Triton attention backend's: KV-cache layout and spec,
metadata builder, KV-cache update (reshape_and_cache) and validation. The
impl runs the RDNA kernels for the plain causal decoder case (16-bit or e4m3
KV cache, no ALiBi / soft-cap / sinks / sliding window / fused output quantization) and
hands any other call to TritonAttentionImpl.forward.

Why a separate backend: at head_dim 256 (every full-attention layer of
Qwen3-Next and Qwen3.5/3.6) the ROCM_ATTN and TRITON_ATTN kernels spill VGPRs
on gfx11 (a 16 x 256 bf16 WMMA operand held in registers takes 128 VGPRs per
lane) and launch only seqs x kv_heads decode programs. These kernels compute
Q K^T in 64-wide head-dim chunks, load one block-table entry per key tile,
split the KV range into as many parts as keep at most 4 programs per CU
(flash-decoding), and take tiles and warps from the device (wave size, LDS,
CU count).
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
