"""MoE routing (softmax scoring, top-k, optional renormalisation) in one Triton launch.

vLLM's ``_moe_C.topk_softmax`` is a compiled HIP op that may ship without a code object for the
running GPU. This is the same contract as one program per token row: the fp32 softmax over all
experts, the top-k weights and expert ids (token-major [M, k], written in the dtypes of the
caller's tensors: fp32 weights, int32 ids as vLLM's fused_topk allocates them, or the experts'
index dtype), the weights renormalised to sum 1 when asked, and ``token_expert_indices[t, j] =
j * M + t``. Every size comes from shapes, nothing is read back to the host, so CUDA/HIP graphs
capture it at every batch size.

Tie rule: experts are chosen by their logit (softmax is monotonic, so this is the top-k of the
probabilities without the ties that rounding the probabilities could create), larger first,
equal logits by the lower expert id, as vLLM's CUDA kernel resolves ties ("lower indices win").
torch.topk leaves the order of equal values unspecified (on CPU it returns ids 1, 2 for the top 2
of [1, 1, 1, 0]), so where equal logits straddle the k-th place the torch twin this replaces could
choose another expert of the same weight. -0.0 equals 0.0; a NaN logit counts as -inf (vLLM's
kernel zeroes NaN probabilities), so it is chosen only after every finite one, with weight 0.
The weights are the softmax probabilities of the chosen experts.

Appended shared experts (``route_with_shared``, record fused-shared-expert): vLLM's fused shared
experts put the shared expert(s) after the routed ones as expert ids E..E+S-1 and the router's
gate rows after the routed gate's (one [E+S, H] GEMM). The same program then routes over the
first E logits exactly as above and appends, in slots k..k+S-1, id E+s with weight
sigmoid(logit E+s) in fp32: what Qwen3-Next's separate shared expert multiplies its output by
(a NaN gate logit stays NaN there as it does in the unfused sigmoid gate).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

# The widest expert count one program holds in registers (an int64 key per expert, at most 16
# per lane): vLLM's MoE models have 8 ... 512 experts.
MAX_EXPERTS = 4096


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def launch_meta(num_experts: int, top_k: int) -> dict:
    """The compile-time parameters of the launch for this routing shape (the ISA tests compile
    exactly these): one wave up to 512 experts, so the reductions stay within the wave."""
    block_e = _next_power_of_2(num_experts)
    return dict(BLOCK_E=block_e, BLOCK_K=_next_power_of_2(top_k),
                num_warps=max(1, min(8, block_e // 512)))


# Named without "softmax": the engine profile's name rules (scripts/engine/speed_profile.py) file
# kernels named *softmax* under sampling.
@triton.jit
def moe_topk_routing_kernel(logits_ptr, weights_ptr, ids_ptr, token_expert_ptr, num_tokens,
                            num_experts, stride_lm, stride_le, stride_wm, stride_wk, stride_im,
                            stride_ik, stride_tm, stride_tk, TOP_K: tl.constexpr,
                            RENORMALIZE: tl.constexpr, BLOCK_E: tl.constexpr,
                            BLOCK_K: tl.constexpr, NUM_SHARED: tl.constexpr = 0):
    """One token row per program. Each expert gets an int64 key that orders as (logit, -id):
    the logit's fp32 bits mapped to an order-preserving int32 in the high word, BLOCK_E-1-id in
    the low word; each slot takes the max key and retires it (one reduction per slot).
    num_experts counts the routed experts; NUM_SHARED > 0 logit columns after them are shared
    experts' gates, appended after the top-k (compiled out when 0)."""
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK_E)
    live = offs < num_experts
    x = tl.load(logits_ptr + row * stride_lm + offs * stride_le, mask=live,
                other=float("-inf")).to(tl.float32)
    x = tl.where(x == 0.0, 0.0, x)  # -0.0 ranks as 0.0
    x = tl.where(x != x, float("-inf"), x)  # a NaN logit: never chosen first, weight 0
    row_max = tl.max(x, 0)
    denom = tl.sum(tl.where(live, tl.exp(x - row_max), 0.0), 0)
    bits = x.to(tl.int32, bitcast=True)
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # int32 order == float order
    key = (ordered.to(tl.int64) << 32) | (BLOCK_E - 1 - offs).to(tl.int64)
    retired = -9223372036854775807 - 1  # below every live key (whose high word > INT32_MIN)
    key = tl.where(live, key, retired)
    slots = tl.arange(0, BLOCK_K)
    chosen = tl.full((BLOCK_K,), retired, tl.int64)
    for j in tl.static_range(TOP_K):
        best = tl.max(key, 0)
        chosen = tl.where(slots == j, best, chosen)
        key = tl.where(key == best, retired, key)
    ids = BLOCK_E - 1 - chosen.to(tl.int32)  # the low word
    hi = (chosen >> 32).to(tl.int32)
    logit = (hi ^ ((hi >> 31) & 0x7FFFFFFF)).to(tl.float32, bitcast=True)
    used = slots < TOP_K
    weights = tl.where(used, tl.exp(logit - row_max) / denom, 0.0)
    if RENORMALIZE:
        weights = weights / tl.sum(weights, 0)
    tl.store(weights_ptr + row * stride_wm + slots * stride_wk, weights, mask=used)
    tl.store(ids_ptr + row * stride_im + slots * stride_ik, ids, mask=used)
    tl.store(token_expert_ptr + row * stride_tm + slots * stride_tk, slots * num_tokens + row,
             mask=used)
    for s in tl.static_range(NUM_SHARED):
        gate = tl.load(logits_ptr + row * stride_lm + (num_experts + s) * stride_le).to(tl.float32)
        tl.store(weights_ptr + row * stride_wm + (TOP_K + s) * stride_wk, tl.sigmoid(gate))
        tl.store(ids_ptr + row * stride_im + (TOP_K + s) * stride_ik, num_experts + s)


def unsupported_reason(topk_weights: torch.Tensor, topk_ids: torch.Tensor,
                       token_expert_indices: torch.Tensor, gating_output: torch.Tensor):
    """Why topk_softmax cannot serve these tensors (None: it can). From shapes and dtypes only."""
    if gating_output.dim() != 2:
        return f"gating_output must be [tokens, experts], got {tuple(gating_output.shape)}"
    m, e = gating_output.shape
    if topk_weights.dim() != 2 or topk_weights.shape[0] != m:
        return f"topk_weights {tuple(topk_weights.shape)} is not [{m}, top_k]"
    k = topk_weights.shape[1]
    for name, t in (("topk_ids", topk_ids), ("token_expert_indices", token_expert_indices)):
        if tuple(t.shape) != (m, k):
            return f"{name} {tuple(t.shape)} is not [{m}, {k}] like topk_weights"
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            return f"{name} must be an integer tensor, got {t.dtype}"
    if not topk_weights.dtype.is_floating_point:
        return f"topk_weights must be floating point, got {topk_weights.dtype}"
    if not gating_output.dtype.is_floating_point:
        return f"gating_output must be floating point, got {gating_output.dtype}"
    if not 1 <= k <= e:
        return f"top_k={k} must be in 1..experts={e}"
    if e > MAX_EXPERTS:
        return f"{e} experts: at most {MAX_EXPERTS} fit one program"
    return None


def topk_softmax(topk_weights: torch.Tensor, topk_ids: torch.Tensor,
                 token_expert_indices: torch.Tensor, gating_output: torch.Tensor,
                 renormalize: bool = False) -> None:
    """vLLM's ``_moe_C.topk_softmax(topk_weights, topk_ids, token_expert_indices, gating_output,
    renormalize)`` (no correction bias) into the caller's tensors, one launch (none for 0 rows).
    Raises ValueError naming the problem for tensors it cannot serve (``unsupported_reason``)."""
    reason = unsupported_reason(topk_weights, topk_ids, token_expert_indices, gating_output)
    if reason:
        raise ValueError(f"topk_softmax: {reason}")
    m, e = gating_output.shape
    _launch(gating_output, m, e, topk_weights, topk_ids, token_expert_indices,
            topk_weights.shape[1], renormalize, 0)


def _launch(gating_output, m, e, weights, ids, token_expert_indices, k, renormalize, num_shared):
    """The kernel over ``m`` token rows of ``e`` routed experts (+ ``num_shared`` appended shared
    experts' gate columns); nothing for 0 rows."""
    if m == 0:
        return
    moe_topk_routing_kernel[(m,)](
        gating_output, weights, ids, token_expert_indices, m, e,
        gating_output.stride(0), gating_output.stride(1), weights.stride(0), weights.stride(1),
        ids.stride(0), ids.stride(1), token_expert_indices.stride(0), token_expert_indices.stride(1),
        TOP_K=k, RENORMALIZE=bool(renormalize), NUM_SHARED=num_shared, **launch_meta(e, k))


def route_with_shared(gating_output: torch.Tensor, top_k: int, renormalize: bool,
                      num_shared: int, ids_dtype: torch.dtype = torch.int32):
    """Routing with fused shared experts in one launch: ``gating_output`` [M, E + num_shared]
    (routed gate logits, then the shared experts' gate logits). Returns (weights [M, top_k +
    num_shared] fp32, ids [M, top_k + num_shared] ``ids_dtype``): the top-k softmax over the
    first E columns as ``topk_softmax`` writes it, then ids E.. with weight sigmoid(gate logit).
    Raises ValueError naming the problem for logits it cannot serve."""
    if num_shared < 1:
        raise ValueError(f"route_with_shared: num_shared={num_shared} must be >= 1 "
                         "(without shared experts call topk_softmax)")
    if gating_output.dim() != 2 or gating_output.shape[1] <= num_shared:
        raise ValueError(f"route_with_shared: gating_output {tuple(gating_output.shape)} must be "
                         f"[tokens, routed experts + {num_shared} shared]")
    m, columns = gating_output.shape
    e = columns - num_shared
    dev = gating_output.device
    weights = torch.empty(m, top_k + num_shared, dtype=torch.float32, device=dev)
    ids = torch.empty(m, top_k + num_shared, dtype=ids_dtype, device=dev)
    token_expert_indices = torch.empty(m, top_k, dtype=torch.int32, device=dev)
    routed = gating_output[:, :e]  # a view: the kernel reads the shared columns past it
    reason = unsupported_reason(weights[:, :top_k], ids[:, :top_k], token_expert_indices, routed)
    if reason:
        raise ValueError(f"route_with_shared: {reason}")
    _launch(gating_output, m, e, weights, ids, token_expert_indices, top_k, renormalize, num_shared)
    return weights, ids
