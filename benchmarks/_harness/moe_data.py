"""Benchmark data for FP8 MoE GEMMs: block-quantised expert weights (the layout of Qwen3-Next
FP8 checkpoints: e4m3 bytes, one fp32 scale per 128x128 block) and a float32 reference."""
from __future__ import annotations

from typing import Callable

BLOCK = 128
E4M3_MAX = 448.0


def quant_weight_block(w, experts_per_step: int = 32):
    """bf16 [E, N, K] -> (e4m3fn [E, N, K], fp32 scales [E, N/128, K/128]), amax/448 per block.
    Quantised a few experts at a time: the float32 copy of all experts would not fit beside them."""
    import torch

    E, N, K = w.shape
    q = torch.empty(E, N, K, dtype=torch.float8_e4m3fn, device=w.device)
    scales = torch.empty(E, N // BLOCK, K // BLOCK, dtype=torch.float32, device=w.device)
    for e in range(0, E, experts_per_step):
        blocks = w[e:e + experts_per_step].float().view(-1, N // BLOCK, BLOCK, K // BLOCK, BLOCK)
        scale = blocks.abs().amax(dim=(2, 4)).clamp(min=1e-12) / E4M3_MAX
        scaled = (blocks / scale[:, :, None, :, None]).clamp(-E4M3_MAX, E4M3_MAX)
        q[e:e + experts_per_step] = scaled.to(torch.float8_e4m3fn).view(-1, N, K)
        scales[e:e + experts_per_step] = scale
    return q, scales


def dequant_rows(q, scales, experts):
    """float32 weights of the given experts from e4m3 bytes and block scales."""
    import torch

    w = q.view(torch.uint8)[experts].view(torch.float8_e4m3fn).float()
    return w * scales[experts].repeat_interleave(BLOCK, 1).repeat_interleave(BLOCK, 2)


def ref_gemm(weights_of: Callable, a_rows, expert_per_row, row_weight=None, rows_per_step: int = 32):
    """float32 out[t] = row_weight[t] * W[expert_per_row[t]] @ a_rows[t]; weights_of(experts)
    returns float32 [n, N, K]. Stepped so the gathered weights stay small."""
    import torch

    outs = []
    for t in range(0, expert_per_row.numel(), rows_per_step):
        w = weights_of(expert_per_row[t:t + rows_per_step].long())
        out = torch.bmm(w, a_rows[t:t + rows_per_step].float().unsqueeze(-1)).squeeze(-1)
        if row_weight is not None:
            out = out * row_weight[t:t + rows_per_step, None]
        outs.append(out)
    return torch.cat(outs)


def rel_err(out, ref) -> float:
    """||out - ref|| / ||ref|| in float64; NaN when out holds a NaN (an unwritten output row of a
    NaN-poisoned buffer)."""
    import torch

    out = out.double().reshape(ref.shape)
    if bool(torch.isnan(out).any()):
        return float("nan")
    ref = ref.double()
    return float((out - ref).norm() / ref.norm())
