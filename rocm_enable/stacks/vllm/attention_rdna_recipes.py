"""Source patch of attention_rdna.py's record: the ROCM_RDNA_ATTN backend in vLLM's tree,
first in the ROCm priority list on RDNA."""
from __future__ import annotations

from rocm_enable.stacks.vllm.recipe import ROCM, Recipe, Tree, template
from rocm_enable.stacks.vllm.recipe_embed import embed_module, embedded_path


ATTENTION_OPS = ("ops/attention_kernels.py", "ops/attention_rdna.py")


RDNA_ATTN_BACKEND = "vllm/v1/attention/backends/rocm_rdna_attn.py"


def rdna_attention(tree: Tree) -> None:
    for source in ATTENTION_OPS:
        tree.write(embedded_path(source), embed_module(source))
    tree.write(RDNA_ATTN_BACKEND, template("rocm_rdna_attn.py"))
    tree.replace_once(
        "vllm/v1/attention/backends/registry.py",
        '    ROCM_ATTN = "vllm.v1.attention.backends.rocm_attn.RocmAttentionBackend"\n',
        '    ROCM_ATTN = "vllm.v1.attention.backends.rocm_attn.RocmAttentionBackend"\n'
        '    ROCM_RDNA_ATTN = "vllm.v1.attention.backends.rocm_rdna_attn.RdnaAttentionBackend"\n',
    )
    tree.replace_regex_once(
        ROCM,
        r"^(    backends\.append\(AttentionBackendEnum\.TRITON_ATTN\)\n"
        r"(?:    backends\.append\(AttentionBackendEnum\.\w+\)\n)*)(\n    return backends\n)",
        lambda m: m.group(1) + (
            "    # Wave32 RDNA: the RDNA Triton backend first. Its kernels do not spill\n"
            "    # at head_dim 256 and split the KV range at small batch; the selector\n"
            "    # skips it for layers it does not serve (FP8 KV cache, sinks, sliding\n"
            "    # window, encoder, other head sizes) and takes the next valid backend.\n"
            "    if on_rdna():\n"
            "        backends.insert(0, AttentionBackendEnum.ROCM_RDNA_ATTN)\n"
        ) + m.group(2),
    )


RECIPES = (
    Recipe(
        "rdna-attention", "on_rdna() (vLLM's existing RDNA predicate)",
        "Adds the ROCM_RDNA_ATTN attention backend (v1/attention/backends/rocm_rdna_attn.py: "
        "TritonAttentionBackend's layout, spec and metadata builder plus a flash-decoding "
        "scratch buffer; supported on wave32 RDNA, 16-bit KV cache, head sizes 64/128/256, "
        "causal decoder layers without sinks, sliding window or ALiBi), its Triton kernels and "
        "launch planning (v1/attention/ops/rocm_rdna_attn.py, rocm_rdna_attn_kernels.py), its "
        "AttentionBackendEnum member, and puts it first in the ROCm priority list for non-MLA "
        "layers on RDNA. The selector validates it like every backend and falls through to "
        "vLLM's own order where it does not fit; --attention-backend still overrides.",
        rdna_attention, ATTENTION_OPS),
)
