"""Source patch of moe_experts_code_object.py's record: vLLM's BF16 MoE experts compute SiLU-and-mul
and the top-k sum in torch when _C / _moe_C lack the GPU."""
from __future__ import annotations

from rocm_enable.stacks.vllm.hip_code_objects_recipes import LACKS_CODE_OBJECT_END
from rocm_enable.stacks.vllm.recipe import CUSTOM_OPS, ROCM, Recipe, Tree

ACTIVATION = "vllm/model_executor/layers/fused_moe/activation.py"
SILU_CALL = (
    "        else:\n"
    "            torch.ops._C.silu_and_mul(output, input)\n"
)
MOE_SUM_CALL = "    torch.ops._moe_C.moe_sum(input, output, topk_ids, expert_map)\n"


def moe_expert_ops_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.replace_once(
        ACTIVATION,
        SILU_CALL,
        "        elif current_platform.is_rocm() and current_platform.lacks_code_object(\n"
        '            "vllm._C", "vllm._C_stable_libtorch"\n'
        "        ):\n"
        "            # _C was built without this GPU: SiluAndMul.forward_native's math.\n"
        "            d = input.shape[-1] // 2\n"
        "            torch.mul(F.silu(input[..., :d]), input[..., d:], out=output)\n"
        + SILU_CALL,
    )
    tree.replace_once(
        CUSTOM_OPS,
        MOE_SUM_CALL,
        "    if (\n"
        "        expert_map is None\n"
        "        and current_platform.is_rocm()\n"
        "        and current_platform.lacks_code_object(\n"
        '            "vllm._moe_C", "vllm._moe_C_stable_libtorch"\n'
        "        )\n"
        "    ):\n"
        "        # _moe_C was built without this GPU: the same reduction in torch.\n"
        "        torch.sum(input, dim=1, out=output)\n"
        "        return\n"
        + MOE_SUM_CALL,
    )


RECIPES = (
    Recipe(
        "moe-expert-ops-code-object",
        "RocmPlatform.lacks_code_object(\"vllm._C\", ...) / (\"vllm._moe_C\", ...)",
        "apply_moe_activation's plain SiLU writes silu(gate) * up in torch (SiluAndMul."
        "forward_native's math) when _C lacks a code object for this GPU; _custom_ops.moe_sum "
        "without an expert map reduces the top-k axis with torch.sum when _moe_C lacks it. "
        "Needs the silu-and-mul-code-object patch (the predicate).",
        moe_expert_ops_code_object),
)
