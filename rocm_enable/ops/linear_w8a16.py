"""Dense linear with FP8 e4m3fn weights and bf16/fp16 activations (W8A16)."""
from __future__ import annotations

import torch

from rocm_enable.ops import config as cfgmod
from rocm_enable.ops.moe_w8a16 import launch_w8a16_gemm


def linear_w8a16(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, *,
                 block_shape=None, bias=None, arch_family: str = "rdna3",
                 out: torch.Tensor = None, split_k=None) -> torch.Tensor:
    """y = x @ dequant(weight).T + bias, in x.dtype.

    x [..., K] bf16/fp16; weight [N, K] float8_e4m3fn (out_features x in_features, K
    contiguous; other strides allowed if K-contiguous); weight_scale folded
    (fold_fp8_scale_for_fp16_bits): block [N/bn, K/bk], channel [N] or [N, 1], tensor scalar/[1].
    split_k: force the number of K splits (default: the config's SPLIT_K / split_k_programs).
    """
    N, K = weight.shape
    lead = x.shape[:-1]
    x2 = x.reshape(-1, K)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    M = x2.shape[0]
    if out is None:
        out = torch.empty(*lead, N, dtype=x.dtype, device=x.device)
    if M == 0:
        return out
    cfg = dict(cfgmod.get_dense_config(arch_family, M))
    block_m = cfg.pop("BLOCK_M")
    cfg.pop("max_m", None)
    launch_w8a16_gemm(x2, weight.unsqueeze(0), weight_scale, out.view(-1, N), routing=None, top_k=1,
                      block_shape=block_shape, gemm_cfg=cfg, block_m=block_m, bias=bias,
                      split_k=split_k)
    return out
