"""The audit's store of verified sources and its drift report (no vLLM needed here; the run on a
real release tree is in test_next_release.py)."""
import dataclasses

from rocm_enable.audit import DRIFTED, MATCHED, MISSING, NOT_NEEDED, audit_fixes, load_sources, record_sources
from rocm_enable.engine.anchors import text_fingerprint
from rocm_enable.engine.hooks import all_fixes
from rocm_enable.engine.record import Patch

SOURCE = "def decide(x):\n    return x + 1\n"
EDITED = "def decide(x):\n    return x + 2\n"


def test_every_vllm_anchor_has_its_verified_source():
    sources = load_sources()
    missing, wrong = [], []
    for fix in all_fixes():
        if fix.stack != "vllm":
            continue
        for patch in fix.patches:
            for version, fp in patch.anchors.items():
                if fp not in sources:
                    missing.append(f"{fix.name} {patch.target} {version}={fp}")
    wrong = [fp for fp, text in sources.items() if text_fingerprint(text) != fp]
    assert not missing, ("anchors without a stored source (run `rocm-enable audit --vllm-src PATH "
                         f"--record-sources` on the verified tree): {missing}")
    assert not wrong, f"stored sources that do not hash to their key: {wrong}"


def _fix(**patch_fields):
    fix = next(f for f in all_fixes() if f.name == "fp8-linear-w8a16")
    patch = Patch(fix.patches[0].target, None, {"0.33.0": text_fingerprint(SOURCE)}, **patch_fields)
    return dataclasses.replace(fix, patches=(patch,), versions=">=0.32.0,<0.34")


def test_drift_is_reported_with_a_diff_against_the_verified_source():
    fix = _fix()
    target = fix.patches[0].target
    sources = {text_fingerprint(SOURCE): SOURCE}
    found = {target: {"fingerprint": text_fingerprint(EDITED), "source": EDITED}}
    (fa,) = audit_fixes([fix], found, "0.35.0", sources, "vLLM 0.35.0")
    (row,) = fa.targets
    assert not fa.ok and row.status == DRIFTED and row.against == "0.33.0"
    assert "-    return x + 1\n+    return x + 2" in row.diff
    assert row.diff.startswith(f"--- {target} (verified 0.33.0)\n+++ {target} (vLLM 0.35.0)")

    same = {target: {"fingerprint": text_fingerprint(SOURCE), "source": SOURCE}}
    (fa,) = audit_fixes([fix], same, "0.35.0", sources, "x")
    assert fa.ok and fa.targets[0].status == MATCHED and fa.targets[0].matches == ["0.33.0"]

    gone = {target: {"error": "TargetError: does not exist"}}
    (fa,) = audit_fixes([fix], gone, "0.35.0", sources, "x")
    assert not fa.ok and fa.targets[0].status == MISSING


def test_parts_fixed_upstream_are_not_needed():
    fix = _fix(fixed_upstream_in="0.34.0")
    (fa,) = audit_fixes([fix], {}, "0.34.0", {}, "x")
    assert fa.ok and fa.targets[0].status == NOT_NEEDED


def test_record_stores_only_sources_that_match_an_anchor():
    fix = _fix()
    target = fix.patches[0].target
    sources = {}
    assert record_sources([fix], {target: {"fingerprint": text_fingerprint(EDITED), "source": EDITED}},
                          sources) == [] and sources == {}
    assert record_sources([fix], {target: {"fingerprint": text_fingerprint(SOURCE), "source": SOURCE}},
                          sources) == [target]
    assert sources == {text_fingerprint(SOURCE): SOURCE}
