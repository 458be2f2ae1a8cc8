"""Stand-in for aiter's HIP fused_qk_rmsnorm_group_quant (no-quant mode only)."""
from aiter._hip import hip_kernel


@hip_kernel("module_fused_qk_rmsnorm_group_quant")
def fused_qk_rmsnorm_group_quant(q, q_weight, q_epsilon, q_out_unquantized=None, q_res_out=None,
                                 q_residual=None, gemma_norm=False, **unused):
    x = q.float()
    if q_residual is not None:
        x = x + q_residual.float()
        q_res_out.copy_(x.to(q.dtype))
    x = x * (x.pow(2).mean(-1, keepdim=True) + q_epsilon).rsqrt()
    w = q_weight.float() + 1.0 if gemma_norm else q_weight.float()
    q_out_unquantized.copy_((x * w).to(q.dtype))
