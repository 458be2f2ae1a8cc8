"""Source patch of capability_integers.py's record: compressed-tensors FP8 asks the platform
for FP8 compute instead of comparing SM 89 with the gfx number."""
from __future__ import annotations

from rocm_enable.stacks.vllm.recipe import ROCM, Recipe, Tree


def ct_fp8_scheme_by_fp8_compute(tree: Tree) -> None:
    tree.require(ROCM, "def has_native_fp8_compute(cls)", "RocmPlatform.has_native_fp8_compute()",
                 "fp8-moe-w8a16")
    tree.replace_once(
        "vllm/model_executor/layers/quantization/compressed_tensors/compressed_tensors.py",
        "    def _check_scheme_supported(\n"
        "        min_capability: int, error: bool = True, match_exact: bool = False\n"
        "    ) -> bool:\n"
        "        capability_tuple = current_platform.get_device_capability()\n",
        "    def _check_scheme_supported(\n"
        "        min_capability: int, error: bool = True, match_exact: bool = False\n"
        "    ) -> bool:\n"
        "        if (\n"
        "            current_platform.is_rocm()\n"
        "            and not (error or match_exact)\n"
        "            and min_capability == CompressedTensorsW8A8Fp8.get_min_capability()\n"
        "        ):\n"
        "            # The W8A8 FP8 floor is SM 8.9 (FP8 tensor cores). ROCm's capability\n"
        "            # integer is the gfx number (gfx1151 -> 115), so comparing the two\n"
        "            # would pick W8A8 FP8 (activation quantization and an emulated FP8\n"
        "            # GEMM) on RDNA3 GPUs without FP8 matrix instructions. Ask the\n"
        "            # platform instead: there the scheme becomes W8A16 FP8.\n"
        "            from vllm.platforms.rocm import on_rdna\n"
        "\n"
        "            if on_rdna():\n"
        "                return current_platform.has_native_fp8_compute()\n"
        "        capability_tuple = current_platform.get_device_capability()\n",
    )


RECIPES = (
    Recipe(
        "ct-fp8-scheme-by-fp8-compute",
        "RocmPlatform.has_native_fp8_compute() (from the fp8-moe-w8a16 patch), on RDNA",
        "CompressedTensorsConfig._check_scheme_supported answers the non-raising probe for the "
        "W8A8 FP8 floor (CompressedTensorsW8A8Fp8.get_min_capability(), error=False, "
        "match_exact=False) on ROCm RDNA GPUs with has_native_fp8_compute() instead of comparing "
        "SM 89 with the gfx number: gfx11 FP8 checkpoints get CompressedTensorsW8A16Fp8, gfx12 "
        "keeps W8A8. Every other capability question keeps the integer comparison. Needs the "
        "fp8-moe-w8a16 patch (the predicate).",
        ct_fp8_scheme_by_fp8_compute),
)
