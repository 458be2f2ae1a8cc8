"""Stand-in for atom.model_ops.layernorm.GemmaRMSNorm: same signatures and branches as ATOM's at
the pinned commit; forward_cuda launches the (stand-in) aiter HIP kernel."""
from typing import Optional

import torch
from torch import nn


class GemmaRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6, quant_config=None,
                 write_bf16: bool = False) -> None:
        """Stand-in: zero-initialised Gemma weight; fused FP8 only for per_1x128 quant configs."""
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(hidden_size))
        self.variance_epsilon = eps
        self.write_bf16 = write_bf16
        self.use_fused_quant = bool(
            quant_config is not None and quant_config.quant_type.name == "per_1x128")

    @staticmethod
    def forward_static(weight, variance_epsilon, x, residual):
        """Stand-in: x * rsqrt(mean(x^2) + eps) * (1 + w), in fp32, optional residual add."""
        dtype = x.dtype
        if residual is not None:
            x = x + residual
            residual = x
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(dim=-1, keepdim=True) + variance_epsilon)
        h = (h * (1.0 + weight.float())).to(dtype)
        return h if residual is None else (h, residual)

    def forward_native(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None):
        """Stand-in: the torch path."""
        return self.forward_static(self.weight.data, self.variance_epsilon, x, residual)

    def forward_cuda(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None):
        """Stand-in: the aiter HIP kernel path (no-quant mode)."""
        from aiter.ops.fused_qk_rmsnorm_group_quant import fused_qk_rmsnorm_group_quant

        flat = x.view(-1, x.shape[-1])
        out = torch.empty_like(flat)
        res_out = torch.empty_like(flat) if residual is not None else None
        fused_qk_rmsnorm_group_quant(
            q=flat, q_weight=self.weight.data, q_epsilon=self.variance_epsilon,
            q_out_unquantized=out, q_res_out=res_out,
            q_residual=None if residual is None else residual.view(-1, x.shape[-1]),
            gemma_norm=True)
        if residual is None:
            return out.view(x.shape)
        return out.view(x.shape), res_out.view(x.shape)

    def _forward_fused_fp8(self, x, residual=None):
        """Stand-in: the FP8 group-quant path is out of scope for these tests."""
        raise NotImplementedError("stand-in: fused FP8 GemmaRMSNorm")

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None):
        """Stand-in: FP8 fused quant, else the aiter HIP kernel."""
        if self.use_fused_quant:
            return self._forward_fused_fp8(x, residual)
        return self.forward_cuda(x, residual)
