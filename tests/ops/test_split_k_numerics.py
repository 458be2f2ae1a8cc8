"""Split-K path (SPLIT_K > 1: partial tiles in an fp32 workspace, last-arriving split sums
them in fixed order) in Triton's interpreter against float64 references.

Odd shapes: K = 1088 / 544 / 272 (Qwen3.6-27B down_proj / 16 and its TP shards: masked K
tail, partial 128-blocks, splits of unequal length), N not a multiple of BLOCK_N, M in
{1, 3, 17}; outputs poisoned with NaN; bitwise determinism across runs; the ticket buffer
must be back at zero after every launch (CUDA-graph replay safety)."""
import os

# The kernels run in Triton's CPU interpreter; it must be on before they are decorated.
os.environ.setdefault("TRITON_INTERPRET", "1")
import pytest
import torch

from rocm_enable.ops import config as cfgmod
from rocm_enable.ops import moe_w8a16 as moemod
from rocm_enable.ops.fp8_dequant import dequant_fp8_reference, fold_fp8_scale_for_fp16_bits
from rocm_enable.ops.launch_recorder import recorded_launches
from rocm_enable.ops.linear_w8a16 import linear_w8a16
from rocm_enable.ops.moe_align import moe_align
from rocm_enable.ops.moe_w8a16 import moe_gemm_w8a16, pick_split_k
from w8a16_testutil import REL_TOL, ForbiddenLaunch, rand_fp8, rand_scale, rel_err


def _tickets_zero():
    return all(int(b.abs().sum()) == 0 for b in moemod._COUNTERS.values())


def _dense(M, N, K, split_k, dtype=torch.float16, scale_kind="block", bias=False, seed=0, arch="nvidia"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(M, K, generator=g).to(dtype)
    w = rand_fp8(N, K, gen=g)
    s = rand_scale(scale_kind, None, N, K, gen=g)
    b = torch.randn(N, generator=g).to(dtype) if bias else None
    bs = [128, 128] if scale_kind == "block" else None
    y = torch.full((M, N), float("nan"), dtype=dtype)
    linear_w8a16(x, w, fold_fp8_scale_for_fp16_bits(s), block_shape=bs, bias=b, arch_family=arch, out=y,
                 split_k=split_k)
    ref = x.double() @ dequant_fp8_reference(w, s, bs).T
    if bias:
        ref = ref + b.double()
    return y, ref


@pytest.fixture
def tile_only(monkeypatch):
    monkeypatch.setattr(moemod, "w8a16_gemv_kernel", ForbiddenLaunch(
        "the decode GEMV ran: it has no K split, so split-K went untested"))


@pytest.mark.parametrize("M", [3, 17])
@pytest.mark.parametrize("split_k", [2, 3, 5])
@pytest.mark.parametrize("K", [1088, 544, 272])
def test_dense_split_k_block_scales(M, split_k, K, tile_only):
    y, ref = _dense(M, 200, K, split_k, seed=M * 100 + split_k * 10 + K)
    assert rel_err(y, ref) < REL_TOL[torch.float16]
    assert _tickets_zero()


def test_dense_split_k_request_at_decode_takes_the_gemv():
    """M=1 takes the decode GEMV of the table, which has no K split: a requested split_k is not
    applied there (one case; every split count would run the same GEMV launch)."""
    with recorded_launches(run=True) as launched:
        y, ref = _dense(1, 200, 1088, 3, seed=1188)
    gemv = [launch for launch in launched if launch.kernel == "w8a16_gemv_kernel"]
    assert gemv and rel_err(y, ref) < REL_TOL[torch.float16]


@pytest.mark.parametrize("scale_kind", ["channel", "tensor"])
def test_dense_split_k_channel_tensor_bias_bf16(scale_kind):
    y, ref = _dense(3, 96, 1088, 4, dtype=torch.bfloat16, scale_kind=scale_kind, bias=True, seed=7)
    assert rel_err(y, ref) < REL_TOL[torch.bfloat16]
    assert _tickets_zero()


def test_dense_split_k_is_deterministic_and_matches_unsplit():
    y1, ref = _dense(2, 160, 1088, 4, seed=3)
    y2, _ = _dense(2, 160, 1088, 4, seed=3)
    y0, _ = _dense(2, 160, 1088, 1, seed=3)
    assert torch.equal(y1, y2)
    assert rel_err(y1, ref) < REL_TOL[torch.float16] and rel_err(y0, ref) < REL_TOL[torch.float16]


def test_split_count_never_makes_empty_splits():
    for steps in range(1, 40):
        for s in range(1, 12):
            n, iters = pick_split_k(1, steps, {}, s)
            assert (n - 1) * iters < steps <= n * iters
    # auto: grid of 80 programs, target 264 -> 4 splits of 34 steps (K=17408, BLOCK_K=128)
    assert pick_split_k(80, 136, {"split_k_programs": 264}) == (4, 34)
    assert pick_split_k(300, 136, {"split_k_programs": 264}) == (1, 136)


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("split_k", [2, 3])
def test_moe_naive_split_k(fuse, split_k, tile_only):
    """Naive (decode) routing, w13 with fused SiLU (the split sums gate and up before the
    nonlinearity; I = 80 starts the up half mid scale group, so the tile kernel runs) and w2 with
    the routed weight (rows are pairs, top_k 1); K with a masked tail."""
    g = torch.Generator().manual_seed(31 + split_k)
    E, top_k, M, N, K = 24, 3, 2, 160, 544
    a = torch.randn(M, K, generator=g).half()
    w = rand_fp8(E, N, K, gen=g)
    s = rand_scale("block", E, N, K, gen=g)
    ids = torch.stack([torch.randperm(E, generator=g)[:top_k] for _ in range(M)])
    tw = torch.rand(M, top_k, generator=g)
    bm = cfgmod.get_moe_config("nvidia", M)["BLOCK_M"]
    routing = moe_align(ids, bm, E, naive=True)
    n_out = N // 2 if fuse else N
    c = torch.full((M * top_k, n_out), float("nan"), dtype=torch.float16)
    pairs = a[torch.arange(M * top_k) // top_k]
    if fuse:
        moe_gemm_w8a16(a, w, fold_fp8_scale_for_fp16_bits(s), c, routing, top_k=top_k, gemm="w13",
                       block_shape=[128, 128], fuse_silu=True, arch_family="nvidia", num_tokens=M,
                       split_k=split_k)
    else:
        moe_gemm_w8a16(pairs, w, fold_fp8_scale_for_fp16_bits(s), c, routing, top_k=1, gemm="w2",
                       block_shape=[128, 128], topk_weights=tw, arch_family="nvidia", num_tokens=M,
                       split_k=split_k)
    W = dequant_fp8_reference(w, s, [128, 128])
    h = torch.einsum("pk,pnk->pn", pairs.double(), W[ids.reshape(-1)])
    if fuse:
        ref = torch.nn.functional.silu(h[:, :N // 2]) * h[:, N // 2:]
    else:
        ref = h * tw.reshape(-1, 1).double()
    assert rel_err(c, ref) < REL_TOL[torch.float16]
    assert _tickets_zero()


def test_config_driven_split_k_on_tall_k():
    """The nvidia small-M tile bucket (M=2..16; M=1 takes the GEMV) asks for split-K by program
    count: a 1-program grid with 9 K steps is split 3 ways (3 steps each) and still matches the
    reference."""
    cfg = cfgmod.get_dense_config("nvidia", 2)
    assert cfg.get("split_k_programs") and cfg.get("kernel") != "gemv"
    assert pick_split_k(1, 9, cfg) == (3, 3)
    y, ref = _dense(2, 64, 1088, None, seed=12, arch="nvidia")
    assert rel_err(y, ref) < REL_TOL[torch.float16]
    assert _tickets_zero()
