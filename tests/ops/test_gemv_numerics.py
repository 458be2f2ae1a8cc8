"""Decode GEMV path (w8a16_gemv_kernel: no MMA, block scales folded into the activation, BLOCK_K
spanning several scale groups) in Triton's interpreter against float64 references.

Each test makes the tile kernel unreachable, so a silent fallback to it cannot pass for the GEMV;
the fallback test does the opposite (a shard whose up half does not start on a scale group)."""
import os

# The kernels run in Triton's CPU interpreter; it must be on before they are decorated.
os.environ.setdefault("TRITON_INTERPRET", "1")
import pytest
import torch

from rocm_enable.ops import moe_w8a16 as moemod
from rocm_enable.ops.fp8_dequant import dequant_fp8_reference, fold_fp8_scale_for_fp16_bits
from rocm_enable.ops.launch_recorder import recorded_launches
from rocm_enable.ops.moe_align import moe_align
from w8a16_testutil import REL_TOL, ForbiddenLaunch, rand_fp8, rand_scale, rel_err

BS = [128, 128]


@pytest.fixture
def gemv_only(monkeypatch):
    monkeypatch.setattr(moemod, "w8a16_gemm_kernel",
                        ForbiddenLaunch("the tile kernel ran where the GEMV kernel was configured"))


def _cfg(block_n=16, block_k=512):
    return {"kernel": "gemv", "BLOCK_N": block_n, "BLOCK_K": block_k, "num_warps": 4, "num_stages": 2}


def _scale_bs(kind):
    return BS if kind == "block" else None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale_kind", ["block", "channel", "tensor"])
@pytest.mark.parametrize("M,K", [(1, 1088), (3, 256), (2, 2048)])
def test_dense_gemv(gemv_only, dtype, scale_kind, M, K):
    """K=1088: the last 512-step is partial (masked, not EVEN_K) and spans a partial scale group;
    N=200 is not a multiple of BLOCK_N (wrapped rows, masked store)."""
    g = torch.Generator().manual_seed(M * 1000 + K)
    N = 200
    x = torch.randn(M, K, generator=g).to(dtype)
    w = rand_fp8(N, K, gen=g)
    s = rand_scale(scale_kind, None, N, K, gen=g)
    b = torch.randn(N, generator=g).to(dtype)
    y = torch.full((M, N), float("nan"), dtype=dtype)
    moemod.launch_w8a16_gemm(x, w.unsqueeze(0), fold_fp8_scale_for_fp16_bits(s), y, routing=None, top_k=1,
                             block_shape=_scale_bs(scale_kind), gemm_cfg=_cfg(), block_m=16, bias=b)
    ref = x.double() @ dequant_fp8_reference(w, s, _scale_bs(scale_kind)).T + b.double()
    assert rel_err(y, ref) < REL_TOL[dtype]


def _moe_case(seed, E, top_k, M, N, K, scale_kind, emap=None):
    g = torch.Generator().manual_seed(seed)
    w = rand_fp8(E, N, K, gen=g)
    s = rand_scale(scale_kind, E, N, K, gen=g)
    ids = torch.stack([torch.randperm(E, generator=g)[:top_k] for _ in range(M)])
    tw = torch.rand(M, top_k, generator=g) + 0.1
    return g, w, s, ids, tw


@pytest.mark.parametrize("scale_kind", ["block", "channel", "tensor"])
@pytest.mark.parametrize("M", [1, 3])
def test_moe_w13_fused_silu(gemv_only, scale_kind, M):
    """w13 with SiLU·mul fused: gate rows n and up rows n + I (I = 256: two scale groups each);
    top-4 of 8 experts (each program's row is pair // top_k: any top_k > 1 checks it)."""
    E, top_k, I, H = 8, 4, 256, 384
    g, w, s, ids, _ = _moe_case(M + 50, E, top_k, M, 2 * I, H, scale_kind)
    x = torch.randn(M, H, generator=g).half()
    routing = moe_align(ids, 16, E, naive=True)
    c = torch.full((M * top_k, I), float("nan"), dtype=torch.float16)
    moemod.launch_w8a16_gemm(x, w, fold_fp8_scale_for_fp16_bits(s), c, routing=routing, top_k=top_k,
                             block_shape=_scale_bs(scale_kind), gemm_cfg=_cfg(32, 256), block_m=16,
                             fuse_silu=True)
    W = dequant_fp8_reference(w, s, _scale_bs(scale_kind))
    h = torch.einsum("pk,pnk->pn", x.double().repeat_interleave(top_k, 0), W[ids.reshape(-1)])
    ref = torch.nn.functional.silu(h[:, :I]) * h[:, I:]
    assert rel_err(c, ref) < REL_TOL[torch.float16]


@pytest.mark.parametrize("M", [1, 2])
def test_moe_w2_routed_weight_and_expert_map(gemv_only, M):
    """w2 (rows are pairs, top_k=1) with routed weights; experts of another rank (-1) give 0."""
    E, top_k, N, K = 16, 4, 256, 640
    g, w, s, ids, tw = _moe_case(M + 70, E, top_k, M, N, K, "block")
    emap = torch.full((E,), -1, dtype=torch.int32)
    held = torch.arange(0, E, 2)
    emap[held] = torch.arange(held.numel(), dtype=torch.int32)
    a = torch.randn(M * top_k, K, generator=g).to(torch.bfloat16)
    routing = moe_align(ids, 16, E, expert_map=emap, naive=True)
    c = torch.full((M * top_k, N), float("nan"), dtype=torch.bfloat16)
    moemod.launch_w8a16_gemm(a, w[held], fold_fp8_scale_for_fp16_bits(s[held]), c, routing=routing,
                             top_k=1, block_shape=BS, gemm_cfg=_cfg(64, 512), block_m=16,
                             topk_weights=tw.reshape(-1))
    W = dequant_fp8_reference(w, s, BS)
    local = (emap[ids.reshape(-1)] >= 0).double()[:, None]
    ref = torch.einsum("pk,pnk->pn", a.double(), W[ids.reshape(-1)]) * tw.reshape(-1, 1).double() * local
    assert rel_err(c, ref) < REL_TOL[torch.bfloat16]
    assert (c[local[:, 0] == 0] == 0).all()


def test_unaligned_shard_falls_back_to_tile_kernel():
    """I = 64 (TP 4 of a 256-wide expert): the up half starts mid scale group, so the GEMV cannot
    share one scale row per program; the launcher must take the tile kernel, and stay correct."""
    E, top_k, I, H, M = 12, 4, 64, 256, 2
    g, w, s, ids, _ = _moe_case(9, E, top_k, M, 2 * I, H, "block")
    x = torch.randn(M, H, generator=g).half()
    routing = moe_align(ids, 16, E, naive=True)
    c = torch.full((M * top_k, I), float("nan"), dtype=torch.float16)
    with recorded_launches(run=True) as launched:
        moemod.launch_w8a16_gemm(x, w, fold_fp8_scale_for_fp16_bits(s), c, routing=routing, top_k=top_k,
                                 block_shape=BS, gemm_cfg=_cfg(16, 512), block_m=16, fuse_silu=True)
    assert any(launch.kernel == "w8a16_gemm_kernel" for launch in launched), \
        "GEMV ran although its scale-row condition does not hold"
    W = dequant_fp8_reference(w, s, BS)
    h = torch.einsum("pk,pnk->pn", x.double().repeat_interleave(top_k, 0), W[ids.reshape(-1)])
    assert rel_err(c, torch.nn.functional.silu(h[:, :I]) * h[:, I:]) < REL_TOL[torch.float16]
