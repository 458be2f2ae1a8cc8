"""vLLM's compiled HIP ops on RDNA: use them when the loaded extension carries a code object for
the running arch, route around them when it does not (audit G4, G7, D4, F2; the build-time
PYTORCH_ROCM_ARCH gate of audit §3.11).

The question every wrapper here asks is `gates.code_objects.extensions_status(extensions, arch)`:
read from the extension's offload bundles, never from an arch list. "unknown" (no file, no bundle,
an undecodable bundle) keeps vLLM's own decision.
"""
from __future__ import annotations

import contextlib
import functools
import logging

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates import code_objects
from rocm_enable.gates.capabilities import is_wave32_rdna, runs_rdna3_wmma_kernels

log = logging.getLogger("vllm.rocm_enable")

# The `_C` namespace is served by `_C` (0.32 ROCm builds) and, from 0.33, partly by the stable-ABI
# library; a vLLM build compiles both for the same PYTORCH_ROCM_ARCH.
C_EXTENSIONS = ("vllm._C", "vllm._C_stable_libtorch")
ROCM_C_EXTENSIONS = ("vllm._rocm_C",)


@functools.cache
def _verdict(extensions: tuple[str, ...], arch: str) -> code_objects.CodeObjectVerdict:
    verdict = code_objects.extensions_status(extensions, arch)
    if verdict.absent:
        log.warning("rocm-enable: %s has no code object for %s (%s); its ops on the model path "
                    "are routed to native/Triton implementations", "/".join(extensions), arch,
                    verdict.reason)
    return verdict


def verdict_for(extensions: tuple[str, ...]) -> code_objects.CodeObjectVerdict:
    from rocm_enable.runtime import active_caps

    return _verdict(extensions, active_caps().arch)


# ---- item G4: SiluAndMul -> torch.ops._C.silu_and_mul --------------------------------------

def _silu_and_mul_without_code_object(wrapped, instance, args, kwargs):
    if verdict_for(C_EXTENSIONS).absent:
        # The same math vLLM uses when the custom op is disabled (-silu_and_mul).
        return instance.forward_native(*args, **kwargs)
    return wrapped(*args, **kwargs)


SILU_AND_MUL_NATIVE = Fix(
    name="silu-and-mul-code-object",
    title="SiluAndMul: native path when vLLM's _C has no code object for this GPU",
    stack="vllm",
    patches=(Patch("vllm.model_executor.layers.activation:SiluAndMul.forward_cuda",
                   _silu_and_mul_without_code_object,
                   {"0.32.0": "e970fb78fed63b77", "0.33.0": "e970fb78fed63b77"}),),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.34",
    why=(
        "SiluAndMul.forward_cuda (used on ROCm through CustomOp.forward_hip whenever the "
        "silu_and_mul custom op is enabled, e.g. eager mode) calls torch.ops._C.silu_and_mul. A "
        "vLLM built without the running arch in PYTORCH_ROCM_ARCH (most wheels and images omit "
        "gfx1151) registers the op anyway, and the first launch dies with 'invalid device "
        "function' (audit G4 and the build-time gate)."
    ),
    how=(
        "Read the offload bundles of vllm._C (and _C_stable_libtorch): when none carries a code "
        "object for the arch (exact or LLVM generic target), SiluAndMul.forward_cuda returns "
        "vLLM's own forward_native. When the code object is present, or the bundles cannot be "
        "read, vLLM's HIP op runs as before."
    ),
    upstream="audit G4 and §3.11 build-time gate; no upstream check exists (hasattr on torch.ops succeeds for every build)",
    removal="when vLLM checks the extension's code objects (or torch.cuda.get_arch_list()) before dispatching to _C ops",
    gates=("G4",),
)


# ---- item G7: unquantized skinny GEMV (wvSplitK, LLMM1) in _rocm_C ---------------------------

def _skinny_gemm_without_code_object(wrapped, instance, args, kwargs):
    if not verdict_for(ROCM_C_EXTENSIONS).absent:
        return wrapped(*args, **kwargs)
    import torch.nn.functional as F

    # wvSplitK(a=weight [m, k], b=x [n, k], cu_count, bias) and LLMM1(a=weight, b=x, rows) both
    # return x @ weight.T (+ bias): the hipBLASLt GEMM vLLM uses for every other shape.
    weight, x = args[0], args[1]
    bias = kwargs.get("bias", args[3] if len(args) > 3 else None) if wrapped.__name__ == "wvSplitK" else None
    return F.linear(x, weight, bias)


SKINNY_GEMM_NATIVE = Fix(
    name="skinny-gemm-code-object",
    title="Skinny decode GEMV (wvSplitK, LLMM1): torch GEMM when _rocm_C has no code object",
    stack="vllm",
    patches=(
        Patch("vllm._custom_ops:wvSplitK", _skinny_gemm_without_code_object,
              {"0.32.0": "92ececf1d828acd9", "0.33.0": "92ececf1d828acd9"}),
        Patch("vllm._custom_ops:LLMM1", _skinny_gemm_without_code_object,
              {"0.32.0": "8963552aa242fda9", "0.33.0": "8963552aa242fda9"}),
    ),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.34",
    why=(
        "rocm_unquantized_gemm_impl sends every bf16/fp16 decode GEMM with n<=5 tokens to "
        "_rocm_C.wvSplitK or LLMM1 on any gfx1x arch (audit G7). Without a code object for the "
        "running arch in _rocm_C, decode dies with 'invalid device function'."
    ),
    how=(
        "Wrap vllm._custom_ops.wvSplitK and LLMM1 (looked up at call time by "
        "rocm_unquantized_gemm_impl): when _rocm_C's offload bundles lack the arch, return "
        "F.linear(x, weight, bias), vLLM's own fallback GEMM for all other shapes."
    ),
    upstream="audit G7; no upstream check",
    removal="when vLLM checks _rocm_C's code objects before choosing the skinny kernels",
    gates=("G7",),
)


# ---- items D4, F2: RDNA3 W4A16 HIP kernels, gated on gfx1100 by name ------------------------

@contextlib.contextmanager
def _rdna3_kernel_arch_admitted():
    """vLLM's RDNA3 kernel checks read on_gfx1100() from vllm.platforms.rocm at call time; answer it
    with 'this gfx11 arch' for the duration of that one check, so every other condition vLLM checks
    (op registered, dtypes, group size, ...) still decides. Model construction is single-threaded."""
    import vllm.platforms.rocm as rocm

    original = rocm.on_gfx1100
    rocm.on_gfx1100 = lambda: True
    try:
        yield
    finally:
        rocm.on_gfx1100 = original


def _rdna3_decision(wrapped, args, kwargs, deny):
    verdict = verdict_for(ROCM_C_EXTENSIONS)
    if verdict.absent:
        return deny(f"_rocm_C has no code object for this GPU: {verdict.reason}")
    if not verdict.present:
        return wrapped(*args, **kwargs)  # cannot tell: vLLM's own answer
    with _rdna3_kernel_arch_admitted():
        return wrapped(*args, **kwargs)


def _rdna3_w4a16_can_implement(wrapped, instance, args, kwargs):
    return _rdna3_decision(wrapped, args, kwargs, lambda why: (False, why))


def _rdna3_moe_available(wrapped, instance, args, kwargs):
    return _rdna3_decision(wrapped, args, kwargs, lambda why: False)


RDNA3_KERNELS_BY_CODE_OBJECT = Fix(
    name="rdna3-kernels-code-object",
    title="RDNA3 W4A16 dense and MoE HIP kernels on every gfx11 whose _rocm_C carries them",
    stack="vllm",
    patches=(
        Patch("vllm.model_executor.kernels.linear.mixed_precision.rdna3_w4a16:"
              "RDNA3W4A16LinearKernel.can_implement", _rdna3_w4a16_can_implement,
              {"0.32.0": "4e637a90a4a9ca46", "0.33.0": "4e637a90a4a9ca46"}),
        Patch("vllm.model_executor.layers.fused_moe.experts.rdna3_moe:rdna3_moe_kernel_available",
              _rdna3_moe_available, {"0.32.0": "6c18fe382204d322", "0.33.0": "6c18fe382204d322"}),
    ),
    condition=runs_rdna3_wmma_kernels,
    versions=">=0.32.0,<0.34",
    why=(
        "RDNA3W4A16LinearKernel (gptq_gemm_rdna3) and Rdna3WNA16Experts (moe_gptq_gemm_rdna3) are "
        "wave32 WMMA HIP kernels for the RDNA3 ISA, but vLLM admits them only when "
        "'gfx1100' in the arch name (on_gfx1100(), audit F2, D4): gfx1101/1102/1150/1151 never "
        "get them even when _rocm_C was built for them, and gfx1100 gets them even from a build "
        "without a gfx1100 code object (hasattr on torch.ops succeeds for every build)."
    ),
    how=(
        "On RDNA3-ISA archs, read _rocm_C's offload bundles: code object present -> run vLLM's "
        "own check with on_gfx1100() answering for this arch (op registration, dtype, group and "
        "zero-point checks unchanged); absent -> reject with the reason, so the registry falls "
        "through to RDNAHybridW4A16 / Triton WNA16; unreadable -> vLLM's own answer."
    ),
    upstream="audit D4, F2 (replacement: on_gfx11() plus a code-object check)",
    removal="when vLLM gates the RDNA3 kernels on the RDNA3 ISA and the extension's code objects",
    gates=("D4", "F2"),
)

FIXES = (SILU_AND_MUL_NATIVE, SKINNY_GEMM_NATIVE, RDNA3_KERNELS_BY_CODE_OBJECT)
