"""Token -> expert-block assignment in one Triton launch, with no host synchronisation.

vLLM's ``moe_align_block_size`` is a compiled HIP/CUDA op that may ship without a code
object for gfx1151. This is the same contract as one Triton program: every output size is an
upper bound computed from shapes only (as in vLLM), no ``.item()`` / ``bincount`` /
``nonzero``, so it is valid under CUDA/HIP-graph capture at every batch size. The expert map
(expert parallelism) and vLLM's padded routes (id -1) are folded into the same launch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import triton
import triton.language as tl

_BLOCK_T = 64  # routes per step of the align program (a BLOCK_T^2 compare gives stable ranks)


# triton.cdiv / triton.next_power_of_2 are ConstexprFunctions in recent Triton (12-23 us per host
# call, Triton 3.9); the launchers (here and moe_w8a16) call them on every forward, so they use
# these instead.
def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


@dataclass
class MoeRouting:
    """What the GEMM kernel needs to map M-blocks to (token, slot) pairs and experts.

    naive:  block b holds the single pair b (sorted_token_ids None), expert_ids = ids per pair
            (topk_ids itself when there is no expert map: no launch; the GEMMs write zeros for
            id -1); num_tokens_post_padded None (never read).
    sorted: pairs grouped by expert, each group padded to a multiple of block_m with the
            sentinel ``num_pairs``; expert_ids[b] is the (local) expert of block b, -1 if not
            on this rank; blocks at or past num_tokens_post_padded are skipped.
    """
    naive: bool
    block_m: int
    num_pairs: int
    num_blocks: int  # grid size along M (upper bound for sorted)
    expert_ids: torch.Tensor
    num_tokens_post_padded: Optional[torch.Tensor]
    sorted_token_ids: Optional[torch.Tensor] = None

    @property
    def em(self) -> int:
        return self.num_blocks * self.block_m


@triton.jit
def _route_keys(ids_ptr, map_ptr, offs, n, num_experts, invalid_key, HAS_MAP: tl.constexpr):
    """Bucket of each route: its (local, when mapped) expert, or ``invalid_key`` for padded
    routes (negative / out-of-range ids) and experts on another rank."""
    live = offs < n
    ids = tl.load(ids_ptr + offs, mask=live, other=-1).to(tl.int32)
    valid = live & (ids >= 0) & (ids < num_experts)
    if HAS_MAP:
        ids = tl.load(map_ptr + ids, mask=valid, other=-1).to(tl.int32)
        valid = valid & (ids >= 0)
    return tl.where(valid, ids, invalid_key), live, valid


@triton.jit
def moe_align_kernel(ids_ptr, map_ptr, sorted_ptr, expert_ids_ptr, ntpp_ptr, scratch_ptr,
                     scatter_ptr, n, num_experts, num_buckets, max_len, num_blocks, past_end_expert,
                     HAS_MAP: tl.constexpr, PLACE_INVALID: tl.constexpr, NAIVE: tl.constexpr,
                     HAS_SCATTER: tl.constexpr, BLOCK_M: tl.constexpr, NB: tl.constexpr,
                     LOG_NB: tl.constexpr, BLOCK_T: tl.constexpr):
    """One program. Buckets 0..num_buckets-1 are experts; bucket ``num_buckets`` collects the
    invalid routes: PLACE_INVALID gives them padded blocks of expert -1 (the GEMM writes
    zeros there, so a top-k sum over every slot stays right), else they are left out (vLLM's
    ignore_invalid_experts layout). Within an expert, routes keep their flat order (what a
    stable sort gives; vLLM's golden reference orders them so too). NB: bins, a power of two
    > num_buckets. Counts are integer atomics into scratch (exact, order-free); ranks come from
    the compare. scratch_ptr: 2 * NB int32 (count, then next free slot per bucket; then each
    bucket's end: blocks find their bucket by binary search over the ends, so no [routes, NB]
    or [blocks, NB] tensor lives in registers, which spilled on RDNA)."""
    offs_t = tl.arange(0, BLOCK_T)
    if NAIVE:  # block p holds route p: only the per-route expert (mapped, -1 if invalid)
        for c in range(0, n, BLOCK_T):
            key, live, valid = _route_keys(ids_ptr, map_ptr, c + offs_t, n, num_experts, -1, HAS_MAP)
            tl.store(expert_ids_ptr + c + offs_t, key, mask=live)
        tl.store(ntpp_ptr, n * BLOCK_M)
        return
    bins = tl.arange(0, NB)
    tl.store(scratch_ptr + bins, tl.zeros((NB,), dtype=tl.int32))
    tl.debug_barrier()
    for c in range(0, n, BLOCK_T):
        key, live, valid = _route_keys(ids_ptr, map_ptr, c + offs_t, n, num_experts, num_buckets,
                                       HAS_MAP)
        tl.atomic_add(scratch_ptr + key, 1, mask=live, sem="relaxed", scope="cta")
    tl.debug_barrier()
    counts = tl.load(scratch_ptr + bins)
    tl.debug_barrier()
    padded = (counts + BLOCK_M - 1) // BLOCK_M * BLOCK_M
    if not PLACE_INVALID:
        padded = tl.where(bins == num_buckets, 0, padded)
    ends = tl.cumsum(padded, 0)
    total = tl.sum(padded, 0)
    tl.store(ntpp_ptr, total)
    tl.store(scratch_ptr + bins, ends - padded)
    tl.store(scratch_ptr + NB + bins, ends)
    for c in range(0, max_len, BLOCK_T):
        tl.store(sorted_ptr + c + offs_t, tl.zeros((BLOCK_T,), tl.int32) + n, mask=c + offs_t < max_len)
    tl.debug_barrier()
    for c in range(0, num_blocks, BLOCK_T):
        blk = c + offs_t
        start = blk * BLOCK_M
        bucket = tl.zeros((BLOCK_T,), tl.int32)  # number of bucket ends <= start
        for s in tl.static_range(LOG_NB):
            step = (NB // 2) >> s
            end = tl.load(scratch_ptr + NB + bucket + step - 1)
            bucket = tl.where(end <= start, bucket + step, bucket)
        expert = tl.where(bucket == num_buckets, -1, bucket)
        expert = tl.where(start < total, expert, past_end_expert)
        tl.store(expert_ids_ptr + blk, expert, mask=blk < num_blocks)
    earlier = offs_t[None, :] < offs_t[:, None]
    for c in range(0, n, BLOCK_T):
        offs = c + offs_t
        key, live, valid = _route_keys(ids_ptr, map_ptr, offs, n, num_experts, num_buckets, HAS_MAP)
        rank = tl.sum(((key[None, :] == key[:, None]) & earlier & live[None, :]).to(tl.int32), axis=1)
        base = tl.load(scratch_ptr + key, mask=live, other=0)
        if PLACE_INVALID:
            tl.store(sorted_ptr + base + rank, offs, mask=live)
        else:
            tl.store(sorted_ptr + base + rank, offs, mask=valid)
        if HAS_SCATTER:
            tl.store(scatter_ptr + offs, tl.where(valid, offs, -1), mask=live)
        tl.debug_barrier()  # every lane has read its base before the bases move on
        tl.atomic_add(scratch_ptr + key, 1, mask=live, sem="relaxed", scope="cta")
        tl.debug_barrier()


def sorted_upper_bound(num_pairs: int, num_buckets: int, block_m: int) -> int:
    """Length of sorted_token_ids: every used bucket (at most min(pairs, buckets)) wastes at
    most block_m - 1 slots; rounded up to whole blocks."""
    max_len = num_pairs + min(num_pairs, num_buckets) * (block_m - 1)
    return cdiv(max_len, block_m) * block_m


def launch_align(topk_ids: torch.Tensor, block_m: int, num_experts: int, num_buckets: int,
                 sorted_ids: Optional[torch.Tensor], expert_ids: torch.Tensor, ntpp: torch.Tensor, *,
                 expert_map: Optional[torch.Tensor] = None, place_invalid: bool, naive: bool = False,
                 past_end_expert: int = -1, scatter_idx: Optional[torch.Tensor] = None) -> None:
    """Fill caller-owned buffers (sizes from shapes only). num_experts: the id range of
    topk_ids; num_buckets: experts after the map (local count) or num_experts unmapped."""
    ids = topk_ids.reshape(-1)
    n = ids.numel()
    nb = next_power_of_2(num_buckets + 1)
    scratch = torch.empty(2 * nb, dtype=torch.int32, device=ids.device)
    max_len = sorted_ids.numel() if sorted_ids is not None else 0
    moe_align_kernel[(1,)](
        ids, expert_map if expert_map is not None else ids,
        sorted_ids if sorted_ids is not None else expert_ids, expert_ids, ntpp, scratch,
        scatter_idx if scatter_idx is not None else expert_ids,
        n, num_experts, num_buckets, max_len, expert_ids.numel(), past_end_expert,
        HAS_MAP=expert_map is not None, PLACE_INVALID=place_invalid, NAIVE=naive,
        HAS_SCATTER=scatter_idx is not None, BLOCK_M=block_m, NB=nb,
        LOG_NB=nb.bit_length() - 1, BLOCK_T=_BLOCK_T,
        num_warps=4)


def moe_align(topk_ids: torch.Tensor, block_m: int, num_experts: int,
              expert_map: Optional[torch.Tensor] = None, naive: bool = False,
              num_local_experts: Optional[int] = None) -> MoeRouting:
    """Build the routing for ``topk_ids`` [M, top_k] (global expert ids).

    num_experts: the GLOBAL expert count (ids range); expert_map: optional [num_experts]
    global -> local id, -1 for experts on another rank (their rows are written as zeros, as are
    the rows of routes marked -1); num_local_experts: the map's value range (default
    num_experts). At most one launch (none for naive routing without a map); buffers sized from
    shapes.
    """
    n = topk_ids.numel()
    dev = topk_ids.device
    buckets = num_experts if expert_map is None else (num_local_experts or num_experts)
    if naive and expert_map is None:
        return MoeRouting(True, block_m, n, n, topk_ids.reshape(-1), None)
    ntpp = torch.empty(1, dtype=torch.int32, device=dev)
    if naive:
        expert_ids = torch.empty(n, dtype=torch.int32, device=dev)
        launch_align(topk_ids, block_m, num_experts, buckets, None, expert_ids, ntpp,
                     expert_map=expert_map, place_invalid=True, naive=True)
        return MoeRouting(True, block_m, n, n, expert_ids, None)
    max_len = sorted_upper_bound(n, buckets + 1, block_m)
    sorted_ids = torch.empty(max_len, dtype=torch.int32, device=dev)
    expert_ids = torch.empty(max_len // block_m, dtype=torch.int32, device=dev)
    launch_align(topk_ids, block_m, num_experts, buckets, sorted_ids, expert_ids, ntpp,
                 expert_map=expert_map, place_invalid=True)
    return MoeRouting(False, block_m, n, max_len // block_m, expert_ids, ntpp, sorted_ids)


def vllm_moe_align_block_size(topk_ids: torch.Tensor, num_experts: int, block_size: int,
                              sorted_token_ids: torch.Tensor, experts_ids: torch.Tensor,
                              num_tokens_post_pad: torch.Tensor,
                              expert_map: Optional[torch.Tensor] = None,
                              scatter_idx: Optional[torch.Tensor] = None) -> None:
    """vLLM's ``_moe_C.moe_align_block_size`` contract, into vLLM's buffers: sorted_token_ids
    padded with numel, per-block expert ids (blocks past the end: 0), num_tokens_post_pad.
    Routes with ids outside [0, num_experts) and, when ``expert_map`` is given, experts mapped
    to -1 are left out (vLLM passes the map only for ignore_invalid_experts; expert ids are
    then local). scatter_idx [numel, 1]: the route's own index, -1 for a left-out route."""
    launch_align(topk_ids, block_size, num_experts, num_experts, sorted_token_ids, experts_ids,
                 num_tokens_post_pad, expert_map=expert_map, place_invalid=False, past_end_expert=0,
                 scatter_idx=scatter_idx)
