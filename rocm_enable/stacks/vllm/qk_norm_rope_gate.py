"""Qwen3-Next / Qwen3.5 / Qwen3.6 attention: admit vLLM's fused Triton split + QK-RMSNorm + RoPE +
gate kernel on RDNA (audit gate J1)."""
from __future__ import annotations

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import is_wave32_rdna


class _PlatformAdmittingRocm:
    """vLLM's current platform, except that is_cuda() also answers for ROCm. Seen only by the one
    expression in Qwen3NextAttention.__init__ that reads `current_platform` (the anchor pins that
    source: it is the only use of the name in the method)."""

    def __init__(self, platform):
        self._platform = platform

    def __getattr__(self, name):
        return getattr(self._platform, name)

    def is_cuda(self) -> bool:
        return self._platform.is_cuda() or self._platform.is_rocm()


def _admit_fused_qk_norm_rope_gate(wrapped, instance, args, kwargs):
    import vllm.model_executor.models.qwen3_next as qwen3_next

    real = qwen3_next.current_platform
    if isinstance(real, _PlatformAdmittingRocm):  # re-entered (nested construction)
        return wrapped(*args, **kwargs)
    qwen3_next.current_platform = _PlatformAdmittingRocm(real)
    try:
        # vLLM's other conditions (output gate, neox RoPE, fp16/bf16, text-only or interleaved
        # MRoPE) still decide; only the platform term is answered for ROCm.
        return wrapped(*args, **kwargs)
    finally:
        qwen3_next.current_platform = real


FUSED_QK_NORM_ROPE_GATE = Fix(
    name="fused-qk-norm-rope-gate",
    title="Qwen3-Next/3.5/3.6 attention: fused Triton qk-norm + RoPE + gate kernel on RDNA",
    stack="vllm",
    patches=(Patch("vllm.model_executor.models.qwen3_next:Qwen3NextAttention.__init__",
                   _admit_fused_qk_norm_rope_gate,
                   {"0.32.0": "9a32ea8461792f22", "0.33.0": "9a32ea8461792f22",
                    "0.34.0": "834131bd7ca2ba21"}),),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "Qwen3NextAttention (also the full-attention layers of Qwen3.5/Qwen3.6) uses the fused "
        "Triton kernel layers/fused_qk_norm_rope.py only when is_cuda() or is_xpu() (audit J1), "
        "so ROCm runs the eager split, two GemmaRMSNorm, RoPE and gate copy: several extra "
        "kernel launches and passes over q/k per attention layer. The kernel is plain Triton "
        "(no CUDA-only intrinsics); it compiles for gfx1151/gfx1100/gfx1201 without spills and "
        "matches the eager path (tests/gates/test_qk_norm_rope_gate.py)."
    ),
    how=(
        "Wrap Qwen3NextAttention.__init__: during the call, the module's `current_platform` "
        "answers is_cuda() for ROCm, so vLLM's own condition (output gate, neox RoPE, fp16/bf16, "
        "text-only or interleaved MRoPE) decides use_fused_qk_norm_rope_gate. vLLM 0.34.0 only "
        "appended `self.use_fused_output_gate = False` (Qwen3.5 turns its fused sigmoid-gate "
        "kernel on after construction); the platform expression is unchanged."
    ),
    upstream="audit J1; kernel from vLLM layers/fused_qk_norm_rope.py (CUDA/XPU only upstream)",
    removal="when vLLM admits ROCm in Qwen3NextAttention's use_fused_qk_norm_rope_gate",
    gates=("J1",),
)

FIXES = (FUSED_QK_NORM_ROPE_GATE,)
