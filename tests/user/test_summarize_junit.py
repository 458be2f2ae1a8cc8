"""scripts/summarize_junit.py closes every test run: counts, test-seconds per suite and per vLLM
version, the slowest tests (in order, with their ids)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="{n}">
{cases}
</testsuite></testsuites>"""


def _case(classname, name, seconds, body=""):
    return f'<testcase classname="{classname}" name="{name}" time="{seconds}">{body}</testcase>'


def test_summary_counts_groups_and_ranks(tmp_path):
    a = [_case("tests.gates.test_fp8_moe_selection", f"test_moe[gfx1151-{v}]", t)
         for v, t in (("0.32.0", 40.5), ("0.33.0", 30.25))]
    # xdist's --dist loadgroup appends the group to the name
    a.append(_case("tests.gates.test_fp8_moe_selection", "test_grouped[0.33.0]@some-group", 0.5))
    a.append(_case("tests.gates.test_fp8_moe_selection", "test_broken[0.33.0]", 1.0,
                   '<failure message="x"/>'))
    b = [_case(f"tests.ops.test_w8a16_isa.TestIsa", f"test_case_{i}", i) for i in range(20)]
    b.append(_case("tests.user.test_explain", "test_skipped", 0.0, '<skipped message="y"/>'))
    # a version-like parameter that is no vLLM version under test (HSA_OVERRIDE_GFX_VERSION)
    b.append(_case("tests.foundation.test_capabilities", "test_override[11.0.0-gfx1100]", 2.0))
    for name, rows in (("one.xml", a), ("two.xml", b)):
        (tmp_path / name).write_text(JUNIT.format(n=len(rows), cases="\n".join(rows)))
    out = subprocess.run([sys.executable, str(ROOT / "scripts/summarize_junit.py"),
                          str(tmp_path / "one.xml"), str(tmp_path / "two.xml")],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, ROCM_ENABLE_TEST_VLLM="0.32.0=;0.33.0=/x;0.34.0=/y"),
                         ).stdout.splitlines()
    assert out[-1] == "24 passed, 1 failed, 1 skipped"
    assert "by suite:        tests/ops 190, tests/gates 72, tests/foundation 2" in "\n".join(out)
    assert "by vLLM version: 0.32.0 40, 0.33.0 32, any 192" in "\n".join(out)
    slow = out[out.index("slowest 15 tests:") + 1:-1]
    assert len(slow) == 15
    assert slow[0].split() == ["40.5s", "tests/gates/test_fp8_moe_selection.py::test_moe[gfx1151-0.32.0]"]
    assert slow[2].split() == ["19.0s", "tests/ops/test_w8a16_isa.py::TestIsa::test_case_19"]
