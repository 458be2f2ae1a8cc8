"""CUDA compute-capability integers read on ROCm: replace the ones that decide something wrong on
RDNA with capability-table predicates (audit §3.11).

vLLM turns gfx1151 into DeviceCapability(11, 5), i.e. "115", so `capability >= 89` (Ada: FP8 tensor
cores) is true on a GPU without any FP8 matrix instruction. Sites and what this module does:

  E8  compressed_tensors.py `_check_scheme_supported(89)`: picks W8A8 FP8 on gfx11 -> fixed here.
  I8  triton_reshape_and_cache_flash `has_device_capability(89)` for an FP8 KV cache
      (v1/attention/ops/triton_reshape_and_cache_flash.py:20-30, same in 0.33.0): the answer (true)
      is right for the wrong reason. The kernel only converts and stores one byte per element; on
      AMD, Triton emits that conversion in software where the ISA has no FP8 converts. Evidence
      (tests/gates/test_capability_integers.py, I8): vLLM's decision on simulated gfx1151/gfx1100
      is True on 0.32.0 and 0.33.0, and vLLM's reshape_and_cache_kernel_flash with an fp8e4nv cache
      compiles for gfx1151/gfx1100 (8 warps, head 256, page 544) with no FP8 instruction (a
      compare/select encoder), while gfx942/gfx950 use v_cvt_pk_fp8_f32 /
      v_cvt_scalef32_pk_fp8_f32. So nothing is changed; the CUDA wording of vLLM's assert ("needs
      native fp8e4nv (SM89+)") does not apply to ROCm.
  A12 bf16 `has_device_capability(80)`: right by accident on every RDNA arch. H3, I3, I4: `>= 80`
      tile/feature choices, true on all archs we serve and on CUDA Ampere+, unchanged. C8
      `is_device_capability(90)`: true only on gfx90a (not wave32 RDNA). K1: returns early.
"""
from __future__ import annotations

from rocm_enable.engine.calls import bound_arguments
from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import is_wave32_rdna, supports_fp8_compute

CT = "vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors"


def _fp8_w8a8_min_capability() -> int:
    from vllm.model_executor.layers.quantization.compressed_tensors.schemes import (
        CompressedTensorsW8A8Fp8,
    )

    return CompressedTensorsW8A8Fp8.get_min_capability()


def _scheme_supported_by_capability(wrapped, instance, args, kwargs):
    a = bound_arguments(wrapped, args, kwargs)
    # Only the non-raising probe that chooses W8A8 vs W8A16 FP8 (_get_scheme_from_parts) asks
    # for the FP8 tensor-core floor; every other question keeps vLLM's integer answer.
    if a["error"] or a["match_exact"] or a["min_capability"] != _fp8_w8a8_min_capability():
        return wrapped(*args, **kwargs)
    from rocm_enable.runtime import active_caps

    return supports_fp8_compute(active_caps())


CT_FP8_SCHEME_BY_FP8_COMPUTE = Fix(
    name="ct-fp8-scheme-by-fp8-compute",
    title="compressed-tensors FP8: W8A8 only where the GPU multiplies FP8 (not '115 >= 89')",
    stack="vllm",
    patches=(Patch(f"{CT}:CompressedTensorsConfig._check_scheme_supported",
                   _scheme_supported_by_capability,
                   {"0.32.0": "93c7455a83f0f31e", "0.33.0": "93c7455a83f0f31e",
                    "0.34.0": "93c7455a83f0f31e"}),),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "CompressedTensorsConfig picks the W8A8 FP8 scheme when "
        "_check_scheme_supported(CompressedTensorsW8A8Fp8.get_min_capability()=89) holds; on ROCm "
        "that compares the CUDA SM floor with vLLM's arch integer (gfx1151 -> 115, gfx1100 -> "
        "110), so FP8-Dynamic checkpoints choose W8A8 (activation quantization to FP8 + emulated "
        "FP8 GEMM) on GPUs with no FP8 matrix instructions (audit E8, §3.11)."
    ),
    how=(
        "On wave32 RDNA, the non-raising probe for the W8A8 FP8 floor answers "
        "supports_fp8_compute() from the capability table: gfx11 gets CompressedTensorsW8A16Fp8 "
        "(weights stay FP8, activations stay bf16), gfx12 keeps W8A8. Every other capability "
        "question keeps vLLM's integer comparison."
    ),
    upstream="audit E8 / §3.11 (replacement: has_native_fp8_mma)",
    removal="when vLLM's ROCm platform answers FP8 scheme support with a feature predicate instead of an SM integer",
    gates=("E8",),
)

FIXES = (CT_FP8_SCHEME_BY_FP8_COMPUTE,)
