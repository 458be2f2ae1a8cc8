"""The fix engine against a toy stack: fail closed, idempotent, revertible, atomic."""
import importlib
import logging
import sys
import textwrap

import pytest
import wrapt

from rocm_enable.engine import apply as engine
from rocm_enable.engine.anchors import fingerprint, target_fingerprint
from rocm_enable.engine.record import Fix, Patch, Stack
from rocm_enable.gates.capabilities import capabilities_for, lacks_fp8_compute
from rocm_enable.toggles import read_selection

TOY = '''
__version__ = "1.4.0"

def decide(x):
    return "original:" + str(x)

class Gate:
    @staticmethod
    def supported(kind):
        return kind == "bf16"

    @classmethod
    def name(cls):
        return cls.__name__
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    pkg = tmp_path / "toystack"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("toystack", None)
    mod = importlib.import_module("toystack")
    yield mod
    engine.revert_all()
    sys.modules.pop("toystack", None)


def _patched(wrapped, instance, args, kwargs):
    return "patched:" + str(args[0])


def _accept_fp8(wrapped, instance, args, kwargs):
    return args[0] == "fp8" or wrapped(*args, **kwargs)


def make_fix(name="toy-fix", target="toystack:decide", anchor=None, versions=">=1.0,<2",
             wrapper=_patched, extra=()):
    anchor = anchor or target_fingerprint(target)
    return Fix(name=name, title="t", stack="toy", patches=(Patch(target, wrapper, {"1.4.0": anchor}), *extra),
               condition=lacks_fp8_compute, versions=versions, why="w", how="h", upstream="u", removal="r")


def run(fix, arch="gfx1151", env=None, logger=None):
    stack = Stack("toy", "toystack", (fix,))
    sel = read_selection({fix.name}, env or {})
    return engine.apply_stacks([stack], capabilities_for(arch), sel,
                               logger or logging.getLogger("test"))[0]


def test_applies_and_reverts(toy):
    res = run(make_fix())
    assert res.status == "applied"
    assert toy.decide(3) == "patched:3"
    engine.revert("toy-fix")
    assert toy.decide(3) == "original:3"


def test_applying_twice_is_a_no_op(toy):
    fix = make_fix()
    run(fix)
    first = vars(toy)["decide"]
    assert run(fix).status == "applied"
    assert vars(toy)["decide"] is first
    assert not isinstance(first.__wrapped__, wrapt.FunctionWrapper)


def test_anchor_mismatch_is_skipped_with_one_warning(toy, caplog):
    fix = make_fix(anchor="0000000000000000")
    with caplog.at_level(logging.WARNING):
        res = run(fix)
        run(fix)
    assert res.status == "skipped" and "anchor mismatch" in res.reason and "toystack:decide" in res.reason
    assert toy.decide(1) == "original:1"
    warnings = [r for r in caplog.records if "toy-fix" in r.getMessage()]
    assert len(warnings) == 1


def test_drifted_source_is_skipped(toy):
    fix = make_fix()
    toy.decide = lambda x: "rewritten upstream"  # same name, different code
    res = run(fix)
    assert res.status == "skipped" and "anchor mismatch" in res.reason


def test_missing_target_is_skipped(toy):
    fix = make_fix(target="toystack:decide", anchor="0" * 16)
    object.__setattr__(fix, "patches", (Patch("toystack:gone", _patched, {"1.4.0": "0" * 16}),))
    res = run(fix)
    assert res.status == "skipped" and "does not exist" in res.reason


def test_unimportable_module_is_skipped(toy):
    fix = make_fix()
    object.__setattr__(fix, "patches", (Patch("toystack.nowhere:f", _patched, {"1.4.0": "x"}),))
    res = run(fix)
    assert res.status == "skipped" and "cannot import" in res.reason


def test_version_outside_range_is_skipped(toy):
    res = run(make_fix(versions=">=2.0"))
    assert res.status == "skipped" and "outside the verified range" in res.reason
    assert toy.decide(1) == "original:1"


def test_version_that_fixed_it_upstream_is_not_applicable(toy):
    import dataclasses

    fix = dataclasses.replace(make_fix(versions=">=1.0,<1.4"), fixed_upstream_in="1.4.0")
    res = run(fix)
    assert res.status == "not-applicable" and "fixed upstream in 1.4.0" in res.reason
    assert toy.decide(1) == "original:1"
    # a version past the range that did NOT fix it stays unverified: skipped
    res = run(dataclasses.replace(fix, fixed_upstream_in="1.5.0"))
    assert res.status == "skipped" and "outside the verified range" in res.reason


def test_fixed_upstream_version_inside_the_range_is_refused(toy):
    import dataclasses

    with pytest.raises(ValueError, match="fixed upstream"):
        dataclasses.replace(make_fix(versions=">=1.0,<2"), fixed_upstream_in="1.4.0")


def test_condition_false_is_not_applicable(toy):
    res = run(make_fix(), arch="gfx1201")
    assert res.status == "not-applicable" and "lacks_fp8_compute is false on gfx1201" in res.reason


def test_toggles_disable(toy):
    assert run(make_fix(), env={"ROCM_ENABLE_DISABLE": "toy-fix"}).status == "disabled"
    assert run(make_fix(), env={"ROCM_ENABLE": "0"}).status == "disabled"
    assert toy.decide(1) == "original:1"


def test_staticmethod_descriptor_survives_wrap_and_revert(toy):
    fix = make_fix(target="toystack:Gate.supported", wrapper=_accept_fp8)
    assert run(fix).status == "applied"
    assert toy.Gate.supported("fp8") and toy.Gate().supported("bf16")
    engine.revert(fix.name)
    assert isinstance(vars(toy.Gate)["supported"], staticmethod)
    assert not toy.Gate.supported("fp8")


def test_multi_patch_fix_is_atomic(toy):
    good = Patch("toystack:decide", _patched, {"1.4.0": target_fingerprint("toystack:decide")})
    bad = Patch("toystack:Gate.name", _patched, {"1.4.0": "ffffffffffffffff"})
    fix = make_fix()
    object.__setattr__(fix, "patches", (good, bad))
    assert run(fix).status == "skipped"
    assert toy.decide(1) == "original:1"


def test_fingerprint_ignores_layout_but_not_code(tmp_path, monkeypatch):
    (tmp_path / "fp_a.py").write_text("def f(x):\n    return x + 1\n")
    (tmp_path / "fp_b.py").write_text("class K:\n    def f(x):\n\n        return x + 1   \n")
    (tmp_path / "fp_c.py").write_text("def f(x):\n    return x + 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    a, b, c = (importlib.import_module(m) for m in ("fp_a", "fp_b", "fp_c"))
    assert fingerprint(a.f) == fingerprint(b.K.f) != fingerprint(c.f)


# ---- an unverified, newer release: the fingerprints decide (issue 15 point 2) ----------------

def verified_on(version, anchor=None, versions=">=1.0,<1.4", **fields):
    """The toy fix as if verified on `version` only (the toy stack itself says 1.4.0)."""
    import dataclasses

    fix = make_fix(versions=versions)
    patch = fix.patches[0]
    anchors = {version: anchor or patch.anchors["1.4.0"]}
    return dataclasses.replace(fix, patches=(dataclasses.replace(patch, anchors=anchors),), **fields)


def test_unverified_newer_version_applies_when_anchors_match(toy):
    res = run(verified_on("1.3.0"))
    assert res.status == "applied", res
    assert res.reason.startswith("unverified version, anchors match 1.3.0")
    assert toy.decide(1) == "patched:1"
    # re-entry (every vLLM process calls the plugin again) keeps saying why
    assert run(verified_on("1.3.0")).reason == res.reason


def test_unverified_newer_version_skips_naming_the_drifted_target(toy):
    res = run(verified_on("1.3.0", anchor="0123456789abcdef"))
    assert res.status == "skipped"
    assert "1.4.0 is unverified and toystack:decide differs from every verified source" in res.reason
    assert "rocm-enable audit" in res.reason
    assert toy.decide(1) == "original:1"


def test_explicit_upper_bound_stops_fingerprint_authority(toy):
    res = run(verified_on("1.3.0", unverified_before="1.4"))
    assert res.status == "skipped" and "explicit bound" in res.reason
    assert toy.decide(1) == "original:1"
    assert run(verified_on("1.3.0", unverified_before="1.5")).status == "applied"


def test_version_older_than_verified_is_skipped(toy):
    res = run(verified_on("1.5.0", versions=">=1.5,<2"))
    assert res.status == "skipped" and "outside the verified range" in res.reason


def test_patch_fixed_upstream_is_neither_checked_nor_wrapped(toy):
    # The Gate.supported part was fixed upstream in 1.4.0 (its anchor no longer matches, which
    # must not matter); the decide() part still applies.
    gone = Patch("toystack:Gate.supported", _accept_fp8, {"1.3.0": "0123456789abcdef"},
                 fixed_upstream_in="1.4.0")
    res = run(make_fix(extra=(gone,)))
    assert res.status == "applied", res
    assert toy.decide(1) == "patched:1" and toy.Gate.supported("fp8") is False
    engine.revert_all()
    still = Patch("toystack:Gate.supported", _accept_fp8, {"1.4.0": target_fingerprint("toystack:Gate.supported")},
                  fixed_upstream_in="1.5.0")
    assert run(make_fix(extra=(still,))).status == "applied" and toy.Gate.supported("fp8") is True
