"""Tuned fused-MoE configs on Radeon boards: look them up under every published device name
(audit gates A5, C9). vLLM names a Strix Halo `AMD_Radeon_8060S` (its PCI-id map) while the file it
ships for that board says `Radeon_8060S_Graphics`, so the file is never found."""
from __future__ import annotations

import functools
import json
import os
import re
from importlib import resources

from rocm_enable.engine.calls import bound_arguments
from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import is_wave32_rdna

FUSED_MOE = "vllm.model_executor.layers.fused_moe.fused_moe"
# the device field ends at the next "," or at ".json" (files without dtype end with the device name;
# vLLM 0.34's down-projection files end "_down.json")
DEVICE_FIELD = re.compile(r"device_name=[^,]+?(?=,|(?:_down)?\.json$)")
DOWN_SUFFIX = "_down.json"


def shipped_config_dir() -> str:
    return str(resources.files("rocm_enable.stacks.vllm").joinpath("moe_configs"))


@functools.cache
def _find_by_board_names(file_name: str, names: tuple[str, ...], vllm_dir: str):
    for name in names:
        candidate = DEVICE_FIELD.sub(f"device_name={name}", file_name)
        for folder in (vllm_dir, shipped_config_dir()):
            path = os.path.join(folder, candidate)
            if os.path.exists(path):
                with open(path) as f:
                    tuned = json.load(f)
                tuned.pop("triton_version", None)
                return path, {int(k): v for k, v in tuned.items()}
    return None, None


def _lookup_board_names(wrapped, instance, args, kwargs):
    found = wrapped(*args, **kwargs)
    if found is not None:
        return found
    import vllm.model_executor.layers.fused_moe.fused_moe as fused_moe

    from rocm_enable.runtime import active_caps, get_logger

    a = bound_arguments(wrapped, args, kwargs)
    block = [a["block_n"], a["block_k"]] if a["block_n"] and a["block_k"] else None
    file_name = fused_moe.get_config_file_name(a["E"], a["N"], a["dtype"], block)
    if a.get("down_moe"):  # vLLM >= 0.34: the optional down-projection file
        file_name = file_name.removesuffix(".json") + DOWN_SUFFIX
    names = tuple(dict.fromkeys(n for b in active_caps().boards for n in b.config_names))
    vllm_dir = os.path.join(os.path.dirname(os.path.realpath(fused_moe.__file__)), "configs")
    path, config = _find_by_board_names(file_name, names, vllm_dir)
    if path:
        get_logger().info("rocm-enable: using MoE config %s for %s", path, file_name)
    return config


MOE_CONFIG_BOARD_NAMES = Fix(
    name="moe-config-board-names",
    title="Fused-MoE tuned configs found under every published name of the board",
    stack="vllm",
    patches=(Patch(f"{FUSED_MOE}:get_moe_configs", _lookup_board_names,
                   {"0.32.0": "3e101a53b7987b22", "0.33.0": "3e101a53b7987b22",
                    "0.34.0": "f6641e7013090927"}),),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "vLLM looks tuned fused-MoE configs up by get_device_name(), which maps a Strix Halo's PCI "
        "id 0x1586 to AMD_Radeon_8060S, but the Strix Halo file it ships is named "
        "device_name=Radeon_8060S_Graphics, so it can never match (A5/C9), and no Radeon file "
        "exists for the Qwen3-Next (E=512,N=512) or Qwen3.6-35B-A3B (E=256,N=512) shapes: every "
        "MoE layer runs vLLM's generic defaults with a warning."
    ),
    how=(
        "Wrap get_moe_configs: when vLLM finds no file, retry the same file name under each "
        "config_names entry of the arch's boards in the capability table, first in vLLM's own "
        "configs folder, then in rocm_enable/stacks/vllm/moe_configs. A user's "
        "VLLM_TUNED_CONFIG_FOLDER and vLLM's own exact match still win. vLLM 0.34.0 added "
        "get_moe_configs(down_moe=True), an optional separate down-projection file "
        "(<name>_down.json, no warning when missing): the retry looks for that file under the "
        "board names too, never for the up-projection file in its place."
    ),
    upstream="audit A5/C9: vLLM platforms/rocm.py _ROCM_DEVICE_ID_NAME_MAP vs configs/*Radeon_8060S_Graphics*",
    removal="when vLLM's device-name map and its shipped Radeon config file names agree",
    gates=("A5", "C9"),
)

FIXES = (MOE_CONFIG_BOARD_NAMES,)
