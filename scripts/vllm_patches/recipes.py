"""How each fix record becomes an edit of vLLM's own tree (one commit, one patch per fix).

A recipe edits a copy of an installed vLLM package (`Tree`) the way an upstream change would:
new kernels and classes as vLLM modules registered in vLLM's own tables, decisions behind a
capability predicate on `RocmPlatform`. Every textual edit names an exact anchor and fails when
the anchor is missing or ambiguous, so a vLLM version that moved the code fails the build with
the file and anchor named instead of producing a wrong patch.

Kernel sources are NOT written here: `embed_ops_module` copies them from `rocm_enable/ops` with
only import lines and file-name mentions rewritten, so the series carries the runtime kernels.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "rocm_enable" / "ops"
TEMPLATES = Path(__file__).resolve().parent / "templates"

SPDX = ("# SPDX-License-Identifier: Apache-2.0\n"
        "# SPDX-FileCopyrightText: Copyright contributors to the vLLM project\n")

# The W8A16 FP8 kernel package inside vLLM's tree, and where each rocm_enable/ops module goes.
KERNEL_PKG = "vllm/model_executor/layers/quantization/utils/w8a16_fp8"
KERNEL_MOD = KERNEL_PKG.replace("/", ".")
EMBEDDED_OPS = {  # rocm_enable/ops/<source> -> <KERNEL_PKG>/<module>
    "fp8_dequant.py": "dequant.py",
    "w8a16_kernel.py": "triton_kernels.py",
    "config.py": "config.py",
    "moe_align.py": "moe_align.py",
    "moe_w8a16.py": "moe.py",
    "linear_w8a16.py": "linear.py",
}
MOE_OPS = ("fp8_dequant.py", "w8a16_kernel.py", "config.py", "moe_align.py", "moe_w8a16.py")
LINEAR_OPS = ("linear_w8a16.py",)


class RecipeError(RuntimeError):
    """A recipe's anchor is missing or ambiguous in this vLLM tree (the code moved)."""


class Tree:
    """A writable copy of a vLLM package (root holds `vllm/`). Files may be hard links into the
    installed package: every write replaces the file (unlink + create), never edits in place."""

    def __init__(self, root: Path, version: str):
        self.root = Path(root)
        self.version = version

    def path(self, rel: str) -> Path:
        return self.root / rel

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def read(self, rel: str) -> str:
        return self.path(rel).read_text()

    def write(self, rel: str, text: str) -> None:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.exists() or p.is_symlink():
            p.unlink()
        p.write_text(text)

    def rename(self, old: str, new: str) -> None:
        if self.exists(new):
            raise RecipeError(f"{new} already exists in vLLM {self.version}")
        os.rename(self.path(old), self.path(new))

    def replace_once(self, rel: str, old: str, new: str) -> None:
        text = self.read(rel)
        n = text.count(old)
        if n != 1:
            raise RecipeError(f"vLLM {self.version} {rel}: anchor found {n} times (need 1):\n{old}")
        self.write(rel, text.replace(old, new))

    def replace_regex_once(self, rel: str, pattern: str, repl: Callable | str) -> None:
        text = self.read(rel)
        found = re.findall(pattern, text, flags=re.M)
        if len(found) != 1:
            raise RecipeError(f"vLLM {self.version} {rel}: pattern found {len(found)} times "
                              f"(need 1): {pattern}")
        self.write(rel, re.sub(pattern, repl, text, flags=re.M))


# ---- embedding rocm_enable/ops ------------------------------------------------------------

def _module_of(source: str) -> str:
    return EMBEDDED_OPS[source][:-3]


def embed_ops_module(source: str) -> str:
    """rocm_enable/ops/<source> as the vLLM module <KERNEL_PKG>/<EMBEDDED_OPS[source]>.

    Rewrites only: import lines (rocm_enable.ops.X -> the package's module, `import triton` ->
    vLLM's triton_utils), mentions of the ops file names and of the rocm_enable/ops folder, and
    prepends vLLM's SPDX header plus a line naming the source. Anything else that still imports
    rocm_enable is an error: the embedded kernels must not depend on the plugin."""
    text = (OPS / source).read_text()
    text = re.sub(r"^import triton\nimport triton\.language as tl\n",
                  "from vllm.triton_utils import tl, triton\n", text, flags=re.M)
    text = re.sub(r"^import triton\n", "from vllm.triton_utils import triton\n", text, flags=re.M)
    text = re.sub(r"^from rocm_enable\.ops import (\w+)",
                  lambda m: f"from {KERNEL_MOD} import {_module_of(m.group(1) + '.py')}",
                  text, flags=re.M)
    text = re.sub(r"rocm_enable\.ops\.(\w+)",
                  lambda m: f"{KERNEL_MOD}.{_module_of(m.group(1) + '.py')}", text)
    text = text.replace("rocm_enable/ops/", "")
    for src, dst in EMBEDDED_OPS.items():
        if src != dst:
            text = re.sub(rf"\b{re.escape(src)}\b", dst, text)
    bad = re.findall(r"^\s*(?:from|import)\s+rocm_enable\S*", text, flags=re.M)
    if bad:
        raise RecipeError(f"rocm_enable/ops/{source} imports {bad}: embed that module too "
                          "(scripts/vllm_patches/recipes.py EMBEDDED_OPS)")
    return (SPDX + f"# Generated from rocm-enable rocm_enable/ops/{source} "
            "(scripts/build_vllm_patches.py); keep the two identical.\n" + text)


def embedded_path(source: str) -> str:
    return f"{KERNEL_PKG}/{EMBEDDED_OPS[source]}"


def kernel_config_files() -> dict[str, str]:
    """vLLM path -> text of every launch-configuration file (copied verbatim)."""
    return {f"{KERNEL_PKG}/configs/{p.name}": p.read_text()
            for p in sorted((OPS / "configs").glob("*.json"))}


def template(name: str) -> str:
    return (TEMPLATES / name).read_text()


# ---- the recipes --------------------------------------------------------------------------

ROCM = "vllm/platforms/rocm.py"


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


def fp8_moe_w8a16(tree: Tree) -> None:
    _add_has_native_fp8_compute(tree)
    tree.write(f"{KERNEL_PKG}/__init__.py", template("w8a16_fp8__init__.py"))
    for source in MOE_OPS:
        tree.write(embedded_path(source), embed_ops_module(source))
    for rel, text in kernel_config_files().items():
        tree.write(rel, text)
    tree.write("vllm/model_executor/layers/fused_moe/experts/triton_w8a16_fp8_moe.py",
               template("triton_w8a16_fp8_moe.py"))
    tree.replace_once(
        "vllm/model_executor/layers/fused_moe/oracle/fp8.py",
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
        "            logger.info_once(_make_log_backend(Fp8MoeBackend.TRITON))\n"
        "            return Fp8MoeBackend.TRITON, RocmW8A16Fp8Experts\n"
        "\n"
        "    # Handle explicit moe_backend from user.\n",
    )


LINEAR = "vllm/model_executor/kernels/linear/__init__.py"
W8A16_LINEAR_KERNELS = ("RocmW8A16Fp8BlockLinearKernel", "RocmW8A16Fp8ScaledMMKernel")


def fp8_linear_w8a16(tree: Tree) -> None:
    tree.write(embedded_path("linear_w8a16.py"), embed_ops_module("linear_w8a16.py"))
    tree.write("vllm/model_executor/kernels/linear/scaled_mm/triton_w8a16_fp8.py",
               template("triton_w8a16_fp8.py"))
    tree.replace_once(
        LINEAR,
        "from vllm.model_executor.kernels.linear.scaled_mm.xpu import (\n",
        "from vllm.model_executor.kernels.linear.scaled_mm.triton_w8a16_fp8 import (\n"
        "    RocmW8A16Fp8BlockLinearKernel,\n"
        "    RocmW8A16Fp8ScaledMMKernel,\n"
        ")\n"
        "from vllm.model_executor.kernels.linear.scaled_mm.xpu import (\n",
    )
    tree.replace_once(
        LINEAR,
        '    "triton": {\n',
        '    "triton": {\n'
        "        RocmW8A16Fp8BlockLinearKernel,\n"
        "        RocmW8A16Fp8ScaledMMKernel,\n",
    )
    # Head of the ROCm FP8 tables: is_supported() admits them only without FP8 compute.
    tree.replace_once(
        LINEAR,
        "    PlatformEnum.ROCM: [\n        AiterHipbMMPerTokenFp8ScaledMMLinearKernel,\n",
        "    PlatformEnum.ROCM: [\n        RocmW8A16Fp8ScaledMMKernel,\n"
        "        AiterHipbMMPerTokenFp8ScaledMMLinearKernel,\n",
    )
    tree.replace_once(
        LINEAR,
        "    PlatformEnum.ROCM: [\n        AiterFp8BlockScaledMMKernel,\n"
        "        TritonFp8BlockScaledMMKernel,\n    ],\n",
        "    PlatformEnum.ROCM: [\n        RocmW8A16Fp8BlockLinearKernel,\n"
        "        AiterFp8BlockScaledMMKernel,\n        TritonFp8BlockScaledMMKernel,\n    ],\n",
    )
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
    tree.replace_once(
        LINEAR,
        '    "ROCmFP8ScaledMMLinearKernel",\n',
        '    "ROCmFP8ScaledMMLinearKernel",\n'
        + "".join(f'    "{k}",\n' for k in W8A16_LINEAR_KERNELS),
    )


MOE_CONFIGS = "vllm/model_executor/layers/fused_moe/configs"
DEVICE_FIELD = re.compile(r"device_name=([^,]+)")


def _config_name_aliases(condition) -> dict[str, str]:
    """alias -> vLLM's own name (config_names[0], the PCI-id map name) for the boards of every
    arch in the capability table where the fix's condition holds."""
    from rocm_enable.gates.capabilities import capability_table

    aliases: dict[str, str] = {}
    for caps in capability_table().values():
        if not condition(caps):
            continue
        for board in caps.boards:
            names = list(board.config_names)
            for alias in names[1:]:
                aliases.setdefault(alias, names[0])
    return aliases


def moe_config_board_names(tree: Tree) -> None:
    from rocm_enable.stacks.vllm.moe_config_lookup import MOE_CONFIG_BOARD_NAMES, shipped_config_dir

    aliases = _config_name_aliases(MOE_CONFIG_BOARD_NAMES.condition)
    changed = 0
    for path in sorted(tree.path(MOE_CONFIGS).glob("*.json")):
        m = DEVICE_FIELD.search(path.name)
        if not m or m.group(1) not in aliases:
            continue
        target = path.name.replace(m.group(0), f"device_name={aliases[m.group(1)]}")
        if not tree.exists(f"{MOE_CONFIGS}/{target}"):
            tree.rename(f"{MOE_CONFIGS}/{path.name}", f"{MOE_CONFIGS}/{target}")
            changed += 1
    for path in sorted(Path(shipped_config_dir()).glob("*.json")):  # configs rocm-enable ships
        m = DEVICE_FIELD.search(path.name)
        name = path.name if not m else path.name.replace(
            m.group(0), f"device_name={aliases.get(m.group(1), m.group(1))}")
        if not tree.exists(f"{MOE_CONFIGS}/{name}"):
            tree.write(f"{MOE_CONFIGS}/{name}", path.read_text())
            changed += 1
    if not changed:
        raise RecipeError(f"vLLM {tree.version}: no Radeon MoE config needs its board name fixed")


def rms_norm_not_aiter_hip(tree: Tree) -> None:
    tree.replace_once(
        ROCM,
        "    @classmethod\n    def use_custom_op_collectives(cls) -> bool:\n        return True\n",
        "    @classmethod\n    def use_custom_op_collectives(cls) -> bool:\n        return True\n"
        "\n"
        "    @classmethod\n"
        "    def has_aiter_hip_kernels(cls) -> bool:\n"
        '        """aiter\'s HIP/CK/asm kernels have code objects for this GPU. They\n'
        "        use CDNA3+ (gfx942 and newer) instructions, so gfx90a and every RDNA\n"
        '        GPU must not be routed to them."""\n'
        "        return get_cdna_version() >= 3\n",
    )
    tree.replace_regex_once(
        ROCM,
        r"^            and not on_rdna4\(\)\n(?:            and not on_gfx90a\(\)[^\n]*\n)?"
        r"(        \):\n            rms_norm = \[\"aiter\"\] \+ default\n)",
        lambda m: "            and cls.has_aiter_hip_kernels()\n" + m.group(1),
    )


def aiter_gdn_triton_decode(tree: Tree) -> None:
    tree.replace_once(
        "vllm/_aiter_ops.py",
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


@dataclass(frozen=True)
class Recipe:
    fix: str  # the fix record's name
    predicate: str  # the capability predicate the vLLM change asks
    how: str  # what the patch changes in vLLM's tree
    apply: Callable[[Tree], None]
    embeds: tuple[str, ...] = field(default=())  # rocm_enable/ops sources the patch carries


RECIPES: tuple[Recipe, ...] = (
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
    Recipe(
        "moe-config-board-names", "board names from the capability table (no runtime predicate)",
        "Renames vLLM's shipped fused-MoE config files whose device_name is a market-name alias "
        "of a wave32 RDNA board (capability table config_names) to the name "
        "RocmPlatform.get_device_name() produces for that board (its PCI-id map), e.g. "
        "Radeon_8060S_Graphics -> AMD_Radeon_8060S, and adds the tuned configs rocm-enable ships "
        "under that name.",
        moe_config_board_names),
    Recipe(
        "rms-norm-not-aiter-hip", "RocmPlatform.has_aiter_hip_kernels() (new)",
        "Adds RocmPlatform.has_aiter_hip_kernels() (get_cdna_version() >= 3) and puts 'aiter' "
        "first in the rms_norm / fused_add_rms_norm IR priority only where it holds, instead of "
        "on every arch except RDNA4 (and, in 0.33, gfx90a).",
        rms_norm_not_aiter_hip),
)

RECIPES += (
    Recipe(
        "aiter-gdn-triton-decode", "on_rdna() (vLLM's existing RDNA predicate)",
        "rocm_aiter_ops.is_rdna_gdn_triton_kernels_available() admits every RDNA arch (on_rdna(): "
        "gfx11 and gfx12) instead of RDNA4 only; aiter presence, VLLM_ROCM_USE_AITER and the "
        "aiter.ops.triton GDN import probe still decide. The CDNA umbrella and every aiter "
        "HIP-kernel switch are untouched.",
        aiter_gdn_triton_decode),
)

BY_FIX = {r.fix: r for r in RECIPES}


def json_dump(obj) -> str:
    return json.dumps(obj, indent=1) + "\n"
