"""Each fix's source-patch recipe sits beside its record and stays off the plugin's start-up path."""
import subprocess
import sys
import types

import pytest

from rocm_enable import patches as rp
from rocm_enable.stacks.vllm import recipe


def test_every_recipe_sits_beside_its_record():
    by_fix = recipe.recipes_by_fix()  # raises for a recipe whose record lives elsewhere
    records = {f.name for f in rp.vllm_fixes()}
    assert set(by_fix) <= records, f"recipes without a record: {sorted(set(by_fix) - records)}"
    assert records - set(by_fix) <= set(rp.PATCH_PENDING), (
        f"records without a recipe: {sorted(records - set(by_fix) - set(rp.PATCH_PENDING))}")
    for module in recipe.recipe_modules():
        assert module.removesuffix(recipe.RECIPE_SUFFIX) != module


def test_a_recipe_away_from_its_record_is_refused(monkeypatch):
    record = types.ModuleType("rocm_enable.stacks.vllm.elsewhere")
    record.FIXES = ()
    recipes = types.ModuleType("rocm_enable.stacks.vllm.elsewhere_recipes")
    recipes.RECIPES = (recipe.Recipe("fp8-moe-w8a16", "p", "h", lambda tree: None),)
    monkeypatch.setitem(sys.modules, record.__name__, record)
    monkeypatch.setitem(sys.modules, recipes.__name__, recipes)
    with pytest.raises(recipe.RecipeError, match="not a record of rocm_enable.stacks.vllm.elsewhere"):
        recipe.recipes_by_fix([recipes.__name__])


def test_the_plugin_path_imports_no_recipe():
    """vLLM imports the records in every process; the recipes (and their embedded-source and
    template machinery) are the build script's alone."""
    code = ("import sys; from rocm_enable.engine.hooks import all_fixes; import rocm_enable.plugin; "
            "assert all_fixes(); "
            "print(sorted(m for m in sys.modules if m.endswith('_recipes') "
            "or m.startswith('rocm_enable.stacks.vllm.recipe')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_rdna_backend_module_is_generated_from_the_runtime_classes():
    """A runtime change reaches the vLLM module; a runtime that lost what a rename expects fails
    the build, naming it."""
    from rocm_enable.stacks.vllm import attention_rdna_recipes as ar

    runtime = ar.RUNTIME.read_text()
    assert "return head_size in ops.SUPPORTED_HEAD_DIMS" in runtime
    changed = ar.backend_module(runtime.replace("return head_size in ops.SUPPORTED_HEAD_DIMS",
                                                "return head_size == 128"))
    assert "return head_size == 128" in changed and changed != ar.backend_module()
    with pytest.raises(recipe.RecipeError, match="_target\\(device\\)"):
        ar.backend_module(runtime.replace("_target(device)", "_plan(device)"))
