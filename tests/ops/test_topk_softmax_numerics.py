"""rocm_enable.ops.topk_softmax (record topk-softmax-code-object) in Triton's interpreter against a
float64 reference, its tie rule, its graph safety, and the launches of the MoE block at M=1.

Reference: softmax in float64 over all experts; the top-k by a stable descending sort of the
logits (equal logits: the lower expert id first, vLLM's CUDA kernel's rule); weights the
float64 probabilities, renormalised in float64 when asked.
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
import pytest
import torch

from graph_guard import run_guarded
from rocm_enable.ops import config as cfgmod
from rocm_enable.ops.moe_w8a16 import fused_experts_w8a16, workspace_sizes
from rocm_enable.ops.topk_softmax import MAX_EXPERTS, route_with_shared, topk_softmax

# vLLM's default CUDA-graph capture sizes (max_cudagraph_capture_size 512)
CAPTURE_SIZES = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, 513, 16))
# (experts, top_k, hidden, intermediate per shard): Qwen3.6-35B-A3B, Qwen3-Next TP-2 shard
MODELS = {"qwen36-35b": (256, 8, 2048, 512), "qwen3next-tp2": (512, 10, 2048, 256)}


def _reference(logits, k, renormalize):
    x = logits.double()
    x = torch.where(torch.isnan(x), float("-inf"), x)
    p = torch.softmax(x, dim=-1)
    order = torch.sort(x + 0.0, dim=-1, descending=True, stable=True).indices[:, :k]
    w = torch.gather(p, 1, order)
    if renormalize:
        w = w / w.sum(dim=-1, keepdim=True)
    return w, order


def _outputs(m, k, ids_dtype=torch.int32):
    return (torch.full((m, k), -7.0), torch.full((m, k), -7, dtype=ids_dtype),
            torch.full((m, k), -7, dtype=torch.int32))


def _check(logits, k, renormalize, ids_dtype=torch.int32):
    m = logits.shape[0]
    w, ids, tei = _outputs(m, k, ids_dtype)
    topk_softmax(w, ids, tei, logits, renormalize)
    ref_w, ref_ids = _reference(logits, k, renormalize)
    assert ids.dtype == ids_dtype and torch.equal(ids.long(), ref_ids)
    torch.testing.assert_close(w.double(), ref_w, rtol=2e-6, atol=1e-7)
    rows = torch.arange(m).unsqueeze(1)
    assert torch.equal(tei, (torch.arange(k).unsqueeze(0) * m + rows).int())
    return w, ids


@pytest.mark.parametrize("m,e,k", [(1, 256, 8), (1, 512, 10), (7, 128, 8), (3, 60, 4), (5, 8, 1),
                                   (2, 4, 4), (3, 1024, 6)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("renormalize", [True, False])
def test_matches_float64_reference(m, e, k, dtype, renormalize):
    g = torch.Generator().manual_seed(m * 1000 + e * 10 + k)
    logits = (torch.randn(m, e, generator=g) * 3).to(dtype)
    w, _ = _check(logits, k, renormalize)
    if renormalize:
        torch.testing.assert_close(w.sum(-1), torch.ones(m), rtol=1e-6, atol=1e-6)


def test_index_dtype_of_the_experts_and_strided_tensors():
    """vLLM passes the experts' index dtype (int64 here) and may hand a strided router output."""
    g = torch.Generator().manual_seed(11)
    wide = torch.randn(6, 2 * 128, generator=g).to(torch.bfloat16)
    logits = wide[:, ::2]  # row stride 256, expert stride 2
    _check(logits, 8, True, ids_dtype=torch.int64)
    w_base, ids_base, tei_base = torch.zeros(6, 16), torch.zeros(6, 16, dtype=torch.int32), torch.zeros(
        6, 16, dtype=torch.int32)
    w, ids, tei = w_base[:, 3:11], ids_base[:, 3:11], tei_base[:, 3:11]  # row stride 16
    topk_softmax(w, ids, tei, logits, True)
    ref_w, ref_ids = _reference(logits, 8, True)
    assert torch.equal(ids.long(), ref_ids)
    torch.testing.assert_close(w.double(), ref_w, rtol=2e-6, atol=1e-7)
    assert (w_base[:, :3] == 0).all() and (w_base[:, 11:] == 0).all()  # nothing outside the view


def test_ties_take_the_lower_expert_id():
    logits = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0], [2.0, -0.0, 0.0, 2.0],
                           [-1.0, 5.0, -1.0, -1.0]], dtype=torch.bfloat16)
    w, ids = _check(logits, 2, False)
    assert ids.tolist() == [[0, 1], [1, 2], [0, 3], [1, 0]]
    # torch.topk chooses other ids among equal values (unspecified order) but the same weights
    ref = torch.topk(torch.softmax(logits.float(), -1), 2)
    torch.testing.assert_close(w, ref.values, rtol=1e-6, atol=0)
    _check(logits, 3, True)  # -0.0 and 0.0 tie: the lower id (1) first


def test_bf16_router_ties_at_model_scale():
    """bf16 router logits over 256 experts tie often; every tie goes to the lower expert id."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(64, 256, generator=g).to(torch.bfloat16)
    ref_w, ref_ids = _reference(logits, 8, True)
    w, ids, tei = _outputs(64, 8)
    topk_softmax(w, ids, tei, logits, True)
    tied_rows = sum(int(torch.unique(logits[r].float()[ref_ids[r]]).numel() < 8) for r in range(64))
    assert tied_rows > 0, "the seed must produce ties for this check to mean anything"
    assert torch.equal(ids.long(), ref_ids)


def test_nan_and_infinite_logits():
    logits = torch.tensor([[float("nan"), 1.0, 0.5, float("-inf")],
                           [float("inf"), 0.0, 1.0, 2.0]], dtype=torch.float32)
    w, ids, tei = _outputs(2, 3)
    topk_softmax(w, ids, tei, logits, False)
    assert ids.tolist() == [[1, 2, 0], [0, 3, 2]]  # NaN counts as -inf, ties to the lower id
    assert w[0, 2] == 0 and torch.isfinite(w[0]).all()


def test_no_rows_launches_nothing_and_bad_tensors_are_named():
    w, ids, tei = _outputs(0, 8)
    launches = run_guarded(lambda: (w, ids, tei, torch.empty(0, 64)),
                           lambda *t: topk_softmax(*t, True))
    assert launches.total == 0
    with pytest.raises(ValueError, match="top_k=8 must be in 1..experts=4"):
        topk_softmax(*_outputs(2, 8), torch.zeros(2, 4), True)
    with pytest.raises(ValueError, match="topk_ids"):
        topk_softmax(torch.empty(2, 2), torch.empty(2, 3, dtype=torch.int32),
                     torch.empty(2, 2, dtype=torch.int32), torch.zeros(2, 4), True)
    with pytest.raises(ValueError, match="fit one program"):
        topk_softmax(*_outputs(1, 2), torch.zeros(1, MAX_EXPERTS + 1), True)


@pytest.mark.parametrize("model", list(MODELS))
def test_routing_is_one_capture_safe_launch_at_every_capture_size(model):
    e, k, _, _ = MODELS[model]
    for m in CAPTURE_SIZES:
        launches = run_guarded(
            lambda: (torch.empty(m, k), torch.empty(m, k, dtype=torch.int32),
                     torch.empty(m, k, dtype=torch.int32), torch.empty(m, e, dtype=torch.bfloat16)),
            lambda *t: topk_softmax(*t, True))
        assert launches.torch_ops == [] and launches.triton == [("moe_topk_routing_kernel", (m,))], m


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("family", cfgmod.ARCH_FAMILIES)
def test_moe_block_launches_at_m1(model, family):
    """The routed MoE block as vLLM runs it at decode (M=1) on the simulated gfx1151 path with the
    W8A16 experts: fused_topk's buffers (torch.empty: no launch), the routing, the experts.
    3 launches: moe_topk_routing_kernel and the two GEMVs (the w2 GEMV sums the top-k). The torch
    twin of topk_softmax this replaces made 12 aten ops under the same guard with bf16 router
    logits (cast, softmax, topk, sum, div, three copies, two aranges, int mul and add), 14 per
    layer; the H100 engine profile (docs/engine.md, run 3) showed its 12 kernels (topk as
    gatherTopK + bitonic sort, no cast of its fp32 logits)."""
    e, k, h, inter = MODELS[model]

    def inputs():
        ws13, ws2 = workspace_sizes(1, k, inter, h)
        return (torch.empty(1, h, dtype=torch.bfloat16), torch.empty(1, e, dtype=torch.bfloat16),
                torch.empty(e, 2 * inter, h, dtype=torch.float8_e4m3fn),
                torch.empty(e, h, inter, dtype=torch.float8_e4m3fn),
                torch.empty(e, 2 * inter // 128, h // 128), torch.empty(e, h // 128, inter // 128),
                torch.empty(1, h, dtype=torch.bfloat16), torch.empty(ws13, dtype=torch.bfloat16),
                torch.empty(ws2, dtype=torch.bfloat16))

    def block(x, router_logits, w13, w2, s13, s2, out, ws13, ws2):
        weights = torch.empty(1, k, dtype=torch.float32)  # as vLLM's fused_topk allocates them
        ids = torch.empty(1, k, dtype=torch.int32)
        token_expert_indices = torch.empty(1, k, dtype=torch.int32)
        topk_softmax(weights, ids, token_expert_indices, router_logits, True)
        fused_experts_w8a16(x, w13, w2, s13, s2, weights, ids, block_shape=[128, 128],
                            global_num_experts=e, output=out, arch_family=family,
                            workspace13=ws13, workspace2=ws2)

    launches = run_guarded(inputs, block)
    assert [name for name, _ in launches.triton] == [
        "moe_topk_routing_kernel", "w8a16_gemv_kernel", "w8a16_gemv_kernel"]
    # the GEMV's zeroed ticket buffer is allocated once per device (the guard starts without one)
    assert [str(op) for op in launches.torch_ops] in ([], ["aten.zeros.default"])


# ---- appended shared experts (record fused-shared-expert: route_with_shared) -----------------

def _shared_reference(logits, k, renormalize, num_shared):
    """The routed reference over the first E columns, then ids E.. with float64 sigmoid weights
    of the fp32 gate logits (NaN stays NaN, as torch.sigmoid leaves it in the unfused gate)."""
    e = logits.shape[1] - num_shared
    w, ids = _reference(logits[:, :e], k, renormalize)
    gates = torch.sigmoid(logits[:, e:].float().double())
    shared_ids = torch.arange(e, e + num_shared).expand(logits.shape[0], num_shared)
    return torch.cat([w, gates], 1), torch.cat([ids, shared_ids], 1)


def _check_shared(logits, k, renormalize, num_shared, ids_dtype=torch.int32):
    w, ids = route_with_shared(logits, k, renormalize, num_shared, ids_dtype)
    ref_w, ref_ids = _shared_reference(logits, k, renormalize, num_shared)
    assert w.dtype == torch.float32 and ids.dtype == ids_dtype
    assert w.shape == ids.shape == (logits.shape[0], k + num_shared)
    assert torch.equal(ids.long(), ref_ids)
    torch.testing.assert_close(w.double(), ref_w, rtol=2e-6, atol=1e-7, equal_nan=True)
    return w, ids


@pytest.mark.parametrize("m,e,k,shared", [(1, 256, 8, 1), (1, 512, 10, 1), (5, 64, 4, 1),
                                          (3, 60, 4, 2), (2, 8, 8, 1)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("renormalize", [True, False])
def test_shared_experts_match_float64_reference(m, e, k, shared, dtype, renormalize):
    g = torch.Generator().manual_seed(m * 1000 + e * 10 + k + shared)
    logits = (torch.randn(m, e + shared, generator=g) * 3).to(dtype)
    w, _ = _check_shared(logits, k, renormalize, shared)
    if renormalize:  # the routed weights sum to 1; the shared gate is not renormalised
        torch.testing.assert_close(w[:, :k].sum(-1), torch.ones(m), rtol=1e-6, atol=1e-6)


def test_shared_expert_routing_is_the_plain_routing_plus_the_gate():
    """The routed columns are bit-identical to topk_softmax's over the first E logits, for both
    index dtypes and a strided router output (the runner's [M, E + 1] GEMM output is contiguous,
    vLLM may hand any view)."""
    g = torch.Generator().manual_seed(3)
    wide = torch.randn(6, 2 * 129, generator=g).to(torch.bfloat16)
    logits = wide[:, ::2]  # [6, 129]: 128 routed + 1 shared, expert stride 2
    for ids_dtype in (torch.int32, torch.int64):
        w, ids = _check_shared(logits, 8, True, 1, ids_dtype)
        pw, pids, tei = _outputs(6, 8, ids_dtype)
        topk_softmax(pw, pids, tei, logits[:, :128], True)
        assert torch.equal(w[:, :8], pw) and torch.equal(ids[:, :8], pids)


def test_shared_expert_ties_nan_and_infinite_logits():
    inf, nan = float("inf"), float("nan")
    logits = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0],       # routed ties: lower ids; gate 0 -> 0.5
                           [nan, 1.0, 0.5, -inf, -inf],     # NaN routed logit last; gate -inf -> 0
                           [inf, 0.0, 1.0, 2.0, inf],       # gate +inf -> 1
                           [0.0, 2.0, -0.0, 2.0, nan]],     # NaN gate stays NaN (unfused: NaN too)
                          dtype=torch.float32)
    w, ids = _check_shared(logits, 2, False, 1)
    assert ids.tolist() == [[0, 1, 4], [1, 2, 4], [0, 3, 4], [1, 3, 4]]
    assert w[:, 2].tolist()[:3] == [0.5, 0.0, 1.0] and torch.isnan(w[3, 2])


def test_shared_expert_bad_input_is_named():
    with pytest.raises(ValueError, match="num_shared=0 must be >= 1"):
        route_with_shared(torch.zeros(2, 9), 2, True, 0)
    with pytest.raises(ValueError, match=r"must be \[tokens, routed experts \+ 1 shared\]"):
        route_with_shared(torch.zeros(2, 1), 1, True, 1)
    with pytest.raises(ValueError, match="top_k=8 must be in 1..experts=4"):
        route_with_shared(torch.zeros(2, 5), 8, True, 1)


@pytest.mark.parametrize("model", list(MODELS))
def test_shared_expert_routing_is_one_capture_safe_launch(model):
    """What RocmSharedExpertRouter runs per MoE layer, at every capture size: its outputs are
    allocated from shapes (no launch), then one Triton launch; nothing syncs with the host."""
    e, k, _, _ = MODELS[model]
    for m in CAPTURE_SIZES:
        launches = run_guarded(lambda: (torch.empty(m, e + 1, dtype=torch.bfloat16),),
                               lambda logits: route_with_shared(logits, k, True, 1))
        assert launches.torch_ops == [] and launches.triton == [("moe_topk_routing_kernel", (m,))], m
    assert run_guarded(lambda: (torch.empty(0, e + 1),),
                       lambda logits: route_with_shared(logits, k, True, 1)).total == 0
