"""Source patches of norm_routing.py's records: aiter's RMSNorm only where its HIP kernels
have code objects (RocmPlatform.has_aiter_hip_kernels())."""
from __future__ import annotations

from rocm_enable.stacks.vllm.recipe import ROCM, Recipe, Tree


def rms_norm_not_aiter_hip(tree: Tree) -> None:
    tree.insert_between(
        ROCM,
        "    @classmethod\n    def use_custom_op_collectives(cls) -> bool:\n        return True\n",
        "",
        "\n"
        "    @classmethod\n"
        "    def has_aiter_hip_kernels(cls) -> bool:\n"
        '        """aiter\'s HIP/CK/asm kernels have code objects for this GPU. They\n'
        "        use CDNA3+ (gfx942 and newer) instructions, so gfx90a and every RDNA\n"
        '        GPU must not be routed to them."""\n'
        "        return get_cdna_version() >= 3\n",
    )
    # The arch exclusions vLLM lists (0.32: RDNA4; 0.33: RDNA4, gfx90a; 0.34: gfx90a) become
    # the one CDNA3+ test.
    tree.replace_regex_once(
        ROCM,
        r"^(?:            and not on_(?:rdna4|gfx90a)\(\)[^\n]*\n)+"
        r"(        \):\n            rms_norm = \[\"aiter\"\] \+ default\n)",
        lambda m: "            and cls.has_aiter_hip_kernels()\n" + m.group(1),
    )


def rms_norm_aiter_ir_priority(tree: Tree) -> None:
    tree.require(ROCM, "def has_aiter_hip_kernels(cls)", "RocmPlatform.has_aiter_hip_kernels()",
                 "rms-norm-not-aiter-hip")
    tree.insert_between(
        "vllm/config/kernel.py",
        "                current_op_priority.extend(unique_op_priority)\n"
        "\n",
        "",
        "        if current_platform.is_rocm() and not current_platform.has_aiter_hip_kernels():\n"
        "            # aiter's rms_norm implementations are registered as supported\n"
        "            # wherever aiter imports, but run aiter's HIP/CK kernel, which has\n"
        "            # no code object off CDNA3+: a user-named 'aiter' is dropped here.\n"
        '            for op_name in ("rms_norm", "fused_add_rms_norm"):\n'
        "                current_op_priority = getattr(self.ir_op_priority, op_name)\n"
        '                if current_op_priority and "aiter" in current_op_priority:\n'
        "                    setattr(\n"
        "                        self.ir_op_priority,\n"
        "                        op_name,\n"
        '                        [op for op in current_op_priority if op != "aiter"],\n'
        "                    )\n"
        "\n",
    )


RECIPES = (
    Recipe(
        "rms-norm-not-aiter-hip", "RocmPlatform.has_aiter_hip_kernels() (new)",
        "Adds RocmPlatform.has_aiter_hip_kernels() (get_cdna_version() >= 3) and puts 'aiter' "
        "first in the rms_norm / fused_add_rms_norm IR priority only where it holds, instead of "
        "on every arch except RDNA4 (0.32), RDNA4 and gfx90a (0.33), gfx90a (0.34).",
        rms_norm_not_aiter_hip),
    Recipe(
        "rms-norm-aiter-ir-priority",
        "RocmPlatform.has_aiter_hip_kernels() (from the rms-norm-not-aiter-hip patch)",
        "KernelConfig.set_platform_defaults removes 'aiter' from the merged rms_norm and "
        "fused_add_rms_norm priority (a user's --ir-op-priority plus the platform defaults) on "
        "ROCm GPUs where has_aiter_hip_kernels() is false; the rest of the user's order and "
        "vLLM's defaults follow unchanged. Needs the rms-norm-not-aiter-hip patch.",
        rms_norm_aiter_ir_priority),
)
