"""Tile kernel with A_SPLIT (activation pre-split into fp16 even|odd K halves by
split_activation_fp16, loaded straight as the MMA operands) in Triton's interpreter against
float64 references: sorted MoE routing, dense with a masked K tail, split-K, bf16 and fp16."""
import os

# The kernels run in Triton's CPU interpreter; it must be on before they are decorated.
os.environ.setdefault("TRITON_INTERPRET", "1")
import pytest
import torch

from rocm_enable.ops import moe_w8a16 as moemod
from rocm_enable.ops.fp8_dequant import dequant_fp8_reference, fold_fp8_scale_for_fp16_bits
from rocm_enable.ops.moe_align import moe_align
from w8a16_testutil import REL_TOL, rand_fp8, rand_scale, rel_err

BS = [128, 128]


def _cfg(**kw):
    return {"BLOCK_N": 64, "BLOCK_K": 128, "num_warps": 4, "num_stages": 2, "a_split": True, **kw}


def test_split_layout():
    a = torch.randn(3, 8).to(torch.bfloat16)
    s = moemod.split_activation_fp16(a)
    assert s.dtype == torch.float16
    assert torch.equal(s[:, :4], a[:, 0::2].half()) and torch.equal(s[:, 4:], a[:, 1::2].half())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("scale_kind", ["block", "channel"])
def test_moe_sorted_w2_with_routed_weights(dtype, scale_kind):
    g = torch.Generator().manual_seed(3)
    E, top_k, M, N, K = 6, 2, 13, 192, 384
    a = torch.randn(M * top_k, K, generator=g).to(dtype)
    w = rand_fp8(E, N, K, gen=g)
    s = rand_scale(scale_kind, E, N, K, gen=g)
    ids = torch.stack([torch.randperm(E, generator=g)[:top_k] for _ in range(M)])
    tw = torch.rand(M * top_k, generator=g)
    routing = moe_align(ids, 16, E)
    c = torch.full((M * top_k, N), float("nan"), dtype=dtype)
    bs = BS if scale_kind == "block" else None
    moemod.launch_w8a16_gemm(a, w, fold_fp8_scale_for_fp16_bits(s), c, routing=routing, top_k=1,
                             block_shape=bs, gemm_cfg=_cfg(), block_m=16, topk_weights=tw)
    W = dequant_fp8_reference(w, s, bs)
    ref = torch.einsum("pk,pnk->pn", a.double(), W[ids.reshape(-1)]) * tw.double()[:, None]
    assert rel_err(c, ref) < REL_TOL[dtype]


@pytest.mark.parametrize("split_k", [1, 3])
@pytest.mark.parametrize("M", [1, 5, 33])
def test_dense_masked_k_tail(M, split_k):
    """K=1088: the last 128-step holds 64 valid K positions (32 per half)."""
    g = torch.Generator().manual_seed(M + split_k)
    N, K = 160, 1088
    x = torch.randn(M, K, generator=g).half()
    w = rand_fp8(N, K, gen=g)
    s = rand_scale("block", None, N, K, gen=g)
    y = torch.full((M, N), float("nan"), dtype=torch.float16)
    moemod.launch_w8a16_gemm(x, w.unsqueeze(0), fold_fp8_scale_for_fp16_bits(s), y, routing=None, top_k=1,
                             block_shape=BS, gemm_cfg=_cfg(), block_m=16, split_k=split_k)
    ref = x.double() @ dequant_fp8_reference(w, s, BS).T
    assert rel_err(y, ref) < REL_TOL[torch.float16]
