"""Keep ATOM's GemmaRMSNorm and SiluAndMul off aiter HIP kernels that only exist for gfx9.

ATOM PR #1314 routes both to their `forward_native` on non-gfx9 archs. These records do the same
without touching ATOM's files. They do not wrap `forward`: ATOM compiles its models with
torch.compile, and Dynamo inlines a submodule's forward through its code object, which a wrapt
proxy forwards from the original function, so a wrapper on `forward` is silently skipped in
compiled graphs. Instead `__init__` is wrapped and, on an arch without aiter's HIP kernels, binds
the portable forward on the instance (an instance attribute, which both eager calls and Dynamo
honour). `forward` itself is anchored as a guard: the routing below mirrors its branches.
"""
from __future__ import annotations

import sys
import types

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import aiter_hip_kernels_unsupported
from rocm_enable.stacks.atom.pin import PR_1314, VERSIONS, anchors

LAYERNORM = "atom.model_ops.layernorm"
ACTIVATION = "atom.model_ops.activation"


def _gemma_rms_norm_native(wrapped, instance, args, kwargs):
    wrapped(*args, **kwargs)
    # forward(): use_fused_quant -> aiter FP8 group-quant kernel (left alone: FP8 activations need
    # FP8 compute, a separate problem); otherwise forward_cuda -> aiter's HIP
    # fused_qk_rmsnorm_group_quant, built with v_pk_mul_f32 (gfx9 only). The flag is fixed at init.
    if not instance.use_fused_quant:
        instance.forward = instance.forward_native


GEMMA_RMS_NORM_NATIVE = Fix(
    name="atom-gemma-rms-norm-native",
    title="ATOM GemmaRMSNorm: torch-native forward where aiter's HIP norm kernel cannot run",
    stack="atom",
    patches=(
        Patch(f"{LAYERNORM}:GemmaRMSNorm.__init__", _gemma_rms_norm_native,
              anchors("5a3cae480800ec86")),
        Patch(f"{LAYERNORM}:GemmaRMSNorm.forward", None, anchors("48f38423d93fc6f0")),
    ),
    condition=aiter_hip_kernels_unsupported,
    versions=VERSIONS,
    why=(
        "Qwen3-Next and Qwen3.5/3.6 in ATOM normalise with GemmaRMSNorm (layer norms, final norm, "
        "q/k norms). Its unquantised forward calls aiter's HIP kernel fused_qk_rmsnorm_group_quant, "
        "which uses v_pk_mul_f32 and has no code object for RDNA, so on gfx11/gfx12 the first "
        "decoder layer fails to launch."
    ),
    how=(
        "Wrap GemmaRMSNorm.__init__; when use_fused_quant is false, bind the module's own "
        "forward_native (the torch implementation ATOM ships) as the instance's forward. FP8 "
        "fused-quant norms are left unchanged. Applies to modules built after activation."
    ),
    upstream=f"ATOM PR #1314 ({PR_1314}), commit 2516cb85b, layernorm.py",
    removal="when ATOM's GemmaRMSNorm.forward checks aiter_hip_kernels_supported() (PR #1314 merged)",
)


def _native_unless_quantized(self, x, x_scale=None):
    # Bound on fused-quant SiluAndMul modules whose quant type is not per_1x32: a static FP8 scale
    # goes to aiter's Triton kernel (portable), no scale would reach aiter's HIP silu_and_mul.
    if x_scale is None:
        return self.forward_native(x, x_scale)
    return type(self).forward(self, x, x_scale)


def _silu_and_mul_native(wrapped, instance, args, kwargs):
    wrapped(*args, **kwargs)
    # forward(): fused_quant with an x_scale -> aiter Triton FP8 kernel; fused_quant, no scale,
    # per_1x32 -> aiter Triton MXFP4 kernel; everything else -> aiter's HIP silu_and_mul, whose
    # activation kernel pulls in aiter_opus_plus.h (gfx9 only). QuantType is the one the anchored
    # forward compares against (imported into its module from aiter).
    per_1x32 = sys.modules[wrapped.__module__].QuantType.per_1x32.value
    if not instance.fused_quant:
        instance.forward = instance.forward_native
    elif instance.quant_type.value != per_1x32:
        instance.forward = types.MethodType(_native_unless_quantized, instance)


SILU_AND_MUL_NATIVE = Fix(
    name="atom-silu-and-mul-native",
    title="ATOM SiluAndMul: torch-native forward where aiter's HIP activation kernel cannot run",
    stack="atom",
    patches=(
        Patch(f"{ACTIVATION}:SiluAndMul.__init__", _silu_and_mul_native,
              anchors("77b8622ee4e40c3f")),
        Patch(f"{ACTIVATION}:SiluAndMul.forward", None, anchors("7fdce50af754a5d1")),
    ),
    condition=aiter_hip_kernels_unsupported,
    versions=VERSIONS,
    why=(
        "ATOM's dense MLPs (Qwen3-Next/3.5/3.6 shared experts and dense layers) use SiluAndMul, "
        "whose unquantised path calls aiter's HIP silu_and_mul; that kernel is built from "
        "gfx9-only headers (aiter_opus_plus.h), so it has no code object on RDNA."
    ),
    how=(
        "Wrap SiluAndMul.__init__; bind forward_native (F.silu(x) * y) as the instance's forward "
        "when the module is unquantised, and a router that uses forward_native only for calls "
        "without a static scale when it is fused-quant but not MXFP4. The Triton FP8/MXFP4 paths "
        "stay as they are."
    ),
    upstream=f"ATOM PR #1314 ({PR_1314}), commit 2516cb85b, activation.py",
    removal="when ATOM's SiluAndMul.forward checks aiter_hip_kernels_supported() (PR #1314 merged)",
)

FIXES = (GEMMA_RMS_NORM_NATIVE, SILU_AND_MUL_NATIVE)
