"""The one Triton GEMM kernel behind the MoE expert GEMMs and the dense linear (W8A16).

C[row, n] = sum_k A[token(row), k] * Wdeq[e(row), n, k]   (fp32 accumulate, fp16 MMA)

* W: e4m3fn bytes as the checkpoint stores them, read as int32 words (4 K positions per
  word, 16-byte vector loads), dequantised with 7 integer ops per word
  (see fp8_dequant.py); the result is fp16 = value * 2**-8 and the
  2**8 lives in the folded scales.
* "swap AB": the weight tile is the LEFT operand ([BLOCK_N, K] x [K, BLOCK_M]), so the
  small token dimension is the MMA's N side. At decode (1..16 tokens) this wastes far
  less of the MMA, and on Hopper the register-resident dequantised tile can feed wgmma
  as its A operand.
* A (bf16 or fp16) is converted to fp16 in the kernel (see docs/kernels.md, fp16-range
  caveat) and split into even / odd K positions to match the packed dequantisation.
* Routing: ROUTING=0 dense (rows are tokens, one "expert"), 1 naive (one (token, slot)
  pair per M-block, vLLM's tiny-M path), 2 sorted (moe_align output).
* Scales: SCALE_MODE 0 block (one scale per GROUP_N x GROUP_K block, applied per K step;
  BLOCK_K must divide GROUP_K), 1 per output channel, 2 per tensor (both in the epilogue).
* FUSE_SILU: w13 epilogue computes silu(gate) * up for rows n and n + N (gate/up halves),
  so decode skips the separate activation launch and the [M*topk, 2N] round trip.
* SPLIT_K > 1 (decode with few output tiles, e.g. K=17408 down_proj): grid axis 2 splits
  the K loop into SPLIT_K ranges of k_iters BLOCK_K steps. Each split stores its fp32
  partial tile(s) to ws_ptr, then takes a ticket from cnt_ptr[tile] (acq_rel atomic);
  the LAST arriving split sums the partials in split order 0..SPLIT_K-1 (bitwise
  deterministic, independent of arrival order), resets the ticket to 0 (CUDA-graph
  replay safe) and runs the normal epilogue (scales, bias, routed weight, SiLU).
  One launch, no memset, no fp32 atomics on data.
* GROUP_M > 1 (dense prefill): 1-D grid, GROUP_M M-blocks walk the N tiles together, so
  concurrently running programs share each weight tile through L2 instead of re-reading
  the weight from DRAM once per M-block.
"""
import triton
import triton.language as tl



# Token counts and the split-K step count are not specialised (divisible-by-16 / == 1): they only
# bound masks and loops, and specialising them compiled a new binary per batch-size class.
@triton.jit(do_not_specialize=["EM", "num_valid_tokens", "k_iters"])
def w8a16_gemm_kernel(
    a_ptr, w_ptr, c_ptr, scale_ptr, bias_ptr, topk_weights_ptr,
    sorted_token_ids_ptr, expert_ids_ptr, num_tokens_post_padded_ptr, ws_ptr, cnt_ptr,
    N, K, EM, num_valid_tokens, up_offset, k_iters,
    stride_am, stride_ak, stride_we, stride_wn, stride_cm, stride_cn,
    stride_se, stride_sn, stride_sk,
    top_k, ROUTING: tl.constexpr, SCALE_MODE: tl.constexpr,
    GROUP_N: tl.constexpr, GROUP_K: tl.constexpr,
    MUL_ROUTED_WEIGHT: tl.constexpr, FUSE_SILU: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr,
    SPLIT_K: tl.constexpr = 1, GROUP_M: tl.constexpr = 1, A_SPLIT: tl.constexpr = False,
):
    # w_ptr is int32 (4 e4m3 bytes); stride_we / stride_wn are in int32 words; K in bytes.
    # A_SPLIT: a_ptr is fp16 [rows, K] holding each row's even K positions then its odd ones
    # (split_activation_fp16), so the two MMA operands load straight from memory in the order the
    # packed dequantisation produces, with no in-register convert / split / transpose.
    BLOCK_KW: tl.constexpr = BLOCK_K // 4
    BLOCK_KH: tl.constexpr = BLOCK_K // 2
    if GROUP_M > 1:  # grouped order: GROUP_M M-blocks share each weight tile via L2
        pid = tl.program_id(0)
        num_pid_m = tl.cdiv(EM, BLOCK_M)
        num_pid_n = tl.cdiv(N, BLOCK_N)
        group = GROUP_M * num_pid_n
        first_m = (pid // group) * GROUP_M
        size_m = min(num_pid_m - first_m, GROUP_M)
        pid_m = first_m + (pid % group) % size_m
        pid_n = (pid % group) // size_m
    else:
        pid_n = tl.program_id(0)  # N fastest: blocks sharing a token block run together
        pid_m = tl.program_id(1)

    offs_m = tl.arange(0, BLOCK_M)
    if ROUTING == 0:
        rows = pid_m * BLOCK_M + offs_m
        token_mask = rows < num_valid_tokens
        a_rows = rows
        expert = 0
    else:
        if ROUTING == 2:
            if pid_m * BLOCK_M >= tl.load(num_tokens_post_padded_ptr):
                return
            rows = tl.load(sorted_token_ids_ptr + pid_m * BLOCK_M + offs_m)
        else:  # naive: block pid_m holds the single (token, slot) pair pid_m
            rows = tl.where(offs_m == 0, pid_m, num_valid_tokens)
        token_mask = rows < num_valid_tokens
        a_rows = rows // top_k
        expert = tl.load(expert_ids_ptr + pid_m).to(tl.int64)
    rows = rows.to(tl.int64)
    a_rows = a_rows.to(tl.int64)

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    c_ptrs = c_ptr + rows[None, :] * stride_cm + offs_n[:, None] * stride_cn
    c_mask = token_mask[None, :] & (offs_n[:, None] < N)
    if ROUTING != 0:
        if expert == -1:  # expert lives on another rank (expert parallelism): contributes 0
            tl.store(c_ptrs, tl.zeros((BLOCK_N, BLOCK_M), dtype=c_ptr.dtype.element_ty), mask=c_mask)
            return

    # rows past N re-read valid rows (wrap) so the K loop needs no N mask
    offs_wn = (offs_n % N).to(tl.int64)
    offs_kw = tl.arange(0, BLOCK_KW)
    offs_k = tl.arange(0, BLOCK_K)
    w_base = w_ptr + expert * stride_we
    w_ptrs = w_base + offs_wn[:, None] * stride_wn + offs_kw[None, :]
    if FUSE_SILU:
        u_ptrs = w_base + (offs_wn + up_offset)[:, None] * stride_wn + offs_kw[None, :]
    if A_SPLIT:
        offs_kh = tl.arange(0, BLOCK_KH)
        a_ptrs = a_ptr + a_rows[None, :] * stride_am + offs_kh[:, None]  # [BLOCK_KH, BLOCK_M]
    else:
        a_ptrs = a_ptr + a_rows[:, None] * stride_am + offs_k[None, :] * stride_ak
    s_base = scale_ptr + expert * stride_se

    if SPLIT_K > 1:  # this split's range of BLOCK_K steps
        k_lo = tl.program_id(2) * k_iters
        k_hi = min(k_lo + k_iters, tl.cdiv(K, BLOCK_K))
        w_ptrs += k_lo * BLOCK_KW
        a_ptrs += k_lo * (BLOCK_KH if A_SPLIT else BLOCK_K * stride_ak)
        if FUSE_SILU:
            u_ptrs += k_lo * BLOCK_KW
    else:
        k_lo = 0
        k_hi = tl.cdiv(K, BLOCK_K)

    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    acc_u = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for k in range(k_lo, k_hi):
        k_rem = K - k * BLOCK_K
        if not EVEN_K:
            w_mask = offs_kw[None, :] < (k_rem // 4)
        if A_SPLIT:
            if EVEN_K:
                a_even_t = tl.load(a_ptrs, mask=token_mask[None, :], other=0.0)
                a_odd_t = tl.load(a_ptrs + K // 2, mask=token_mask[None, :], other=0.0)
            else:
                a_mask = token_mask[None, :] & (offs_kh[:, None] < k_rem // 2)
                a_even_t = tl.load(a_ptrs, mask=a_mask, other=0.0)
                a_odd_t = tl.load(a_ptrs + K // 2, mask=a_mask, other=0.0)
        else:
            if EVEN_K:
                a = tl.load(a_ptrs, mask=token_mask[:, None], other=0.0)
            else:
                a = tl.load(a_ptrs, mask=token_mask[:, None] & (offs_k[None, :] < k_rem), other=0.0)
            # bf16 -> fp16: exact for |a| in [2**-14, 65504]; see docs/kernels.md
            a_even, a_odd = tl.split(a.to(tl.float16).reshape(BLOCK_M, BLOCK_KH, 2))
            a_even_t = tl.trans(a_even)
            a_odd_t = tl.trans(a_odd)
        # --- gate (or only) rows: 16-byte loads of 4 e4m3 bytes per int32 word
        if EVEN_K:
            w = tl.load(w_ptrs)
        else:
            w = tl.load(w_ptrs, mask=w_mask, other=0)
        # packed e4m3 -> fp16 bits (fp8_dequant.py): even = K positions 0,2 of the word,
        # odd = 1,3; 7 integer ops per 4 weights, then join/reshape keeps pairs in registers
        w = w.to(tl.uint32, bitcast=True)
        ev = ((w << 8) & 0x80008000) | ((w << 7) & 0x3F803F80)
        od = (w & 0x80008000) | ((w >> 1) & 0x3F803F80)
        w_ev = tl.join(ev.to(tl.uint16).to(tl.float16, bitcast=True),
                       (ev >> 16).to(tl.uint16).to(tl.float16, bitcast=True)).reshape(BLOCK_N, BLOCK_KH)
        w_od = tl.join(od.to(tl.uint16).to(tl.float16, bitcast=True),
                       (od >> 16).to(tl.uint16).to(tl.float16, bitcast=True)).reshape(BLOCK_N, BLOCK_KH)
        if SCALE_MODE == 0:  # block scales change every GROUP_K: scale this step's partial sum
            part = tl.dot(w_ev, a_even_t)
            part = tl.dot(w_od, a_odd_t, part)
            kb = (k * BLOCK_K) // GROUP_K
            acc += part * tl.load(s_base + (offs_wn // GROUP_N) * stride_sn + kb * stride_sk)[:, None]
        else:  # channel / tensor scales are applied once, in the epilogue
            acc = tl.dot(w_ev, a_even_t, acc)
            acc = tl.dot(w_od, a_odd_t, acc)
        if FUSE_SILU:  # --- the matching "up" rows, same activations
            if EVEN_K:
                u = tl.load(u_ptrs)
            else:
                u = tl.load(u_ptrs, mask=w_mask, other=0)
            u = u.to(tl.uint32, bitcast=True)
            uev = ((u << 8) & 0x80008000) | ((u << 7) & 0x3F803F80)
            uod = (u & 0x80008000) | ((u >> 1) & 0x3F803F80)
            u_ev = tl.join(uev.to(tl.uint16).to(tl.float16, bitcast=True),
                           (uev >> 16).to(tl.uint16).to(tl.float16, bitcast=True)).reshape(BLOCK_N, BLOCK_KH)
            u_od = tl.join(uod.to(tl.uint16).to(tl.float16, bitcast=True),
                           (uod >> 16).to(tl.uint16).to(tl.float16, bitcast=True)).reshape(BLOCK_N, BLOCK_KH)
            if SCALE_MODE == 0:
                part_u = tl.dot(u_ev, a_even_t)
                part_u = tl.dot(u_od, a_odd_t, part_u)
                s_u = tl.load(s_base + ((offs_wn + up_offset) // GROUP_N) * stride_sn + kb * stride_sk)
                acc_u += part_u * s_u[:, None]
            else:
                acc_u = tl.dot(u_ev, a_even_t, acc_u)
                acc_u = tl.dot(u_od, a_odd_t, acc_u)
        a_ptrs += BLOCK_KH if A_SPLIT else BLOCK_K * stride_ak
        w_ptrs += BLOCK_KW
        if FUSE_SILU:
            u_ptrs += BLOCK_KW

    if SPLIT_K > 1:
        # partial tiles -> workspace [tile, split, gate/up, BLOCK_N, BLOCK_M] fp32
        NACC: tl.constexpr = 2 if FUSE_SILU else 1
        TILE: tl.constexpr = BLOCK_N * BLOCK_M
        tile = pid_m * tl.cdiv(N, BLOCK_N) + pid_n
        offs_t = tl.arange(0, BLOCK_N)[:, None] * BLOCK_M + offs_m[None, :]
        ws_tile = ws_ptr + tile.to(tl.int64) * (SPLIT_K * NACC * TILE)
        ws_own = ws_tile + tl.program_id(2) * (NACC * TILE)
        tl.store(ws_own + offs_t, acc)
        if FUSE_SILU:
            tl.store(ws_own + TILE + offs_t, acc_u)
        tl.debug_barrier()  # every thread's partial stores precede the release below
        ticket = tl.atomic_add(cnt_ptr + tile, 1, sem="acq_rel", scope="gpu")
        if ticket != SPLIT_K - 1:
            return
        # last arriver: fixed-order sum (deterministic), L1 bypassed (.cg)
        acc = tl.load(ws_tile + offs_t, cache_modifier=".cg")
        if FUSE_SILU:
            acc_u = tl.load(ws_tile + TILE + offs_t, cache_modifier=".cg")
        for s in tl.static_range(1, SPLIT_K):
            acc += tl.load(ws_tile + s * (NACC * TILE) + offs_t, cache_modifier=".cg")
            if FUSE_SILU:
                acc_u += tl.load(ws_tile + s * (NACC * TILE) + TILE + offs_t, cache_modifier=".cg")
        tl.atomic_xchg(cnt_ptr + tile, 0, sem="relaxed", scope="gpu")  # ready for the next launch

    if SCALE_MODE == 1:
        acc *= tl.load(s_base + offs_wn * stride_sn)[:, None]
        if FUSE_SILU:
            acc_u *= tl.load(s_base + (offs_wn + up_offset) * stride_sn)[:, None]
    elif SCALE_MODE == 2:
        s_t = tl.load(s_base)
        acc *= s_t
        if FUSE_SILU:
            acc_u *= s_t
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_wn).to(tl.float32)[:, None]
    if MUL_ROUTED_WEIGHT:  # before SiLU: weighting the GEMM output == weighting its input
        tw = tl.load(topk_weights_ptr + rows, mask=token_mask, other=0.0).to(tl.float32)
        acc *= tw[None, :]
        if FUSE_SILU:
            acc_u *= tw[None, :]
    if FUSE_SILU:
        acc = acc / (1.0 + tl.exp(-acc)) * acc_u
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=c_mask)


@triton.jit
def silu_and_mul_kernel(x_ptr, out_ptr, N, stride_xm, stride_om, BLOCK: tl.constexpr):
    """out[m, :] = silu(x[m, :N]) * x[m, N:2N], fp32 math, for the tile path (M large)."""
    m = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    g = tl.load(x_ptr + m * stride_xm + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(x_ptr + m * stride_xm + N + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + m * stride_om + offs, (g / (1.0 + tl.exp(-g)) * u).to(out_ptr.dtype.element_ty),
             mask=mask)


@triton.jit
def _gemv_word_products(w, a0, a1, a2, a3):
    """[BLOCK_N, BLOCK_KW] int32 words of e4m3 bytes (K positions 4j..4j+3) times the matching
    [BLOCK_KW] activations, per word in fp32: the tile kernel's packed dequantisation (even K ->
    `ev` halves, odd K -> `od` halves, fp16 bits = value * 2**-8), then fp32 products."""
    w = w.to(tl.uint32, bitcast=True)
    ev = ((w << 8) & 0x80008000) | ((w << 7) & 0x3F803F80)  # K positions 4j, 4j+2
    od = (w & 0x80008000) | ((w >> 1) & 0x3F803F80)  # 4j+1, 4j+3
    return (ev.to(tl.uint16).to(tl.float16, bitcast=True).to(tl.float32) * a0[None, :]
            + od.to(tl.uint16).to(tl.float16, bitcast=True).to(tl.float32) * a1[None, :]
            + (ev >> 16).to(tl.uint16).to(tl.float16, bitcast=True).to(tl.float32) * a2[None, :]
            + (od >> 16).to(tl.uint16).to(tl.float16, bitcast=True).to(tl.float32) * a3[None, :])


@triton.jit(do_not_specialize=["num_rows"])
def w8a16_gemv_kernel(
    a_ptr, w_ptr, c_ptr, scale_ptr, bias_ptr, topk_weights_ptr, expert_ids_ptr,
    N, K, num_rows, up_offset,
    stride_am, stride_ak, stride_we, stride_wn, stride_cm, stride_cn,
    stride_se, stride_sn, stride_sk,
    top_k, ROUTED: tl.constexpr, SCALE_MODE: tl.constexpr,
    GROUP_N: tl.constexpr, GROUP_K: tl.constexpr,
    MUL_ROUTED_WEIGHT: tl.constexpr, FUSE_SILU: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr,
    ws_ptr=None, cnt_ptr=None, sum_k=1, SUM_TOPK: tl.constexpr = False,
):
    """Decode GEMV: one output row (a routed (token, slot) pair, or a dense token) per program
    along axis 1, BLOCK_N output channels along axis 0; no matrix instruction.

    Why a second kernel: at one row per expert a 16-wide MMA tile is 1/16 used and the block-128
    scales cap the MMA kernel at BLOCK_K <= 128 (a scale multiply and a pipeline step per 128
    bytes). Here each step reads BLOCK_K (up to 512) bytes per weight row and the block scales
    go onto the ACTIVATION instead: within one program every row of the tile shares one scale
    row (the launcher requires GROUP_N % BLOCK_N == 0 and up_offset % GROUP_N == 0), so
    sum_k W[n,k] * s[n/GN, k/GK] * a[k] == sum_k W[n,k] * (s[row, k/GK] * a[k]): BLOCK_K
    multiplies per step instead of BLOCK_N * BLOCK_K. Products accumulate in fp32 as
    [BLOCK_N, BLOCK_K/4] partial sums, reduced once after the K loop.
    Same word dequantisation as w8a16_gemm_kernel (fp16 bits = value * 2**-8; the 2**8 is in
    the folded scales), so both kernels take the same folded weights and scales.

    SUM_TOPK (w2 of naive routing): rows are the (token, slot) pairs of sum_k slots per token and
    c is the layer output [tokens, N]: the top-k sum happens in this launch (_topk_sum_store), so
    decode needs no separate reduction launch and no [pairs, N] round trip.
    """
    pid_n = tl.program_id(0)
    row = tl.program_id(1).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    c_ptrs = c_ptr + row * stride_cm + offs_n * stride_cn
    if ROUTED:
        expert = tl.load(expert_ids_ptr + row).to(tl.int64)
        if expert == -1:  # expert on another rank (expert parallelism): contributes 0
            if SUM_TOPK:
                _topk_sum_store(tl.zeros((BLOCK_N,), dtype=tl.float32), ws_ptr, cnt_ptr, c_ptr, row,
                                pid_n, sum_k, N, stride_cm, stride_cn, BLOCK_N)
            else:
                tl.store(c_ptrs, tl.zeros((BLOCK_N,), dtype=c_ptr.dtype.element_ty), mask=n_mask)
            return
        a_row = row // top_k
    else:
        expert = 0
        a_row = row
    out = _gemv_out(a_ptr, w_ptr, scale_ptr, bias_ptr, topk_weights_ptr, expert, row, a_row, pid_n,
                    N, K, up_offset, stride_am, stride_ak, stride_we, stride_wn, stride_se, stride_sn,
                    stride_sk, SCALE_MODE, GROUP_N, GROUP_K, MUL_ROUTED_WEIGHT, FUSE_SILU, HAS_BIAS,
                    BLOCK_N, BLOCK_K, EVEN_K, "")
    if SUM_TOPK:
        _topk_sum_store(out, ws_ptr, cnt_ptr, c_ptr, row, pid_n, sum_k, N, stride_cm, stride_cn, BLOCK_N)
    else:
        tl.store(c_ptrs, out.to(c_ptr.dtype.element_ty), mask=n_mask)


@triton.jit
def _gemv_out(a_ptr, w_ptr, scale_ptr, bias_ptr, topk_weights_ptr, expert, row, a_row, pid_n,
              N, K, up_offset, stride_am, stride_ak, stride_we, stride_wn, stride_se, stride_sn, stride_sk,
              SCALE_MODE: tl.constexpr, GROUP_N: tl.constexpr, GROUP_K: tl.constexpr,
              MUL_ROUTED_WEIGHT: tl.constexpr, FUSE_SILU: tl.constexpr, HAS_BIAS: tl.constexpr,
              BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr,
              A_CACHE: tl.constexpr):
    """One GEMV program's [BLOCK_N] fp32 outputs (scales, bias, routed weight and SiLU applied):
    output channels pid_n * BLOCK_N.., weights of ``expert``, activation row ``a_row``, routed
    weight of pair ``row``. A_CACHE: the activation loads' cache modifier (".cg" where another
    program of the same launch wrote the activation). Every argument is passed at each call:
    Triton 3.6 (the GPU machine's) binds a helper's defaulted constexpr as a plain str and fails
    to compile the caller ("'str' object has no attribute 'type'"), newer Triton accepts it."""
    BLOCK_KW: tl.constexpr = BLOCK_K // 4
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_wn = (offs_n % N).to(tl.int64)  # rows past N re-read valid rows: no N mask in the loop
    offs_j = tl.arange(0, BLOCK_KW)
    w_base = w_ptr + expert * stride_we
    w_ptrs = w_base + offs_wn[:, None] * stride_wn + offs_j[None, :]
    if FUSE_SILU:
        u_ptrs = w_base + (offs_wn + up_offset)[:, None] * stride_wn + offs_j[None, :]
    a_ptrs = a_ptr + a_row * stride_am + (4 * offs_j) * stride_ak  # K positions 4j (+0..3)
    s_base = scale_ptr + expert * stride_se
    if SCALE_MODE == 0:  # one scale row per program (gate) and one for the up half
        s_row = s_base + ((pid_n * BLOCK_N) // GROUP_N) * stride_sn
        if FUSE_SILU:
            s_row_u = s_base + ((pid_n * BLOCK_N + up_offset) // GROUP_N) * stride_sn

    acc = tl.zeros((BLOCK_N, BLOCK_KW), dtype=tl.float32)
    acc_u = tl.zeros((BLOCK_N, BLOCK_KW), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        kpos = k * BLOCK_K + 4 * offs_j
        if EVEN_K:
            a0 = tl.load(a_ptrs, cache_modifier=A_CACHE).to(tl.float32)
            a1 = tl.load(a_ptrs + stride_ak, cache_modifier=A_CACHE).to(tl.float32)
            a2 = tl.load(a_ptrs + 2 * stride_ak, cache_modifier=A_CACHE).to(tl.float32)
            a3 = tl.load(a_ptrs + 3 * stride_ak, cache_modifier=A_CACHE).to(tl.float32)
            w = tl.load(w_ptrs)
        else:  # K is a multiple of 4 (launcher): a word is either fully in range or fully out
            k_ok = kpos < K
            a0 = tl.load(a_ptrs, mask=k_ok, other=0.0, cache_modifier=A_CACHE).to(tl.float32)
            a1 = tl.load(a_ptrs + stride_ak, mask=k_ok, other=0.0, cache_modifier=A_CACHE).to(tl.float32)
            a2 = tl.load(a_ptrs + 2 * stride_ak, mask=k_ok, other=0.0, cache_modifier=A_CACHE).to(tl.float32)
            a3 = tl.load(a_ptrs + 3 * stride_ak, mask=k_ok, other=0.0, cache_modifier=A_CACHE).to(tl.float32)
            w = tl.load(w_ptrs, mask=k_ok[None, :], other=0)
        if SCALE_MODE == 0:
            if EVEN_K:
                s_k = tl.load(s_row + (kpos // GROUP_K) * stride_sk)
            else:
                s_k = tl.load(s_row + (kpos // GROUP_K) * stride_sk, mask=k_ok, other=0.0)
            g0, g1, g2, g3 = a0 * s_k, a1 * s_k, a2 * s_k, a3 * s_k
        else:
            g0, g1, g2, g3 = a0, a1, a2, a3
        acc += _gemv_word_products(w, g0, g1, g2, g3)
        if FUSE_SILU:
            if SCALE_MODE == 0:
                if EVEN_K:
                    s_u = tl.load(s_row_u + (kpos // GROUP_K) * stride_sk)
                else:
                    s_u = tl.load(s_row_u + (kpos // GROUP_K) * stride_sk, mask=k_ok, other=0.0)
                h0, h1, h2, h3 = a0 * s_u, a1 * s_u, a2 * s_u, a3 * s_u
            else:
                h0, h1, h2, h3 = a0, a1, a2, a3
            if EVEN_K:
                u = tl.load(u_ptrs)
            else:
                u = tl.load(u_ptrs, mask=k_ok[None, :], other=0)
            acc_u += _gemv_word_products(u, h0, h1, h2, h3)
            u_ptrs += BLOCK_KW
        a_ptrs += BLOCK_K * stride_ak
        w_ptrs += BLOCK_KW

    out = tl.sum(acc, axis=1)
    if FUSE_SILU:
        out_u = tl.sum(acc_u, axis=1)
    if SCALE_MODE == 1:
        out *= tl.load(s_base + offs_wn * stride_sn)
        if FUSE_SILU:
            out_u *= tl.load(s_base + (offs_wn + up_offset) * stride_sn)
    elif SCALE_MODE == 2:
        s_t = tl.load(s_base)
        out *= s_t
        if FUSE_SILU:
            out_u *= s_t
    if HAS_BIAS:
        out += tl.load(bias_ptr + offs_wn).to(tl.float32)
    if MUL_ROUTED_WEIGHT:  # before SiLU: weighting the GEMM output == weighting its input
        tw = tl.load(topk_weights_ptr + row).to(tl.float32)
        out *= tw
        if FUSE_SILU:
            out_u *= tw
    if FUSE_SILU:
        out = out / (1.0 + tl.exp(-out)) * out_u
    return out


@triton.jit(do_not_specialize=["num_pairs"])
def w8a16_moe_decode_kernel(
    x_ptr, w13_ptr, s13_ptr, act_ptr, w2_ptr, s2_ptr, out_ptr, topk_weights_ptr, expert_ids_ptr,
    ws_ptr, cnt_ptr, ready_offset,
    H, I, num_pairs, top_k, tiles13, tiles2,
    stride_xm, stride_w13e, stride_w13n, stride_s13e, stride_s13n, stride_s13k,
    stride_actm, stride_w2e, stride_w2n, stride_s2e, stride_s2n, stride_s2k, stride_om,
    SCALE_MODE: tl.constexpr, GROUP_N: tl.constexpr, GROUP_K: tl.constexpr,
    W13_ROUTED_WEIGHT: tl.constexpr, W2_ROUTED_WEIGHT: tl.constexpr,
    BLOCK_N13: tl.constexpr, BLOCK_K13: tl.constexpr, EVEN_K13: tl.constexpr,
    BLOCK_N2: tl.constexpr, BLOCK_K2: tl.constexpr, EVEN_K2: tl.constexpr,
):
    """The whole decode MoE layer (naive routing) in ONE launch: w13 GEMV with SiLU, w2 GEMV,
    top-k sum. Programs 0 .. tiles13 * num_pairs - 1 are the w13 GEMV's (pair-major); each writes
    its slice of the pair's activation row, then releases a per-pair counter (ready[pair]). The
    w2 programs come after them in launch order; each waits (acquire spin) until its pair's
    counter reaches tiles13, reads the activation bypassing L1, and sums the top-k like the
    SUM_TOPK GEMV (_topk_sum_store). The last w2 program of a pair resets both of the pair's
    counters (ready[pair], and readers[pair] = ready[num_pairs + pair]), so the buffer is zero
    again for the next launch and for CUDA-graph replays.

    Why: the two-launch decode layer pays a kernel boundary (drain of w13, launch, ramp of w2)
    between two short bandwidth-bound kernels; here the w2 programs start while w13's last wave
    runs. Forward progress relies on programs being dispatched in launch order (a w2 program only
    waits for lower-numbered programs), as GPUs dispatch workgroups. The per-pair counters live in
    the ticket buffer at ready_offset, after the top-k sum's tickets."""
    ready_ptr = cnt_ptr + ready_offset
    pid = tl.program_id(0)
    n13 = tiles13 * num_pairs
    if pid < n13:
        row = (pid // tiles13).to(tl.int64)
        pid_n = pid % tiles13
        expert = tl.load(expert_ids_ptr + row).to(tl.int64)
        if expert != -1:  # a pair whose expert is on another rank writes nothing: w2 skips it
            act = _gemv_out(x_ptr, w13_ptr, s13_ptr, s13_ptr, topk_weights_ptr, expert, row, row // top_k,
                            pid_n, I, H, I, stride_xm, 1, stride_w13e, stride_w13n, stride_s13e,
                            stride_s13n, stride_s13k, SCALE_MODE, GROUP_N, GROUP_K, W13_ROUTED_WEIGHT,
                            True, False, BLOCK_N13, BLOCK_K13, EVEN_K13, "")
            offs = pid_n * BLOCK_N13 + tl.arange(0, BLOCK_N13)
            tl.store(act_ptr + row * stride_actm + offs, act.to(act_ptr.dtype.element_ty), mask=offs < I)
        tl.debug_barrier()  # every thread's activation stores precede the release below
        tl.atomic_add(ready_ptr + row, 1, sem="release", scope="gpu")
    else:
        q = pid - n13
        row = (q // tiles2).to(tl.int64)
        pid_n = q % tiles2
        expert = tl.load(expert_ids_ptr + row).to(tl.int64)
        seen = tl.atomic_add(ready_ptr + row, 0, sem="acquire", scope="gpu")
        while seen < tiles13:  # every program waits, so the reset below follows all releases
            seen = tl.atomic_add(ready_ptr + row, 0, sem="acquire", scope="gpu")
        if expert != -1:
            part = _gemv_out(act_ptr, w2_ptr, s2_ptr, s2_ptr, topk_weights_ptr, expert, row, row, pid_n,
                             H, I, 0, stride_actm, 1, stride_w2e, stride_w2n, stride_s2e, stride_s2n,
                             stride_s2k, SCALE_MODE, GROUP_N, GROUP_K, W2_ROUTED_WEIGHT, False, False,
                             BLOCK_N2, BLOCK_K2, EVEN_K2, ".cg")
        else:
            part = tl.zeros((BLOCK_N2,), dtype=tl.float32)
        _topk_sum_store(part, ws_ptr, cnt_ptr, out_ptr, row, pid_n, top_k, H, stride_om, 1, BLOCK_N2)
        readers = tl.atomic_add(ready_ptr + num_pairs + row, 1, sem="acq_rel", scope="gpu")
        if readers == tiles2 - 1:
            tl.atomic_xchg(ready_ptr + row, 0, sem="relaxed", scope="gpu")
            tl.atomic_xchg(ready_ptr + num_pairs + row, 0, sem="relaxed", scope="gpu")


@triton.jit
def _topk_sum_store(part, ws_ptr, cnt_ptr, c_ptr, row, pid_n, sum_k, N, stride_cm, stride_cn,
                    BLOCK_N: tl.constexpr):
    """The top-k sum inside the GEMV launch. Program (pid_n, row = token * sum_k + slot) stores
    its fp32 partial [BLOCK_N] to ws[token tile, slot], then takes a ticket on the token tile
    (acq_rel atomic, as split-K does); the last of the tile's sum_k programs adds the partials in
    slot order 0..sum_k-1 (bitwise deterministic whatever the arrival order), resets the ticket to
    0 (CUDA-graph replay safe) and writes the output row once, rounded once."""
    token = row // sum_k
    slot = row % sum_k
    tile = token * tl.cdiv(N, BLOCK_N) + pid_n
    offs = tl.arange(0, BLOCK_N)
    ws_tile = ws_ptr + tile * (sum_k * BLOCK_N)
    tl.store(ws_tile + slot * BLOCK_N + offs, part)
    tl.debug_barrier()  # every thread's partial store precedes the release below
    ticket = tl.atomic_add(cnt_ptr + tile, 1, sem="acq_rel", scope="gpu")
    if ticket == sum_k - 1:
        total = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for s in range(0, sum_k):
            total += tl.load(ws_tile + s * BLOCK_N + offs, cache_modifier=".cg")
        tl.atomic_xchg(cnt_ptr + tile, 0, sem="relaxed", scope="gpu")  # ready for the next launch
        offs_n = pid_n * BLOCK_N + offs
        tl.store(c_ptr + token * stride_cm + offs_n * stride_cn, total.to(c_ptr.dtype.element_ty),
                 mask=offs_n < N)
