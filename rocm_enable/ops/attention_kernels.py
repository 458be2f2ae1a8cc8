"""Triton kernels of the RDNA paged attention backend (rocm_enable.ops.attention_rdna).

The KV cache is vLLM's paged layout as its Triton backend hands it over after
``kv_cache.transpose(1, 2).split(head_size, -1)``: ``key_cache[block, slot, kv_head, d]``
(any strides, last one 1), the same for values; ``block_table[seq, i]`` is the physical block of
the seq's logical block ``i``; ``seq_lens[seq]`` counts context + new tokens;
``cu_seqlens_q[seq]`` is the seq's first query token.

KV_FP8: the cache holds e4m3fn bytes (vLLM's ``fp8`` / ``fp8_e4m3`` with per-tensor k/v scales)
and k_ptr / v_ptr are int32 views of it (4 bytes of one key row per word, strides in words).
Each word becomes two fp16 pairs by integer bit operations (rocm_enable/ops/fp8_dequant.py:
no fp8 conversion instruction or compare/select ladder, which is what an fp8 cast costs on gfx11):
``even`` holds head-dim positions 2c, ``odd`` 2c + 1. Q is read at the same positions, so
Q K^T = Q_even K_even^T + Q_odd K_odd^T. For P V the decode interleaves the V halves back into
head-dim order (join + reshape); the prefill multiplies them into two accumulators whose columns
are written to head-dim positions 2c and 2c + 1 at the end. The bytes decode to e4m3 * 2**-8;
the 2**8 and the k scale are folded into the score scale, the v scale into the output. Q (bf16 or
fp16) is multiplied as fp16 against the fp16 K.

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
FP8_BITS_SCALE = tl.constexpr(256.0)  # e4m3 bytes read as fp16 bits are the value times 2**-8 (fp8_dequant.py)


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
def _e4m3_words(w, R: tl.constexpr, C: tl.constexpr):
    """[R, C // 2] int32 words of e4m3fn bytes -> (even, odd) [R, C] fp16 tiles holding the
    bytes' values times 2**-8: even column c is byte position 2c of the row, odd 2c + 1.
    7 integer ops per 4 bytes (fp8_dequant.py), then join/reshape keeps the pairs in registers."""
    u = w.to(tl.uint32, bitcast=True)
    ev = ((u << 8) & 0x80008000) | ((u << 7) & 0x3F803F80)  # bytes 0, 2 of the word
    od = (u & 0x80008000) | ((u >> 1) & 0x3F803F80)  # bytes 1, 3
    even = tl.join(ev.to(tl.uint16).to(tl.float16, bitcast=True),
                   (ev >> 16).to(tl.uint16).to(tl.float16, bitcast=True)).reshape(R, C)
    odd = tl.join(od.to(tl.uint16).to(tl.float16, bitcast=True),
                  (od >> 16).to(tl.uint16).to(tl.float16, bitcast=True)).reshape(R, C)
    return even, odd


@triton.jit
def _scores(q_rows, q_mask, k_tile, k_rows, n_mask, M: tl.constexpr, BLOCK_N: tl.constexpr,
            HEAD_DIM: tl.constexpr, DC: tl.constexpr, KV_FP8: tl.constexpr):
    """S = Q K^T over HEAD_DIM in DC-wide chunks, Q re-read (L1/L2-resident) per chunk.

    Why not one tl.dot over the whole head_dim with Q kept in registers: on gfx11 a WMMA operand
    is duplicated across the two half-waves, so a 16 x 256 bf16 Q operand alone takes 128 VGPRs
    per lane and the K operand as many -- the root of vLLM's head-256 spills on gfx11 (audit §4.2).
    Re-reading Q per chunk is not hoisted (loads are not loop-invariant-moved) and costs cache
    bandwidth, not DRAM bandwidth. With KV_FP8 the chunk is DC bytes = DC // 4 words per key and
    Q is read (as fp16) at the even and the odd positions of the chunk."""
    s = tl.zeros([M, BLOCK_N], tl.float32)
    for c in tl.static_range(0, HEAD_DIM, DC):
        if KV_FP8:
            w = tl.load(k_tile + k_rows[:, None] + (c // 4 + tl.arange(0, DC // 4))[None, :],
                        mask=n_mask[:, None], other=0)
            k_even, k_odd = _e4m3_words(w, BLOCK_N, DC // 2)
            dq = c + 2 * tl.arange(0, DC // 2)
            # bf16 -> fp16: exact for |q| in [2**-14, 65504] (attention queries are far inside)
            q_even = tl.load(q_rows[:, None] + dq[None, :], mask=q_mask[:, None], other=0.0)
            q_odd = tl.load(q_rows[:, None] + (dq + 1)[None, :], mask=q_mask[:, None], other=0.0)
            s += tl.dot(q_even.to(tl.float16), tl.trans(k_even))
            s += tl.dot(q_odd.to(tl.float16), tl.trans(k_odd))
        else:
            dc = c + tl.arange(0, DC)
            qc = tl.load(q_rows[:, None] + dc[None, :], mask=q_mask[:, None], other=0.0)
            kc = tl.load(k_tile + k_rows[:, None] + dc[None, :], mask=n_mask[:, None], other=0.0)
            s += tl.dot(qc, tl.trans(kc))
    return s


@triton.jit
def _v_tile(v_tile, v_rows, n_mask, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, KV_FP8: tl.constexpr):
    """The [BLOCK_N, HEAD_DIM] V tile as the P V operand; e4m3 words are decoded and their even /
    odd halves interleaved back into head-dim order (join + reshape: a register permutation)."""
    if KV_FP8:
        w = tl.load(v_tile + v_rows[:, None] + tl.arange(0, HEAD_DIM // 4)[None, :],
                    mask=n_mask[:, None], other=0)
        even, odd = _e4m3_words(w, BLOCK_N, HEAD_DIM // 2)
        v = tl.join(even, odd).reshape(BLOCK_N, HEAD_DIM)
    else:
        v = tl.load(v_tile + v_rows[:, None] + tl.arange(0, HEAD_DIM)[None, :], mask=n_mask[:, None],
                    other=0.0)
    return v


@triton.jit
def _accumulate(acc, acc_odd, alpha, p, v_tile, v_rows, n_mask, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                KV_FP8: tl.constexpr):
    """acc <- alpha acc + P V for the prefill. With KV_FP8, acc holds the even head-dim columns and
    acc_odd the odd ones ([M, HEAD_DIM // 2] each): P V_even and P V_odd from the decoded halves,
    without _v_tile's interleave (join + reshape, a register / shared-memory permutation per tile,
    which made the fp8 prefill half as fast as vLLM's on the H100 stand-in); the columns go to
    head-dim positions 2c / 2c + 1 once, at the store (_head_dim_columns). Else acc is
    [M, HEAD_DIM] and acc_odd is carried unchanged (dead). The decode keeps _v_tile: two
    accumulators cost it 29 spilled VGPRs with 32-key fp8 tiles at head_dim 256 on gfx1151."""
    if KV_FP8:
        w = tl.load(v_tile + v_rows[:, None] + tl.arange(0, HEAD_DIM // 4)[None, :],
                    mask=n_mask[:, None], other=0)
        even, odd = _e4m3_words(w, BLOCK_N, HEAD_DIM // 2)
        pf = p.to(tl.float16)
        acc = acc * alpha[:, None] + tl.dot(pf, even)
        acc_odd = acc_odd * alpha[:, None] + tl.dot(pf, odd)
    else:
        v = _v_tile(v_tile, v_rows, n_mask, BLOCK_N, HEAD_DIM, KV_FP8)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
    return acc, acc_odd


@triton.jit
def _head_dim_columns(HEAD_DIM: tl.constexpr, KV_FP8: tl.constexpr):
    """(columns of acc, columns of acc_odd) in head-dim order (see _accumulate)."""
    if KV_FP8:
        c = 2 * tl.arange(0, HEAD_DIM // 2)
        return c, c + 1
    else:
        c = tl.arange(0, HEAD_DIM)
        return c, tl.arange(0, HEAD_DIM // 2)


@triton.jit
def _kv_scales(k_scale_ptr, v_scale_ptr, KV_FP8: tl.constexpr):
    """(score factor, output factor) of the cache: the per-tensor k / v scales times 2**8 for
    e4m3 bytes decoded as fp16 bits, 1 for a 16-bit cache. Read on the device (no host sync)."""
    if KV_FP8:
        k_f = tl.load(k_scale_ptr).to(tl.float32) * FP8_BITS_SCALE
        v_f = tl.load(v_scale_ptr).to(tl.float32) * FP8_BITS_SCALE
    else:
        k_f = 1.0
        v_f = 1.0
    return k_f, v_f


@triton.jit
def paged_decode_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr,
    block_table_ptr, seq_lens_ptr, cu_seqlens_q_ptr,
    part_acc_ptr, part_ml_ptr,
    k_scale_ptr, v_scale_ptr,  # per-tensor fp32 scales (read only with KV_FP8)
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
    KV_FP8: tl.constexpr,       # e4m3 cache read as int32 words (module docstring)
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
    k_f, v_f = _kv_scales(k_scale_ptr, v_scale_ptr, KV_FP8)
    qk = qk_scale * k_f

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
        s = _scores(q_rows, r_mask, k_tile, k_rows, n_mask, ROWS, BLOCK_N, HEAD_DIM, DC, KV_FP8) * qk
        s = tl.where(n_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        # V after the scores: issued before them it stays live across Q K^T, and with 4 waves
        # and 32 keys at head_dim 256 that spills on gfx1151
        v_tile, v_rows = _kv_tile(v_base, bt_row, start, block_size, stride_vb, stride_vs, BLOCK_N)
        v = _v_tile(v_tile, v_rows, n_mask, BLOCK_N, HEAD_DIM, KV_FP8)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    acc = acc * v_f
    if SPLIT:
        # partial row (seq, kv_head, group, split, r): acc [HEAD_DIM] and (m, l). An empty split
        # (lo >= hi) leaves m = -inf, l = 0, acc = 0, which the combine weights by 0.
        # Only rows of real query heads are written (the combine reads no other): with GQA 8 half
        # of the ROWS = 16 rows are padding, fp32 partials written and read back for nothing.
        prow = ((seq * (tl.num_programs(1)) + kvg) * num_splits + split).to(tl.int64) * ROWS + r
        head_row = hq < QPKV
        tl.store(part_acc_ptr + prow[:, None] * HEAD_DIM + d[None, :], acc, mask=head_row[:, None])
        tl.store(part_ml_ptr + prow * 2, m_i, mask=head_row)
        tl.store(part_ml_ptr + prow * 2 + 1, l_i, mask=head_row)
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
    HEAD_DIM: tl.constexpr, MAX_SPLITS: tl.constexpr, SPLIT_CHUNK: tl.constexpr,
):
    """out[tok, head] = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s.

    The partial rows are summed SPLIT_CHUNK splits at a time: a [MAX_SPLITS, HEAD_DIM] fp32 tile
    at head_dim 256 (64 KiB per program) made the compiler spill SGPRs on gfx11."""
    seq = tl.program_id(0)
    head = tl.program_id(1)
    kv_head = head // QPKV
    hq = head % QPKV
    kvg = kv_head * NUM_GROUPS + hq // ROWS
    r = hq % ROWS
    tok = tl.load(cu_seqlens_q_ptr + seq)
    d_limit = tl.where(tl.load(cu_seqlens_q_ptr + seq + 1) > tok, HEAD_DIM, 0)  # padding seq: none
    num_kvg = (tl.num_programs(1) // QPKV) * NUM_GROUPS   # decode grid axis 1
    row0 = ((seq * num_kvg + kvg) * num_splits).to(tl.int64) * ROWS + r
    s = tl.arange(0, MAX_SPLITS)
    m_max = tl.max(tl.load(part_ml_ptr + (row0 + s * ROWS) * 2, mask=s < num_splits,
                           other=float("-inf")), 0)
    d = tl.arange(0, HEAD_DIM)
    acc = tl.zeros([HEAD_DIM], tl.float32)
    denom = 0.0
    for s0 in range(0, num_splits, SPLIT_CHUNK):
        sc = s0 + tl.arange(0, SPLIT_CHUNK)
        sc_mask = sc < num_splits
        prow = row0 + sc * ROWS
        m = tl.load(part_ml_ptr + prow * 2, mask=sc_mask, other=float("-inf"))
        l = tl.load(part_ml_ptr + prow * 2 + 1, mask=sc_mask, other=0.0)
        w = tl.where(m > float("-inf"), tl.exp2(m - m_max), 0.0)
        denom += tl.sum(w * l, 0)
        part = tl.load(part_acc_ptr + prow[:, None] * HEAD_DIM + d[None, :], mask=sc_mask[:, None], other=0.0)
        acc += tl.sum(part * w[:, None], 0)
    tl.store(out_ptr + tok.to(tl.int64) * stride_ot + head * stride_oh + d,
             (acc / denom).to(out_ptr.dtype.element_ty), mask=d < d_limit)


@triton.jit
def paged_prefill_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr,
    block_table_ptr, seq_lens_ptr, cu_seqlens_q_ptr,
    k_scale_ptr, v_scale_ptr,
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
    KV_FP8: tl.constexpr,
):
    # global query tile: seq i owns tiles [cu_q[i] // BLOCK_Q + i, ...). Taken in reverse launch
    # order: a causal tile's work grows with its index, and the GPU dispatches programs in launch
    # order, so the longest tiles start first instead of forming the tail of the grid.
    pid = tl.num_programs(0) - 1 - tl.program_id(0)
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
    k_f, v_f = _kv_scales(k_scale_ptr, v_scale_ptr, KV_FP8)
    qk = qk_scale * k_f
    tok = (q_start + t).to(tl.int64)
    q_rows = q_ptr + tok * stride_qt + head * stride_qh
    q_pos = ctx_len + t                          # absolute position: attends keys <= q_pos

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    if KV_FP8:  # even / odd head-dim columns (_accumulate)
        acc = tl.zeros([BLOCK_M, HEAD_DIM // 2], tl.float32)
    else:
        acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    acc_odd = tl.zeros([BLOCK_M, HEAD_DIM // 2], tl.float32)

    hi = tl.minimum(ctx_len + (q_tile + 1) * BLOCK_Q, seq_len)
    bt_row = block_table_ptr + seq.to(tl.int64) * stride_bt
    k_base = k_ptr + kv_head * stride_kh
    v_base = v_ptr + kv_head * stride_vh
    for start in range(0, hi, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        n_mask = n < hi
        k_tile, k_rows = _kv_tile(k_base, bt_row, start, block_size, stride_kb, stride_ks, BLOCK_N)
        s = _scores(q_rows, r_mask, k_tile, k_rows, n_mask, BLOCK_M, BLOCK_N, HEAD_DIM, DC, KV_FP8) * qk
        s = tl.where((n[None, :] <= q_pos[:, None]) & n_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))    # key 0 is visible to every row: m_new finite
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v_tile, v_rows = _kv_tile(v_base, bt_row, start, block_size, stride_vb, stride_vs, BLOCK_N)
        acc, acc_odd = _accumulate(acc, acc_odd, alpha, p, v_tile, v_rows, n_mask, BLOCK_N, HEAD_DIM, KV_FP8)
        m_i = m_new

    d_a, d_b = _head_dim_columns(HEAD_DIM, KV_FP8)
    o_rows = out_ptr + tok[:, None] * stride_ot + head[:, None] * stride_oh
    tl.store(o_rows + d_a[None, :], (acc * v_f / l_i[:, None]).to(out_ptr.dtype.element_ty), mask=r_mask[:, None])
    if KV_FP8:
        tl.store(o_rows + d_b[None, :], (acc_odd * v_f / l_i[:, None]).to(out_ptr.dtype.element_ty),
                 mask=r_mask[:, None])
