"""Keep RMSNorm off aiter's HIP kernel where that kernel cannot run (audit gates A13, B8).

Two ways 'aiter' gets into the rms_norm / fused_add_rms_norm IR priority, two records:
  A13  vLLM's ROCm platform default puts it first (VLLM_ROCM_USE_AITER + _RMSNORM, CUDA graphs,
       every arch but RDNA4; 0.33 also exempts gfx90a)             -> rms-norm-not-aiter-hip
  B8   the user names it (--ir-op-priority / kernel_config.ir_op_priority); vLLM keeps the user's
       list and appends its defaults (KernelConfig.set_platform_defaults), and the aiter
       implementation is `supported=AITER_SUPPORTED` = aiter importable, no arch check
       (kernels/aiter_ops.py:71-73, 117-119 in both versions), so nothing filters it out
                                                                     -> rms-norm-aiter-ir-priority
The aiter implementation calls aiter.rms_norm (torch.ops.vllm_aiter.rms_norm -> aiter's HIP/CK
kernel), which has no code object outside gfx9.
"""
from __future__ import annotations

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import aiter_hip_kernels_unsupported

AITER_PROVIDER = "aiter"


def _drop_aiter(priority) -> None:
    """Remove the aiter provider from an IrOpPriorityConfig's rms_norm lists (unset lists stay unset)."""
    for op in ("rms_norm", "fused_add_rms_norm"):
        current = getattr(priority, op)
        if current and AITER_PROVIDER in current:
            setattr(priority, op, [p for p in current if p != AITER_PROVIDER])


def _drop_aiter_rms_norm(wrapped, instance, args, kwargs):
    priority = wrapped(*args, **kwargs)
    _drop_aiter(priority)
    return priority


RMS_NORM_NOT_AITER_HIP = Fix(
    name="rms-norm-not-aiter-hip",
    title="RMSNorm IR priority: no aiter HIP kernel on archs it was not built for",
    stack="vllm",
    patches=(
        Patch(
            target="vllm.platforms.rocm:RocmPlatform.get_default_ir_op_priority",
            wrapper=_drop_aiter_rms_norm,
            anchors={"0.32.0": "9636c484aa6b219f", "0.33.0": "cd270440df8346da",
                     "0.34.0": "9b761b924cf371dc"},
        ),
    ),
    condition=aiter_hip_kernels_unsupported,
    versions=">=0.32.0,<0.35",
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
        "vLLM's own vllm_c/native providers follow unchanged. vLLM 0.34.0 dropped the "
        "'not on_rdna4()' term, so its default now puts aiter's HIP RMSNorm first on RDNA4 too; "
        "gfx12 has no aiter HIP kernels either (capability table), so the record drops it there "
        "as well, with the same wrapper."
    ),
    upstream="audit A13/B8; ATOM PR #1314 routes GemmaRMSNorm to forward_native on non-gfx9",
    removal="when vLLM's rms_norm priority tests rocm_aiter_ops.is_enabled() (CDNA3+) instead of not on_rdna4()",
    gates=("A13", "B8"),
)



def _drop_aiter_from_merged_priority(wrapped, instance, args, kwargs):
    result = wrapped(*args, **kwargs)
    _drop_aiter(instance.ir_op_priority)
    return result


RMS_NORM_AITER_IR_PRIORITY = Fix(
    name="rms-norm-aiter-ir-priority",
    title="RMSNorm IR priority named by the user: no aiter HIP kernel on archs it was not built for",
    stack="vllm",
    patches=(
        Patch(
            target="vllm.config.kernel:KernelConfig.set_platform_defaults",
            wrapper=_drop_aiter_from_merged_priority,
            anchors={"0.32.0": "05a625179282ba9f", "0.33.0": "05a625179282ba9f",
                     "0.34.0": "05a625179282ba9f"},
        ),
    ),
    condition=aiter_hip_kernels_unsupported,
    versions=">=0.32.0,<0.35",
    why=(
        "vLLM's aiter rms_norm / fused_add_rms_norm IR implementations are registered with "
        "supported=AITER_SUPPORTED, i.e. 'aiter imports', with no arch check (audit B8). A user "
        "priority such as --ir-op-priority rms_norm=aiter is kept as given by "
        "KernelConfig.set_platform_defaults (platform defaults are only appended), so on gfx11 "
        "with aiter installed every RMSNorm dispatches to aiter's HIP kernel, which has no code "
        "object there. rms-norm-not-aiter-hip only edits vLLM's platform default."
    ),
    how=(
        "Wrap KernelConfig.set_platform_defaults: after vLLM merges the user's lists with the "
        "platform defaults, 'aiter' is removed from rms_norm and fused_add_rms_norm when "
        "aiter_hip_kernels_supported() is false; what remains is vLLM's own default order "
        "(vllm_c/native). Fusion-pass switches that read the merged list (enable_norm_fusion, "
        "enable_norm_pad_fusion) then see what actually runs."
    ),
    upstream="audit B8 (replacement: supported=AITER_SUPPORTED and rocm_aiter_ops.is_enabled())",
    removal="when vLLM's aiter IR implementations report supported=False off CDNA3+",
    gates=("B8",),
)

FIXES = (RMS_NORM_NOT_AITER_HIP, RMS_NORM_AITER_IR_PRIORITY)
