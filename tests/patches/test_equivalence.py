"""Proof of equivalence: vLLM patched with the series (plugin off) decides exactly like unpatched
vLLM with the plugin, for every fix that has a patch, on each simulated arch and vLLM version."""
import pytest

import equivalence as eq
from trees import patched_under_test
from rocm_enable import patches as rp

pytestmark = pytest.mark.vllm_sim


def patch_names(series_dir) -> dict[str, str]:
    return {rp.fix_of(n): n for n in rp.read_series(series_dir)}


@pytest.mark.parametrize("arch", eq.ARCHS)
def test_patched_vllm_decides_like_the_plugin(arch, vllm_under_test, patched_trees, series_root,
                                              plugin_decisions):
    if vllm_under_test.version not in patched_trees:
        pytest.fail(f"no patch series for vLLM {vllm_under_test.version} in {series_root}")
    root, applied = patched_trees[vllm_under_test.version]
    not_applied = [f"{r.patch}: {r.message}" for r in applied if not r.ok]
    assert not not_applied, f"vLLM {vllm_under_test.version}: patches do not apply: {not_applied}"
    patched = eq.run_decisions(patched_under_test(vllm_under_test, root), arch, plugin=False)
    eq.assert_patched_vllm(patched, root)
    problems = eq.compare(plugin_decisions(vllm_under_test, arch), patched,
                          version=vllm_under_test.version, arch=arch,
                          patch_names=patch_names(series_root / vllm_under_test.version))
    assert not problems, "\n".join(problems)


def test_every_patched_fix_has_a_decision_case(series_root):
    patched = {rp.fix_of(n) for v in rp.series_versions(series_root)
               for n in rp.read_series(series_root / v)}
    uncovered = sorted(patched - eq.COVERED_FIXES)
    assert not uncovered, (f"fixes with a patch but no equivalence case in "
                           f"tests/patches/equivalence.py CASES: {uncovered}")
