"""How each fix record becomes an edit of vLLM's own tree (one commit, one patch per fix).

A recipe edits a copy of an installed vLLM package (`Tree`) the way an upstream change would:
new kernels and classes as vLLM modules registered in vLLM's own tables, decisions behind a
capability predicate on `RocmPlatform`. Every textual edit names an exact anchor and fails when
the anchor is missing or ambiguous, so a vLLM version that moved the code fails the build with
the file and anchor named instead of producing a wrong patch.

Kernel sources are NOT written here: `embed_module` copies them from `rocm_enable/ops` (and the
offload-bundle reader from `rocm_enable/gates`) with only import lines, file-name mentions and
declared exact edits rewritten, so the series carries the runtime code.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "rocm_enable"
OPS = PKG / "ops"
TEMPLATES = Path(__file__).resolve().parent / "templates"

SPDX = ("# SPDX-License-Identifier: Apache-2.0\n"
        "# SPDX-FileCopyrightText: Copyright contributors to the vLLM project\n")

# The W8A16 FP8 kernel package inside vLLM's tree, and where each rocm_enable/ops module goes.
KERNEL_PKG = "vllm/model_executor/layers/quantization/utils/w8a16_fp8"
KERNEL_MOD = KERNEL_PKG.replace("/", ".")
ATTN_OPS = "vllm/v1/attention/ops"
# rocm-enable modules carried into vLLM's tree: rocm_enable/<source> -> vLLM path. Only import
# lines, module/file-name mentions and the EMBED_EDITS below are rewritten (embed_module).
EMBEDDED = {
    "ops/fp8_dequant.py": f"{KERNEL_PKG}/dequant.py",
    "ops/w8a16_kernel.py": f"{KERNEL_PKG}/triton_kernels.py",
    "ops/config.py": f"{KERNEL_PKG}/config.py",
    "ops/moe_align.py": f"{KERNEL_PKG}/moe_align.py",
    "ops/moe_w8a16.py": f"{KERNEL_PKG}/moe.py",
    "ops/linear_w8a16.py": f"{KERNEL_PKG}/linear.py",
    "ops/attention_kernels.py": f"{ATTN_OPS}/rocm_rdna_attn_kernels.py",
    "ops/attention_rdna.py": f"{ATTN_OPS}/rocm_rdna_attn.py",
    "gates/code_objects.py": "vllm/platforms/rocm_code_objects.py",
}
MOE_OPS = ("ops/fp8_dequant.py", "ops/w8a16_kernel.py", "ops/config.py", "ops/moe_align.py",
           "ops/moe_w8a16.py")
LINEAR_OPS = ("ops/linear_w8a16.py",)
ATTENTION_OPS = ("ops/attention_kernels.py", "ops/attention_rdna.py")
CODE_OBJECT_READER = ("gates/code_objects.py",)

# LLVM's generic processor targets and the processors whose code objects they replace (LLVM
# AMDGPUUsage, "Generic Processors"; clang OffloadArch). The vLLM copy of gates/code_objects.py
# reads this instead of rocm-enable's capability table; code_object_reader() checks that both
# agree on every arch the table knows.
LLVM_GENERIC_TARGETS = {
    "gfx9-generic": ("gfx900", "gfx902", "gfx904", "gfx906", "gfx909", "gfx90c"),
    "gfx9-4-generic": ("gfx940", "gfx941", "gfx942", "gfx950"),
    "gfx10-1-generic": ("gfx1010", "gfx1011", "gfx1012", "gfx1013"),
    "gfx10-3-generic": ("gfx1030", "gfx1031", "gfx1032", "gfx1033", "gfx1034", "gfx1035",
                        "gfx1036"),
    "gfx11-generic": ("gfx1100", "gfx1101", "gfx1102", "gfx1103", "gfx1150", "gfx1151",
                      "gfx1152", "gfx1153"),
    "gfx12-generic": ("gfx1200", "gfx1201"),
}


def _generic_targets_source() -> str:
    rows = "".join(f'    "{g}": (\n' + "".join(f'        "{a}",\n' for a in archs) + "    ),\n"
                   for g, archs in LLVM_GENERIC_TARGETS.items())
    return (
        "\n\n# LLVM generic processor targets and the processors that run their code objects\n"
        '# (LLVM AMDGPUUsage, "Generic Processors").\n'
        "GENERIC_TARGETS: dict[str, tuple[str, ...]] = {\n" + rows + "}\n"
        "\n\n"
        "def generic_targets_of(arch: str) -> set[str]:\n"
        '    """The generic targets whose code objects run on `arch`."""\n'
        "    return {g for g, archs in GENERIC_TARGETS.items() if arch in archs}\n")


# Exact edits (each must match once) beyond the import/name rewriting, per embedded source.
EMBED_EDITS: dict[str, tuple[tuple[str, str], ...]] = {
    # measured configs: vLLM's own tuned-config folder instead of rocm-enable's cache and command
    "ops/config.py": (
        ("A file written by ``rocm-enable tune`` (measured on the user's own GPU) in\n"
         "``$ROCM_ENABLE_CACHE_DIR/w8a16/<family>.json`` (default ``~/.cache/rocm-enable``; mount it as a\n"
         "volume so it survives container restarts) replaces the shipped file of that family.\n",
         "A file ``w8a16/<family>.json`` (measured on the user's own GPU, same format) in\n"
         "``$VLLM_TUNED_CONFIG_FOLDER`` replaces the shipped file of that family.\n"),
        ('CACHE_ENV = "ROCM_ENABLE_CACHE_DIR"\n', 'CACHE_ENV = "VLLM_TUNED_CONFIG_FOLDER"\n'),
        ('CACHE_DEFAULT = os.path.join("~", ".cache", "rocm-enable")\n',
         'CACHE_DEFAULT = os.path.join("~", ".cache", "vllm", "tuned_configs")\n'),
        ('LOGGER = "vllm.rocm_enable"\n', "LOGGER = __name__\n"),
        ('RETUNE_HINT = "delete it or re-run `rocm-enable tune`"\n',
         'RETUNE_HINT = "delete it or measure it again"\n'),
    ),
    "gates/code_objects.py": (
        ("A code object for an LLVM generic target (gfx11-generic, ...) runs on every arch whose "
         "capability\nrecord lists that target (capabilities.yaml `generic_targets`).\n",
         "A code object for an LLVM generic target (gfx11-generic, ...) runs on every processor "
         "LLVM lists\nfor that target (GENERIC_TARGETS).\n"),
        ("    from rocm_enable.gates.capabilities import capabilities_for\n\n", ""),
        ("capabilities_for(arch).generic_targets", "generic_targets_of(arch)"),
    ),
}
EMBED_APPEND: dict[str, Callable[[], str]] = {"gates/code_objects.py": _generic_targets_source}


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

    def require(self, rel: str, marker: str, what: str, added_by: str) -> None:
        """`what`, which the earlier patch `added_by` of the series adds, is in `rel` (found by
        `marker`): a recipe building on another patch fails clearly when applied out of order."""
        if marker not in self.read(rel):
            raise RecipeError(f"vLLM {self.version} {rel}: {what} missing (the {added_by} patch "
                              "adds it; apply the series in order)")

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


# ---- embedding rocm-enable modules ---------------------------------------------------------

def _dotted(source: str) -> str:
    """'ops/attention_rdna.py' -> the vLLM module it becomes, dotted."""
    return EMBEDDED[source][:-3].replace("/", ".")


def embed_module(source: str) -> str:
    """rocm_enable/<source> as the vLLM module EMBEDDED[source].

    Rewrites only: import lines (rocm_enable.ops.X / rocm_enable.gates.X -> the embedded module,
    `import triton` -> vLLM's triton_utils), mentions of embedded modules and file names and of
    the rocm_enable/ops folder, the exact EMBED_EDITS of the source, and prepends vLLM's SPDX
    header plus a line naming the source. Anything else that still imports rocm_enable is an
    error: the embedded code must not depend on the plugin."""
    text = (PKG / source).read_text()
    for old, new in EMBED_EDITS.get(source, ()):
        if text.count(old) != 1:
            raise RecipeError(f"rocm_enable/{source}: embed edit anchor found {text.count(old)} "
                              f"times (need 1): {old!r} (scripts/vllm_patches/recipes.py "
                              "EMBED_EDITS)")
        text = text.replace(old, new)
    text = re.sub(r"^import triton\nimport triton\.language as tl\n",
                  "from vllm.triton_utils import tl, triton\n", text, flags=re.M)
    text = re.sub(r"^import triton\n", "from vllm.triton_utils import triton\n", text, flags=re.M)

    def from_import(m):
        package, _, module = _dotted(f"{m.group(1)}/{m.group(2)}.py").rpartition(".")
        return f"from {package} import {module}"

    def dotted(m):
        key = f"{m.group(1)}/{m.group(2)}.py"
        return _dotted(key) if key in EMBEDDED else m.group(0)

    text = re.sub(r"^from rocm_enable\.(ops|gates) import (\w+)", from_import, text, flags=re.M)
    text = re.sub(r"rocm_enable\.(ops|gates)\.(\w+)", dotted, text)
    text = text.replace("rocm_enable/ops/", "")
    for src, dst in EMBEDDED.items():
        src_name, dst_name = src.rsplit("/", 1)[1], dst.rsplit("/", 1)[1]
        if src_name != dst_name:
            text = re.sub(rf"\b{re.escape(src_name)}\b", dst_name, text)
    bad = re.findall(r"^\s*(?:from|import)\s+rocm_enable\S*", text, flags=re.M)
    if bad:
        raise RecipeError(f"rocm_enable/{source} imports {bad}: embed that module too "
                          "(scripts/vllm_patches/recipes.py EMBEDDED)")
    if source in EMBED_APPEND:
        text = text.rstrip("\n") + "\n" + EMBED_APPEND[source]()
    keep = ("keep the two identical" if source not in EMBED_EDITS else
            "keep the two in step (scripts/vllm_patches/recipes.py EMBED_EDITS)")
    return (SPDX + f"# Generated from rocm-enable rocm_enable/{source} "
            f"(scripts/build_vllm_patches.py); {keep}.\n" + text)


def embedded_path(source: str) -> str:
    return EMBEDDED[source]


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
        tree.write(embedded_path(source), embed_module(source))
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
    for source in LINEAR_OPS:
        tree.write(embedded_path(source), embed_module(source))
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
# the device field ends at the next "," or at ".json" (files without dtype end with the device name)
DEVICE_FIELD = re.compile(r"device_name=([^,]+?)(?=,|\.json$)")


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


# ---- HIP extensions without a code object for this GPU (offload-bundle reader) -------------

CODE_OBJECTS = EMBEDDED["gates/code_objects.py"]
IS_NAVI = '    @classmethod\n    def is_navi(cls) -> bool:\n        return "gfx1" in _GCN_ARCH\n'
C_EXTENSIONS = ('"vllm._C"', '"vllm._C_stable_libtorch"')  # as rocm_enable.stacks.vllm.hip_code_objects

CODE_OBJECT_METHODS = '''
    @classmethod
    @cache
    def code_object_status(cls, *extensions: str) -> "CodeObjectVerdict":
        """Whether vLLM's compiled extensions (e.g. "vllm._rocm_C") carry a code
        object that runs on this GPU, read from their offload bundles.

        An extension built without this GPU in PYTORCH_ROCM_ARCH still registers
        its ops (hasattr(torch.ops._rocm_C, ...) holds for every build), and the
        first launch fails with 'invalid device function'. "unknown" (no file, no
        readable bundle) is never reported as "absent"."""
        from vllm.platforms.rocm_code_objects import extensions_status

        verdict = extensions_status(extensions, _GCN_ARCH.split(":")[0].lower())
        if verdict.absent:
            logger.warning(
                "%s has no code object for %s (%s); its ops on the model path are "
                "routed to native/Triton implementations",
                "/".join(extensions),
                _GCN_ARCH,
                verdict.reason,
            )
        return verdict

    @classmethod
    def lacks_code_object(cls, *extensions: str) -> bool:
        """The extensions provably carry no code object for this RDNA GPU.

        Asked on RDNA (gfx11/gfx12), the targets vLLM's ROCm wheels and images
        most often leave out of PYTORCH_ROCM_ARCH; CDNA GPUs keep vLLM's HIP ops
        as before. False when the offload bundles cannot be read."""
        return on_rdna() and cls.code_object_status(*extensions).absent
'''


def code_object_reader(tree: Tree) -> None:
    """vllm/platforms/rocm_code_objects.py and RocmPlatform.code_object_status() /
    lacks_code_object(). Checks first that the LLVM generic-target table agrees with rocm-enable's
    capability table on every arch the table knows (the equivalence tests run on those)."""
    from rocm_enable.gates.capabilities import capability_table

    for arch, caps in capability_table().items():
        llvm = {g for g, archs in LLVM_GENERIC_TARGETS.items() if arch in archs}
        if llvm != set(caps.generic_targets):
            raise RecipeError(f"{arch}: LLVM_GENERIC_TARGETS gives {sorted(llvm)}, "
                              f"capabilities.yaml {sorted(caps.generic_targets)}")
    tree.write(CODE_OBJECTS, embed_module("gates/code_objects.py"))
    tree.replace_once(
        ROCM,
        "    from vllm.config.kernel import IrOpPriorityConfig\n"
        "    from vllm.utils.argparse_utils import FlexibleArgumentParser\n",
        "    from vllm.config.kernel import IrOpPriorityConfig\n"
        "    from vllm.platforms.rocm_code_objects import CodeObjectVerdict\n"
        "    from vllm.utils.argparse_utils import FlexibleArgumentParser\n",
    )
    tree.replace_once(ROCM, IS_NAVI, IS_NAVI + CODE_OBJECT_METHODS)


def silu_and_mul_code_object(tree: Tree) -> None:
    code_object_reader(tree)
    # SiluAndMul's forward_cuda (other activations have a forward_cuda of the same shape).
    tree.replace_regex_once(
        "vllm/model_executor/layers/activation.py",
        r"^(class SiluAndMul\(CustomOp\):\n(?:(?!class ).*\n)*?"
        r"    def forward_cuda\(self, x: torch\.Tensor\) -> torch\.Tensor:\n)"
        r"(        d = x\.shape\[-1\] // 2\n"
        r"        output_shape = x\.shape\[:-1\] \+ \(d,\)\n"
        r"        out = torch\.empty\(output_shape, dtype=x\.dtype, device=x\.device\)\n"
        r"        self\.op\(out, x\)\n)",
        lambda m: m.group(1) + (
            "        if current_platform.is_rocm() and current_platform.lacks_code_object(\n"
            f"            {C_EXTENSIONS[0]}, {C_EXTENSIONS[1]}\n"
            "        ):\n"
            "            # vLLM was built without this GPU in PYTORCH_ROCM_ARCH: the op is\n"
            "            # registered but cannot launch ('invalid device function').\n"
            "            return self.forward_native(x)\n"
        ) + m.group(2),
    )


CUSTOM_OPS = "vllm/_custom_ops.py"


def skinny_gemm_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.replace_once(
        CUSTOM_OPS,
        "def LLMM1(a: torch.Tensor, b: torch.Tensor, rows_per_block: int) -> torch.Tensor:\n"
        "    return torch.ops._rocm_C.LLMM1(a, b, rows_per_block)\n"
        "\n"
        "\n"
        "def wvSplitK(\n"
        "    a: torch.Tensor, b: torch.Tensor, cu_count: int, bias: torch.Tensor = None\n"
        ") -> torch.Tensor:\n"
        "    return torch.ops._rocm_C.wvSplitK(a, b, bias, cu_count)\n",
        "def _rocm_C_lacks_code_object() -> bool:\n"
        '    """_rocm_C was built without this GPU in PYTORCH_ROCM_ARCH: its skinny\n'
        "    GEMMs are registered but cannot launch. torch's GEMM, which\n"
        '    rocm_unquantized_gemm uses for every other shape, serves instead."""\n'
        "    return current_platform.is_rocm() and current_platform.lacks_code_object(\n"
        '        "vllm._rocm_C"\n'
        "    )\n"
        "\n"
        "\n"
        "def LLMM1(a: torch.Tensor, b: torch.Tensor, rows_per_block: int) -> torch.Tensor:\n"
        "    if _rocm_C_lacks_code_object():\n"
        "        return torch.nn.functional.linear(b, a)\n"
        "    return torch.ops._rocm_C.LLMM1(a, b, rows_per_block)\n"
        "\n"
        "\n"
        "def wvSplitK(\n"
        "    a: torch.Tensor, b: torch.Tensor, cu_count: int, bias: torch.Tensor = None\n"
        ") -> torch.Tensor:\n"
        "    if _rocm_C_lacks_code_object():\n"
        "        return torch.nn.functional.linear(b, a, bias)\n"
        "    return torch.ops._rocm_C.wvSplitK(a, b, bias, cu_count)\n",
    )


RDNA3_KERNELS_METHOD = '''
    @classmethod
    def rdna3_kernels_status(cls) -> tuple[bool, str | None]:
        """Whether vLLM's RDNA3 WMMA HIP kernels (gptq_gemm_rdna3 and
        moe_gptq_gemm_rdna3 in _rocm_C) can run here, and why not.

        They are written for the RDNA3 ISA, which every gfx11 GPU (RDNA3 and
        RDNA3.5) runs: admitted where _rocm_C carries a code object for this GPU,
        rejected where it provably does not. When the offload bundles cannot be
        read, gfx1100 (where the kernels were validated) keeps them."""
        if on_gfx11():
            code_object = cls.code_object_status("vllm._rocm_C")
            if code_object.present:
                return True, None
            if code_object.absent:
                return False, (
                    f"_rocm_C has no code object for this GPU: {code_object.reason}"
                )
        return on_gfx1100(), None
'''
LACKS_CODE_OBJECT_END = "        return on_rdna() and cls.code_object_status(*extensions).absent\n"


def rdna3_kernels_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.replace_once(ROCM, LACKS_CODE_OBJECT_END, LACKS_CODE_OBJECT_END + RDNA3_KERNELS_METHOD)
    tree.replace_once(
        "vllm/model_executor/kernels/linear/mixed_precision/rdna3_w4a16.py",
        "        from vllm.platforms.rocm import on_gfx1100\n"
        "\n"
        "        if not on_gfx1100():\n"
        '            return False, "RDNA3 W4A16 kernel requires gfx1100"\n',
        "        supported, reason = current_platform.rdna3_kernels_status()\n"
        "        if not supported:\n"
        '            return False, reason or "RDNA3 W4A16 kernel requires gfx1100"\n',
    )
    tree.replace_once(
        "vllm/model_executor/layers/fused_moe/experts/rdna3_moe.py",
        "    from vllm.platforms.rocm import on_gfx1100\n"
        "\n"
        "    return (\n"
        "        on_gfx1100()\n",
        "    supported, _ = current_platform.rdna3_kernels_status()\n"
        "    return (\n"
        "        supported\n",
    )


# ---- Qwen3-Next attention: fused qk-norm + RoPE + gate Triton kernel on RDNA ---------------

def fused_qk_norm_rope_gate(tree: Tree) -> None:
    tree.replace_once(
        "vllm/model_executor/models/qwen3_next.py",
        "        self.use_fused_qk_norm_rope_gate = (\n"
        "            self.attn_output_gate\n"
        '            and getattr(self.rotary_emb, "is_neox_style", False)\n'
        "            and (current_platform.is_cuda() or current_platform.is_xpu())\n",
        "        # The fused kernel is plain Triton; on ROCm it is validated (numerics,\n"
        "        # spill-free compiles) on RDNA (gfx11/gfx12).\n"
        "        on_rocm_rdna = False\n"
        "        if current_platform.is_rocm():\n"
        "            from vllm.platforms.rocm import on_rdna\n"
        "\n"
        "            on_rocm_rdna = on_rdna()\n"
        "        self.use_fused_qk_norm_rope_gate = (\n"
        "            self.attn_output_gate\n"
        '            and getattr(self.rotary_emb, "is_neox_style", False)\n'
        "            and (\n"
        "                current_platform.is_cuda()\n"
        "                or current_platform.is_xpu()\n"
        "                or on_rocm_rdna\n"
        "            )\n",
    )


# ---- compressed-tensors FP8: W8A8 only where the GPU multiplies FP8 ------------------------

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


# ---- GDN (FLA) prefill autotune: prune candidates that exceed the workgroup LDS ------------

FLA_OPS = "vllm/third_party/flash_linear_attention/ops"

FLA_PRUNE = '''

@functools.cache
def get_rocm_rdna_max_shared_mem() -> int | None:
    """LDS (bytes) one workgroup may allocate on a ROCm RDNA GPU; None elsewhere,
    where autotune candidates are not pruned by it."""
    if not current_platform.is_rocm():
        return None
    from vllm.platforms.rocm import on_rdna

    if not on_rdna():
        return None
    # The device's own limit; without a visible device (e.g. before workers set
    # CUDA_VISIBLE_DEVICES), the RDNA3/3.5/4 per-workgroup limit: 64 KiB.
    known = [m for m in get_all_max_shared_mem()[:1] if m > 0]
    return known[0] if known else 64 * 1024


def prune_configs_by_lds(lds_bytes: Callable[[Any, int, int], int | None]):
    """An autotune ``early_config_prune`` that drops the candidates whose
    modelled LDS, ``lds_bytes(config, K, BT)`` (None: not modelled), exceeds
    what one workgroup may allocate on ROCm RDNA GPUs. Triton would compile
    each of them at the first launch of every shape key, only to reject it with
    OutOfResources. Elsewhere, or when nothing would fit, the list is kept."""

    def prune(configs, named_args, **kwargs):
        limit = get_rocm_rdna_max_shared_mem()
        if limit is None:
            return configs
        args = {**named_args, **kwargs}
        kept = [
            config
            for config in configs
            if (need := lds_bytes(config, args["K"], args["BT"])) is None
            or need <= limit
        ]
        return kept or configs

    return prune
'''

DELTA_H_LDS = '''

def _fwd_h_lds_bytes(config, K: int, BT: int) -> int | None:
    """LDS of one chunk_gated_delta_rule_fwd_kernel_h_blockdim64 candidate as
    Triton's AMD backend allocates it at the GDN shape K=128, BT=64 (the k and w
    tiles of each pipeline stage and the v tile); other shapes: not modelled."""
    if (K, BT) != (128, 64):
        return None
    return (config.num_stages - 1) * 4 * K * BT + 2 * BT * config.kwargs["BV"]
'''

CHUNK_O_LDS = '''

def _fwd_o_lds_bytes(config, K: int, BT: int) -> int | None:
    """LDS of one chunk_fwd_kernel_o candidate with 4 or more warps as Triton's
    AMD backend allocates it at the GDN shape K=128, BT=64; 2-warp candidates
    (which need less) and other shapes: not modelled."""
    if (K, BT) != (128, 64) or config.num_warps < 4:
        return None
    bk, bv = config.kwargs["BK"], config.kwargs["BV"]
    return 2 * (config.num_stages - 1) * (2 * BT * bk + bk * bv)
'''


def gdn_autotune_lds(tree: Tree) -> None:
    utils, delta_h, chunk_o = (f"{FLA_OPS}/utils.py", f"{FLA_OPS}/chunk_delta_h.py",
                               f"{FLA_OPS}/chunk_o.py")
    for needed in ("import functools\n", "from collections.abc import Callable\n",
                   "from typing import Any, Literal\n", "from vllm.platforms import current_platform\n"):
        if needed not in tree.read(utils):  # FLA_PRUNE relies on these imports
            raise RecipeError(f"vLLM {tree.version} {utils}: anchor missing: {needed!r}")
    tree.replace_regex_once(
        utils,
        r"^(def check_shared_mem\(arch: str = \"none\", tensor_idx: int = 0\) -> bool:\n"
        r"(?:    [^\n]*\n|\n(?=    ))+)",
        lambda m: m.group(1) + FLA_PRUNE,
    )
    tree.replace_once(delta_h, "from .utils import FLA_CHUNK_SIZE, use_cuda_graph\n",
                      "from .utils import FLA_CHUNK_SIZE, prune_configs_by_lds, use_cuda_graph\n")
    tree.replace_once(
        delta_h,
        "_CHUNK_DELTA_H_NUM_STAGES = [2, 3] if torch.version.hip else [2, 3, 4]\n",
        "_CHUNK_DELTA_H_NUM_STAGES = [2, 3] if torch.version.hip else [2, 3, 4]\n" + DELTA_H_LDS,
    )
    tree.replace_once(
        delta_h,
        '    key=["H", "K", "V", "BT"],\n    use_cuda_graph=use_cuda_graph,\n)\n'
        '@triton.jit(do_not_specialize=["T"])\ndef chunk_gated_delta_rule_fwd_kernel_h_blockdim64(',
        '    key=["H", "K", "V", "BT"],\n    use_cuda_graph=use_cuda_graph,\n'
        '    prune_configs_by={"early_config_prune": prune_configs_by_lds(_fwd_h_lds_bytes)},\n)\n'
        '@triton.jit(do_not_specialize=["T"])\ndef chunk_gated_delta_rule_fwd_kernel_h_blockdim64(',
    )
    tree.replace_once(
        chunk_o,
        "from .utils import FLA_CHUNK_SIZE, check_shared_mem, is_nvidia_hopper\n",
        "from .utils import (\n    FLA_CHUNK_SIZE,\n    check_shared_mem,\n    is_nvidia_hopper,\n"
        "    prune_configs_by_lds,\n)\n",
    )
    tree.replace_once(
        chunk_o,
        "NUM_WARPS = [2, 4] if is_nvidia_hopper else [2, 4, 8]\n",
        "NUM_WARPS = [2, 4] if is_nvidia_hopper else [2, 4, 8]\n" + CHUNK_O_LDS,
    )
    tree.replace_once(
        chunk_o,
        '    key=["H", "K", "V", "BT"],\n)\n@triton.jit(do_not_specialize=["T"])\n'
        "def chunk_fwd_kernel_o(",
        '    key=["H", "K", "V", "BT"],\n'
        '    prune_configs_by={"early_config_prune": prune_configs_by_lds(_fwd_o_lds_bytes)},\n'
        ')\n@triton.jit(do_not_specialize=["T"])\ndef chunk_fwd_kernel_o(',
    )


# ---- RDNA attention backend ----------------------------------------------------------------

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


# ---- aiter's Triton kernels on every RDNA GPU (unified attention, RoPE) ---------------------

AITER_OPS = "vllm/_aiter_ops.py"
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
        not, so this is asked per kernel instead of is_rdna_aiter_enabled()
        (RDNA4 only), which also gates aiter fusion passes whose ops are
        registered on CDNA3+/RDNA4 only."""
        if not current_platform.is_rocm() or not IS_AITER_FOUND:
            return False
        from vllm.platforms.rocm import on_rdna

        return (
            on_rdna() and cls._AITER_ENABLED and cls._aiter_module_importable(module)
        )
'''
IS_RDNA_AITER_ENABLED_END = ("        from vllm.platforms.rocm import on_rdna4\n"
                             "\n"
                             "        return on_rdna4() and cls._AITER_ENABLED\n")
UNIFIED_ATTN = "vllm/v1/attention/backends/rocm_aiter_unified_attn.py"


def aiter_unified_attention_rdna(tree: Tree) -> None:
    tree.replace_once(AITER_OPS, IS_RDNA_AITER_ENABLED_END,
                      IS_RDNA_AITER_ENABLED_END + AITER_TRITON_PROBE)
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


def aiter_triton_rope(tree: Tree) -> None:
    tree.require(AITER_OPS, "def is_rdna_triton_kernel_available(",
                 "rocm_aiter_ops.is_rdna_triton_kernel_available()", "aiter-unified-attention-rdna")
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


# ---- _C / _moe_C ops without a code object for this GPU: vLLM's torch/Triton twins ----------

C_LACKS_CODE_OBJECT = (
    "def _C_lacks_code_object() -> bool:\n"
    '    """_C was built without this GPU in PYTORCH_ROCM_ARCH: its ops are\n'
    "    registered but cannot launch ('invalid device function'). Callers use\n"
    '    vLLM\'s torch or Triton implementation of the op instead."""\n'
    "    return current_platform.is_rocm() and current_platform.lacks_code_object(\n"
    f"        {C_EXTENSIONS[0]}, {C_EXTENSIONS[1]}\n"
    "    )\n"
    "\n"
    "\n"
)


def topk_softmax_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.replace_once(
        CUSTOM_OPS,
        "    is_padding: torch.Tensor | None = None,\n"
        ") -> None:\n"
        "    torch.ops._moe_C.topk_softmax(\n",
        "    is_padding: torch.Tensor | None = None,\n"
        ") -> None:\n"
        "    if (\n"
        "        e_score_correction_bias is None\n"
        "        and current_platform.is_rocm()\n"
        "        and current_platform.lacks_code_object(\n"
        '            "vllm._moe_C", "vllm._moe_C_stable_libtorch"\n'
        "        )\n"
        "    ):\n"
        "        # _moe_C was built without this GPU: the same routing in torch.\n"
        "        # Softmax over all experts in fp32, the top-k weights and ids,\n"
        "        # renormalised if asked; token_expert_indices[t, j] = j * M + t.\n"
        "        # Padding rows are routed like real rows (their outputs are\n"
        "        # discarded).\n"
        "        weights, ids = torch.topk(\n"
        "            torch.softmax(gating_output.float(), dim=-1),\n"
        "            topk_weights.shape[-1],\n"
        "            dim=-1,\n"
        "        )\n"
        "        if renormalize:\n"
        "            weights = weights / weights.sum(dim=-1, keepdim=True)\n"
        "        topk_weights.copy_(weights)\n"
        "        topk_ids.copy_(ids)\n"
        "        m, k = ids.shape\n"
        "        rows = torch.arange(m, device=ids.device, dtype=torch.int32)\n"
        "        slots = torch.arange(k, device=ids.device, dtype=torch.int32)\n"
        "        token_expert_indices.copy_(slots.unsqueeze(0) * m + rows.unsqueeze(1))\n"
        "        return\n"
        "    torch.ops._moe_C.topk_softmax(\n",
    )


def c_ops_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.replace_once(
        CUSTOM_OPS,
        "def apply_repetition_penalties_cuda(\n",
        C_LACKS_CODE_OBJECT + "def apply_repetition_penalties_cuda(\n",
    )
    tree.replace_once(
        CUSTOM_OPS,
        "    repetition_penalties: torch.Tensor,\n"
        ") -> None:\n"
        "    torch.ops._C.apply_repetition_penalties_(\n",
        "    repetition_penalties: torch.Tensor,\n"
        ") -> None:\n"
        "    if _C_lacks_code_object():\n"
        "        apply_repetition_penalties_torch(\n"
        "            logits, prompt_mask, output_mask, repetition_penalties\n"
        "        )\n"
        "        return\n"
        "    torch.ops._C.apply_repetition_penalties_(\n",
    )
    tree.replace_once(
        CUSTOM_OPS,
        "    else:\n"
        "        torch.ops._C.static_scaled_fp8_quant(output, input, scale, group_shape)\n",
        "    elif (\n"
        "        scale.numel() == 1\n"
        "        and group_shape in (None, (-1, -1))\n"
        "        and not num_token_padding\n"
        "        and _C_lacks_code_object()\n"
        "    ):\n"
        "        # Per-tensor static scale (e.g. load-time requantization of fused\n"
        "        # FP8 shards) in torch: clamp(x / scale) to the FP8 range.\n"
        "        info = torch.finfo(out_dtype)\n"
        "        output.copy_(\n"
        "            (input.float() / scale.float().reshape(()))\n"
        "            .clamp(info.min, info.max)\n"
        "            .to(out_dtype)\n"
        "        )\n"
        "    else:\n"
        "        torch.ops._C.static_scaled_fp8_quant(output, input, scale, group_shape)\n",
    )
    tree.replace_once(
        CUSTOM_OPS,
        "    v_scale: torch.Tensor,\n"
        ") -> None:\n"
        "    torch.ops._C_cache_ops.reshape_and_cache_flash(\n",
        "    v_scale: torch.Tensor,\n"
        ") -> None:\n"
        "    if _C_lacks_code_object():\n"
        "        from vllm.v1.attention.ops.triton_reshape_and_cache_flash import (\n"
        "            triton_reshape_and_cache_flash,\n"
        "        )\n"
        "\n"
        "        triton_reshape_and_cache_flash(\n"
        "            key,\n"
        "            value,\n"
        "            key_cache,\n"
        "            value_cache,\n"
        "            slot_mapping,\n"
        "            kv_cache_dtype,\n"
        "            k_scale,\n"
        "            v_scale,\n"
        "        )\n"
        "        return\n"
        "    torch.ops._C_cache_ops.reshape_and_cache_flash(\n",
    )
    base = "vllm/model_executor/layers/rotary_embedding/base.py"
    tree.replace_once(base, "from vllm.model_executor.custom_op import CustomOp\n",
                      "from vllm.model_executor.custom_op import CustomOp\n"
                      "from vllm.platforms import current_platform\n")
    tree.replace_once(  # forward_cuda: after its flashinfer branch (forward_cpu has the rest too)
        base,
        "            return query, key\n"
        "\n"
        "        from vllm import _custom_ops as ops\n"
        "\n"
        "        cos_sin_cache = self._match_cos_sin_cache_dtype(query)\n"
        "\n"
        "        # ops.rotary_embedding() is an in-place operation\n",
        "            return query, key\n"
        "\n"
        "        if current_platform.is_rocm() and current_platform.lacks_code_object(\n"
        f"            {C_EXTENSIONS[0]}, {C_EXTENSIONS[1]}\n"
        "        ):\n"
        "            # vLLM was built without this GPU: _C.rotary_embedding cannot launch.\n"
        "            return self.forward_native(positions, query, key)\n"
        "\n"
        "        from vllm import _custom_ops as ops\n"
        "\n"
        "        cos_sin_cache = self._match_cos_sin_cache_dtype(query)\n"
        "\n"
        "        # ops.rotary_embedding() is an in-place operation\n",
    )


VLLM_C_KERNELS = "vllm/kernels/vllm_c.py"


def ir_vllm_c_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.replace_once(
        VLLM_C_KERNELS,
        "GPGPU_DEVICE = CUDA_ALIKE or current_platform.is_xpu()\n",
        "GPGPU_DEVICE = CUDA_ALIKE or current_platform.is_xpu()\n"
        "C_OPS_LAUNCHABLE = not (\n"
        "    IS_ROCM\n"
        f"    and current_platform.lacks_code_object({C_EXTENSIONS[0]}, {C_EXTENSIONS[1]})\n"
        ")\n"
        '"""False on ROCm when _C was built without this GPU in PYTORCH_ROCM_ARCH: its\n'
        "ops are registered but cannot launch, so the vllm_c implementations are\n"
        'unsupported there and vLLM dispatches to the next provider (e.g. native)."""\n',
    )
    tree.replace_once(
        VLLM_C_KERNELS,
        "@ir.ops.rms_norm.register_impl(\n"
        '    "vllm_c", supports_args=rms_no_var_size, supported=GPGPU_DEVICE\n'
        ")\n",
        "@ir.ops.rms_norm.register_impl(\n"
        '    "vllm_c",\n'
        "    supports_args=rms_no_var_size,\n"
        "    supported=GPGPU_DEVICE and C_OPS_LAUNCHABLE,\n"
        ")\n",
    )
    tree.replace_once(
        VLLM_C_KERNELS,
        "    supports_args=rms_add_no_var_size,\n"
        "    supported=GPGPU_DEVICE,\n",
        "    supports_args=rms_add_no_var_size,\n"
        "    supported=GPGPU_DEVICE and C_OPS_LAUNCHABLE,\n",
    )


def gdn_mtp_decode_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.replace_once(
        "vllm/model_executor/layers/mamba/gdn/qwen_gdn_linear_attn.py",
        '        if not hasattr(torch.ops._C, "fused_gdn_decode_post_conv_mtp"):\n'
        '            return "torch.ops._C.fused_gdn_decode_post_conv_mtp is not built"\n'
        "        return None\n",
        '        if not hasattr(torch.ops._C, "fused_gdn_decode_post_conv_mtp"):\n'
        '            return "torch.ops._C.fused_gdn_decode_post_conv_mtp is not built"\n'
        "        if current_platform.is_rocm():\n"
        "            # Registered in every build; without this GPU in PYTORCH_ROCM_ARCH\n"
        "            # it cannot launch, and the Triton spec-decode path serves.\n"
        f"            c_ops = ({C_EXTENSIONS[0]}, {C_EXTENSIONS[1]})\n"
        "            if current_platform.lacks_code_object(*c_ops):\n"
        "                reason = current_platform.code_object_status(*c_ops).reason\n"
        "                return (\n"
        '                    "torch.ops._C.fused_gdn_decode_post_conv_mtp has no code "\n'
        '                    f"object for this GPU ({reason})"\n'
        "                )\n"
        "        return None\n",
    )


# ---- RMSNorm: a user-named aiter IR priority where aiter's HIP kernels cannot run ----------

def rms_norm_aiter_ir_priority(tree: Tree) -> None:
    tree.require(ROCM, "def has_aiter_hip_kernels(cls)", "RocmPlatform.has_aiter_hip_kernels()",
                 "rms-norm-not-aiter-hip")
    tree.replace_once(
        "vllm/config/kernel.py",
        "                current_op_priority.extend(unique_op_priority)\n"
        "\n",
        "                current_op_priority.extend(unique_op_priority)\n"
        "\n"
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

RECIPES += (
    Recipe(
        "silu-and-mul-code-object",
        "RocmPlatform.lacks_code_object(*extensions) (new; on_rdna() and the offload bundles say "
        "absent)",
        "Adds vllm/platforms/rocm_code_objects.py, an offload-bundle reader (ELF .hip_fatbin "
        "section, Clang offload bundles, CCOB-compressed bundles v1-v3 with zlib or zstd; LLVM "
        "generic targets such as gfx11-generic count for their processors), "
        "RocmPlatform.code_object_status(*extensions) (present / absent / unknown with the "
        "reason, cached, logged once when absent) and RocmPlatform.lacks_code_object(), true "
        "only on RDNA when every readable extension lacks the arch. SiluAndMul.forward_cuda "
        "returns forward_native when _C and _C_stable_libtorch lack a code object for this GPU. "
        "CDNA GPUs, readable bundles with the arch, and unreadable ones keep vLLM's HIP op. "
        "skinny-gemm-code-object and rdna3-kernels-code-object build on this patch.",
        silu_and_mul_code_object, CODE_OBJECT_READER),
    Recipe(
        "skinny-gemm-code-object", "RocmPlatform.lacks_code_object(\"vllm._rocm_C\")",
        "vllm._custom_ops.wvSplitK and LLMM1 (what rocm_unquantized_gemm calls for decode GEMMs "
        "with n <= 5 tokens on gfx9/gfx1x) return torch.nn.functional.linear(x, weight, bias), "
        "the GEMM vLLM uses for every other shape, when _rocm_C lacks a code object for this "
        "RDNA GPU. Needs the silu-and-mul-code-object patch (the reader and the predicate).",
        skinny_gemm_code_object),
    Recipe(
        "rdna3-kernels-code-object",
        "RocmPlatform.rdna3_kernels_status() (new; on_gfx11() and _rocm_C's code objects, "
        "on_gfx1100() when they cannot be read)",
        "Adds RocmPlatform.rdna3_kernels_status(): on every gfx11 GPU (the RDNA3 ISA the kernels "
        "are written for) the RDNA3 WMMA kernels are admitted when _rocm_C carries a code object "
        "for it and rejected with the reason when it does not; unreadable bundles keep vLLM's "
        "on_gfx1100() answer. RDNA3W4A16LinearKernel.can_implement and "
        "rdna3_moe_kernel_available ask it instead of on_gfx1100(); their op-registration, "
        "dtype, group-size and zero-point checks are unchanged. Needs the "
        "silu-and-mul-code-object patch.",
        rdna3_kernels_code_object),
    Recipe(
        "fused-qk-norm-rope-gate", "on_rdna() (vLLM's existing RDNA predicate)",
        "Qwen3NextAttention.__init__ (also the full-attention layers of Qwen3.5/3.6) admits ROCm "
        "RDNA GPUs next to CUDA and XPU in use_fused_qk_norm_rope_gate; its other conditions "
        "(output gate, neox RoPE, fp16/bf16, text-only or interleaved MRoPE) decide as before.",
        fused_qk_norm_rope_gate),
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
    Recipe(
        "gdn-autotune-lds",
        "on_rdna() and the device's max shared memory per workgroup (64 KiB on RDNA when no "
        "device can be queried)",
        "Adds prune_configs_by_lds() and get_rocm_rdna_max_shared_mem() to the FLA ops utils and "
        "an early_config_prune to the autotune of chunk_gated_delta_rule_fwd_kernel_h_blockdim64 "
        "and chunk_fwd_kernel_o, each with its LDS model (validated by AOT compiles for gfx1151 "
        "at the GDN shape K=128, BT=64; other shapes are not pruned). On ROCm RDNA GPUs the "
        "candidates that cannot fit the workgroup LDS are never compiled: 4 of 8 for "
        "chunk_delta_h and 2 of 36 for chunk_o per shape key. Elsewhere nothing changes.",
        gdn_autotune_lds),
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

RECIPES += (
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
        "HIP kernel.",
        aiter_unified_attention_rdna),
    Recipe(
        "aiter-triton-rope",
        "rocm_aiter_ops.is_rdna_triton_kernel_available(\"aiter.ops.triton.rope.rope\") (from "
        "the aiter-unified-attention-rdna patch)",
        "rocm_aiter_ops.is_triton_rotary_embed_enabled() leaves the CDNA3+ umbrella "
        "(@if_aiter_supported): on CDNA3+ it answers as before, on RDNA it holds when "
        "VLLM_ROCM_USE_AITER_TRITON_ROPE is set and aiter's Triton RoPE is available. "
        "register_ops_once() registers rocm_aiter_triton_rotary_embedding on gfx11 when aiter is "
        "found (RDNA4 and CDNA3+ already register it). Needs the aiter-unified-attention-rdna "
        "patch.",
        aiter_triton_rope),
    Recipe(
        "topk-softmax-code-object",
        "RocmPlatform.lacks_code_object(\"vllm._moe_C\", \"vllm._moe_C_stable_libtorch\")",
        "vllm._custom_ops.topk_softmax computes the routing with torch (fp32 softmax, top-k, "
        "optional renormalisation, token_expert_indices) into the caller's tensors when _moe_C "
        "lacks a code object for this RDNA GPU; calls with a correction bias keep the op. Needs "
        "the silu-and-mul-code-object patch.",
        topk_softmax_code_object),
    Recipe(
        "c-ops-code-object",
        "RocmPlatform.lacks_code_object(\"vllm._C\", \"vllm._C_stable_libtorch\")",
        "Adds _custom_ops._C_lacks_code_object(). When it holds: RotaryEmbedding.forward_cuda "
        "returns forward_native; reshape_and_cache_flash calls vLLM's "
        "triton_reshape_and_cache_flash; apply_repetition_penalties_cuda calls "
        "apply_repetition_penalties_torch; scaled_fp8_quant with a per-tensor static scale "
        "quantises in torch (clamp(x / scale) to the FP8 range). Dynamic, per-token and group "
        "quantisation keep the ops. Needs the silu-and-mul-code-object patch.",
        c_ops_code_object),
    Recipe(
        "ir-vllm-c-code-object",
        "RocmPlatform.lacks_code_object(\"vllm._C\", \"vllm._C_stable_libtorch\")",
        "kernels/vllm_c.py registers its rms_norm and fused_add_rms_norm implementations with "
        "supported=False on ROCm when _C lacks a code object for this RDNA GPU "
        "(C_OPS_LAUNCHABLE), so every IR priority list skips vllm_c there, as it skips any "
        "unsupported provider, and dispatches to the next one (native). Needs the "
        "silu-and-mul-code-object patch.",
        ir_vllm_c_code_object),
    Recipe(
        "gdn-mtp-decode-code-object",
        "RocmPlatform.lacks_code_object(\"vllm._C\", \"vllm._C_stable_libtorch\")",
        "QwenGatedDeltaNetAttention._fused_gdn_decode_unsupported_reason() returns a reason "
        "naming the missing code object on ROCm when _C lacks one for this RDNA GPU, so vLLM "
        "takes its Triton GDN spec-decode path (or raises its own error when the user forced "
        "VLLM_GDN_DECODE_KERNEL=cuda). vLLM 0.33 runs a Triton port on ROCm: no patch there. "
        "Needs the silu-and-mul-code-object patch.",
        gdn_mtp_decode_code_object),
    Recipe(
        "rms-norm-aiter-ir-priority",
        "RocmPlatform.has_aiter_hip_kernels() (from the rms-norm-not-aiter-hip patch)",
        "KernelConfig.set_platform_defaults removes 'aiter' from the merged rms_norm and "
        "fused_add_rms_norm priority (a user's --ir-op-priority plus the platform defaults) on "
        "ROCm GPUs where has_aiter_hip_kernels() is false; the rest of the user's order and "
        "vLLM's defaults follow unchanged. Needs the rms-norm-not-aiter-hip patch.",
        rms_norm_aiter_ir_priority),
)

BY_FIX = {r.fix: r for r in RECIPES}


def json_dump(obj) -> str:
    return json.dumps(obj, indent=1) + "\n"
