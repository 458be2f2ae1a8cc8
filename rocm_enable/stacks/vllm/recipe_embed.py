"""rocm-enable modules carried into vLLM's tree by the source patches (kernels, the offload-bundle
reader), so the series carries the runtime code instead of a copy that could drift.

`embed_module` copies rocm_enable/<source> with only import lines, file-name mentions and the
declared exact EMBED_EDITS rewritten.
"""
from __future__ import annotations

import os

import re
from collections.abc import Callable
from pathlib import Path

from rocm_enable.stacks.vllm.recipe import RecipeError

PKG = Path(__file__).resolve().parents[2]  # rocm_enable/
OPS = PKG / "ops"

SPDX = ("# SPDX-License-Identifier: Apache-2.0\n"
        "# SPDX-FileCopyrightText: Copyright contributors to the vLLM project\n")

# The W8A16 FP8 kernel package inside vLLM's tree, and where each rocm_enable/ops module goes.
KERNEL_PKG = "vllm/model_executor/layers/quantization/utils/w8a16_fp8"
ATTN_OPS = "vllm/v1/attention/ops"
FLA_OPS = "vllm/third_party/flash_linear_attention/ops"
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
    "ops/gdn_kernels.py": f"{FLA_OPS}/rocm_rdna_gdn_kernels.py",
    "ops/gdn.py": f"{FLA_OPS}/rocm_rdna_gdn.py",
    "ops/gdn_decode.py": f"{FLA_OPS}/rocm_rdna_gdn_decode.py",
    "ops/topk_softmax.py": "vllm/model_executor/layers/fused_moe/router/triton_topk_softmax.py",
}

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
                              f"times (need 1): {old!r} (rocm_enable/stacks/vllm/recipe_embed.py "
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
                          "(rocm_enable/stacks/vllm/recipe_embed.py EMBEDDED)")
    if source in EMBED_APPEND:
        text = text.rstrip("\n") + "\n" + EMBED_APPEND[source]()
    keep = ("keep the two identical" if source not in EMBED_EDITS else
            "keep the two in step (rocm_enable/stacks/vllm/recipe_embed.py EMBED_EDITS)")
    return (SPDX + f"# Generated from rocm-enable rocm_enable/{source} "
            f"(scripts/build_vllm_patches.py); {keep}.\n" + text)


def embedded_path(source: str) -> str:
    return EMBEDDED[source]


def kernel_config_files() -> dict[str, str]:
    """vLLM path -> text of every launch-configuration file (copied verbatim). The ISA manifest
    (config_grid.MANIFEST) is left out: it records what the ISA tests compiled, nothing reads it
    at run time."""
    from rocm_enable.ops.config_grid import MANIFEST

    return {f"{KERNEL_PKG}/configs/{p.name}": p.read_text()
            for p in sorted((OPS / "configs").glob("*.json")) if p.name != os.path.basename(MANIFEST)}
