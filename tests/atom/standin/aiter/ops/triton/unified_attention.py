"""Stand-in for aiter's Triton unified_attention: paged causal attention over a block table.

Like the real launcher it reads block_table.stride(0) before launching, so a None table fails
with "'NoneType' object has no attribute 'stride'". Portable (no arch check)."""
import torch


def unified_attention(q, k, v, out, cu_seqlens_q, seqused_k, max_seqlen_q, max_seqlen_k,
                      softmax_scale, causal, block_table, **unused):
    block_table_stride = block_table.stride(0)  # what the kernel launch passes first
    assert block_table_stride >= 1 and causal
    block_size = k.shape[1]
    for i in range(cu_seqlens_q.shape[0] - 1):
        q0, q1 = int(cu_seqlens_q[i]), int(cu_seqlens_q[i + 1])
        n_k = int(seqused_k[i])
        pos = torch.arange(n_k)
        blocks = block_table[i, pos // block_size].long()
        keys = k[blocks, pos % block_size]      # [n_k, heads, dim]
        vals = v[blocks, pos % block_size]
        scores = torch.einsum("qhd,khd->hqk", q[q0:q1].float(), keys.float()) * softmax_scale
        q_pos = torch.arange(n_k - (q1 - q0), n_k).unsqueeze(1)
        scores = scores.masked_fill(pos.unsqueeze(0) > q_pos, float("-inf"))
        out[q0:q1] = torch.einsum("hqk,khd->qhd", scores.softmax(-1), vals.float()).to(out.dtype)
    return out
