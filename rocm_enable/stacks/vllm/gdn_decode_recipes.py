"""Source patch of gdn_decode.py's record: on ROCm RDNA, FLA's packed GDN decode launches
rocm_enable's decode kernel with 8 value rows per one-wave program."""
from __future__ import annotations

from rocm_enable.stacks.vllm.gdn_prefill_recipes import FLA_OPS, add_is_rocm_rdna
from rocm_enable.stacks.vllm.recipe import Recipe, Tree
from rocm_enable.stacks.vllm.recipe_embed import embed_module, embedded_path

DECODE_OPS = ("ops/gdn_kernels.py", "ops/gdn_decode.py")


def gdn_decode_rdna(tree: Tree) -> None:
    for source in DECODE_OPS:
        tree.write(embedded_path(source), embed_module(source))
    add_is_rocm_rdna(tree)
    recurrent = f"{FLA_OPS}/fused_recurrent.py"
    tree.insert_between(recurrent, "from .op import exp, log\n", "",
                        "from . import rocm_rdna_gdn_decode\nfrom .utils import is_rocm_rdna\n")
    tree.insert_between(
        recurrent,
        "    use_qk_l2norm_in_kernel: bool = False,\n) -> tuple[torch.Tensor, torch.Tensor]:\n",
        "    if mixed_qkv.ndim != 2:\n",
        "    if (\n"
        "        is_rocm_rdna()\n"
        "        and rocm_rdna_gdn_decode.decode_supported(\n"
        "            mixed_qkv, a, b, initial_state, out, ssm_state_indices\n"
        "        )\n"
        "        is None\n"
        "    ):\n"
        "        # Wave32 RDNA: 8 value rows of the state per one-wave program (91-104\n"
        "        # VGPRs, 12-16 waves per SIMD) instead of 32 (180-234 VGPRs, 6-8 waves).\n"
        "        return rocm_rdna_gdn_decode.packed_decode(\n"
        "            mixed_qkv, a, b, A_log, dt_bias, scale, initial_state, out,\n"
        "            ssm_state_indices, use_qk_l2norm_in_kernel\n"
        "        )\n",
    )


RECIPES = (
    Recipe(
        "gdn-decode-rdna", "is_rocm_rdna() (vLLM's on_rdna() on ROCm)",
        "Adds FLA ops rocm_rdna_gdn_decode.py (the packed-decode launcher: 8 value rows per "
        "one-wave program) and its kernel in rocm_rdna_gdn_kernels.py, and utils.is_rocm_rdna(); "
        "fused_recurrent_gated_delta_rule_packed_decode calls it on ROCm RDNA for key heads up to "
        "128 with [HV, V, K]-contiguous state slots, vLLM's launch everywhere else.",
        gdn_decode_rdna, DECODE_OPS),
)
