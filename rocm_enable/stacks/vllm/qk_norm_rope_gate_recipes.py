"""Source patch of qk_norm_rope_gate.py's record: the fused qk-norm + RoPE + gate kernel on
ROCm RDNA."""
from __future__ import annotations

from rocm_enable.stacks.vllm.recipe import Recipe, Tree


def fused_qk_norm_rope_gate(tree: Tree) -> None:
    tree.replace_once(
        "vllm/model_executor/models/qwen3_next.py",
        "        self.use_fused_qk_norm_rope_gate = (\n"
        "            self.attn_output_gate\n"
        '            and getattr(self.rotary_emb, "is_neox_style", False)\n'
        "            and (current_platform.is_cuda() or current_platform.is_xpu())\n",
        "        # The fused kernel is plain Triton; on ROCm it is validated (numerics,\n"
        "        # spill-free compiles) on RDNA (gfx11/gfx12).\n"
        "        on_rocm_rdna = False\n"
        "        if current_platform.is_rocm():\n"
        "            from vllm.platforms.rocm import on_rdna\n"
        "\n"
        "            on_rocm_rdna = on_rdna()\n"
        "        self.use_fused_qk_norm_rope_gate = (\n"
        "            self.attn_output_gate\n"
        '            and getattr(self.rotary_emb, "is_neox_style", False)\n'
        "            and (\n"
        "                current_platform.is_cuda()\n"
        "                or current_platform.is_xpu()\n"
        "                or on_rocm_rdna\n"
        "            )\n",
    )


RECIPES = (
    Recipe(
        "fused-qk-norm-rope-gate", "on_rdna() (vLLM's existing RDNA predicate)",
        "Qwen3NextAttention.__init__ (also the full-attention layers of Qwen3.5/3.6) admits ROCm "
        "RDNA GPUs next to CUDA and XPU in use_fused_qk_norm_rope_gate; its other conditions "
        "(output gate, neox RoPE, fp16/bf16, text-only or interleaved MRoPE) decide as before.",
        fused_qk_norm_rope_gate),
)
