"""Source patch of moe_config_lookup.py's record: vLLM's Radeon fused-MoE config files under
the board names RocmPlatform.get_device_name() produces."""
from __future__ import annotations

from pathlib import Path

from rocm_enable.stacks.vllm.moe_config_lookup import (
    DEVICE_FIELD,  # the plugin's reading of a file name's device field (0.34: "_down" files too)
    MOE_CONFIG_BOARD_NAMES,
    shipped_config_dir,
)
from rocm_enable.stacks.vllm.recipe import Recipe, RecipeError, Tree

MOE_CONFIGS = "vllm/model_executor/layers/fused_moe/configs"


def _device(match) -> str:
    return match.group(0).removeprefix("device_name=")


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
    aliases = _config_name_aliases(MOE_CONFIG_BOARD_NAMES.condition)
    changed = 0
    for path in sorted(tree.path(MOE_CONFIGS).glob("*.json")):
        m = DEVICE_FIELD.search(path.name)
        if not m or _device(m) not in aliases:
            continue
        target = path.name.replace(m.group(0), f"device_name={aliases[_device(m)]}")
        if not tree.exists(f"{MOE_CONFIGS}/{target}"):
            tree.rename(f"{MOE_CONFIGS}/{path.name}", f"{MOE_CONFIGS}/{target}")
            changed += 1
    for path in sorted(Path(shipped_config_dir()).glob("*.json")):  # configs rocm-enable ships
        m = DEVICE_FIELD.search(path.name)
        name = path.name if not m else path.name.replace(
            m.group(0), f"device_name={aliases.get(_device(m), _device(m))}")
        if not tree.exists(f"{MOE_CONFIGS}/{name}"):
            tree.write(f"{MOE_CONFIGS}/{name}", path.read_text())
            changed += 1
    if not changed:
        raise RecipeError(f"vLLM {tree.version}: no Radeon MoE config needs its board name fixed")


RECIPES = (
    Recipe(
        "moe-config-board-names", "board names from the capability table (no runtime predicate)",
        "Renames vLLM's shipped fused-MoE config files whose device_name is a market-name alias "
        "of a wave32 RDNA board (capability table config_names) to the name "
        "RocmPlatform.get_device_name() produces for that board (its PCI-id map), e.g. "
        "Radeon_8060S_Graphics -> AMD_Radeon_8060S, and adds the tuned configs rocm-enable ships "
        "under that name.",
        moe_config_board_names),
)
