"""The vLLM stack: fix records for vLLM's ROCm code paths, verified on 0.32.0, 0.33.0 and 0.34.0.
A newer release gets each fix whose targets still match a verified fingerprint (engine.apply)."""
from __future__ import annotations

from rocm_enable.engine.hooks import hookimpl
from rocm_enable.engine.record import Stack
from rocm_enable.stacks.vllm import fp8_linear, fp8_moe, moe_config_lookup, norm_routing
from rocm_enable.stacks.vllm import attention_rdna, gdn_decode, gdn_prefill
from rocm_enable.stacks.vllm import aiter_triton, capability_integers, gdn_autotune, hip_code_objects, qk_norm_rope_gate
from rocm_enable.stacks.vllm import moe_align_code_object, moe_experts_code_object
from rocm_enable.stacks.vllm import fp8_lm_head
from rocm_enable.stacks.vllm import fp8_group_quant_code_object
from rocm_enable.stacks.vllm import fused_shared_expert

FIXES = (*fp8_moe.FIXES, *fp8_linear.FIXES, *moe_config_lookup.FIXES, *norm_routing.FIXES,
         *aiter_triton.FIXES, *hip_code_objects.FIXES, *qk_norm_rope_gate.FIXES,
         *capability_integers.FIXES, *gdn_autotune.FIXES, *gdn_prefill.FIXES, *gdn_decode.FIXES,
         *attention_rdna.FIXES, *moe_align_code_object.FIXES, *moe_experts_code_object.FIXES, *fp8_lm_head.FIXES,
         *fp8_group_quant_code_object.FIXES, *fused_shared_expert.FIXES)


@hookimpl
def rocm_enable_stack() -> Stack:
    return Stack(name="vllm", module="vllm", fixes=FIXES)
