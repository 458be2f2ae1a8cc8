"""Stand-in for atom.model_ops.activation.SiluAndMul: same signatures and branches as ATOM's at
the pinned commit; the unquantised branch launches the (stand-in) aiter HIP silu_and_mul."""
from typing import Optional

import torch
import torch.nn.functional as F
from aiter import QuantType, silu_and_mul
from torch import nn


class _LayerQuant:
    def __init__(self, quant_type=QuantType.No, quant_dtype=None):
        self.quant_type, self.quant_dtype = quant_type, quant_dtype


class SiluAndMul(nn.Module):
    def __init__(self, fused_quant: bool = False, quant_config=None, prefix: str = ""):
        """Stand-in: the layer's quant type comes from quant_config (none: QuantType.No)."""
        super().__init__()
        self.fused_quant = fused_quant
        layer = _LayerQuant() if quant_config is None else quant_config
        self.quant_type = layer.quant_type
        self.params_dtype = layer.quant_dtype

    def forward_native(self, x: torch.Tensor, x_scale: Optional[torch.Tensor] = None):
        """Stand-in: the torch path."""
        gate, up = x.chunk(2, -1)
        return F.silu(gate) * up

    def forward(self, x: torch.Tensor, x_scale: Optional[torch.Tensor] = None):
        """Stand-in: static FP8 and MXFP4 go to (portable) Triton kernels, the rest to HIP."""
        if x_scale is not None and self.fused_quant:
            return ("triton-fp8-static", x_scale)
        elif x_scale is None and self.fused_quant and self.quant_type.value == QuantType.per_1x32.value:
            return ("triton-mxfp4", None)
        else:
            out = torch.empty([*x.shape[:-1], x.shape[-1] // 2], dtype=x.dtype)
            silu_and_mul(out, x)
            return out
