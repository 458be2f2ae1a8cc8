"""vLLM's BF16 / FP16 MoE experts (TritonExperts, fused_experts_impl) call two compiled ops besides
the align (moe-align-code-object): torch.ops._C.silu_and_mul for the expert activation
(fused_moe/activation.py apply_moe_activation, bound by name in modular_kernel.py) and
torch.ops._moe_C.moe_sum for the top-k reduction (_custom_ops.moe_sum, from
topk_weight_and_reduce.py and fused_moe.py). Neither has a twin vLLM would pick, so on a build whose
extensions lack the running arch the first unquantized MoE layer dies in them. Found by the engine
harness (scripts/engine): Qwen3-Next / Qwen3.6 BF16 on simulated gfx1151 stopped at
"Could not run '_C::silu_and_mul'".

Asked the same question as hip_code_objects' records (the extensions' offload bundles); "unknown"
keeps vLLM's ops. The replacements are shape-only torch ops: no host sync, graph-capturable.
"""
from __future__ import annotations

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import is_wave32_rdna
from rocm_enable.stacks.vllm.hip_code_objects import C_EXTENSIONS, MOE_C_EXTENSIONS, verdict_for


def _silu_and_mul_into(output, gate_up) -> None:
    """output = silu(gate) * up for gate_up = [gate | up] along the last dim: vLLM's
    SiluAndMul.forward_native (fp32 SiLU is not what vLLM's native path does either), its
    product written straight into vLLM's buffer (two launches, no copy)."""
    import torch
    import torch.nn.functional as F

    d = gate_up.shape[-1] // 2
    torch.mul(F.silu(gate_up[..., :d]), gate_up[..., d:], out=output)


def _moe_activation_without_code_object(wrapped, instance, args, kwargs):
    from vllm.model_executor.layers.fused_moe.activation import MoEActivation

    activation, output, gate_up = (list(args) + [None] * 3)[:3]
    config = kwargs.get("activation_config")
    plain_silu = (activation == MoEActivation.SILU and kwargs.get("valid_token_counts") is None
                  and (config is None or config.clamp_limit is None))
    if not plain_silu or not verdict_for(C_EXTENSIONS).absent:
        return wrapped(*args, **kwargs)
    _silu_and_mul_into(output, gate_up)
    return output


def _moe_sum_without_code_object(wrapped, instance, args, kwargs):
    names = ("input", "output", "topk_ids", "expert_map")
    bound = dict(zip(names, args), **kwargs)
    # Only the unmapped reduction (both vLLM 0.32-0.34 call sites) has a known meaning; an
    # expert-map call keeps vLLM's op rather than guess its masking.
    if bound.get("expert_map") is not None or not verdict_for(MOE_C_EXTENSIONS).absent:
        return wrapped(*args, **kwargs)
    import torch

    torch.sum(bound["input"], dim=1, out=bound["output"])


MOE_EXPERT_OPS_NATIVE = Fix(
    name="moe-expert-ops-code-object",
    title="BF16 MoE experts: native SiLU-and-mul and top-k sum when _C / _moe_C lack the arch",
    stack="vllm",
    patches=(
        Patch("vllm.model_executor.layers.fused_moe.modular_kernel:apply_moe_activation",
              _moe_activation_without_code_object,
              {"0.32.0": "d26e735aa339cfbb", "0.33.0": "d26e735aa339cfbb",
               "0.34.0": "04d37f320e36674f"}),
        Patch("vllm._custom_ops:moe_sum", _moe_sum_without_code_object,
              {"0.32.0": "12e62b300ebfcc14", "0.33.0": "12e62b300ebfcc14",
               "0.34.0": "12e62b300ebfcc14"}),
    ),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "An unquantized MoE (Qwen3.6-35B-A3B BF16, Qwen3-Next BF16) runs vLLM's TritonExperts: its "
        "activation is torch.ops._C.silu_and_mul (apply_moe_activation) and its top-k reduction "
        "torch.ops._moe_C.moe_sum. A vLLM built without the running arch registers both and the "
        "first MoE layer dies; vLLM's SiluAndMul fallback (silu-and-mul-code-object) does not "
        "cover the experts, which call the op directly. Seen in vLLM's own engine on the "
        "simulated gfx1151 (scripts/engine)."
    ),
    how=(
        "Wrap apply_moe_activation as modular_kernel.py binds it: for plain SiLU (no clamp, no "
        "per-expert token counts) with _C lacking the arch, write silu(gate) * up into vLLM's "
        "output buffer (vLLM's own forward_native math; the product goes into the buffer, no "
        "copy). Wrap _custom_ops.moe_sum: without an "
        "expert map and with _moe_C lacking the arch, torch.sum over the top-k axis into vLLM's "
        "output. Every other activation, an expert-map reduction, or extensions that carry (or "
        "may carry) the arch keep vLLM's ops. 0.34.0 changed apply_moe_activation only in its "
        "SwigluStep branch (a clamp limit), which this fix leaves to vLLM."
    ),
    upstream="audit §3.11 build-time gate; no upstream check",
    removal="when vLLM checks its extensions' code objects on ROCm or ships native twins for these ops",
)

FIXES = (MOE_EXPERT_OPS_NATIVE,)
