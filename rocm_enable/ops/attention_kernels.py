"""Triton kernels of the RDNA paged attention backend (rocm_enable.ops.attention_rdna).

The KV cache is vLLM's paged layout as its Triton backend hands it over after
``kv_cache.transpose(1, 2).split(head_size, -1)``: ``key_cache[block, slot, kv_head, d]``
(any strides, last one 1), the same for values; ``block_table[seq, i]`` is the physical block of
the seq's logical block ``i``; ``seq_lens[seq]`` counts context + new tokens;
``cu_seqlens_q[seq]`` is the seq's first query token.

Three kernels:
  * ``paged_decode_kernel``: one query token per seq. One program = (seq, kv head, group of up to
    ROWS query heads of that kv head, KV split). GQA heads share every K/V tile (one tl.dot with
    M = ROWS). With NUM_SPLITS > 1 it writes un-normalised partials (flash-decoding) that
    ``split_combine_kernel`` merges; with 1 split it writes the output directly.
  * ``paged_prefill_kernel``: causal prefill with a cached prefix (and mixed prefill/decode
    batches). One program = (BLOCK_Q query tokens x all QPKV heads of one kv head) -> BLOCK_M rows
    that share each K/V tile.
Softmax is computed in base 2 (scale * log2(e) folded into the scores), fp32 accumulation.
"""
from __future__ import annotations

import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def _kv_tile(base_ptr, bt_row_ptr, start, block_size, stride_b, stride_s, BLOCK_N: tl.constexpr):
    """(scalar tile pointer, [BLOCK_N] int32 row offsets) of keys [start, start + BLOCK_N) of one
    seq and KV head. The launcher guarantees block_size % BLOCK_N == 0 and start % BLOCK_N == 0,
    so the tile lies in one physical block: one scalar block-table load, a 64-bit scalar base
    and 32-bit per-element offsets instead of 64-bit per-element addresses."""
    blk = tl.load(bt_row_ptr + start // block_size)
    slot = start % block_size + tl.arange(0, BLOCK_N)
    return base_ptr + blk.to(tl.int64) * stride_b, slot * stride_s


@triton.jit
def _scores(q_rows, q_mask, k_tile, k_rows, n_mask, M: tl.constexpr, BLOCK_N: tl.constexpr,
            HEAD_DIM: tl.constexpr, DC: tl.constexpr):
    """S = Q K^T over HEAD_DIM in DC-wide chunks, Q re-read (L1/L2-resident) per chunk.

    Why not one tl.dot over the whole head_dim with Q kept in registers: on gfx11 a WMMA operand
    is duplicated across the two half-waves, so a 16 x 256 bf16 Q operand alone takes 128 VGPRs
    per lane and the K operand as many -- the root of vLLM's head-256 spills on gfx11 (audit §4.2).
    Re-reading Q per chunk is not hoisted (loads are not loop-invariant-moved) and costs cache
    bandwidth, not DRAM bandwidth."""
    s = tl.zeros([M, BLOCK_N], tl.float32)
    for c in tl.static_range(0, HEAD_DIM, DC):
        dc = c + tl.arange(0, DC)
        qc = tl.load(q_rows[:, None] + dc[None, :], mask=q_mask[:, None], other=0.0)
        kc = tl.load(k_tile + k_rows[:, None] + dc[None, :], mask=n_mask[:, None], other=0.0)
        s += tl.dot(qc, tl.trans(kc))
    return s


@triton.jit
def paged_decode_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr,
    block_table_ptr, seq_lens_ptr, cu_seqlens_q_ptr,
    part_acc_ptr, part_ml_ptr,
    qk_scale,  # softmax scale * log2(e)
    stride_qt, stride_qh,
    stride_kb, stride_ks, stride_kh,
    stride_vb, stride_vs, stride_vh,
    stride_ot, stride_oh,
    stride_bt,
    block_size,
    num_splits,
    QPKV: tl.constexpr,         # query heads per kv head
    NUM_GROUPS: tl.constexpr,   # cdiv(QPKV, ROWS)
    ROWS: tl.constexpr,         # query rows of the score tile (>= 16 for the matrix units)
    HEAD_DIM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DC: tl.constexpr,           # head_dim chunk of the Q K^T product
    SPLIT: tl.constexpr,        # write partials (True) or the final output (False)
):
    seq = tl.program_id(0)
    kvg = tl.program_id(1)      # kv_head * NUM_GROUPS + group
    split = tl.program_id(2)
    kv_head = kvg // NUM_GROUPS
    group = kvg % NUM_GROUPS

    seq_len = tl.load(seq_lens_ptr + seq)
    tok = tl.load(cu_seqlens_q_ptr + seq)
    # CUDA-graph padding seqs have no query token: then no row is valid (the limit is 0).
    # (A scalar in the comparison, not `& scalar_bool`: the interpreter rejects that mask.)
    row_limit = tl.where(tl.load(cu_seqlens_q_ptr + seq + 1) > tok, QPKV, 0)

    r = tl.arange(0, ROWS)
    hq = group * ROWS + r                       # head index within the kv head's group
    r_mask = hq < row_limit
    head = kv_head * QPKV + hq
    d = tl.arange(0, HEAD_DIM)

    q_rows = q_ptr + tok.to(tl.int64) * stride_qt + head * stride_qh

    # this split's key range, in whole BLOCK_N tiles
    num_tiles = tl.cdiv(seq_len, BLOCK_N)
    tiles_per_split = tl.cdiv(num_tiles, num_splits)
    lo = split * tiles_per_split * BLOCK_N
    hi = tl.minimum(lo + tiles_per_split * BLOCK_N, seq_len)

    m_i = tl.full([ROWS], float("-inf"), tl.float32)
    l_i = tl.zeros([ROWS], tl.float32)
    acc = tl.zeros([ROWS, HEAD_DIM], tl.float32)

    bt_row = block_table_ptr + seq.to(tl.int64) * stride_bt
    k_base = k_ptr + kv_head * stride_kh
    v_base = v_ptr + kv_head * stride_vh
    for start in range(lo, hi, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        n_mask = n < hi
        k_tile, k_rows = _kv_tile(k_base, bt_row, start, block_size, stride_kb, stride_ks, BLOCK_N)
        s = _scores(q_rows, r_mask, k_tile, k_rows, n_mask, ROWS, BLOCK_N, HEAD_DIM, DC) * qk_scale
        s = tl.where(n_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v_tile, v_rows = _kv_tile(v_base, bt_row, start, block_size, stride_vb, stride_vs, BLOCK_N)
        v = tl.load(v_tile + v_rows[:, None] + d[None, :], mask=n_mask[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    if SPLIT:
        # partial row (seq, kv_head, group, split, r): acc [HEAD_DIM] and (m, l). An empty split
        # (lo >= hi) leaves m = -inf, l = 0, acc = 0, which the combine weights by 0.
        prow = ((seq * (tl.num_programs(1)) + kvg) * num_splits + split).to(tl.int64) * ROWS + r
        tl.store(part_acc_ptr + prow[:, None] * HEAD_DIM + d[None, :], acc)
        tl.store(part_ml_ptr + prow * 2, m_i)
        tl.store(part_ml_ptr + prow * 2 + 1, l_i)
    else:
        out = acc / l_i[:, None]
        tl.store(out_ptr + tok.to(tl.int64) * stride_ot + head[:, None] * stride_oh + d[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=r_mask[:, None])


@triton.jit
def split_combine_kernel(
    out_ptr, part_acc_ptr, part_ml_ptr, cu_seqlens_q_ptr,
    stride_ot, stride_oh,
    num_splits,
    QPKV: tl.constexpr, NUM_GROUPS: tl.constexpr, ROWS: tl.constexpr,
    HEAD_DIM: tl.constexpr, MAX_SPLITS: tl.constexpr,
):
    """out[tok, head] = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s."""
    seq = tl.program_id(0)
    head = tl.program_id(1)
    kv_head = head // QPKV
    hq = head % QPKV
    kvg = kv_head * NUM_GROUPS + hq // ROWS
    r = hq % ROWS
    tok = tl.load(cu_seqlens_q_ptr + seq)
    d_limit = tl.where(tl.load(cu_seqlens_q_ptr + seq + 1) > tok, HEAD_DIM, 0)  # padding seq: none
    s = tl.arange(0, MAX_SPLITS)
    s_mask = s < num_splits
    num_kvg = (tl.num_programs(1) // QPKV) * NUM_GROUPS   # decode grid axis 1
    prow = ((seq * num_kvg + kvg) * num_splits + s).to(tl.int64) * ROWS + r
    m = tl.load(part_ml_ptr + prow * 2, mask=s_mask, other=float("-inf"))
    l = tl.load(part_ml_ptr + prow * 2 + 1, mask=s_mask, other=0.0)
    m_max = tl.max(m, 0)
    w = tl.where(m > float("-inf"), tl.exp2(m - m_max), 0.0)
    denom = tl.sum(w * l, 0)
    d = tl.arange(0, HEAD_DIM)
    acc = tl.load(part_acc_ptr + prow[:, None] * HEAD_DIM + d[None, :], mask=s_mask[:, None], other=0.0)
    out = tl.sum(acc * w[:, None], 0) / denom
    tl.store(out_ptr + tok.to(tl.int64) * stride_ot + head * stride_oh + d,
             out.to(out_ptr.dtype.element_ty), mask=d < d_limit)


@triton.jit
def paged_prefill_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr,
    block_table_ptr, seq_lens_ptr, cu_seqlens_q_ptr,
    qk_scale,
    stride_qt, stride_qh,
    stride_kb, stride_ks, stride_kh,
    stride_vb, stride_vs, stride_vh,
    stride_ot, stride_oh,
    stride_bt,
    block_size,
    num_seqs,
    QPKV: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,      # rows = BLOCK_Q tokens x QPKV heads (padded)
    BLOCK_Q: tl.constexpr,      # BLOCK_M // QPKV
    BLOCK_N: tl.constexpr,
    DC: tl.constexpr,
):
    pid = tl.program_id(0)      # global query tile: seq i owns tiles [cu_q[i] // BLOCK_Q + i, ...)
    kv_head = tl.program_id(1)

    # binary search: the last seq whose first tile <= pid
    left = num_seqs * 0
    right = num_seqs
    while left < right:
        mid = (left + right) // 2
        first = tl.load(cu_seqlens_q_ptr + mid) // BLOCK_Q + mid
        go_right = first <= pid
        left = tl.where(go_right, mid + 1, left)
        right = tl.where(go_right, right, mid)
    seq = left - 1

    q_start = tl.load(cu_seqlens_q_ptr + seq)
    q_len = tl.load(cu_seqlens_q_ptr + seq + 1) - q_start
    q_tile = pid - (q_start // BLOCK_Q + seq)
    if q_tile * BLOCK_Q >= q_len:
        return
    seq_len = tl.load(seq_lens_ptr + seq)
    ctx_len = seq_len - q_len

    r = tl.arange(0, BLOCK_M)
    t = q_tile * BLOCK_Q + r // QPKV            # query token within the seq's new tokens
    head = kv_head * QPKV + r % QPKV
    r_mask = (r < BLOCK_Q * QPKV) & (t < q_len)
    d = tl.arange(0, HEAD_DIM)
    tok = (q_start + t).to(tl.int64)
    q_rows = q_ptr + tok * stride_qt + head * stride_qh
    q_pos = ctx_len + t                          # absolute position: attends keys <= q_pos

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)

    hi = tl.minimum(ctx_len + (q_tile + 1) * BLOCK_Q, seq_len)
    bt_row = block_table_ptr + seq.to(tl.int64) * stride_bt
    k_base = k_ptr + kv_head * stride_kh
    v_base = v_ptr + kv_head * stride_vh
    for start in range(0, hi, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        n_mask = n < hi
        k_tile, k_rows = _kv_tile(k_base, bt_row, start, block_size, stride_kb, stride_ks, BLOCK_N)
        s = _scores(q_rows, r_mask, k_tile, k_rows, n_mask, BLOCK_M, BLOCK_N, HEAD_DIM, DC) * qk_scale
        s = tl.where((n[None, :] <= q_pos[:, None]) & n_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))    # key 0 is visible to every row: m_new finite
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v_tile, v_rows = _kv_tile(v_base, bt_row, start, block_size, stride_vb, stride_vs, BLOCK_N)
        v = tl.load(v_tile + v_rows[:, None] + d[None, :], mask=n_mask[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    out = acc / l_i[:, None]
    tl.store(out_ptr + tok[:, None] * stride_ot + head[:, None] * stride_oh + d[None, :],
             out.to(out_ptr.dtype.element_ty), mask=r_mask[:, None])
