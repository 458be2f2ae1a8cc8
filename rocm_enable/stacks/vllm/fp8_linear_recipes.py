"""Source patch of fp8_linear.py's record: the dense W8A16 kernels first in vLLM's ROCm FP8
linear-kernel tables."""
from __future__ import annotations

from rocm_enable.stacks.vllm.recipe import Recipe, Tree, template
from rocm_enable.stacks.vllm.recipe_embed import embed_module, embedded_path


LINEAR_OPS = ("ops/linear_w8a16.py",)


LINEAR = "vllm/model_executor/kernels/linear/__init__.py"
W8A16_LINEAR_KERNELS = ("RocmW8A16Fp8BlockLinearKernel", "RocmW8A16Fp8ScaledMMKernel")


def fp8_linear_w8a16(tree: Tree) -> None:
    for source in LINEAR_OPS:
        tree.write(embedded_path(source), embed_module(source))
    tree.write("vllm/model_executor/kernels/linear/scaled_mm/triton_w8a16_fp8.py",
               template("triton_w8a16_fp8.py"))
    tree.insert_between(
        LINEAR, "", "from vllm.model_executor.kernels.linear.scaled_mm.xpu import (\n",
        "from vllm.model_executor.kernels.linear.scaled_mm.triton_w8a16_fp8 import (\n"
        + "".join(f"    {k},\n" for k in W8A16_LINEAR_KERNELS) + ")\n",
    )
    tree.insert_between(LINEAR, '    "triton": {\n', "",
                        "".join(f"        {k},\n" for k in W8A16_LINEAR_KERNELS))
    # Head of the ROCm FP8 tables: is_supported() admits them only without FP8 compute.
    tree.insert_between(LINEAR, "    PlatformEnum.ROCM: [\n",
                        "        AiterHipbMMPerTokenFp8ScaledMMLinearKernel,\n",
                        "        RocmW8A16Fp8ScaledMMKernel,\n")
    tree.insert_between(LINEAR, "    PlatformEnum.ROCM: [\n",
                        "        AiterFp8BlockScaledMMKernel,\n"
                        "        TritonFp8BlockScaledMMKernel,\n    ],\n",
                        "        RocmW8A16Fp8BlockLinearKernel,\n")
    tree.replace_once(
        LINEAR,
        "_POSSIBLE_WFP8A16_KERNELS: dict[PlatformEnum, list[type[FP8ScaledMMLinearKernel]]] = {\n"
        "    PlatformEnum.CUDA: [\n        HummingFP8ScaledMMLinearKernel,\n"
        "        MarlinFP8ScaledMMLinearKernel,\n    ],\n"
        "    PlatformEnum.ROCM: [\n        # To be added\n    ],\n",
        "_POSSIBLE_WFP8A16_KERNELS: dict[PlatformEnum, list[type[FP8ScaledMMLinearKernel]]] = {\n"
        "    PlatformEnum.CUDA: [\n        HummingFP8ScaledMMLinearKernel,\n"
        "        MarlinFP8ScaledMMLinearKernel,\n    ],\n"
        "    PlatformEnum.ROCM: [\n        RocmW8A16Fp8ScaledMMKernel,\n    ],\n",
    )
    tree.insert_between(LINEAR, '    "ROCmFP8ScaledMMLinearKernel",\n', "",
                        "".join(f'    "{k}",\n' for k in W8A16_LINEAR_KERNELS))


RECIPES = (
    Recipe(
        "fp8-linear-w8a16", "RocmPlatform.has_native_fp8_compute()",
        "Adds the dense W8A16 launcher to the kernel package and "
        "RocmW8A16Fp8BlockLinearKernel / RocmW8A16Fp8ScaledMMKernel in "
        "kernels/linear/scaled_mm/triton_w8a16_fp8.py, first in the ROCm lists of "
        "_POSSIBLE_FP8_BLOCK_KERNELS, _POSSIBLE_FP8_KERNELS and _POSSIBLE_WFP8A16_KERNELS and in "
        "the 'triton' --linear-backend set; their is_supported() holds on ROCm without FP8 "
        "compute, so every other GPU keeps its list. Needs the fp8-moe-w8a16 patch (kernel "
        "package, predicate).",
        fp8_linear_w8a16, LINEAR_OPS),
)
