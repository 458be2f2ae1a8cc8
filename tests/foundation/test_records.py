"""Every fix record is complete, and honest about the vLLM versions it claims."""
import pytest
from packaging.specifiers import SpecifierSet

from rocm_enable.engine.hooks import all_fixes
from sim_harness import run_python


def test_records_are_complete_and_unique():
    fixes = all_fixes()
    names = [f.name for f in fixes]
    assert len(names) == len(set(names))
    for fix in fixes:
        for field in ("title", "why", "how", "upstream", "removal"):
            assert getattr(fix, field).strip(), f"{fix.name}.{field} is empty"
        assert fix.condition.__doc__, f"{fix.name}: the capability predicate needs a docstring"
        for patch in fix.patches:
            assert ":" in patch.target and patch.anchors


@pytest.mark.vllm_sim
def test_anchors_match_each_version_in_range(vllm_under_test):
    """A record whose range admits a vLLM version must carry that version's verified anchor."""
    body = """
from rocm_enable.engine.hooks import all_fixes
from rocm_enable.engine.anchors import target_fingerprint
import vllm
result = []
for fix in all_fixes():
    if fix.stack != "vllm" or not fix.supports_version(vllm.__version__):
        continue
    for patch in fix.patches:
        if patch.needed_on(vllm.__version__):  # a part vLLM fixed itself is neither checked nor wrapped
            result.append([fix.name, patch.target, target_fingerprint(patch.target),
                           patch.anchors.get(vllm.__version__)])
"""
    rows = run_python(body, arch="gfx1151", vllm=vllm_under_test)["result"]
    assert rows, "no record claims this vLLM version"
    bad = [r for r in rows if r[2] != r[3]]
    assert not bad, f"records whose anchor for {vllm_under_test.version} is missing or stale: {bad}"


def test_ranges_are_valid_specifiers():
    for fix in all_fixes():
        SpecifierSet(fix.versions)
