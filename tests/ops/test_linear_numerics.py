"""Dense W8A16 linear in Triton's interpreter against float64 references.

Qwen3.6-27B (dense, hidden 5120, intermediate 17408) scaled down to 320 / 544 (by 16 / 32) and
sharded TP 2 / 4 (272 / 136): every down-projection K (544 / 272 / 136) is a multiple of neither
128 nor BLOCK_K -> masked K tail and a partial last scale block; every gate_up N (1088 / 544 /
272) ends in a partial 128-row scale block, and the gate_up K (320) in a partial scale block too.
(The interpreter's cost is one Python pass per program, so N is kept to what those need.)"""
import json
import os

# The kernels run in Triton's CPU interpreter; it must be on before they are decorated.
os.environ.setdefault("TRITON_INTERPRET", "1")
import pytest
import torch

from rocm_enable.ops import config as cfgmod
from rocm_enable.ops.fp8_dequant import dequant_fp8_reference, fold_fp8_scale_for_fp16_bits
from rocm_enable.ops.linear_w8a16 import linear_w8a16
from w8a16_testutil import REL_TOL, rand_fp8, rand_scale, rel_err

HIDDEN, INTER = 320, 544
# (N, K) of the projections: column-parallel gate_up shard, row-parallel down shard
SHAPES = {tp: [(2 * INTER // tp, HIDDEN), (HIDDEN, INTER // tp)] for tp in (1, 2, 4)}


def _check(M, N, K, dtype, scale_kind, seed, bias=False, arch="rdna3", lead=()):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, M, K, generator=g).to(dtype)
    w = rand_fp8(N, K, gen=g)
    s = rand_scale(scale_kind, None, N, K, gen=g)
    b = torch.randn(N, generator=g).to(dtype) if bias else None
    bs = [128, 128] if scale_kind == "block" else None
    y_buf = torch.full((*lead, M, N), float("nan"), dtype=dtype)
    y = linear_w8a16(x, w, fold_fp8_scale_for_fp16_bits(s), block_shape=bs, bias=b, arch_family=arch,
                     out=y_buf)
    assert y.data_ptr() == y_buf.data_ptr()
    ref = x.double() @ dequant_fp8_reference(w, s, bs).T
    if bias:
        ref = ref + b.double()
    return rel_err(y, ref)


@pytest.mark.parametrize("tp", [1, 2, 4])
@pytest.mark.parametrize("M", [1, 3, 17])
def test_dense_block_fp16_tp_shards(tp, M):
    for i, (N, K) in enumerate(SHAPES[tp]):
        assert _check(M, N, K, torch.float16, "block", seed=tp * 10 + M + i) < REL_TOL[torch.float16]


@pytest.mark.parametrize("M", [1, 17])
def test_dense_block_bf16(M):
    N, K = SHAPES[2][1]
    assert _check(M, N, K, torch.bfloat16, "block", seed=M) < REL_TOL[torch.bfloat16]


@pytest.mark.parametrize("scale_kind", ["channel", "channel1", "tensor"])
def test_dense_channel_tensor_scales_with_bias(scale_kind):
    assert _check(3, 272, 320, torch.float16, scale_kind, seed=2, bias=True) < REL_TOL[torch.float16]


def _distinct_dense_tables():
    """One family per distinct dense table as the interpreter runs it (compile options dropped:
    it ignores num_warps / num_stages, which the AOT ISA tests check per family), with the ids
    of every family it stands for."""
    tables = {}
    for fam in cfgmod.ARCH_FAMILIES:
        key = json.dumps([cfgmod.split_options(b)[0] for b in cfgmod.load_shipped(fam)["dense"]], sort_keys=True)
        tables.setdefault(key, []).append(fam)
    return [pytest.param(fams[0], id="+".join(fams)) for fams in tables.values()]


@pytest.mark.parametrize("arch", _distinct_dense_tables())
def test_every_shipped_dense_config(arch):
    lo = 1
    for b in cfgmod.load_shipped(arch)["dense"]:
        M = lo + 2 if lo > 1 else 1
        assert cfgmod.get_dense_config(arch, M) is b
        assert _check(M, 192, 256, torch.float16, "block", seed=M, arch=arch) < REL_TOL[torch.float16]
        lo = (b["max_m"] or 0) + 1


def test_batched_leading_dims_and_strided_weight():
    """x [2, 3, K]; weight given as a transposed view of a [K, N] tensor (K not contiguous)."""
    g = torch.Generator().manual_seed(9)
    K, N = 256, 96
    x = torch.randn(2, 3, K, generator=g).half()
    wt = rand_fp8(K, N, gen=g)
    w = wt.t()  # [N, K] view, stride (1, N)
    s = rand_scale("channel", None, N, K, gen=g)
    y = linear_w8a16(x, w, fold_fp8_scale_for_fp16_bits(s))
    ref = x.double() @ dequant_fp8_reference(w.contiguous(), s).T
    assert y.shape == (2, 3, N)
    assert rel_err(y, ref) < REL_TOL[torch.float16]


def test_wrong_scale_shape_is_rejected():
    w = rand_fp8(64, 128)
    with pytest.raises(ValueError, match="scale layout"):
        linear_w8a16(torch.randn(1, 128).half(), w, torch.ones(3, 3))
