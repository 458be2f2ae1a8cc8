"""rocm_enable's GDN chunk-state kernel against a float64 token-by-token gated delta rule (Triton
interpreter on CPU).

The kernel gets the WY form of each chunk (w, u, within-chunk cumulative log gates), computed here in
float64 from random q/k/v/g/beta exactly as vLLM's FLA pipeline defines it (chunk_local_cumsum,
chunk_scaled_dot_kkt + solve_tril, recompute_w_u). Checks: the state entering every chunk (h) and the
final state equal the recurrent form's states at those tokens; the chunked output built from h and
v_new (chunk_fwd_o's formula) equals the recurrent output; fixed-length and variable-length batches
(lengths 1, exact chunk multiples, ragged), with and without initial states, GQA (H = 2 Hg)."""
import importlib.util
import math
import os
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from rocm_enable.ops import gdn  # noqa: E402

# Triton's interpreter keeps bf16 as uint16 storage and computes on it: tl.dot (the attention tests'
# session fixture widens dot operands to fp32 first; shared from there, not copied) and bf16 * bf16
# elementwise arithmetic (fixed below the same way: fp32 op, rounded back to bf16, which is what the
# GPU computes). Only the interpreter is touched.
_spec = importlib.util.spec_from_file_location("_attention_conftest", Path(__file__).parents[1] / "attention" / "conftest.py")
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)
_interpreter_bf16_dot = _conftest._interpreter_bf16_dot


@pytest.fixture(autouse=True, scope="module")
def _interpreter_bf16_arithmetic():
    import triton.language as tl
    from triton.runtime import interpreter as I

    saved = {name: getattr(I.InterpreterBuilder, name) for name in ("create_fadd", "create_fsub", "create_fmul")}

    def widened(orig):
        def op(self, lhs, rhs):
            if lhs.dtype.scalar == tl.bfloat16 and rhs.dtype.scalar == tl.bfloat16:
                out = orig(self, self.cast_impl(lhs, tl.float32), self.cast_impl(rhs, tl.float32))
                return self.cast_impl(out, tl.bfloat16)
            return orig(self, lhs, rhs)
        return op

    for name, orig in saved.items():
        setattr(I.InterpreterBuilder, name, widened(orig))
    yield
    for name, orig in saved.items():
        setattr(I.InterpreterBuilder, name, orig)

f64 = torch.float64


def make_inputs(lens, Hg, H, K, V, seed):
    g = torch.Generator().manual_seed(seed)
    T = sum(lens)
    q = torch.nn.functional.normalize(torch.randn(T, Hg, K, generator=g, dtype=f64), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(T, Hg, K, generator=g, dtype=f64), dim=-1)
    v = torch.randn(T, H, V, generator=g, dtype=f64)
    gate = torch.nn.functional.logsigmoid(torch.randn(T, H, generator=g, dtype=f64) + 3)  # log decay < 0
    beta = torch.sigmoid(torch.randn(T, H, generator=g, dtype=f64))
    h0 = torch.randn(len(lens), H, V, K, generator=g, dtype=f64) * 0.5
    return q, k, v, gate, beta, h0


def recurrent(q, k, v, gate, beta, S0, lens, BT, scale):
    """Token by token: S <- e^g S + beta (v - e^g S k) k^T, o = scale S q. Returns o, the state
    entering every chunk (in chunk order over sequences) and the final states."""
    T, H, V = v.shape
    rep = H // k.shape[1]
    o = torch.zeros(T, H, V, dtype=f64)
    chunk_states, finals = [], []
    start = 0
    for n, L in enumerate(lens):
        S = S0[n].clone()
        for t in range(L):
            if t % BT == 0:
                chunk_states.append(S.clone())
            i = start + t
            kk, qq = k[i].repeat_interleave(rep, 0), q[i].repeat_interleave(rep, 0)
            S = S * gate[i].exp()[:, None, None]
            pred = torch.einsum("hvk,hk->hv", S, kk)
            S = S + torch.einsum("hv,hk->hvk", beta[i][:, None] * (v[i] - pred), kk)
            o[i] = scale * torch.einsum("hvk,hk->hv", S, qq)
        finals.append(S)
        start += L
    return o, torch.stack(chunk_states), torch.stack(finals)


def chunks(lens, BT):
    """(seq, start token, length) of every chunk, in vLLM's chunk_indices order."""
    out, start = [], 0
    for n, L in enumerate(lens):
        out += [(n, start + c, min(BT, L - c)) for c in range(0, L, BT)]
        start += L
    return out


def wy_form(k, v, gate, beta, lens, BT):
    """float64 w, u, within-chunk cumulative gates and the chunks' (I + A)^-1 ([T, H, BT], rows
    relative to their chunk, as solve_tril returns it), as FLA's prefill feeds chunk_delta_h."""
    T, H, V = v.shape
    rep = H // k.shape[1]
    kh = k.repeat_interleave(rep, 1)
    w, u, gc = torch.zeros(T, H, k.shape[-1], dtype=f64), torch.zeros(T, H, V, dtype=f64), torch.zeros(T, H, dtype=f64)
    Ainv = torch.zeros(T, H, BT, dtype=f64)
    for _, s, L in chunks(lens, BT):
        sl = slice(s, s + L)
        c = gate[sl].cumsum(0)  # [L, H]
        gc[sl] = c
        kc = kh[sl].transpose(0, 1)  # [H, L, K]
        decay = (c.T[:, :, None] - c.T[:, None, :]).exp()  # [H, i, j] = e^(c_i - c_j)
        A = (beta[sl].T[:, :, None] * (kc @ kc.transpose(1, 2)) * decay).tril(-1)
        Tinv = torch.linalg.inv(torch.eye(L, dtype=f64) + A)
        Ainv[sl, :, :L] = Tinv.transpose(0, 1)
        w[sl] = (Tinv @ (kc * (beta[sl] * c.exp()).T[:, :, None])).transpose(0, 1)
        u[sl] = (Tinv @ (v[sl].transpose(0, 1) * beta[sl].T[:, :, None])).transpose(0, 1)
    return w, u, gc, Ainv


def chunked_output(q, k, h, v_new, gc, lens, BT, scale):
    """chunk_fwd_o's formula: o = scale (e^gc q S0^T + tril(q k^T e^(gc_i - gc_j)) v_new)."""
    rep = v_new.shape[1] // k.shape[1]
    qh, kh = q.repeat_interleave(rep, 1), k.repeat_interleave(rep, 1)
    o = torch.zeros_like(v_new)
    for ci, (_, s, L) in enumerate(chunks(lens, BT)):
        sl = slice(s, s + L)
        c = gc[sl].T  # [H, L]
        qc, kc, vc = qh[sl].transpose(0, 1), kh[sl].transpose(0, 1), v_new[sl].transpose(0, 1)
        inter = (qc @ h[ci].transpose(1, 2)) * c.exp()[:, :, None]
        att = ((qc @ kc.transpose(1, 2)) * (c[:, :, None] - c[:, None, :]).exp()).tril()
        o[sl] = (scale * (inter + att @ vc)).transpose(0, 1)
    return o


def metadata(lens, BT):
    """cu_seqlens, chunk_indices, chunk_offsets as vLLM's GDN metadata builds them."""
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32)
    idx = torch.tensor([[n, (s - cu[n].item()) // BT] for n, s, _ in chunks(lens, BT)], dtype=torch.int32)
    offs = torch.tensor([0, *torch.tensor([-(-L // BT) for L in lens]).cumsum(0).tolist()], dtype=torch.int32)
    return cu, idx, offs


def run_wy(k, v, beta, gc, Ainv, lens, dtype, varlen):
    B = 1 if varlen else len(lens)
    T = sum(lens) if varlen else lens[0]
    shape = lambda x: x.reshape(B, T, *x.shape[1:])  # noqa: E731
    cu, idx, _ = metadata(lens, Ainv.shape[-1]) if varlen else (None, None, None)
    w, u = gdn.recompute_w_u_fwd(k=shape(k).to(dtype), v=shape(v).to(dtype), beta=shape(beta).to(dtype),
                                 g_cumsum=shape(gc).float(), A=shape(Ainv).to(dtype), cu_seqlens=cu, chunk_indices=idx)
    return w.reshape(-1, *w.shape[2:]).double(), u.reshape(-1, *u.shape[2:]).double()


def run_ours(k, w, u, gc, h0, lens, BT, dtype, varlen, use_exp2=False, save_new_value=True):
    B = 1 if varlen else len(lens)
    T = sum(lens) if varlen else lens[0]
    shape = lambda x: x.reshape(B, T, *x.shape[1:]).to(dtype)  # noqa: E731
    g_in = gc / math.log(2) if use_exp2 else gc
    cu, idx, offs = metadata(lens, BT) if varlen else (None, None, None)
    h, v_new, ht = gdn.chunk_gated_delta_rule_fwd_h(
        k=shape(k), w=shape(w), u=shape(u), g=g_in.reshape(B, T, -1).float(), initial_state=None if h0 is None else h0.float(),
        output_final_state=True, chunk_size=BT, save_new_value=save_new_value, cu_seqlens=cu, chunk_indices=idx,
        chunk_offsets=offs, use_exp2=use_exp2)
    h = h.reshape(-1, *h.shape[2:]).double()  # [chunks in order, H, V, K]
    v_new = None if v_new is None else v_new.reshape(-1, *v_new.shape[2:]).double()
    return h, v_new, ht.double()


CASES = {
    # name: (lens, Hg, H, K, V, BT, varlen, initial state)
    "fixed_len_no_h0": ([40, 40], 1, 2, 32, 64, 16, False, False),
    "fixed_len_h0": ([37, 37], 2, 2, 32, 32, 16, False, True),
    "varlen_h0": ([1, 16, 45, 32], 1, 2, 32, 64, 16, True, True),
    "varlen_model_dims": ([70, 5], 1, 2, 128, 128, 64, True, True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_chunked_state_matches_recurrent_float64(name):
    lens, Hg, H, K, V, BT, varlen, with_h0 = CASES[name]
    q, k, v, gate, beta, h0 = make_inputs(lens, Hg, H, K, V, seed=len(name))
    if not with_h0:
        h0 = torch.zeros_like(h0)
    scale = K ** -0.5
    o_ref, states_ref, final_ref = recurrent(q, k, v, gate, beta, h0, lens, BT, scale)
    w_ref, u_ref, gc, Ainv = wy_form(k, v, gate, beta, lens, BT)
    # rocm_enable's WY kernel from the chunks' inverses, then its state kernel from that w, u
    w, u = run_wy(k, v, beta, gc, Ainv, lens, torch.float32, varlen)
    torch.testing.assert_close(w, w_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(u, u_ref, atol=1e-5, rtol=1e-5)
    h, v_new, ht = run_ours(k, w, u, gc, h0 if with_h0 else None, lens, BT, torch.float32, varlen)
    assert h.shape == states_ref.shape and ht.shape == final_ref.shape
    torch.testing.assert_close(h, states_ref, atol=2e-4, rtol=2e-4)
    torch.testing.assert_close(ht, final_ref, atol=2e-4, rtol=2e-4)
    o = chunked_output(q, k, h, v_new, gc, lens, BT, scale)
    torch.testing.assert_close(o, o_ref, atol=2e-4, rtol=2e-4)


def test_bf16_exp2_and_no_saved_value():
    """bf16 operands as vLLM passes them (fp32 accumulation; bf16 w, u, h; fp32 final state), gates
    in log2 units with use_exp2, and save_new_value=False."""
    lens, BT = [50, 50], 16
    q, k, v, gate, beta, h0 = make_inputs(lens, 1, 2, 32, 32, seed=7)
    _, states_ref, final_ref = recurrent(q, k, v, gate, beta, h0, lens, BT, 1.0)
    w_ref, u_ref, gc, Ainv = wy_form(k, v, gate, beta, lens, BT)
    w, u = run_wy(k, v, beta, gc, Ainv, lens, torch.bfloat16, False)
    torch.testing.assert_close(w, w_ref, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(u, u_ref, atol=5e-2, rtol=2e-2)
    h, v_new, ht = run_ours(k, w, u, gc, h0, lens, BT, torch.bfloat16, False, use_exp2=True, save_new_value=False)
    assert v_new is None
    torch.testing.assert_close(h, states_ref, atol=6e-2, rtol=3e-2)
    torch.testing.assert_close(ht, final_ref, atol=6e-2, rtol=3e-2)


def test_launcher_reads_nothing_from_the_device():
    """Graph safety: the launcher's host code makes no data-dependent read (.item/.tolist/nonzero
    all dispatch aten._local_scalar_dense or nonzero) and sizes outputs from shapes only."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from rocm_enable.ops.launch_recorder import recorded_launches

    class NoHostReads(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            assert func not in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default), func
            return func(*args, **(kwargs or {}))

    lens, BT = [1, 16, 45], 16
    q, k, v, gate, beta, h0 = make_inputs(lens, 1, 2, 32, 64, seed=3)
    w, u, gc, _ = wy_form(k, v, gate, beta, lens, BT)
    cu = torch.tensor([0, 1, 17, 62], dtype=torch.int32)
    idx = torch.tensor([[n, (s - cu[n].item()) // BT] for n, s, _ in chunks(lens, BT)], dtype=torch.int32)
    offs = torch.tensor([0, 1, 2, 5], dtype=torch.int32)
    f = lambda x: x.unsqueeze(0).float()  # noqa: E731
    with recorded_launches() as recorded, NoHostReads():  # launches recorded, not run
        h, v_new, ht = gdn.chunk_gated_delta_rule_fwd_h(
            k=f(k), w=f(w), u=f(u), g=f(gc), initial_state=h0.float(), output_final_state=True, chunk_size=BT,
            cu_seqlens=cu, chunk_indices=idx, chunk_offsets=offs)
    launched = [(launch.grid, launch.kwargs) for launch in recorded if launch.kernel == "gdn_chunk_state_kernel"]
    assert launched and launched[0][0] == (64 // gdn.CHUNK_STATE_CONFIG["BV"], 3 * 2)
    assert h.shape == (1, 5, 2, 64, 32) and ht.shape == (3, 2, 64, 32) and v_new.shape == u.unsqueeze(0).shape


# ---- decode: rocm_enable.ops.gdn_decode.packed_decode (vLLM's packed-decode contract) ----------

def decode_gates(n, HV, seed):
    """vLLM's decode gate inputs (a, b, A_log, dt_bias) and the float64 log decay and beta they
    stand for: g = -exp(A_log) softplus(a + dt_bias), beta = sigmoid(b)."""
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, HV, generator=gen, dtype=f64) * 2, torch.randn(n, HV, generator=gen, dtype=f64)
    A_log, dt_bias = torch.randn(HV, generator=gen, dtype=f64) * 0.5 - 1, torch.randn(HV, generator=gen, dtype=f64)
    gate = -A_log.exp() * torch.nn.functional.softplus(a + dt_bias)
    return (a, b, A_log, dt_bias), gate, torch.sigmoid(b)


def run_decode(q, k, v, gates, pool, slots, dtype, state_dtype, l2norm=True, config=None):
    """One packed-decode step for len(slots) sequences: q/k [B, H, K], v [B, HV, V] packed into
    mixed_qkv, the state pool [slots, HV, V, K] updated in place. Returns (out [B, HV, V], pool)."""
    from rocm_enable.ops import gdn_decode

    B, HV, V = v.shape
    a, b, A_log, dt_bias = gates
    mixed = torch.cat([q.reshape(B, -1), k.reshape(B, -1), v.reshape(B, -1)], 1).to(dtype)
    out = torch.full((B, 1, HV, V), float("nan"), dtype=dtype)
    state = pool.to(state_dtype)
    gdn_decode.packed_decode(mixed, a.to(dtype), b.to(dtype), A_log.float(), dt_bias.float(), q.shape[-1] ** -0.5,
                             state, out, torch.tensor(slots, dtype=torch.int32), use_qk_l2norm_in_kernel=l2norm,
                             config=config)
    return out[:, 0].double(), state.double()


DECODE_CASES = {
    # name: (H, HV, K, V, input dtype, state dtype, config, tolerance)
    "fp32_gqa": (1, 2, 32, 16, torch.float32, torch.float32, None, 1e-5),
    "fp32_bv32_masked_v": (2, 4, 32, 48, torch.float32, torch.float32, {"BV": 32, "num_warps": 1, "num_stages": 1},
                           1e-5),
    "bf16_model_dims": (1, 2, 128, 128, torch.bfloat16, torch.float32, None, 3e-2),
    "bf16_state": (1, 2, 32, 32, torch.bfloat16, torch.bfloat16, None, 3e-2),
}


@pytest.mark.parametrize("name", list(DECODE_CASES))
def test_packed_decode_matches_recurrent_float64(name):
    """One token per sequence against the float64 recurrence, with the state slots gathered through
    ssm_state_indices (shuffled, slot 0 = padding: zero output, its state untouched)."""
    H, HV, K, V, dtype, state_dtype, config, tol = DECODE_CASES[name]
    slots = [3, 0, 1, 4]
    B = len(slots)
    gen = torch.Generator().manual_seed(len(name))
    q, k = torch.randn(B, H, K, generator=gen, dtype=f64), torch.randn(B, H, K, generator=gen, dtype=f64)
    v = torch.randn(B, HV, V, generator=gen, dtype=f64)
    gates, gate, beta = decode_gates(B, HV, seed=len(name) + 1)
    pool = torch.randn(5, HV, V, K, generator=gen, dtype=f64) * 0.5
    pool = pool.to(state_dtype).double()  # the reference starts from the states as the kernel reads them
    out, state = run_decode(q, k, v, gates, pool, slots, dtype, state_dtype, config=config)
    # reference: l2-normalised q, k (the kernel's eps 1e-6 is far below the tolerance)
    qn, kn = torch.nn.functional.normalize(q.to(dtype).double(), dim=-1), torch.nn.functional.normalize(k.to(dtype).double(), dim=-1)
    vd = v.to(dtype).double()
    want_pool = pool.clone()
    for i, slot in enumerate(slots):
        if slot <= 0:
            assert (out[i] == 0).all()
            continue
        o_ref, _, final = recurrent(qn[i:i + 1], kn[i:i + 1], vd[i:i + 1], gate[i:i + 1], beta[i:i + 1],
                                    pool[slot:slot + 1], [1], 16, K ** -0.5)
        torch.testing.assert_close(out[i], o_ref[0], atol=tol, rtol=tol)
        want_pool[slot] = final[0]
    torch.testing.assert_close(state, want_pool, atol=tol, rtol=tol)
    assert torch.equal(state[0], pool[0]) and torch.equal(state[2], pool[2])  # untouched slots


def test_prefill_then_decode_matches_one_recurrence():
    """Chunked and recurrent forms agree across the prefill -> decode hand-over: a variable-length
    prefill with initial states on rocm_enable's chunked kernels (WY + state recurrence), then two
    decode steps of rocm_enable's packed decode from the final states it wrote, equal one float64
    token-by-token recurrence over prefill + decode tokens."""
    lens, Hg, H, K, V, BT = [1, 16, 23], 1, 2, 32, 32, 16
    q, k, v, gate, beta, h0 = make_inputs(lens, Hg, H, K, V, seed=11)
    scale = K ** -0.5
    w_ref, u_ref, gc, Ainv = wy_form(k, v, gate, beta, lens, BT)
    w, u = run_wy(k, v, beta, gc, Ainv, lens, torch.float32, True)
    _, _, ht = run_ours(k, w, u, gc, h0, lens, BT, torch.float32, True)
    pool = torch.zeros(len(lens) + 1, H, V, K, dtype=f64)
    slots = [2, 3, 1]  # sequence n's state lives in slot slots[n]
    pool[slots] = ht
    steps = []
    for step in range(2):
        dq, dk, dv, _, _, _ = make_inputs([1] * len(lens), Hg, H, K, V, seed=20 + step)
        gates, dgate, dbeta = decode_gates(len(lens), H, seed=30 + step)
        out, pool = run_decode(dq, dk, dv, gates, pool, slots, torch.float32, torch.float32)
        steps.append((dq, dk, dv, dgate, dbeta, out))
    # one recurrence over each sequence's prefill tokens followed by its two decode tokens
    start = 0
    for n, L in enumerate(lens):
        sl = slice(start, start + L)
        seq = [torch.cat([x[sl]] + [s[j][n:n + 1] for s in steps]) for j, x in enumerate((q, k, v, gate, beta))]
        o_ref, _, final = recurrent(*seq, h0[n:n + 1], [L + 2], BT, scale)
        for i, s in enumerate(steps):
            torch.testing.assert_close(s[5][n], o_ref[L + i], atol=2e-4, rtol=2e-4)
        torch.testing.assert_close(pool[slots[n]], final[0], atol=2e-4, rtol=2e-4)
        start += L


def test_decode_launcher_reads_nothing_from_the_device():
    """Graph safety of the decode launcher: no data-dependent host read, grid from shapes only."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from rocm_enable.ops import gdn_decode
    from rocm_enable.ops.launch_recorder import recorded_launches

    class NoHostReads(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            assert func not in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default), func
            return func(*args, **(kwargs or {}))

    B, H, HV, K, V = 3, 16, 32, 128, 128
    mixed = torch.empty(B, 2 * H * K + HV * V)
    a, b = torch.empty(B, HV), torch.empty(B, HV)
    state, out = torch.empty(7, HV, V, K), torch.empty(B, 1, HV, V)
    with recorded_launches() as recorded, NoHostReads():  # launches recorded, not run
        gdn_decode.packed_decode(mixed, a, b, torch.empty(HV), torch.empty(HV), 0.1, state, out,
                                 torch.zeros(B, dtype=torch.int32), use_qk_l2norm_in_kernel=True)
    launched = [(launch.grid, launch.kwargs) for launch in recorded if launch.kernel == "gdn_packed_decode_kernel"]
    assert launched[0][0] == (B * HV, V // gdn_decode.DECODE_CONFIG["BV"]) and launched[0][1]["H"] == H
    # calls outside the kernel's contract name what is wrong (the record then keeps vLLM's kernel)
    assert "key head dim 256" in gdn_decode.decode_supported(mixed, a, b, torch.empty(7, HV, V, 256), out,
                                                             torch.zeros(B, dtype=torch.int32))
    assert "out" in gdn_decode.decode_supported(mixed, a, b, state, torch.empty(B, HV, V),
                                                torch.zeros(B, dtype=torch.int32))
