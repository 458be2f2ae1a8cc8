"""The W8A16 layers as vLLM runs them: torch.compile-opaque custom ops, and host code that a
CUDA/HIP graph can capture at every batch size vLLM captures.

(a) torch.compile(fullgraph=True) of a module calling torch.ops.rocm_enable.w8a16_linear and
    w8a16_fused_experts: one graph, both ops as single nodes (fullgraph raises on a break), the
    real ops run in Triton's interpreter and match eager bit for bit.
(b) graph_guard.run_guarded: the layers' host code on fake tensors under a mode that refuses
    host syncs and data-dependent shapes, at vLLM's default capture sizes, sorted and naive
    routing, with and without an expert map; negative controls show the guard fails on the
    old bincount align's ops.
(c) the launches per layer (docs/kernels.md) and the vLLM-layout align against vLLM's golden
    reference (tests/kernels/moe/test_moe_align_block_size.py's torch_moe_align_block_size).
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
import pytest
import torch

from graph_guard import HostSyncError, run_guarded
from rocm_enable.ops import config as cfgmod
from rocm_enable.ops import w8a16_ops  # noqa: F401  (registers torch.ops.rocm_enable.*)
from rocm_enable.ops.fp8_dequant import fold_fp8_scale_for_fp16_bits
from rocm_enable.ops.linear_w8a16 import linear_w8a16
from rocm_enable.ops.moe_align import moe_align, vllm_moe_align_block_size
from rocm_enable.ops.moe_w8a16 import fused_experts_w8a16, workspace_sizes
from w8a16_testutil import rand_fp8, rand_scale, single_launch_family

# vLLM's default CUDA-graph capture sizes (max_cudagraph_capture_size 512)
CAPTURE_SIZES = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, 513, 16))
# (E, top_k, hidden, intermediate per shard): Qwen3-Next TP-2 shard and Qwen3.6-35B-A3B
LAYERS = {"qwen3next-tp2": (512, 10, 2048, 256), "qwen36-35b": (256, 8, 2048, 512)}


def _moe_inputs(E, top_k, H, I, M, dtype=torch.bfloat16, expert_map=False):
    ids = torch.zeros(M, top_k, dtype=torch.int32)
    emap = None
    local = E
    if expert_map:
        local = E // 2
        emap = torch.full((E,), -1, dtype=torch.int32)
    w13 = torch.empty(local, 2 * I, H, dtype=torch.float8_e4m3fn)
    w2 = torch.empty(local, H, I, dtype=torch.float8_e4m3fn)
    s13 = torch.empty(local, 2 * I // 128, H // 128)
    s2 = torch.empty(local, H // 128, -(-I // 128))
    ws13, ws2 = workspace_sizes(M, top_k, I, H)
    return (torch.empty(M, H, dtype=dtype), w13, w2, s13, s2, torch.empty(M, top_k, dtype=dtype), ids,
            emap, torch.empty(M, H, dtype=dtype), torch.empty(ws13, dtype=dtype),
            torch.empty(ws2, dtype=dtype))


def _moe_call(family, E):
    def call(x, w13, w2, s13, s2, tw, ids, emap, out, ws13, ws2):
        fused_experts_w8a16(x, w13, w2, s13, s2, tw, ids, block_shape=[128, 128],
                            global_num_experts=E, expert_map=emap, output=out, arch_family=family,
                            workspace13=ws13, workspace2=ws2)
    return call


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("family", cfgmod.ARCH_FAMILIES)
def test_moe_host_code_is_capture_safe_at_every_capture_size(layer, family):
    E, top_k, H, I = LAYERS[layer]
    kinds = set()
    for M in CAPTURE_SIZES:
        mapped = M % 3 == 0
        launches = run_guarded(lambda: _moe_inputs(E, top_k, H, I, M, expert_map=mapped),
                               _moe_call(family, E))
        names = [name for name, _ in launches.triton]
        naive = M * top_k * cfgmod.naive_sparsity(family) <= E
        kinds.add("naive" if naive else "sorted")
        # naive routing without a map reads topk_ids as the expert ids: no align launch
        assert (names[0] == "moe_align_kernel" and launches.triton[0][1] == (1,)) == (mapped or not naive)
        # the align, the GEMMs (+ SiLU when unfused), the A_SPLIT activation copies of prefill
        # buckets and the top-k sum; the zeroed tickets of the top-k-summing GEMV (allocated once
        # per device, kept zero by the kernel)
        assert len(names) <= 4 and {str(op) for op in launches.torch_ops} <= {
            "aten.sum.IntList_out", "aten.copy_.default", "aten.zeros.default"}
    assert kinds == {"naive", "sorted"}, "both routings must be exercised"


@pytest.mark.parametrize("family", cfgmod.ARCH_FAMILIES)
def test_linear_host_code_is_capture_safe(family):
    for M in CAPTURE_SIZES[::4] + [512, 2048]:
        launches = run_guarded(
            lambda: (torch.empty(M, 2048, dtype=torch.bfloat16),
                     torch.empty(4096, 2048, dtype=torch.float8_e4m3fn), torch.empty(32, 16)),
            lambda x, w, s: linear_w8a16(x, w, s, block_shape=[128, 128], arch_family=family))
        # the GEMM; A_SPLIT buckets' two activation copies; split-K's zeroed tickets (allocated
        # once per device and kept zero by the kernel)
        assert len(launches.triton) == 1
        assert {str(op) for op in launches.torch_ops} <= {"aten.copy_.default", "aten.zeros.default"}


def _bincount_align(ids):  # the align this repository shipped before (moe_align's bincount path)
    counts = torch.bincount(ids.reshape(-1).long(), minlength=8)
    return torch.empty(int(counts.max()))


@pytest.mark.parametrize("body", [
    _bincount_align,
    lambda ids: ids.reshape(-1).nonzero(),
    lambda ids: ids[ids >= 0],
    lambda ids: torch.empty(int(ids.sum())),
    lambda ids: ids.sum().item(),
    lambda ids: torch.unique(ids),
], ids=["bincount-align", "nonzero", "bool-mask", "size-from-data", "item", "unique"])
def test_guard_refuses_host_syncs(body):
    """Negative controls: each op the issue names makes the guard fail."""
    with pytest.raises((HostSyncError, RuntimeError)):
        run_guarded(lambda: (torch.zeros(4, 2, dtype=torch.int32),), body)


@pytest.mark.parametrize("family", cfgmod.ARCH_FAMILIES)
def test_launches_per_layer(family):
    """The counts docs/kernels.md states: decode (naive routing, no align launch, fused SiLU, GEMV
    buckets): the two GEMVs, the w2 GEMV summing the top-k in its epilogue, nothing else;
    prefill (sorted routing): align + GEMMs (+ SiLU, + A_SPLIT's two copies where the bucket has
    them) + the top-k sum."""
    E, top_k, H, I = LAYERS["qwen36-35b"]
    counts = {}
    for M in (1, 512):
        launches = run_guarded(lambda: _moe_inputs(E, top_k, H, I, M), _moe_call(family, E))
        counts[M] = ([n for n, _ in launches.triton], [str(op) for op in launches.torch_ops])
    decode = cfgmod.get_moe_config(family, 1, E, top_k)
    assert decode["w13"].get("kernel") == decode["w2"].get("kernel") == "gemv"
    ticket_buffer = ["aten.zeros.default"]  # once per device (the guard starts without one)
    assert counts[1][0] == ["w8a16_gemv_kernel", "w8a16_gemv_kernel"]
    assert counts[1][1] in ([], ticket_buffer)
    prefill = cfgmod.get_moe_config(family, 512, E, top_k)
    # with the decode bucket's single_launch (not shipped on): the whole layer is one launch
    real = cfgmod.load_family
    try:
        cfgmod.load_family = single_launch_family(family)
        one = run_guarded(lambda: _moe_inputs(E, top_k, H, I, 1), _moe_call(family, E))
    finally:
        cfgmod.load_family = real
    assert [n for n, _ in one.triton] == ["w8a16_moe_decode_kernel"]
    assert [str(op) for op in one.torch_ops] in ([], ticket_buffer)
    a_split = prefill["w13"].get("a_split") and 2 or 0
    assert counts[512][0][0] == "moe_align_kernel" and len(counts[512][0]) == (3 if prefill["fuse_silu"] else 4)
    assert counts[512][1] == ["aten.copy_.default"] * a_split + ["aten.sum.IntList_out"]


# ---- torch.compile: the custom ops are single opaque nodes ----------------------------------

class _Block(torch.nn.Module):
    """A dense FP8 projection feeding the W8A16 experts, as a decoder layer chains them."""

    def __init__(self, E=8, top_k=2, H=128, I=128):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.E = E
        self.w = rand_fp8(H, H, gen=g)
        self.s = fold_fp8_scale_for_fp16_bits(rand_scale("block", None, H, H, gen=g))
        self.w13, self.w2 = rand_fp8(E, 2 * I, H, gen=g), rand_fp8(E, H, I, gen=g)
        self.s13 = fold_fp8_scale_for_fp16_bits(rand_scale("block", E, 2 * I, H, gen=g))
        self.s2 = fold_fp8_scale_for_fp16_bits(rand_scale("block", E, H, I, gen=g))

    def forward(self, x, topk_weights, topk_ids):
        h = torch.ops.rocm_enable.w8a16_linear(x, self.w, self.s, [128, 128], None, "rdna3")
        out = torch.empty_like(h)
        none = h.new_empty(0)
        torch.ops.rocm_enable.w8a16_fused_experts(out, h, self.w13, self.w2, self.s13, self.s2,
                                                   topk_weights, topk_ids, None, none, none,
                                                   [128, 128], False, self.E, "rdna3")
        return out + x


def test_compile_fullgraph_no_graph_break():
    block = _Block()
    g = torch.Generator().manual_seed(5)
    M = 6  # 12 routes * naive_sparsity > 8 experts: the sorted path, align included
    x = torch.randn(M, 128, generator=g).to(torch.bfloat16)
    tw = torch.rand(M, 2, generator=g)
    ids = torch.stack([torch.randperm(8, generator=g)[:2] for _ in range(M)]).int()
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    eager = block(x, tw, ids)
    torch._dynamo.reset()
    out = torch.compile(block, fullgraph=True, backend=capture)(x, tw, ids)
    assert len(graphs) == 1
    targets = {str(n.target).removesuffix(".default") for n in graphs[0].graph.nodes
               if n.op == "call_function"}
    assert {"rocm_enable.w8a16_linear", "rocm_enable.w8a16_fused_experts"} <= targets, targets
    assert torch.equal(out, eager)
    # through AOT autograd too (functionalization of the mutating op, fake implementations)
    torch._dynamo.reset()
    assert torch.equal(torch.compile(block, fullgraph=True, backend="aot_eager")(x, tw, ids), eager)


# ---- the vLLM-layout align (record moe-align-code-object) against vLLM's golden reference ----

def _golden(topk_ids, block_size, num_experts, max_len, expert_map=None):
    """vLLM's tests/kernels/moe torch_moe_align_block_size, restated: stable sort by expert,
    groups padded to block_size with numel, expert id per block, zeros past the end; with the
    expert map passed to the op (ignore_invalid_experts), unmapped routes are left out and ids
    are local."""
    flat = topk_ids.reshape(-1).long()
    n = flat.numel()
    keys = flat if expert_map is None else expert_map.long()[flat]
    sorted_ids = torch.full((max_len,), n, dtype=torch.int32)
    expert_ids = torch.zeros(-(-max_len // block_size), dtype=torch.int32)
    pos = 0
    for e in range(num_experts):
        routes = (keys == e).nonzero().flatten()
        if routes.numel() == 0:
            continue
        sorted_ids[pos:pos + routes.numel()] = routes.int()
        blocks = -(-routes.numel() // block_size)
        expert_ids[pos // block_size:pos // block_size + blocks] = e
        pos += blocks * block_size
    return sorted_ids, expert_ids, torch.tensor([pos], dtype=torch.int32)


@pytest.mark.parametrize("m,topk,num_experts,block_size", [
    (1, 1, 32, 16), (3, 2, 160, 32), (37, 8, 64, 16), (256, 4, 257, 64), (100, 10, 512, 32)])
@pytest.mark.parametrize("with_map", [False, True])
def test_vllm_align_matches_golden_reference(m, topk, num_experts, block_size, with_map):
    g = torch.Generator().manual_seed(m * topk + num_experts)
    ids = torch.stack([torch.randperm(num_experts, generator=g)[:topk] for _ in range(m)]).int()
    emap = None
    if with_map:
        emap = torch.full((num_experts,), -1, dtype=torch.int32)
        held = torch.arange(0, num_experts, 2)
        emap[held] = torch.arange(held.numel(), dtype=torch.int32)
    # buffer sizes exactly as vllm moe_align_block_size computes them
    max_len = ids.numel() + num_experts * (block_size - 1)
    if ids.numel() < num_experts:
        max_len = min(ids.numel() * block_size, max_len)
    sorted_ids = torch.full((max_len,), -7, dtype=torch.int32)
    expert_ids = torch.full((-(-max_len // block_size),), -7, dtype=torch.int32)
    ntpp = torch.full((1,), -7, dtype=torch.int32)
    scatter = torch.full((ids.numel(), 1), -7, dtype=torch.int32)
    vllm_moe_align_block_size(ids, num_experts, block_size, sorted_ids, expert_ids, ntpp, emap,
                              scatter)
    want = _golden(ids, block_size, num_experts, max_len, emap)
    assert torch.equal(ntpp, want[2]) and torch.equal(expert_ids, want[1])
    assert torch.equal(sorted_ids, want[0])
    valid = torch.ones(ids.numel(), dtype=torch.bool) if emap is None else emap[ids.reshape(-1).long()] >= 0
    assert torch.equal(scatter.flatten(), torch.where(valid, torch.arange(ids.numel()), -1).int())


def test_padded_routes_are_left_out_of_vllm_layout():
    """Routes marked -1 (vLLM's padded rows) take no slot and no block."""
    ids = torch.tensor([[0, 3], [-1, -1], [3, 1]], dtype=torch.int32)
    sorted_ids = torch.empty(6 + 4 * 3, dtype=torch.int32)
    expert_ids = torch.empty(9, dtype=torch.int32)
    ntpp = torch.empty(1, dtype=torch.int32)
    vllm_moe_align_block_size(ids, 4, 2, sorted_ids, expert_ids, ntpp)
    assert ntpp.tolist() == [6]
    assert sorted_ids[:6].tolist() == [0, 6, 5, 6, 1, 4] and (sorted_ids[6:] == 6).all()
    assert expert_ids.tolist() == [0, 1, 3, 0, 0, 0, 0, 0, 0]


def test_align_one_launch_routing_used_by_the_gemm():
    """moe_align (the GEMMs' routing) places invalid routes in -1 blocks so their rows get zeros."""
    ids = torch.tensor([[2, -1], [0, 2]], dtype=torch.int32)
    r = moe_align(ids, 2, 3)
    assert r.num_tokens_post_padded.tolist() == [6]
    assert r.sorted_token_ids[:6].tolist() == [2, 4, 0, 3, 1, 4]
    assert r.expert_ids[:3].tolist() == [0, 2, -1]
