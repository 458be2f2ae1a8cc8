"""Source patch of fp8_moe.py's record: the W8A16 kernel package and experts in vLLM's tree,
chosen by select_fp8_moe_backend where RocmPlatform.has_native_fp8_compute() is false."""
from __future__ import annotations

from rocm_enable.stacks.vllm.recipe import ROCM, Recipe, RecipeError, Tree, template
from rocm_enable.stacks.vllm.recipe_embed import KERNEL_PKG, embed_module, embedded_path, kernel_config_files


MOE_OPS = ("ops/fp8_dequant.py", "ops/w8a16_kernel.py", "ops/config.py", "ops/moe_align.py",
           "ops/moe_w8a16.py")


def _add_has_native_fp8_compute(tree: Tree) -> None:
    tree.replace_regex_once(
        ROCM,
        r"^(    @classmethod\n    def supports_fp8\(cls\) -> bool:\n        return [^\n]+\n)",
        lambda m: m.group(1) + (
            "\n"
            "    @classmethod\n"
            "    def has_native_fp8_compute(cls) -> bool:\n"
            '        """The matrix cores multiply FP8 operands (CDNA3 fnuz, CDNA4, RDNA4\n'
            "        and gfx1250 OCP). Elsewhere (gfx90a, RDNA3/3.5) FP8 checkpoints are\n"
            "        served W8A16: weights decoded to 16 bits inside the kernel,\n"
            '        activations not quantized."""\n'
            "        return on_mi3xx() or on_rdna4() or on_gfx1250()\n"),
    )


ORACLE = "vllm/model_executor/layers/fused_moe/oracle/fp8.py"
# how select_fp8_moe_backend logs the backend it settles on: a local helper up to 0.33, the
# Fp8MoEKernelOracle's method from 0.34
BACKEND_LOG_CALLS = (
    ("def _make_log_backend(", "_make_log_backend(Fp8MoeBackend.TRITON)"),
    ("oracle.make_log_backend(", "oracle.make_log_backend(Fp8MoeBackend.TRITON, AVAILABLE_BACKENDS)"),
)


def fp8_moe_w8a16(tree: Tree) -> None:
    _add_has_native_fp8_compute(tree)
    tree.write(f"{KERNEL_PKG}/__init__.py", template("w8a16_fp8__init__.py"))
    for source in MOE_OPS:
        tree.write(embedded_path(source), embed_module(source))
    for rel, text in kernel_config_files().items():
        tree.write(rel, text)
    tree.write("vllm/model_executor/layers/fused_moe/experts/triton_w8a16_fp8_moe.py",
               template("triton_w8a16_fp8_moe.py"))
    oracle = tree.read(ORACLE)
    log = next((call for marker, call in BACKEND_LOG_CALLS if marker in oracle), None)
    if log is None:
        raise RecipeError(f"vLLM {tree.version} {ORACLE}: no backend log helper "
                          f"({', '.join(m for m, _ in BACKEND_LOG_CALLS)})")
    tree.insert_between(
        ORACLE,
        "",
        "    # Handle explicit moe_backend from user.\n",
        "    # FP8 weights on ROCm GPUs without FP8 compute: W8A16 experts (weights\n"
        "    # decoded in the kernel, activations unquantized), ahead of AITER (gfx9\n"
        "    # kernels) and of W8A8 Triton, which would quantize activations and\n"
        "    # emulate the FP8 product. They use the TRITON weight layout.\n"
        '    if config.moe_backend in ("auto", "triton"):\n'
        "        from vllm.model_executor.layers.fused_moe.experts.triton_w8a16_fp8_moe import (  # noqa: E501\n"
        "            RocmW8A16Fp8Experts,\n"
        "        )\n"
        "\n"
        "        supported, _ = RocmW8A16Fp8Experts.is_supported_config(\n"
        "            RocmW8A16Fp8Experts,\n"
        "            config,\n"
        "            weight_key,\n"
        "            activation_key,\n"
        "            activation_format,\n"
        "        )\n"
        "        if supported:\n"
        f"            logger.info_once({log})\n"
        "            return Fp8MoeBackend.TRITON, RocmW8A16Fp8Experts\n"
        "\n",
    )


RECIPES = (
    Recipe(
        "fp8-moe-w8a16", "RocmPlatform.has_native_fp8_compute() (new)",
        "Adds RocmPlatform.has_native_fp8_compute(); the W8A16 FP8 Triton kernel package "
        f"{KERNEL_PKG}/ (GEMM kernel, integer-op e4m3 decoding, torch MoE routing, launch "
        "configs per kernel family); RocmW8A16Fp8Experts in "
        "fused_moe/experts/triton_w8a16_fp8_moe.py (supported on ROCm without FP8 compute); and "
        "in select_fp8_moe_backend, for --moe-backend auto/triton, returns (TRITON, "
        "RocmW8A16Fp8Experts) when the experts support the configuration, before the AITER and "
        "priority-list paths. Upstream packaging also needs "
        f"'{KERNEL_PKG.removeprefix('vllm/')}/configs/*.json' in setup.py package_data.",
        fp8_moe_w8a16, MOE_OPS),
)
