"""MoE W8A16 numerics in Triton's interpreter against float64 references.

Shapes are the four target models scaled down (expert counts and widths divided; the
ratios that matter kept: top-k vs E for naive/sorted routing, K and N relative to the
128x128 scale blocks, TP shards giving partial blocks)."""
import os

# The kernels run in Triton's CPU interpreter; it must be on before they are decorated.
os.environ.setdefault("TRITON_INTERPRET", "1")
import pytest
import torch

from rocm_enable.ops import config as cfgmod
from rocm_enable.ops.fp8_dequant import fold_fp8_scale_for_fp16_bits
from rocm_enable.ops.moe_align import moe_align
from rocm_enable.ops.moe_w8a16 import (fused_experts_w8a16, moe_gemm_w8a16, moe_routing_for,
                                       workspace_sizes)
from w8a16_testutil import (REL_TOL, interpreted_moe_bucket, moe_reference, rand_fp8, rand_scale, rel_err,
                            single_launch_family)

# name: (E, top_k, hidden, moe_intermediate)  -- scaled-down
#   Qwen3-Next-80B-A3B / Qwen3-Coder-Next: E=512 top-10 hidden 2048 inter 512
#   Qwen3.6-35B-A3B: E=256 top-8 hidden 2048 inter 512
# Routing (naive while pairs * 4 <= E) and the bucket (config.moe_bucket_m: pairs per expert)
# depend on M * top_k / E only, so E and top_k are halved together from (48, 10) / (24, 8): the
# same decisions for every M here (qwen3next naive at M=1, qwen36_35b sorted already at M=1),
# half the interpreted programs.
MODELS = {
    "qwen3next": (24, 5, 128, 256),
    "qwen36_35b": (12, 4, 128, 256),
}
TP = [1, 2, 4]  # the intermediate dim is sharded: 256 -> 128 -> 64 (partial 128-blocks)


def _run(model, tp, M, dtype, scale_kind, seed, arch="rdna3", on_input=False, expert_map=None,
         vllm_workspaces=False, ids_fix=None):
    """Relative error of fused_experts_w8a16 against moe_reference. vllm_workspaces: pass
    workspaces of workspace_sizes() with the output aliased onto workspace13, as vLLM's modular
    kernel does; ids_fix(ids) edits the routing (e.g. padded routes)."""
    E, top_k, H, I = MODELS[model] if isinstance(model, str) else model
    I //= tp
    g = torch.Generator().manual_seed(seed)
    if on_input:
        top_k = 1
    x = torch.randn(M, H, generator=g).to(dtype)
    w13, w2 = rand_fp8(E, 2 * I, H, gen=g), rand_fp8(E, H, I, gen=g)
    s13 = rand_scale(scale_kind, E, 2 * I, H, gen=g)
    s2 = rand_scale(scale_kind, E, H, I, gen=g)
    ids = torch.stack([torch.randperm(E, generator=g)[:top_k] for _ in range(M)])
    if ids_fix is not None:
        ids = ids_fix(ids)
    tw = torch.rand(M, top_k, generator=g) + 0.1
    bs = [128, 128] if scale_kind == "block" else None
    if expert_map is not None:  # this rank holds the experts whose map entry >= 0
        keep = expert_map >= 0
        w13, w2, s13, s2 = w13[keep], w2[keep], s13[keep], s2[keep]
    ws13 = ws2 = None
    out = torch.full((M, H), float("nan"), dtype=dtype)
    if vllm_workspaces:
        n13, n2 = workspace_sizes(M, top_k, I, H)
        ws13 = torch.full((max(n13, M * H),), float("nan"), dtype=dtype)
        ws2 = torch.full((n2,), float("nan"), dtype=dtype)
        out = ws13[:M * H].view(M, H)  # vLLM's modular kernel may alias the output so
    fused_experts_w8a16(x, w13, w2, fold_fp8_scale_for_fp16_bits(s13), fold_fp8_scale_for_fp16_bits(s2),
                        tw, ids, block_shape=bs, apply_router_weight_on_input=on_input,
                        global_num_experts=E, expert_map=expert_map, output=out, arch_family=arch,
                        workspace13=ws13, workspace2=ws2)
    valid = ids >= 0
    ref = moe_reference(x, w13, w2, s13, s2, tw, ids.clamp_min(0), bs, dtype, on_input=on_input,
                        expert_map=expert_map, route_mask=valid)
    return rel_err(out, ref)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("tp", TP)
@pytest.mark.parametrize("M", [1, 3, 17])
def test_moe_block_scales_fp16(model, tp, M):
    assert _run(model, tp, M, torch.float16, "block", seed=100 * tp + M) < REL_TOL[torch.float16]


@pytest.mark.parametrize("M", [1, 17])
@pytest.mark.parametrize("model", list(MODELS))
def test_moe_block_scales_bf16(model, M):
    assert _run(model, 2, M, torch.bfloat16, "block", seed=7 + M) < REL_TOL[torch.bfloat16]


@pytest.mark.parametrize("scale_kind", ["channel", "channel1", "tensor"])
@pytest.mark.parametrize("M", [1, 17])
def test_moe_channel_and_tensor_scales(scale_kind, M):
    assert _run("qwen36_35b", 1, M, torch.float16, scale_kind, seed=11 + M) < REL_TOL[torch.float16]


# scaled-down layers whose small M reach every bucket through config.moe_bucket_m: few experts
# per token (E=128, top-4) maps M 1..8 to naive buckets (reference M 1..4) and M >= 9 to sorted ones;
# qwen3next's halved 24/5 reaches every bucket at the same M as 48/10 did (naive at M=1 only,
# sorted buckets by pairs per expert), with half the interpreted programs
BUCKET_SHAPES = [MODELS["qwen3next"], (128, 4, 128, 128)]


def _m_for_bucket(arch, bucket):
    """The smallest (shape, M) of BUCKET_SHAPES whose call the bucket serves."""
    buckets = cfgmod.load_shipped(arch)["moe"]
    for M in range(1, 1024):
        for shape in BUCKET_SHAPES:
            if cfgmod.get_moe_config(arch, M, shape[0], shape[1]) is buckets[bucket]:
                return shape, M
    raise AssertionError(f"{arch} bucket {bucket} serves no M < 1024 of {BUCKET_SHAPES}")


def _shipped_moe_cases():
    """[(family, bucket), ...] per distinct interpreted launch: families whose bucket serves the
    same call with the same tiles (interpreted_moe_bucket) run it once, named after all of them."""
    cases = {}
    for fam in cfgmod.ARCH_FAMILIES:
        d = cfgmod.load_shipped(fam)
        for i in range(len(d["moe"])):
            shape, M = _m_for_bucket(fam, i)
            key = (shape, M, interpreted_moe_bucket(d, M, shape[0], shape[1]))
            cases.setdefault(key, []).append((fam, i))
    return list(cases.values())


@pytest.mark.parametrize("served", _shipped_moe_cases(), ids=lambda s: "+".join(f"{f}-{i}" for f, i in s))
def test_every_shipped_moe_config(served):
    """Each family's bucket serves one call here, so every shipped tile is exercised (once per
    distinct interpreted launch)."""
    arch, bucket = served[0]
    shape, M = _m_for_bucket(arch, bucket)
    assert _run(shape, 1, M, torch.float16, "block", seed=bucket, arch=arch) < REL_TOL[torch.float16]


DECODE_SHAPE = (64, 2, 128, 256)  # M*top_k*4 <= 64: naive


def _decode_cases():
    """(M, family, single_launch) per distinct interpreted launch of DECODE_SHAPE (see
    interpreted_moe_bucket), with the ids of every (family, single_launch) it stands for."""
    cases = {}
    for M in (1, 3):
        for fam in cfgmod.ARCH_FAMILIES:
            for single_launch in (False, True):
                d = single_launch_family(fam)(fam) if single_launch else cfgmod.load_shipped(fam)
                key = (M, interpreted_moe_bucket(d, M, DECODE_SHAPE[0], DECODE_SHAPE[1]))
                cases.setdefault(key, []).append((M, fam, single_launch))
    return [pytest.param(*same[0], id=f"{same[0][0]}-" + "+".join(f"{f}{'-single' if s else ''}" for _, f, s in same))
            for same in cases.values()]


@pytest.mark.parametrize("M,arch,single_launch", _decode_cases())
def test_decode_topk_sum_in_gemv_with_vllm_workspaces(arch, M, single_launch, monkeypatch):
    """Naive routing with GEMV buckets: the w2 GEMV sums the top-k itself (activation and fp32
    partials in workspace2), with the output aliased onto workspace13 as vLLM may alias it, and
    padded routes (-1: one slot at M=1, the whole last token at M=3) that must add nothing. Run
    once per distinct interpreted launch over the families, with and without single_launch."""
    def pad(ids):
        if len(ids) > 1:
            ids[-1] = -1
        ids[0, -1] = -1
        return ids
    if single_launch:  # the whole layer in w8a16_moe_decode_kernel
        monkeypatch.setattr(cfgmod, "load_family", single_launch_family(arch))
    assert _run(DECODE_SHAPE, 1, M, torch.bfloat16, "block", seed=40 + M, arch=arch, vllm_workspaces=True,
                ids_fix=pad) < REL_TOL[torch.bfloat16]
    from rocm_enable.ops import moe_w8a16
    assert all(not t.any() for t in moe_w8a16._COUNTERS.values()), "tickets/counters left non-zero"


@pytest.mark.parametrize("case", ["expert_map", "on_input"])
def test_single_launch_decode_expert_map_and_weight_on_input(case, monkeypatch):
    monkeypatch.setattr(cfgmod, "load_family", single_launch_family("rdna3"))
    if case == "expert_map":
        E = MODELS["qwen3next"][0]
        emap = torch.full((E,), -1, dtype=torch.int32)
        emap[torch.arange(0, E, 2)] = torch.arange(E // 2, dtype=torch.int32)
        err = _run("qwen3next", 1, 1, torch.float16, "block", seed=5, expert_map=emap)
    else:
        err = _run((64, 1, 128, 256), 1, 2, torch.float16, "block", seed=3, on_input=True)
    assert err < REL_TOL[torch.float16]


def test_router_weight_on_input():
    # top-1 (weight on input) over 24 experts: 5 tokens route naively
    assert _run((24, 1, 128, 256), 1, 5, torch.float16, "block", seed=3, on_input=True) < REL_TOL[torch.float16]


@pytest.mark.parametrize("model,M", [("qwen36_35b", 1), ("qwen36_35b", 9), ("qwen3next", 1)])
def test_expert_parallel_map(model, M):
    """qwen3next M=1 is naive routing (the GEMV sums the top-k, non-local slots add zeros)."""
    E = MODELS[model][0]
    emap = torch.full((E,), -1, dtype=torch.int32)
    held = torch.arange(0, E, 2)  # this rank holds the even experts
    emap[held] = torch.arange(held.numel(), dtype=torch.int32)
    assert _run(model, 1, M, torch.float16, "block", seed=5, expert_map=emap) < REL_TOL[torch.float16]


@pytest.mark.parametrize("naive", [True, False])
@pytest.mark.parametrize("c_shape", ["flat", "3d"])
def test_moe_gemm_writes_caller_buffer(naive, c_shape):
    """Lower-level launcher into a caller-provided C ([M*topk, N] or [M, topk, N]), poisoned
    with NaN; w2-style call (top_k=1 rows are pairs) with the routed weight multiplied in."""
    g = torch.Generator().manual_seed(21)
    E, top_k, M, N, K = 12, 3, 5, 192, 256
    a = torch.randn(M * top_k, K, generator=g).half()
    w = rand_fp8(E, N, K, gen=g)
    s = rand_scale("block", E, N, K, gen=g)
    ids = torch.stack([torch.randperm(E, generator=g)[:top_k] for _ in range(M)])
    tw = torch.rand(M, top_k, generator=g)
    bm = cfgmod.get_moe_config("rdna3", M)["BLOCK_M"]
    routing = moe_align(ids, bm, E, naive=naive)
    c = torch.full((M, top_k, N) if c_shape == "3d" else (M * top_k, N), float("nan"), dtype=torch.float16)
    moe_gemm_w8a16(a, w, fold_fp8_scale_for_fp16_bits(s), c, routing, top_k=1, gemm="w2",
                   block_shape=[128, 128], topk_weights=tw, arch_family="rdna3", num_tokens=M)
    from rocm_enable.ops.fp8_dequant import dequant_fp8_reference
    W = dequant_fp8_reference(w, s, [128, 128])
    ref = torch.einsum("pk,pnk->pn", a.double(), W[ids.reshape(-1)]) * tw.reshape(-1, 1).double()
    assert rel_err(c.reshape(M * top_k, N), ref) < REL_TOL[torch.float16]


def test_align_matches_naive_definition():
    """Sorted routing: each expert's pairs appear exactly once, in blocks of that expert."""
    g = torch.Generator().manual_seed(4)
    E, M, top_k, bm = 16, 37, 4, 16
    ids = torch.stack([torch.randperm(E, generator=g)[:top_k] for _ in range(M)])
    r = moe_align(ids, bm, E)
    n = ids.numel()
    total = int(r.num_tokens_post_padded)
    st = r.sorted_token_ids[:total]
    valid = st[st < n].long()
    assert sorted(valid.tolist()) == list(range(n))
    for b in range(total // bm):
        blk = r.sorted_token_ids[b * bm:(b + 1) * bm].long()
        blk = blk[blk < n]
        assert (ids.reshape(-1)[blk] == r.expert_ids[b]).all()
    assert r.num_blocks * bm >= total and (r.sorted_token_ids[total:] == n).all()


@pytest.mark.parametrize("naive", [True, False])
def test_padding_routes_marked_minus_one_contribute_zero(naive):
    """vLLM's routers mark padded rows' routes -1 (VLLM_MOE_SKIP_PADDING): both routings must
    accept them and write zeros for those pairs, and route every other pair normally."""
    g = torch.Generator().manual_seed(31)
    E, top_k, M, N, K = 10, 3, 6, 128, 256
    a = torch.randn(M * top_k, K, generator=g).half()
    w = rand_fp8(E, N, K, gen=g)
    s = rand_scale("block", E, N, K, gen=g)
    ids = torch.stack([torch.randperm(E, generator=g)[:top_k] for _ in range(M)])
    ids[M - 2:] = -1  # two padded tokens
    routing = moe_align(ids, 16, E, naive=naive)
    c = torch.full((M * top_k, N), float("nan"), dtype=torch.float16)
    moe_gemm_w8a16(a, w, fold_fp8_scale_for_fp16_bits(s), c, routing, top_k=1, gemm="w2",
                   block_shape=[128, 128], arch_family="rdna3", num_tokens=M)
    from rocm_enable.ops.fp8_dequant import dequant_fp8_reference
    W = dequant_fp8_reference(w, s, [128, 128])
    flat = ids.reshape(-1)
    real = flat >= 0
    ref = torch.einsum("pk,pnk->pn", a[real].double(), W[flat[real]])
    assert rel_err(c[real], ref) < REL_TOL[torch.float16]
    assert (c[~real] == 0).all()
