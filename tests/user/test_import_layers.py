"""Import layering: shared helpers live below the modules that use them, so no two of these
modules import each other (also not lazily, inside a function). `rocm-enable explain` starts
probe processes that need the arch set-up the CLI uses (gates.process_arch), and every ISA report
compiles through ops.aot; neither may reach back up to its caller."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "rocm_enable"


def imported_modules(module: str) -> set[str]:
    """Every rocm_enable module `module` imports anywhere in its body ('from a import b' counts
    as a.b when b is a module)."""
    path = PKG.joinpath(*module.split(".")[1:]).with_suffix(".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("rocm_enable")}


@pytest.mark.parametrize("lower, upper", [
    ("rocm_enable.explain", "rocm_enable.cli"),
    ("rocm_enable.gates.process_arch", "rocm_enable.cli"),
    ("rocm_enable.gates.process_arch", "rocm_enable.explain"),
    ("rocm_enable.ops.attention_isa", "rocm_enable.isa"),
    ("rocm_enable.ops.vllm_moe_isa", "rocm_enable.isa"),
    ("rocm_enable.ops.aot", "rocm_enable.isa"),
    ("rocm_enable.ops.aot", "rocm_enable.ops.attention_isa"),
])
def test_lower_module_does_not_import_its_user(lower, upper):
    assert upper not in imported_modules(lower)


def test_the_users_import_the_shared_helpers_from_below():
    assert "rocm_enable.gates.process_arch" in imported_modules("rocm_enable.explain")
    assert "rocm_enable.gates.process_arch" in imported_modules("rocm_enable.cli")
    assert "rocm_enable.ops.aot" in imported_modules("rocm_enable.isa")
    assert "rocm_enable.ops.aot" in imported_modules("rocm_enable.ops.attention_isa")
