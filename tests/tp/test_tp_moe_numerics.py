"""Tensor parallel 2 and expert parallel 2 on the full-size shapes of Qwen3-Next-80B-A3B and
Qwen3.6-35B-A3B (bundled configs): the W8A16 MoE kernel on each rank's shard, the two ranks'
partial outputs summed as vLLM's all-reduce sums them, against the unsharded float64 reference.

TP-2 (vLLM's default for MoE without --enable-expert-parallel): every rank holds every expert with
half the intermediate dim (gate rows, up rows and w2 columns [r*I/2, (r+1)*I/2)).
EP-2 (--enable-expert-parallel, TP 2 x DP 1): rank r holds experts [r*E/2, (r+1)*E/2) whole
(vLLM's linear placement), expert_map[global] = local id or -1; routes to the other rank's
experts are skipped.
Rows marked -1 (padding) produce zeros on both ranks.

Triton's interpreter is slow on these widths: decode-sized batches (M 1-4), one full-size case per
model (the others keep the real intermediate width, expert count and top-k with hidden 256), and
128-row launch tiles (conftest.interpreter_tiles)."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
import pytest
import torch

pytestmark = pytest.mark.usefixtures("interpreter_tiles")

from rocm_enable.models import load_model
from rocm_enable.ops.fp8_dequant import fold_fp8_scale_for_fp16_bits
from rocm_enable.ops.moe_w8a16 import fused_experts_w8a16
from tp_shards import BLOCK, Experts, rel_err, route

MODELS = {"qwen3-next-80b": "Qwen/Qwen3-Next-80B-A3B-Instruct-FP8", "qwen3.6-35b": "Qwen/Qwen3.6-35B-A3B-FP8"}
# bf16 (the checkpoints' activation dtype): the interpreter truncates fp32 -> bf16 at each of the
# kernel's two roundings (~7e-3, tests/ops/w8a16_testutil.py); summing two ranks' bf16 partials
# adds one more rounding of the same size. A wrong shard, a lost expert or a dropped route moves
# the error past 0.1 (see test_one_rank_alone_is_not_the_answer).
TOL = {torch.bfloat16: 2e-2, torch.float16: 1e-3}


def _shape(model):
    s = load_model(MODELS[model])
    return s.num_experts, s.top_k, s.hidden_size, s.moe_intermediate_size


def _moe(x, shard, tw, ids, E, expert_map=None):
    w13, s13, w2, s2 = shard
    return fused_experts_w8a16(x, w13, w2, fold_fp8_scale_for_fp16_bits(s13), fold_fp8_scale_for_fp16_bits(s2),
                               tw, ids, block_shape=BLOCK, global_num_experts=E, expert_map=expert_map,
                               arch_family="rdna3")


def _tp2(experts, E, I, x, tw, ids):
    half = I // 2
    return [_moe(x, experts.shard(E, lambda e: e, slice(r * half, (r + 1) * half)), tw, ids, E) for r in range(2)]


def _ep2(experts, E, I, x, tw, ids):
    per = E // 2
    outs = []
    for r in range(2):
        emap = torch.full((E,), -1, dtype=torch.int32)
        emap[r * per:(r + 1) * per] = torch.arange(per, dtype=torch.int32)
        local = experts.shard(per, lambda e, r=r: e - r * per if r * per <= e < (r + 1) * per else None,
                              slice(0, I))
        outs.append(_moe(x, local, tw, ids, E, expert_map=emap))
    return outs


CASES = [  # (model, parallel, M, hidden override, dtype, padded rows)
    ("qwen3-next-80b", "tp", 1, None, torch.bfloat16, 0),
    ("qwen3.6-35b", "ep", 1, None, torch.bfloat16, 0),
    ("qwen3-next-80b", "ep", 3, 256, torch.float16, 1),
    ("qwen3.6-35b", "tp", 4, 256, torch.float16, 1),
]


@pytest.mark.parametrize("model,parallel,M,hidden,dtype,padded", CASES,
                         ids=[f"{c[0]}-{c[1]}2-M{c[2]}-H{c[3] or 'full'}" for c in CASES])
def test_two_ranks_sum_to_the_unsharded_moe(model, parallel, M, hidden, dtype, padded):
    E, top_k, H, I = _shape(model)
    H = hidden or H
    g = torch.Generator().manual_seed(M * 7 + E)
    ids, tw = route(M, E, top_k, g, padded_rows=padded)
    experts = Experts(ids.reshape(-1).tolist(), H, I, g)
    x = torch.randn(M, H, generator=g).to(dtype)
    outs = (_tp2 if parallel == "tp" else _ep2)(experts, E, I, x, tw, ids)
    ref = experts.reference(x, tw, ids, dtype)
    real = slice(0, M - padded)
    assert rel_err(outs[0][real].double() + outs[1][real].double(), ref[real]) < TOL[dtype]
    for out in outs:
        assert (out[M - padded:] == 0).all(), "a padded row (routes -1) must produce zeros"
    if parallel == "ep":  # each rank's share is exactly its experts' routes
        per = E // 2
        for r, out in enumerate(outs):
            mine = torch.where((ids >= r * per) & (ids < (r + 1) * per), ids, torch.full_like(ids, -1))
            assert rel_err(out[real].double(), experts.reference(x, tw, mine, dtype)[real]) < TOL[dtype]


def test_one_rank_alone_is_not_the_answer():
    """The check above can fail: one rank's partial output is far from the full MoE output."""
    E, top_k, _, I = _shape("qwen3.6-35b")
    g = torch.Generator().manual_seed(3)
    ids, tw = route(2, E, top_k, g)
    experts = Experts(ids.reshape(-1).tolist(), 256, I, g)
    x = torch.randn(2, 256, generator=g).half()
    ref = experts.reference(x, tw, ids, torch.float16)
    for outs in (_tp2(experts, E, I, x, tw, ids), _ep2(experts, E, I, x, tw, ids)):
        assert min(rel_err(o.double(), ref) for o in outs) > 0.1
