"""Stand-in for the full-attention prefill of ATOM's PagedAttentionImpl on the Triton path
(prefill_attention_triton): raw K/V as a block_size=1 cache, or the paged cache under
ATOM_USE_UNIFIED_ATTN, both addressed through attn_metadata.block_tables."""
from aiter.ops.triton.unified_attention import unified_attention
from atom.utils import envs


def prefill_attention_triton(q, k, v, k_cache, v_cache, attn_metadata, scale):
    out = q.new_empty(q.shape)
    if envs.ATOM_USE_UNIFIED_ATTN:
        k_for_attn, v_for_attn = k_cache, v_cache
    else:
        k_for_attn, v_for_attn = k.unsqueeze(1), v.unsqueeze(1)
    return unified_attention(q, k_for_attn, v_for_attn, out,
                             cu_seqlens_q=attn_metadata.cu_seqlens_q,
                             seqused_k=attn_metadata.context_lens,
                             max_seqlen_q=attn_metadata.max_seqlen_q,
                             max_seqlen_k=attn_metadata.max_seqlen_k,
                             softmax_scale=scale, causal=True,
                             block_table=attn_metadata.block_tables)
