"""Keep RMSNorm off aiter's HIP kernel where that kernel cannot run (audit gates A13, B8)."""
from __future__ import annotations

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import aiter_hip_kernels_unsupported

AITER_PROVIDER = "aiter"


def _drop_aiter_rms_norm(wrapped, instance, args, kwargs):
    priority = wrapped(*args, **kwargs)
    for op in ("rms_norm", "fused_add_rms_norm"):
        setattr(priority, op, [p for p in getattr(priority, op) if p != AITER_PROVIDER])
    return priority


RMS_NORM_NOT_AITER_HIP = Fix(
    name="rms-norm-not-aiter-hip",
    title="RMSNorm IR priority: no aiter HIP kernel on archs it was not built for",
    stack="vllm",
    patches=(
        Patch(
            target="vllm.platforms.rocm:RocmPlatform.get_default_ir_op_priority",
            wrapper=_drop_aiter_rms_norm,
            anchors={"0.32.0": "9636c484aa6b219f", "0.33.0": "cd270440df8346da"},
        ),
    ),
    condition=aiter_hip_kernels_unsupported,
    versions=">=0.32.0,<0.34",
    why=(
        "With VLLM_ROCM_USE_AITER=1 and CUDA graphs, vLLM puts 'aiter' first in the rms_norm and "
        "fused_add_rms_norm priority on every arch except RDNA4 (platforms/rocm.py, gate A13), and "
        "aiter's IR implementation only checks that aiter imports (kernels/aiter_ops.py, B8). On "
        "gfx11 aiter's RMSNorm HIP kernel has no code object (it uses gfx9-only instructions), so "
        "the first norm launch fails."
    ),
    how=(
        "Wrap RocmPlatform.get_default_ir_op_priority and remove the 'aiter' provider from the "
        "rms_norm and fused_add_rms_norm lists when aiter_hip_kernels_supported() is false; "
        "vLLM's own vllm_c/native providers follow unchanged."
    ),
    upstream="audit A13/B8; ATOM PR #1314 routes GemmaRMSNorm to forward_native on non-gfx9",
    removal="when vLLM's rms_norm priority tests rocm_aiter_ops.is_enabled() (CDNA3+) instead of not on_rdna4()",
    gates=("A13", "B8"),
)

FIXES = (RMS_NORM_NOT_AITER_HIP,)
