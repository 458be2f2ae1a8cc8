"""Close a test run (several pytest sessions, one junit xml each) with:
  - one line 'N passed, N failed, N skipped';
  - test-seconds per suite (tests/<dir>) and per vLLM version under test (a test id whose
    parameters include one of the versions of ROCM_ENABLE_TEST_VLLM, as scripts/test.sh exports it;
    'any' for tests that do not depend on the version), so the cost of a new version shows. Only
    those versions count: other version-like parameters (HSA_OVERRIDE_GFX_VERSION's 11.0.0) are not
    vLLM versions;
  - the 15 slowest tests, so drift shows in every run's log.
Times are per test (setup + call + teardown as junit records them), not wall time: with -n 2
two run at once."""
from __future__ import annotations

import os
import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

SLOWEST = 15
ENV_VERSIONS = "ROCM_ENABLE_TEST_VLLM"  # "0.32.0=;0.33.0=path;..." (tests/sim_harness.py)


def versions_under_test() -> set[str]:
    spec = os.environ.get(ENV_VERSIONS, "")
    return {item.partition("=")[0].strip() for item in spec.split(";") if item.strip()}


XDIST_GROUP = re.compile(r"@[^\[\]@]*$")  # pytest-xdist --dist loadgroup appends "@<group>"


def plain_name(name: str) -> str:
    return XDIST_GROUP.sub("", name)


def vllm_version_of(name: str, versions: set[str]) -> str:
    """The vLLM version a test ran against: a parameter of its id (pytest joins parameter ids with
    '-') that is a version under test; 'any' when none is."""
    name = plain_name(name)
    params = name[name.find("[") + 1:name.rfind("]")] if name.endswith("]") else ""
    found = [p for p in params.split("-") if p in versions]
    return found[0] if found else "any"


def cases(paths):
    for path in paths:
        for case in ET.parse(path).getroot().iter("testcase"):
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                elif child.tag == "skipped":
                    outcome = "skipped"
            yield case.get("classname", ""), case.get("name", ""), float(case.get("time", 0)), outcome


def test_id(classname: str, name: str) -> str:
    """tests.user.test_x.TestK + name -> tests/user/test_x.py::TestK::name"""
    parts = classname.split(".")
    module_end = next((i for i, p in enumerate(parts) if p.startswith("test_")), len(parts) - 1)
    return ("/".join(parts[:module_end + 1]) + ".py::"
            + "::".join(parts[module_end + 1:] + [plain_name(name)]))


def suite_of(classname: str) -> str:
    parts = classname.split(".")
    return "/".join(parts[:2]) if parts[0] == "tests" and len(parts) > 2 else parts[0]


def main(paths) -> None:
    rows = list(cases(paths))
    versions = versions_under_test()
    counts = defaultdict(int)
    by_suite, by_version = defaultdict(float), defaultdict(float)
    for classname, name, seconds, outcome in rows:
        counts[outcome] += 1
        by_suite[suite_of(classname)] += seconds
        by_version[vllm_version_of(name, versions)] += seconds
    total = sum(seconds for *_, seconds, _ in rows)
    print(f"\ntest-seconds: {total:.0f} in all")
    print("  by suite:        " + ", ".join(f"{k} {v:.0f}" for k, v in
                                            sorted(by_suite.items(), key=lambda kv: -kv[1])))
    print("  by vLLM version: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(by_version.items())))
    print(f"slowest {SLOWEST} tests:")
    for classname, name, seconds, outcome in sorted(rows, key=lambda r: -r[2])[:SLOWEST]:
        print(f"  {seconds:7.1f}s  {test_id(classname, name)}"
              + ("" if outcome == "passed" else f"  ({outcome})"))
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")


if __name__ == "__main__":
    main(sys.argv[1:])
