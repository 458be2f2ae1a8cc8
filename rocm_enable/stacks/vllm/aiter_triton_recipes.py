"""Source patches of aiter_triton.py's records: aiter's Triton kernels (GDN decode, unified
attention, RoPE) on every RDNA GPU."""
from __future__ import annotations

from packaging.version import Version

from rocm_enable.stacks.vllm.aiter_triton import AITER_UNIFIED_ATTENTION
from rocm_enable.stacks.vllm.recipe import AITER_OPS, ROCM, Recipe, RecipeError, Tree, patch_needed


def aiter_gdn_triton_decode(tree: Tree) -> None:
    tree.replace_once(
        AITER_OPS,
        "    def is_rdna_gdn_triton_kernels_available(cls) -> bool:\n"
        '        """RDNA4 (gfx12) analog of are_gdn_triton_kernels_available()."""\n'
        "        return cls.is_rdna_aiter_enabled() and cls._gdn_triton_kernels_importable()\n",
        "    def is_rdna_gdn_triton_kernels_available(cls) -> bool:\n"
        '        """RDNA (gfx11/gfx12) analog of are_gdn_triton_kernels_available():\n'
        "        the GDN decode kernels are aiter Triton kernels, which compile for\n"
        '        every RDNA arch (no aiter HIP/CK code is involved)."""\n'
        "        if not current_platform.is_rocm() or not IS_AITER_FOUND:\n"
        "            return False\n"
        "        from vllm.platforms.rocm import on_rdna\n"
        "\n"
        "        return (\n"
        "            on_rdna() and cls._AITER_ENABLED and cls._gdn_triton_kernels_importable()\n"
        "        )\n",
    )


AITER_TRITON_PROBE = '''
    @staticmethod
    def _aiter_module_importable(module: str) -> bool:
        """aiter ships `module` (found, not imported)."""
        from importlib.util import find_spec

        try:
            return find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    @classmethod
    def is_rdna_triton_kernel_available(cls, module: str) -> bool:
        """aiter's Triton kernel `module` can serve this RDNA GPU (gfx11 or
        gfx12): aiter found, enabled by the user, and shipping the module.
        Triton kernels compile for every RDNA arch, aiter's HIP/CK kernels do
        not, so this is asked per kernel rather than through
        is_rdna_aiter_enabled(), which also gates aiter's fusion passes."""
        if not current_platform.is_rocm() or not IS_AITER_FOUND:
            return False
        from vllm.platforms.rocm import on_rdna

        return (
            on_rdna() and cls._AITER_ENABLED and cls._aiter_module_importable(module)
        )
'''
# the end of rocm_aiter_ops.is_rdna_aiter_enabled(): on_rdna4() up to 0.33, on_rdna() from 0.34
IS_RDNA_AITER_ENABLED_END = (r"^        from vllm\.platforms\.rocm import on_rdna4?\n\n"
                             r"        return on_rdna4?\(\) and cls\._AITER_ENABLED\n")
UNIFIED_ATTN = "vllm/v1/attention/backends/rocm_aiter_unified_attn.py"
PROBE = "def is_rdna_triton_kernel_available("


def _add_triton_kernel_probe(tree: Tree) -> None:
    """rocm_aiter_ops.is_rdna_triton_kernel_available(), added by the first patch of the series
    that asks it."""
    if PROBE not in tree.read(AITER_OPS):
        tree.replace_regex_once(AITER_OPS, f"({IS_RDNA_AITER_ENABLED_END})",
                                lambda m: m.group(1) + AITER_TRITON_PROBE)


def aiter_unified_attention_rdna(tree: Tree) -> None:
    # From 0.34 vLLM offers the backend on every RDNA arch itself and its ranking stands (the
    # record's get_valid_backends patch ends there): only the fusion hook is answered.
    if patch_needed(AITER_UNIFIED_ATTENTION, "RocmPlatform.get_valid_backends", tree.version):
        _add_triton_kernel_probe(tree)
        _rank_unified_attention_on_rdna(tree)
    _no_hip_fusion_on_rdna(tree)


def _rank_unified_attention_on_rdna(tree: Tree) -> None:
    tree.replace_once(
        ROCM,
        "    elif rocm_aiter_ops.is_rdna_aiter_enabled():\n"
        "        backends.insert(0, AttentionBackendEnum.ROCM_AITER_UNIFIED_ATTN)\n",
        "    elif rocm_aiter_ops.is_rdna_aiter_enabled() or (\n"
        "        # aiter's Triton unified attention carries its own RDNA3/3.5 launch\n"
        "        # configs; no aiter HIP/CK code is involved.\n"
        "        rocm_aiter_ops.is_rdna_triton_kernel_available(\n"
        '            "aiter.ops.triton.unified_attention"\n'
        "        )\n"
        "    ):\n"
        "        backends.insert(0, AttentionBackendEnum.ROCM_AITER_UNIFIED_ATTN)\n",
    )


def _no_hip_fusion_on_rdna(tree: Tree) -> None:
    tree.replace_once(
        UNIFIED_ATTN,
        "    def fused_qk_norm_mrope_kvcache_supported(self) -> bool:\n"
        "        return IS_AITER_FOUND\n",
        "    def fused_qk_norm_mrope_kvcache_supported(self) -> bool:\n"
        "        # aiter's fused qk-norm + MRoPE + KV-cache kernel is HIP code built\n"
        "        # for CDNA: no code object on RDNA, where this backend runs aiter's\n"
        "        # Triton attention only.\n"
        "        from vllm.platforms.rocm import on_rdna\n"
        "\n"
        "        return IS_AITER_FOUND and not on_rdna()\n",
    )


# register_ops_once registers aiter's ops on every RDNA arch (gfx11 included) from this release.
REGISTERS_ON_EVERY_RDNA = "0.34.0"


def aiter_triton_rope(tree: Tree) -> None:
    _add_triton_kernel_probe(tree)
    tree.replace_once(
        AITER_OPS,
        "    @classmethod\n"
        "    @if_aiter_supported\n"
        "    def is_triton_rotary_embed_enabled(cls) -> bool:\n"
        "        return cls._AITER_ENABLED and cls._TRITON_ROTARY_EMBED\n",
        "    @classmethod\n"
        "    def is_triton_rotary_embed_enabled(cls) -> bool:\n"
        "        if is_aiter_found_and_supported():\n"
        "            return cls._AITER_ENABLED and cls._TRITON_ROTARY_EMBED\n"
        "        # RDNA: aiter's RoPE is a Triton kernel (register_ops_once registers\n"
        "        # its op on gfx11 and gfx12 alike).\n"
        "        return cls._TRITON_ROTARY_EMBED and cls.is_rdna_triton_kernel_available(\n"
        '            "aiter.ops.triton.rope.rope"\n'
        "        )\n",
    )
    if Version(tree.version) >= Version(REGISTERS_ON_EVERY_RDNA):
        if "is_aiter_found_and_supported_on_rdna()" not in tree.read(AITER_OPS):
            raise RecipeError(f"vLLM {tree.version} {AITER_OPS}: register_ops_once no longer "
                              "registers aiter's ops on every RDNA arch")
        return
    tree.replace_once(
        AITER_OPS,
        "                    fake_impl=rocm_aiter_sparse_attn_indexer_fake,\n"
        "                    dispatch_key=current_platform.dispatch_key,\n"
        "                )\n"
        "                _OPS_REGISTERED = True\n",
        "                    fake_impl=rocm_aiter_sparse_attn_indexer_fake,\n"
        "                    dispatch_key=current_platform.dispatch_key,\n"
        "                )\n"
        "                if on_gfx11() and IS_AITER_FOUND:\n"
        "                    # aiter's Triton RoPE runs on RDNA3/3.5 as on RDNA4\n"
        "                    # (is_triton_rotary_embed_enabled).\n"
        "                    direct_register_custom_op(\n"
        '                        op_name="rocm_aiter_triton_rotary_embedding",\n'
        "                        op_func=_triton_rotary_embedding_impl,\n"
        '                        mutates_args=["query", "key"],\n'
        "                    )\n"
        "                _OPS_REGISTERED = True\n",
    )


RECIPES = (
    Recipe(
        "aiter-gdn-triton-decode", "on_rdna() (vLLM's existing RDNA predicate)",
        "rocm_aiter_ops.is_rdna_gdn_triton_kernels_available() admits every RDNA arch (on_rdna(): "
        "gfx11 and gfx12) instead of RDNA4 only; aiter presence, VLLM_ROCM_USE_AITER and the "
        "aiter.ops.triton GDN import probe still decide. The CDNA umbrella and every aiter "
        "HIP-kernel switch are untouched.",
        aiter_gdn_triton_decode),
    Recipe(
        "aiter-unified-attention-rdna",
        "rocm_aiter_ops.is_rdna_triton_kernel_available(module) (new; on_rdna(), aiter found and "
        "enabled, the aiter Triton module shipped)",
        "Adds rocm_aiter_ops.is_rdna_triton_kernel_available(module): on RDNA (gfx11, gfx12) an "
        "aiter Triton kernel is usable when aiter is found, VLLM_ROCM_USE_AITER is set and aiter "
        "ships the module. _get_backend_priorities ranks ROCM_AITER_UNIFIED_ATTN first when it "
        "holds for aiter.ops.triton.unified_attention (as it already does on RDNA4), without "
        "widening is_rdna_aiter_enabled(), which also switches on aiter fusion passes whose ops "
        "are registered on CDNA3+/RDNA4 only. RocmAiterUnifiedAttentionImpl."
        "fused_qk_norm_mrope_kvcache_supported() answers False on RDNA: that fusion runs aiter's "
        "HIP kernel. From vLLM 0.34.0, which offers the backend on every RDNA arch itself (after "
        "TRITON_ATTN off RDNA4, on purpose), the patch is that answer only.",
        aiter_unified_attention_rdna),
    Recipe(
        "aiter-triton-rope",
        "rocm_aiter_ops.is_rdna_triton_kernel_available(\"aiter.ops.triton.rope.rope\") (added "
        "by the aiter-unified-attention-rdna patch, or by this one where that patch does not "
        "rank the backend)",
        "rocm_aiter_ops.is_triton_rotary_embed_enabled() leaves the CDNA3+ umbrella "
        "(@if_aiter_supported): on CDNA3+ it answers as before, on RDNA it holds when "
        "VLLM_ROCM_USE_AITER_TRITON_ROPE is set and aiter's Triton RoPE is available. "
        "register_ops_once() registers rocm_aiter_triton_rotary_embedding on gfx11 when aiter is "
        "found (RDNA4 and CDNA3+ already register it; from vLLM 0.34.0 vLLM registers it on "
        "every RDNA arch itself).",
        aiter_triton_rope),
)
