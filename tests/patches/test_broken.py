"""The proofs can fail: a patch that no longer applies, and a patch that decides differently from
its runtime fix, each fail with a message naming the patch and its fix."""
import shutil

import pytest

import equivalence as eq
from trees import installed_root, patched_under_test
from rocm_enable import patches as rp

RMS = "0004-rms-norm-not-aiter-hip.patch"
VERSION = "0.33.0"


def broken_series(series_root, tmp_path, version, patch, old, new):
    dest = tmp_path / "series"
    shutil.copytree(series_root / version, dest)
    text = (dest / patch).read_text()
    assert text.count(old) == 1, f"mutation anchor {old!r} not in {patch}"
    (dest / patch).write_text(text.replace(old, new))
    return dest


def _vllm(versions_under_test, version):
    found = [v for v in versions_under_test if v.version == version]
    if not found:
        pytest.skip(f"vLLM {version} not under test")
    return found[0]


def test_a_patch_that_no_longer_applies_is_named(series_root, tmp_path, versions_under_test):
    vllm = _vllm(versions_under_test, VERSION)
    # A context line of the rms-norm patch no longer matches vLLM (as after an upstream edit).
    series = broken_series(series_root, tmp_path, VERSION, RMS,
                           "\n     def use_custom_op_collectives(cls) -> bool:\n",
                           "\n     def use_custom_op_collectives(cls) -> bool:  # drifted\n")
    results = rp.check_vllm_tree(installed_root(vllm), series)
    failed = [r for r in results if not r.ok]
    assert [r.patch for r in failed] == [RMS]
    assert failed[0].fix == "rms-norm-not-aiter-hip"
    assert "patch does not apply" in failed[0].message and "vllm/platforms/rocm.py" in failed[0].message
    assert all(r.ok for r in results if r.patch != RMS)  # the others still apply


@pytest.mark.vllm_sim
@pytest.mark.xdist_group(eq.decisions_group(VERSION, "gfx1151"))  # with its equivalence test
def test_a_patch_that_decides_differently_is_named(series_root, tmp_path, versions_under_test,
                                                   plugin_decisions):
    vllm = _vllm(versions_under_test, VERSION)
    # Still applies (only an added line changes), but puts aiter's HIP RMSNorm first in the
    # platform default on every arch (the predicate the patch adds, which a later patch asks too,
    # is left intact).
    series = broken_series(series_root, tmp_path, VERSION, RMS,
                           "+            and cls.has_aiter_hip_kernels()\n", "+            and True\n")
    root = tmp_path / "tree"
    assert all(r.ok for r in rp.patched_copy(installed_root(vllm), series, root))
    patched = eq.run_decisions(patched_under_test(vllm, root), "gfx1151", plugin=False)
    eq.assert_patched_vllm(patched, root)
    problems = eq.compare(plugin_decisions(vllm, "gfx1151"), patched, version=VERSION,
                          arch="gfx1151", patch_names={"rms-norm-not-aiter-hip": RMS})
    assert problems, "a patch that disagrees with its runtime fix passed the equivalence check"
    assert all("rms-norm-not-aiter-hip (0004-rms-norm-not-aiter-hip.patch)" in p for p in problems)
    assert any("aiter/rms-norm-priority" in p and "'aiter'" in p for p in problems), problems
