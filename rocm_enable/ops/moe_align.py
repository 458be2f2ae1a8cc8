"""Token -> expert-block assignment in plain torch (no vLLM compiled op).

vLLM's ``moe_align_block_size`` is a compiled HIP/CUDA op that may ship without a code
object for gfx1151; this is the same contract in torch ops that run on any device, with
no host synchronisation (sizes are upper bounds, as in vLLM), so it is CUDA-graph safe.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class MoeRouting:
    """What the GEMM kernel needs to map M-blocks to (token, slot) pairs and experts.

    naive:  block b holds the single pair b (sorted_token_ids None), expert_ids = ids per pair.
    sorted: pairs grouped by expert, each group padded to a multiple of block_m with the
            sentinel ``num_pairs``; expert_ids[b] is the (local) expert of block b, -1 if not
            on this rank; blocks at or past num_tokens_post_padded are skipped.
    """
    naive: bool
    block_m: int
    num_pairs: int
    num_blocks: int  # grid size along M (upper bound for sorted)
    expert_ids: torch.Tensor
    num_tokens_post_padded: torch.Tensor
    sorted_token_ids: Optional[torch.Tensor] = None

    @property
    def em(self) -> int:
        return self.num_blocks * self.block_m


def _map_experts(ids: torch.Tensor, expert_map: Optional[torch.Tensor],
                 padding_id: Optional[int] = None) -> torch.Tensor:
    """Local expert id per entry, -1 for experts on another rank and for padding (negative ids,
    or ``padding_id``)."""
    pad = ids < 0 if padding_id is None else (ids < 0) | (ids == padding_id)
    safe = ids.long().clamp(min=0)
    if expert_map is not None:
        safe = expert_map.to(ids.device)[safe.clamp(max=expert_map.numel() - 1)].long()
    return torch.where(pad, -1, safe).to(torch.int32)


def moe_align(topk_ids: torch.Tensor, block_m: int, num_experts: int,
              expert_map: Optional[torch.Tensor] = None, naive: bool = False) -> MoeRouting:
    """Build the routing for ``topk_ids`` [M, top_k] (global expert ids).

    num_experts: the GLOBAL expert count (ids range); expert_map: optional [num_experts]
    global -> local id, -1 for experts on another rank (their rows are written as zeros).
    """
    flat = topk_ids.reshape(-1)
    n = flat.numel()
    dev = flat.device
    if naive:
        return MoeRouting(True, block_m, n, n, _map_experts(flat, expert_map),
                          torch.full((1,), n * block_m, dtype=torch.int32, device=dev))
    # Negative ids (vLLM's routers mark padded rows -1) are grouped as one extra "expert" whose
    # blocks map to -1, so their rows are written as zeros like another rank's experts.
    ids = torch.where(flat < 0, num_experts, flat.long())
    num_experts += 1
    counts = torch.bincount(ids, minlength=num_experts)
    padded = (counts + block_m - 1) // block_m * block_m
    ends = torch.cumsum(padded, 0)
    starts = ends - padded
    order = torch.sort(ids, stable=True).indices
    sorted_e = ids[order]
    first_of_e = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=dev) - first_of_e[sorted_e]
    # worst case: every used expert wastes block_m - 1 slots; at most min(n, E) experts used
    max_len = n + min(n, num_experts) * (block_m - 1)
    max_len = (max_len + block_m - 1) // block_m * block_m
    sorted_ids = torch.full((max_len,), n, dtype=torch.int32, device=dev)
    sorted_ids[starts[sorted_e] + rank] = order.to(torch.int32)
    num_blocks = max_len // block_m
    block_start = torch.arange(num_blocks, device=dev) * block_m
    block_e = torch.searchsorted(ends, block_start, right=True).clamp_(max=num_experts - 1)
    return MoeRouting(False, block_m, n, num_blocks, _map_experts(block_e, expert_map, num_experts - 1),
                      ends[-1:].to(torch.int32), sorted_ids)
