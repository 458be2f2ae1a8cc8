"""Gated-DeltaNet kernels that fit wave32 RDNA registers: chunked prefill (state recurrence, WY
recompute) and the one-token decode.

gdn_chunk_state_kernel

Same contract as vLLM's FLA ``chunk_gated_delta_rule_fwd_kernel_h_blockdim64`` (chunk_delta_h.py):
for each sequence and value head it walks the chunks of BT tokens, stores the state entering each
chunk (h[chunk, head] = S, laid out [V, K]), computes v_new = u - w S^T and advances
S <- exp(g_last) S + (exp(g_last - g) * v_new)^T k.

Why a second kernel: vLLM's keeps S as [BV, 64] fp32 quarters and transposes them into and out of
every tl.dot (``tl.trans(b_h)`` / ``tl.trans(tl.dot(k, v))``); on gfx11/gfx12 WMMA layouts those
transposes go through registers and every one of its 8 autotune candidates spills (57-1,525 VGPRs
on gfx1151, docs/gdn.md). Here the state is held transposed, S^T as one [K, BV] tile, so both
products are plain dots in their natural layouts (w[BT, K] @ S^T[K, BV] and k^T[K, BT] @ v[BT, BV])
and a narrow BV keeps the tile small: K=128, BV=32, 8 waves -> 16 fp32 VGPRs of state per lane.

gdn_wy_kernel
Same contract as vLLM's FLA ``recompute_w_u_fwd_kernel`` (wy_fast.py): per chunk, u = A (beta v) and
w = A (beta e^g k) with A the chunk's [BT, BT] inverse from solve_tril. vLLM's walks all V and K
columns in one program (two constant-trip loops of [BT, 64] blocks that Triton unrolls and
pipelines, keeping every block live): all 9 candidates spill on gfx1151 (38-584 VGPRs). Here every
program makes one [BT, BC] block of u or of w (a third grid axis over the V + K columns): one load of
A, one dot, one store.

gdn_packed_decode_kernel
Same contract as vLLM's FLA ``fused_recurrent_gated_delta_rule_packed_decode_kernel``
(fused_recurrent.py): one token per sequence, q/k/v from the packed projection row, gates from
a / b / A_log / dt_bias, the state slot updated in place. Its launch (rocm_enable.ops.gdn_decode)
gives each one-wave program 8 value rows of the state instead of vLLM's 32.
"""
import triton
import triton.language as tl


@triton.jit(do_not_specialize=["T"])
def gdn_chunk_state_kernel(
    k, v, w, v_new, g, h, h0, ht, cu_seqlens, chunk_offsets, T,
    H: tl.constexpr, Hg: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
    BK: tl.constexpr, BV: tl.constexpr, USE_G: tl.constexpr, USE_INITIAL_STATE: tl.constexpr,
    STORE_FINAL_STATE: tl.constexpr, SAVE_NEW_VALUE: tl.constexpr, IS_VARLEN: tl.constexpr,
    USE_EXP2: tl.constexpr,
):
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    if IS_VARLEN:
        bos = tl.load(cu_seqlens + i_n).to(tl.int64)
        eos = tl.load(cu_seqlens + i_n + 1).to(tl.int64)
        T = eos - bos
        NT = tl.cdiv(T, BT)
        boh = tl.load(chunk_offsets + i_n).to(tl.int64)
    else:
        bos = i_n.to(tl.int64) * T
        NT = tl.cdiv(T, BT)
        boh = i_n.to(tl.int64) * NT

    h += (boh * H + i_h) * V * K
    v += (bos * H + i_h) * V
    k += (bos * Hg + i_h // (H // Hg)) * K
    w += (bos * H + i_h) * K
    if SAVE_NEW_VALUE:
        v_new += (bos * H + i_h) * V
    stride_v = H * V
    stride_h = H * V * K
    stride_k = Hg * K
    stride_w = H * K

    o_k = tl.arange(0, BK)
    m_k = o_k < K
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    # S^T: element [kk, vv] is S[vv, kk]; h / h0 / ht are stored [V, K]
    off_hT = o_v[None, :] * K + o_k[:, None]
    m_hT = m_k[:, None] & m_v[None, :]
    b_hT = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_INITIAL_STATE:
        b_hT += tl.load(h0 + i_nh.to(tl.int64) * V * K + off_hT, mask=m_hT, other=0.0).to(tl.float32)

    for i_t in range(NT):
        o_t = i_t * BT + tl.arange(0, BT)
        m_t = o_t < T
        tl.store(h + off_hT, b_hT.to(h.dtype.element_ty), mask=m_hT)
        h += stride_h  # a 64-bit pointer step: i_t * stride_h overflows int32 past ~2^31 elements

        b_w = tl.load(w + o_t[:, None] * stride_w + o_k[None, :], mask=m_t[:, None] & m_k[None, :], other=0.0)
        b_u = tl.load(v + o_t[:, None] * stride_v + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
        b_v = b_u - tl.dot(b_w, b_hT.to(b_w.dtype))
        if SAVE_NEW_VALUE:
            tl.store(v_new + o_t[:, None] * stride_v + o_v[None, :], b_v.to(v_new.dtype.element_ty),
                     mask=m_t[:, None] & m_v[None, :])

        if USE_G:
            last = tl.minimum((i_t + 1) * BT, T) - 1
            b_g_last = tl.load(g + (bos + last) * H + i_h)
            b_g = tl.load(g + (bos + o_t) * H + i_h, mask=m_t, other=0.0)
            if USE_EXP2:
                b_v = b_v * tl.where(m_t, tl.exp2(b_g_last - b_g), 0)[:, None]
                b_hT *= tl.exp2(b_g_last)
            else:
                b_v = b_v * tl.where(m_t, tl.exp(b_g_last - b_g), 0)[:, None]
                b_hT *= tl.exp(b_g_last)

        b_kT = tl.load(k + o_t[None, :] * stride_k + o_k[:, None], mask=m_k[:, None] & m_t[None, :], other=0.0)
        b_hT += tl.dot(b_kT, b_v.to(b_kT.dtype))

    if STORE_FINAL_STATE:
        tl.store(ht + i_nh.to(tl.int64) * V * K + off_hT, b_hT.to(ht.dtype.element_ty), mask=m_hT)


@triton.jit(do_not_specialize=["T"])
def gdn_wy_kernel(
    k, v, beta, w, u, A, g, cu_seqlens, chunk_indices, T,
    H: tl.constexpr, Hg: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
    BC: tl.constexpr, IS_VARLEN: tl.constexpr,
):
    i_t, i_bh, i_c = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    if IS_VARLEN:
        i_n = tl.load(chunk_indices + i_t * 2).to(tl.int32)
        i_t = tl.load(chunk_indices + i_t * 2 + 1).to(tl.int32)
        bos = tl.load(cu_seqlens + i_n).to(tl.int64)
        T = (tl.load(cu_seqlens + i_n + 1).to(tl.int64) - bos).to(tl.int32)
    else:
        bos = i_b.to(tl.int64) * T
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    b_A = tl.load(A + (bos * H + i_h) * BT + o_t[:, None] * (H * BT) + tl.arange(0, BT)[None, :],
                  mask=m_t[:, None], other=0.0)
    b_beta = tl.load(beta + bos * H + i_h + o_t * H, mask=m_t, other=0.0)
    NV: tl.constexpr = (V + BC - 1) // BC
    if i_c < NV:
        o_c = i_c * BC + tl.arange(0, BC)
        m = m_t[:, None] & (o_c[None, :] < V)
        off = (bos * H + i_h) * V + o_t[:, None] * (H * V) + o_c[None, :]
        b_v = tl.load(v + off, mask=m, other=0.0)
        b_vb = (b_v * b_beta[:, None]).to(b_v.dtype)
        tl.store(u + off, tl.dot(b_A, b_vb).to(u.dtype.element_ty), mask=m)
    else:
        o_c = (i_c - NV) * BC + tl.arange(0, BC)
        m = m_t[:, None] & (o_c[None, :] < K)
        b_g = tl.exp(tl.load(g + bos * H + i_h + o_t * H, mask=m_t, other=0.0))
        b_k = tl.load(k + (bos * Hg + i_h // (H // Hg)) * K + o_t[:, None] * (Hg * K) + o_c[None, :],
                      mask=m, other=0.0)
        b_kb = (b_k * b_beta[:, None] * b_g[:, None]).to(b_k.dtype)
        tl.store(w + (bos * H + i_h) * K + o_t[:, None] * (H * K) + o_c[None, :],
                 tl.dot(b_A, b_kb).to(w.dtype.element_ty), mask=m)


@triton.jit
def gdn_packed_decode_kernel(
    mixed_qkv, a, b, A_log, dt_bias, o, state, state_indices, scale,
    stride_qkv, stride_a, stride_b, stride_state, stride_idx,
    H: tl.constexpr, HV: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr, SOFTPLUS_THRESHOLD: tl.constexpr, L2NORM_QK: tl.constexpr,
):
    """One decode token per sequence, state updated in place (vLLM's packed decode contract).

    Program = (sequence x value head, block of BV value rows); the [BV, K] slice of the fp32
    state is all it holds, so BV sets the registers: at K = 128 with one wave, BV 8 is 32 state
    VGPRs per lane where vLLM's BV 32 takes 128 (rocm_enable.ops.gdn_decode). Sequence and head
    are on grid axis 0 (2^31 programs) so no batch needs a second grid shape."""
    i_nh, i_v = tl.program_id(0), tl.program_id(1)
    i_n, i_hv = i_nh // HV, i_nh % HV
    i_h = i_hv // (HV // H)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k = o_k < K
    m_v = o_v < V
    p_o = o + (i_n.to(tl.int64) * HV + i_hv) * V + o_v
    slot = tl.load(state_indices + i_n.to(tl.int64) * stride_idx).to(tl.int64)
    if slot <= 0:  # padding / no state slot (vLLM's NULL_BLOCK_ID 0): zero output, state untouched
        tl.store(p_o, tl.zeros([BV], tl.float32).to(o.dtype.element_ty), mask=m_v)
        return
    p_s = state + slot * stride_state + (i_hv * V + o_v[:, None]) * K + o_k[None, :]
    m_s = m_v[:, None] & m_k[None, :]
    b_s = tl.load(p_s, mask=m_s, other=0.0).to(tl.float32)

    row = mixed_qkv + i_n.to(tl.int64) * stride_qkv
    b_q = tl.load(row + i_h * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_k = tl.load(row + (H + i_h) * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_v = tl.load(row + 2 * H * K + i_hv * V + o_v, mask=m_v, other=0.0).to(tl.float32)
    if L2NORM_QK:
        b_q = b_q / tl.sqrt(tl.sum(b_q * b_q) + 1e-6)
        b_k = b_k / tl.sqrt(tl.sum(b_k * b_k) + 1e-6)
    b_q = b_q * scale

    # gate g = -exp(A_log) * softplus(a + dt_bias), beta = sigmoid(b)
    x = tl.load(a + i_n.to(tl.int64) * stride_a + i_hv).to(tl.float32) + tl.load(dt_bias + i_hv).to(tl.float32)
    softplus = tl.where(x <= SOFTPLUS_THRESHOLD, tl.log(1.0 + tl.exp(x)), x)
    decay = tl.exp(-tl.exp(tl.load(A_log + i_hv).to(tl.float32)) * softplus)
    beta = tl.sigmoid(tl.load(b + i_n.to(tl.int64) * stride_b + i_hv).to(tl.float32))

    b_s *= decay
    b_v = (b_v - tl.sum(b_s * b_k[None, :], 1)) * beta
    b_s += b_v[:, None] * b_k[None, :]
    tl.store(p_o, tl.sum(b_s * b_q[None, :], 1).to(o.dtype.element_ty), mask=m_v)
    tl.store(p_s, b_s.to(state.dtype.element_ty), mask=m_s)
