"""Full attention on wave32 RDNA: select rocm_enable's paged attention backend (audit §3.9 gates
I1/I3/I5/I6, §4.2 spills).

The backend (``RdnaAttentionBackend``) reuses vLLM's Triton attention backend for everything but
the kernels: KV-cache layout and spec, metadata builder, KV-cache update (reshape_and_cache), and
validation plumbing. Its impl runs ``rocm_enable.ops.attention_rdna`` for the plain causal
decoder case (16-bit or e4m3 KV cache, no ALiBi / soft-cap / sinks / sliding window / fused output quant)
and hands any other call to vLLM's own TritonAttentionImpl.forward.

The classes subclass vLLM's at first attribute access (PEP 562 ``__getattr__``) so that importing
this module -- which the plugin does on every platform -- imports nothing from vLLM.
"""
from __future__ import annotations

import functools
import logging

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import is_wave32_rdna

BACKEND_NAME = "ROCM_RDNA_ATTN"
BACKEND_PATH = f"{__name__}.RdnaAttentionBackend"

# Source fingerprints (verified by reading each version): 0.33.0 adds ROCM_OCTAVE to the list;
# 0.34.0 appends ROCM_AITER_UNIFIED_ATTN behind TRITON_ATTN on non-RDNA4 RDNA (first on RDNA4)
# when its RDNA aiter switch is on, and its get_valid_backends then swaps ROCM_ATTN and
# TRITON_ATTN on gfx1201 / gfx1100 (in place: index 0, ours, is untouched). Registry unchanged.
PRIORITY_FINGERPRINTS = {"0.32.0": "0e27466e67a52256", "0.33.0": "c0e10e8b8d860090",
                         "0.34.0": "0a895bdc489afdeb"}
ENUM_GETITEM_FINGERPRINTS = {"0.32.0": "cadad02868a5f7f5", "0.33.0": "cadad02868a5f7f5",
                             "0.34.0": "cadad02868a5f7f5"}

_log = logging.getLogger("vllm.rocm_enable")


def _backend_enum():
    """Our AttentionBackendEnum member, registered through vLLM's own register_backend (a
    string name creates a new member; the class path is stored as its override)."""
    from vllm.v1.attention.backends.registry import AttentionBackendEnum, register_backend

    member = AttentionBackendEnum._member_map_.get(BACKEND_NAME)
    if member is None:
        register_backend(BACKEND_NAME, BACKEND_PATH)
        member = AttentionBackendEnum._member_map_[BACKEND_NAME]
    return member


def _prefer_rdna_attention(wrapped, instance, args, kwargs):
    """vLLM's ROCm priority list, with our backend first for non-MLA, non-sparse layers. vLLM
    still validates it (_get_invalid_reasons) and falls through to its own list when it does not
    fit the layer (fp8 KV cache, sinks, sliding window, encoder, other head sizes ...)."""
    backends = wrapped(*args, **kwargs)
    try:
        from vllm.v1.attention.backends.registry import AttentionBackendEnum

        if AttentionBackendEnum.TRITON_ATTN not in backends:  # MLA / sparse lists: not ours
            return backends
        ours = _backend_enum()
        return [ours] + [b for b in backends if b is not ours]
    except Exception as exc:  # fail closed: vLLM's own list
        _log.warning("rocm-enable: %s not offered: %s: %s", BACKEND_NAME, type(exc).__name__, exc)
        return backends


def _register_on_lookup(wrapped, instance, args, kwargs):
    """AttentionBackendEnum[name]: make our name resolvable (``--attention-backend
    ROCM_RDNA_ATTN``, and vLLM's Attention layer maps get_name() back to the enum)."""
    name = args[0] if args else kwargs.get("name")
    if isinstance(name, str) and name.upper() == BACKEND_NAME:
        try:
            _backend_enum()
        except Exception as exc:
            _log.warning("rocm-enable: could not register %s: %s", BACKEND_NAME, exc)
    return wrapped(*args, **kwargs)


# ---- the backend (built lazily on first attribute access) --------------------------------

# fp8 / fp8_e4m3: e4m3fn bytes with per-tensor k/v scales (vLLM's KVQuantMode.FP8_PER_TENSOR);
# fp8_e5m2 and the per-token-head modes stay with vLLM's kernels.
_OURS_KV_DTYPES = ("auto", "float16", "bfloat16", "fp8", "fp8_e4m3")
_FP8_KV_DTYPES = ("fp8", "fp8_e4m3")


@functools.cache
def _classes():
    import torch
    from vllm.v1.attention.backend import AttentionType
    from vllm.v1.attention.backends import triton_attn as T

    from rocm_enable.ops import attention_rdna as ops

    def _target(device):
        from rocm_enable.runtime import active_caps

        props = torch.cuda.get_device_properties(device)
        return ops.target_from_caps(active_caps(), num_cus=props.multi_processor_count)

    class RdnaAttentionMetadataBuilder(T.TritonAttentionMetadataBuilder):
        """vLLM's Triton metadata builder plus one flash-decoding scratch buffer, allocated here
        (before any CUDA-graph capture) at its upper bound, so its address never changes."""

        def __init__(self, kv_cache_spec, layer_names, vllm_config, device):
            super().__init__(kv_cache_spec, layer_names, vllm_config, device)
            self.rdna_target = _target(device)
            qpkv = max(1, self.num_heads_q // self.num_heads_kv)
            self.rdna_scratch = ops.alloc_scratch(self.rdna_target, self.num_heads_kv, qpkv,
                                                  self.headdim, device)

        def build(self, common_prefix_len, common_attn_metadata, fast_build=False):
            md = super().build(common_prefix_len, common_attn_metadata, fast_build)
            md.rdna_scratch = self.rdna_scratch
            md.rdna_target = self.rdna_target
            return md

    class RdnaAttentionImpl(T.TritonAttentionImpl):
        def _kv_fits(self, query, kv_cache):
            if self.kv_cache_dtype in _FP8_KV_DTYPES:
                # the bit decode is for OCP e4m3fn (gfx11/gfx12); fnuz (gfx94x) is not ours
                return (self.fp8_dtype == torch.float8_e4m3fn
                        and kv_cache.dtype in ops.FP8_KV_DTYPES)
            return kv_cache.dtype == query.dtype

        def _ours(self, query, kv_cache, attn_metadata, output_scale, output_block_scale):
            return (
                attn_metadata is not None
                and getattr(attn_metadata, "rdna_scratch", None) is not None
                and self.attn_type == AttentionType.DECODER
                and self.kv_cache_dtype in _OURS_KV_DTYPES
                and not self._is_per_token_head_quant
                and query.dtype in ops.SUPPORTED_DTYPES
                and self._kv_fits(query, kv_cache)
                and self.head_size in ops.SUPPORTED_HEAD_DIMS
                and self.num_queries_per_kv <= 64
                and self.alibi_slopes is None
                and not self.logits_soft_cap
                and self.sinks is None
                and self.sliding_window == (-1, -1)
                and getattr(self, "chunk_lookback", -1) == -1
                and output_scale is None and output_block_scale is None
                and attn_metadata.causal is True
                and attn_metadata.mm_prefix_range_tensor is None
                and getattr(attn_metadata, "rswa_window", None) is None
            )

        def forward(self, layer, query, key, value, kv_cache, attn_metadata, output,
                    output_scale=None, output_block_scale=None):
            if not self._ours(query, kv_cache, attn_metadata, output_scale, output_block_scale):
                return super().forward(layer, query, key, value, kv_cache, attn_metadata, output,
                                       output_scale=output_scale, output_block_scale=output_block_scale)
            n = attn_metadata.num_actual_tokens
            # vLLM's Triton cache: [blocks, kv_heads, block, 2*hd] -> K/V [blocks, block, kv_heads, hd]
            key_cache, value_cache = kv_cache.transpose(1, 2).split(self.head_size, dim=-1)
            fp8 = self.kv_cache_dtype in _FP8_KV_DTYPES
            # vLLM writes the cache (inherited do_kv_cache_update: its Triton
            # reshape_and_cache_flash quantises with the same per-tensor layer scales)
            ops.paged_attention(query[:n], key_cache, value_cache, output[:n],
                                attn_metadata.block_table, attn_metadata.seq_lens,
                                attn_metadata.query_start_loc, attn_metadata.max_query_len,
                                self.scale, attn_metadata.rdna_target, attn_metadata.rdna_scratch,
                                k_scale=layer._k_scale if fp8 else None,
                                v_scale=layer._v_scale if fp8 else None)
            return output

    class RdnaAttentionBackend(T.TritonAttentionBackend):
        supported_dtypes = [torch.float16, torch.bfloat16]
        supported_kv_cache_dtypes = list(_OURS_KV_DTYPES)

        @staticmethod
        def get_name() -> str:
            return BACKEND_NAME

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

        # features the RDNA kernels do not implement: vLLM's selector then keeps its own choice
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

    return {"RdnaAttentionBackend": RdnaAttentionBackend, "RdnaAttentionImpl": RdnaAttentionImpl,
            "RdnaAttentionMetadataBuilder": RdnaAttentionMetadataBuilder}


def __getattr__(name):
    if name in ("RdnaAttentionBackend", "RdnaAttentionImpl", "RdnaAttentionMetadataBuilder"):
        return _classes()[name]
    raise AttributeError(name)


RDNA_ATTENTION = Fix(
    name="rdna-attention",
    title="Full attention on wave32 RDNA: split-KV Triton backend without head-256 spills",
    stack="vllm",
    patches=(
        Patch("vllm.platforms.rocm:_get_backend_priorities", _prefer_rdna_attention, PRIORITY_FINGERPRINTS),
        Patch("vllm.v1.attention.backends.registry:_AttentionBackendEnumMeta.__getitem__",
              _register_on_lookup, ENUM_GETITEM_FINGERPRINTS),
    ),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "vLLM 0.32/0.33 pick ROCM_ATTN first on gfx11/gfx12 (gate I1); 0.34 picks TRITON_ATTN "
        "first on gfx1100 / gfx1201 and ROCM_ATTN on gfx1151. Compiled for gfx1151 with "
        "vLLM's launch settings at head_dim 256 (every full-attention layer of Qwen3-Next and "
        "Qwen3.6), its decode kernel spills 327-446 VGPRs and launches seqs x kv_heads programs "
        "(2 on a 40-CU GPU at batch 1), and its prefill spills 5,746 VGPRs at exactly the 64 KiB "
        "LDS limit; TRITON_ATTN spills 177 (decode) and 288 (prefill) (audit §4.2). The root "
        "cause on gfx11 is that a WMMA operand is duplicated across half-waves, so a 16 x 256 "
        "bf16 Q operand held in registers takes 128 VGPRs per lane. With --kv-cache-dtype fp8 "
        "vLLM's kernels decode e4m3 by fp8 casts, which gfx11 lowers to a compare/select ladder "
        "per byte."
    ),
    how=(
        "Register ROCM_RDNA_ATTN with vLLM's attention registry (register_backend) and put it "
        "first in the ROCm priority list for non-MLA layers; vLLM's selector still validates it "
        "and keeps its own order where it does not fit. The backend reuses TritonAttentionBackend's "
        "layout and metadata builder; its kernels compute Q K^T in 64-wide head-dim chunks (Q "
        "re-read from cache), use one scalar block-table load per key tile, split the KV range "
        "of each (seq, kv head) into as many parts as keep at most 4 programs per CU "
        "(flash-decoding, from the batch shape only: fixed per CUDA graph), and take tiles "
        "and warps from the capability table (wave size, LDS, CU count). An fp8 (e4m3, per-tensor "
        "scales) KV cache is read one byte per value and decoded to fp16 by integer bit "
        "operations; vLLM's own Triton reshape_and_cache_flash writes it. --attention-backend "
        "still overrides the choice."
    ),
    upstream="audit §3.9 I1/I3/I5/I6, §4.2; aiter #3915 (gfx1151 decode 31% -> 59% of bandwidth with 8 warps)",
    removal="when vLLM's default ROCm attention on wave32 RDNA compiles spill-free at head_dim 256 and splits KV at small batch",
    gates=("I1", "I3", "I5", "I6"),
)

FIXES = (RDNA_ATTENTION,)
