"""RDNA paged attention kernels against a float64 reference (Triton interpreter on CPU).

Random non-zero Q/K/V, vLLM's paged layout ([blocks, block_size, kv_heads, head_dim] views of one
[blocks, kv_heads, block_size, 2 * head_dim] cache tensor) with shuffled block tables, odd lengths,
prefix + new tokens, GQA, outputs poisoned with NaN before the call."""
import os

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from rocm_enable.ops import attention_rdna as A  # noqa: E402

TARGET = A.AttnTarget(wave_size=32, lds_bytes=64 * 1024, num_cus=40)  # gfx1151's table numbers
# bf16 inputs, fp32 accumulation, a bf16/fp16 output rounding and a 16-bit P for the PV product
TOL = {torch.bfloat16: 2e-2, torch.float16: 4e-3}


def make_batch(q_lens, seq_lens, num_heads, num_kv_heads, head_dim, block_size, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    num_seqs = len(q_lens)
    blocks_per_seq = [-(-s // block_size) for s in seq_lens]
    num_blocks = sum(blocks_per_seq) + 3
    # vLLM's Triton backend cache: [blocks, kv_heads, block_size, 2*hd] -> transpose(1,2).split
    kv = (torch.rand(num_blocks, num_kv_heads, block_size, 2 * head_dim, generator=g) * 2 - 1).to(dtype)
    kv_t = kv.transpose(1, 2)
    key_cache, value_cache = kv_t.split(head_dim, dim=-1)
    perm = torch.randperm(num_blocks, generator=g)
    max_blocks = max(blocks_per_seq) + 1
    block_table = torch.zeros(num_seqs, max_blocks, dtype=torch.int32)
    i = 0
    for s, nb in enumerate(blocks_per_seq):
        block_table[s, :nb] = perm[i:i + nb].to(torch.int32)
        i += nb
    q = (torch.rand(sum(q_lens), num_heads, head_dim, generator=g) * 2 - 1).to(dtype)
    cu = torch.zeros(num_seqs + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(q_lens), 0)
    return q, key_cache, value_cache, block_table, torch.tensor(seq_lens, dtype=torch.int32), cu


def reference(q, key_cache, value_cache, block_table, seq_lens, cu, scale):
    num_kv_heads, block_size = key_cache.shape[2], key_cache.shape[1]
    qpkv = q.shape[1] // num_kv_heads
    out = torch.zeros(q.shape, dtype=torch.float64)
    for s in range(seq_lens.shape[0]):
        L = int(seq_lens[s])
        q0, q1 = int(cu[s]), int(cu[s + 1])
        n = torch.arange(L)
        blk = block_table[s, n // block_size].long()
        k = key_cache[blk, n % block_size].double()          # [L, kvh, d]
        v = value_cache[blk, n % block_size].double()
        k = k.repeat_interleave(qpkv, dim=1)
        v = v.repeat_interleave(qpkv, dim=1)
        qs = q[q0:q1].double()                                # [ql, h, d]
        ql = q1 - q0
        scores = torch.einsum("thd,nhd->htn", qs, k) * scale
        pos = (L - ql) + torch.arange(ql)
        scores = scores.masked_fill(n[None, None, :] > pos[None, :, None], float("-inf"))
        out[q0:q1] = torch.einsum("htn,nhd->thd", scores.softmax(-1), v)
    return out


def run_case(q_lens, seq_lens, num_heads, num_kv_heads, head_dim, block_size, dtype, splits=None, seed=0):
    q, kc, vc, bt, sl, cu = make_batch(q_lens, seq_lens, num_heads, num_kv_heads, head_dim,
                                       block_size, dtype, seed)
    scale = head_dim ** -0.5
    out = torch.full_like(q, float("nan"))
    A.paged_attention(q, kc, vc, out, bt, sl, cu, max(q_lens), scale, TARGET, num_splits=splits)
    ref = reference(q, kc, vc, bt, sl, cu, scale)
    assert not torch.isnan(out).any(), "output rows left unwritten"
    err = (out.double() - ref).abs().max().item()
    rel = err / ref.abs().max().item()
    assert rel < TOL[dtype], (err, rel)
    return rel


# (heads, kv_heads): Qwen3-Next / Qwen3.6-35B-A3B per-GPU GQA 8 (16/2), Qwen3.6-27B GQA 6 (24/4),
# plain MHA, and GQA 20 (> 16 rows: two decode head groups).
@pytest.mark.parametrize("heads,kv_heads", [(16, 2), (12, 2), (4, 4), (20, 1)])
@pytest.mark.parametrize("splits", [None, 1, 3])
def test_decode_gqa_splits(heads, kv_heads, splits):
    run_case([1, 1, 1], [37, 1, 70], heads, kv_heads, 64, 16, torch.bfloat16, splits=splits)


@pytest.mark.parametrize("head_dim", [64, 128, 256])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_decode_head_dims(head_dim, dtype):
    run_case([1, 1], [45, 19], 8, 2, head_dim, 16, dtype, seed=head_dim)


@pytest.mark.parametrize("block_size", [16, 48])  # 48: not a power of two (hybrid models' pages)
def test_decode_block_sizes(block_size):
    run_case([1, 1], [101, 33], 8, 1, 64, block_size, torch.bfloat16, splits=4)


def test_decode_batch1_default_splits_fill_cus():
    # the plan splits the KV range into as many parts as keep at most PROGRAMS_PER_CU programs per
    # CU: batch 1 with 2 KV heads at the cap, batch 8 part-way, none once seqs x kv heads exceed
    # half of that
    assert A.PROGRAMS_PER_CU * TARGET.num_cus == 160
    assert A.decode_num_splits(1, 2, 8, TARGET) == A.MAX_SPLITS
    assert A.decode_num_splits(8, 2, 8, TARGET) == 10
    assert A.decode_num_splits(41, 2, 8, TARGET) == 1
    # at most PROGRAMS_PER_CU per CU (a count just above it adds a nearly empty round of programs):
    # the H100 stand-in's batch 32 gets 8 splits (512 programs on 132 SMs), not 9 (576)
    h100 = A.AttnTarget(wave_size=32, lds_bytes=64 * 1024, num_cus=132)
    assert A.decode_num_splits(32, 2, 8, h100) == 8
    for target in (TARGET, h100):
        cap = A.PROGRAMS_PER_CU * target.num_cus
        for seqs in range(1, 513):
            programs = seqs * 2
            splits = A.decode_num_splits(seqs, 2, 8, target)
            assert programs * splits <= max(cap, programs), (seqs, splits)
            assert splits == A.MAX_SPLITS or programs * (splits + 1) > cap, (seqs, splits)
    run_case([1], [300], 16, 2, 64, 16, torch.bfloat16)


@pytest.mark.parametrize("head_dim", [64, 256])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_prefill_with_prefix_and_mixed_decode(head_dim, dtype):
    # seq 0: 7 new tokens after a 23-token prefix; seq 1: fresh 13-token prompt; seq 2: decode
    run_case([7, 13, 1], [30, 13, 20], 8, 2, head_dim, 16, dtype, seed=1)


@pytest.mark.parametrize("heads,kv_heads", [(16, 2), (12, 2), (6, 6)])
def test_prefill_gqa_odd_lengths(heads, kv_heads):
    run_case([21, 5], [21, 40], heads, kv_heads, 64, 16, torch.bfloat16, seed=2)


def test_prefill_padding_seq_untouched():
    # a trailing seq with no query tokens (CUDA-graph padding) writes nothing
    q, kc, vc, bt, sl, cu = make_batch([3, 2], [9, 5], 4, 2, 64, 16, torch.bfloat16)
    cu = torch.cat([cu, cu[-1:]])
    bt = torch.cat([bt, bt[:1]])
    sl = torch.cat([sl, torch.tensor([0], dtype=torch.int32)])
    out = torch.full_like(q, float("nan"))
    A.paged_attention(q, kc, vc, out, bt, sl, cu, 3, 0.125, TARGET)
    assert not torch.isnan(out).any()


def test_decode_combine_reads_only_written_partials():
    # the decode writes partial rows of real query heads only (GQA 8 fills 8 of the 16 rows);
    # scratch poisoned with NaN shows every row the combine reads was written by this launch
    q, kc, vc, bt, sl, cu = make_batch([1, 1, 1], [37, 1, 70], 16, 2, 64, 16, torch.bfloat16)
    scratch = A.alloc_scratch(TARGET, 2, 8, 64, q.device)
    for t in scratch:
        t.fill_(float("nan"))
    out = torch.full_like(q, float("nan"))
    A.paged_attention(q, kc, vc, out, bt, sl, cu, 1, 0.125, TARGET, scratch=scratch, num_splits=3)
    ref = reference(q, kc, vc, bt, sl, cu, 0.125)
    assert (out.double() - ref).abs().max().item() < TOL[torch.bfloat16] * ref.abs().max().item()
    assert torch.isnan(scratch[0][8:16]).all(), "padding rows of the first program were written"


def test_decode_padding_seq_untouched():
    q, kc, vc, bt, sl, cu = make_batch([1, 1], [9, 5], 4, 2, 64, 16, torch.bfloat16)
    cu = torch.cat([cu, cu[-1:]])
    bt = torch.cat([bt, bt[:1]])
    sl = torch.cat([sl, torch.tensor([0], dtype=torch.int32)])
    out = torch.full_like(q, float("nan"))
    sentinel = torch.zeros(1, 4, 64, dtype=torch.bfloat16)
    out = torch.cat([out, sentinel])  # an extra row after the real tokens must stay untouched
    qq = torch.cat([q, sentinel])
    A.paged_attention(qq, kc, vc, out, bt, sl, cu, 1, 0.125, TARGET, num_splits=2)
    assert not torch.isnan(out[:2]).any() and (out[2] == 0).all()


# ---- FP8 (e4m3fn) KV cache: vLLM's fp8 / fp8_e4m3 with per-tensor k / v scales ---------------

def make_fp8_cache(key_cache, value_cache, seed=0):
    """The 16-bit test cache quantised to e4m3fn bytes (the uint8 tensor vLLM allocates, same
    [blocks, kv_heads, block, 2 * hd] storage) with per-tensor scales that are not powers of two."""
    hd = key_cache.shape[-1]
    k_scale = torch.tensor([0.37], dtype=torch.float32)
    v_scale = torch.tensor([1.9], dtype=torch.float32)
    kv = torch.empty(key_cache.shape[0], key_cache.shape[2], key_cache.shape[1], 2 * hd, dtype=torch.uint8)
    k8, v8 = kv.transpose(1, 2).split(hd, dim=-1)
    # values spread over e4m3's range incl. subnormals (|x| < 2**-6) before the scale
    k8.copy_((key_cache.float() * 6 / k_scale).to(torch.float8_e4m3fn).view(torch.uint8))
    v8.copy_((value_cache.float() ** 3 * 300 / v_scale).to(torch.float8_e4m3fn).view(torch.uint8))
    return k8, v8, k_scale, v_scale


def dequant(cache8, scale):
    """float64 reference decode through torch's own e4m3fn cast."""
    return cache8.view(torch.float8_e4m3fn).double() * scale.double()


def run_fp8_case(q_lens, seq_lens, num_heads, num_kv_heads, head_dim, block_size, dtype, splits=None, seed=0):
    q, kc, vc, bt, sl, cu = make_batch(q_lens, seq_lens, num_heads, num_kv_heads, head_dim,
                                       block_size, dtype, seed)
    k8, v8, ks, vs = make_fp8_cache(kc, vc)
    assert not ((k8 & 0x7F) == 0x7F).any() and (k8 != 0).any()  # no NaN codes, not all zero
    scale = head_dim ** -0.5
    out = torch.full_like(q, float("nan"))
    A.paged_attention(q, k8, v8, out, bt, sl, cu, max(q_lens), scale, TARGET, num_splits=splits,
                      k_scale=ks, v_scale=vs)
    ref = reference(q, dequant(k8, ks), dequant(v8, vs), bt, sl, cu, scale)
    assert not torch.isnan(out).any(), "output rows left unwritten"
    rel = (out.double() - ref).abs().max().item() / ref.abs().max().item()
    assert rel < TOL[dtype], rel


@pytest.mark.parametrize("head_dim", [64, 256])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("splits", [None, 1])
def test_fp8_kv_decode(head_dim, dtype, splits):
    run_fp8_case([1, 1, 1], [45, 1, 70], 16, 2, head_dim, 16, dtype, splits=splits, seed=head_dim)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fp8_kv_prefill_with_prefix_and_mixed_decode(dtype):
    run_fp8_case([7, 13, 1], [30, 13, 20], 12, 2, 64, 48, dtype, seed=3)


def test_fp8_kv_every_e4m3_code():
    """All 254 finite e4m3fn codes (incl. subnormals, +-0) as V with K = 0 (uniform softmax): the
    output is exactly the mean of the decoded values, so each code's decode is checked; the same
    codes as K give the scores their full range."""
    codes = torch.tensor([c for c in range(256) if c & 0x7F != 0x7F], dtype=torch.uint8)
    hd, bs = 64, 16
    n_keys = 256
    g = torch.Generator().manual_seed(7)
    kv = torch.zeros(n_keys // bs, 1, bs, 2 * hd, dtype=torch.uint8)
    k8, v8 = kv.transpose(1, 2).split(hd, dim=-1)
    # row i of V holds the codes rotated by i: every code at every head-dim position class
    v8.copy_(torch.stack([codes.roll(i)[:hd] for i in range(n_keys)]).view(n_keys // bs, bs, 1, hd))
    bt = torch.randperm(n_keys // bs, generator=g).to(torch.int32)[None, :]
    sl = torch.tensor([n_keys - 5], dtype=torch.int32)
    cu = torch.tensor([0, 1], dtype=torch.int32)
    q = torch.rand(1, 4, hd, generator=g).to(torch.float16)
    ks, vs = torch.tensor([0.02]), torch.tensor([0.75])
    for k_codes in (False, True):
        if k_codes:  # K = the codes (scaled small): non-uniform scores through every K code
            k8.copy_(v8.flip(0))
        out = torch.full_like(q, float("nan"))
        A.paged_attention(q, k8, v8, out, bt, sl, cu, 1, 0.125, TARGET, num_splits=3, k_scale=ks, v_scale=vs)
        ref = reference(q, dequant(k8, ks), dequant(v8, vs), bt, sl, cu, 0.125)
        assert (out.double() - ref).abs().max().item() <= 2e-3 * ref.abs().max().item(), k_codes


def test_fp8_kv_needs_scales():
    q, kc, vc, bt, sl, cu = make_batch([1], [9], 4, 2, 64, 16, torch.bfloat16)
    k8, v8, _, _ = make_fp8_cache(kc, vc)
    with pytest.raises(ValueError, match="k_scale and v_scale"):
        A.paged_attention(q, k8, v8, torch.empty_like(q), bt, sl, cu, 1, 0.125, TARGET)
