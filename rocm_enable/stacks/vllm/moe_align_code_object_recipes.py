"""Source patch of moe_align_code_object.py's record: vllm._custom_ops.moe_align_block_size
fills vLLM's buffers with the W8A16 kernel package's Triton align when _moe_C lacks the GPU."""
from __future__ import annotations

from rocm_enable.stacks.vllm.hip_code_objects_recipes import LACKS_CODE_OBJECT_END
from rocm_enable.stacks.vllm.recipe import CUSTOM_OPS, ROCM, Recipe, Tree
from rocm_enable.stacks.vllm.recipe_embed import EMBEDDED

ALIGN = EMBEDDED["ops/moe_align.py"]
ALIGN_MODULE = ALIGN[:-3].replace("/", ".")
ALIGN_PACKAGE, _, ALIGN_NAME = ALIGN_MODULE.rpartition(".")
ALIGN_OP_CALL = "        return\n    torch.ops._moe_C.moe_align_block_size(\n"


def moe_align_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.require(ALIGN, "def vllm_moe_align_block_size(", "the Triton MoE align", "fp8-moe-w8a16")
    tree.replace_once(
        CUSTOM_OPS,
        ALIGN_OP_CALL,
        "        return\n"
        "    if current_platform.is_rocm() and current_platform.lacks_code_object(\n"
        '        "vllm._moe_C", "vllm._moe_C_stable_libtorch"\n'
        "    ):\n"
        "        # _moe_C was built without this GPU: the same layout from one Triton\n"
        "        # program (no host sync, so CUDA/HIP graphs capture it).\n"
        f"        from {ALIGN_PACKAGE} import {ALIGN_NAME}\n"
        "\n"
        f"        {ALIGN_NAME}.vllm_moe_align_block_size(\n"
        "            topk_ids,\n"
        "            num_experts,\n"
        "            block_size,\n"
        "            sorted_token_ids,\n"
        "            experts_ids,\n"
        "            num_tokens_post_pad,\n"
        "            expert_map,\n"
        "            scatter_idx,\n"
        "        )\n"
        "        return\n"
        "    torch.ops._moe_C.moe_align_block_size(\n",
    )


RECIPES = (
    Recipe(
        "moe-align-code-object",
        "RocmPlatform.lacks_code_object(\"vllm._moe_C\", \"vllm._moe_C_stable_libtorch\")",
        "vllm._custom_ops.moe_align_block_size fills the caller's sorted_token_ids, expert_ids, "
        "num_tokens_post_pad (and scatter_idx) with the W8A16 kernel package's one-program "
        f"Triton align ({ALIGN}: routes grouped by expert in flat order, groups padded to "
        "block_size with numel, expert id per block and 0 past the end, invalid or unmapped "
        "routes left out; no host sync) when _moe_C lacks a code object for this RDNA GPU. Needs "
        "the silu-and-mul-code-object patch (the predicate) and the fp8-moe-w8a16 patch (the "
        "kernel package).",
        moe_align_code_object),
)
