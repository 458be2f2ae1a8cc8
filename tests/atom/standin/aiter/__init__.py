"""Stand-in for aiter (test-only; see tests/atom/standin/README.md)."""
import enum

from aiter._hip import hip_kernel


class QuantType(enum.Enum):
    No = 0
    per_Tensor = 1
    per_Token = 2
    per_1x32 = 3
    per_1x128 = 4


@hip_kernel("module_activation")
def silu_and_mul(out, x):
    import torch.nn.functional as F

    d = x.shape[-1] // 2
    out.copy_(F.silu(x[..., :d]) * x[..., d:])
