"""Issue 15 points 2 and 3 on a synthetic next release: vLLM 0.34.0's sources with only the version
changed to 0.35.0 (the fingerprints decide: every fix that applies on 0.34.0 applies, saying
so), then with one anchored function edited (that fix is skipped naming the symbol, the others
still apply; `rocm-enable audit` shows the diff)."""
import json
import os

import pytest

from rocm_enable.engine.hooks import all_fixes
from sim_harness import VllmUnderTest, run_python, vllm_versions_under_test
from synthetic_release import EDIT_MARK, make_release
from zygote import run_module

pytestmark = pytest.mark.vllm_sim

BASE = "0.34.0"
NEXT = "0.35.0"
EDITED_FIX = "fp8-linear-w8a16"
EDITED_TARGET = "vllm.model_executor.kernels.linear:choose_scaled_mm_linear_kernel"
EDITED_FILE = "vllm/model_executor/kernels/linear/__init__.py"


def _base_root() -> str:
    for v in vllm_versions_under_test():
        if v.version == BASE:
            if v.pythonpath:
                return v.pythonpath
            import vllm

            return os.path.dirname(os.path.dirname(vllm.__file__))
    pytest.skip(f"vLLM {BASE} is not among ROCM_ENABLE_TEST_VLLM (scripts/test.sh installs it)")


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    base = _base_root()
    plain = make_release(base, tmp_path_factory.mktemp("vllm_next"), NEXT)
    edited = make_release(base, tmp_path_factory.mktemp("vllm_next_edited"), NEXT,
                          "choose_scaled_mm_linear_kernel", EDITED_FILE)
    return {"plain": str(plain), "edited": str(edited)}


# One simulated process: the fixes on the tree's own version (0.35.0), on the same code reported
# as 0.34.0 (the verified answer to compare with), and with the edited function swapped in.
ONE_PROCESS = """
import vllm
from rocm_enable import runtime
from rocm_enable.engine import apply as engine

def decide(version):
    vllm.__version__ = version
    report = runtime.activate()
    out = {r.name: [r.status, r.reason] for r in report.results if r.stack == "vllm"}
    engine.revert_all()
    return out

real = vllm.__version__
verified = decide("BASE")
unverified = decide(real)
# the edited 0.35.0: EDITED_TARGET's module function compiled from the edited file
import importlib, types
module_name, _, func = "EDITED_TARGET".partition(":")
module = importlib.import_module(module_name)
edited = types.ModuleType(module_name + "_edited")
edited.__dict__.update(module.__dict__)
with open(os.environ["EDITED_COPY"]) as f:
    exec(compile(f.read(), os.environ["EDITED_COPY"], "exec"), edited.__dict__)
setattr(module, func, edited.__dict__[func])
result = {"real": real, "verified": verified, "unverified": unverified, "edited": decide(real)}
""".replace("BASE", BASE).replace("EDITED_TARGET", EDITED_TARGET)


def test_fingerprints_decide_on_an_unverified_release(releases):
    env = {"EDITED_COPY": os.path.join(releases["edited"], EDITED_FILE)}
    out = run_python(ONE_PROCESS, arch="gfx1151", vllm=VllmUnderTest(NEXT, releases["plain"]),
                     env=env)["result"]
    assert out["real"] == NEXT
    verified, unverified, edited = out["verified"], out["unverified"], out["edited"]
    applied_on_base = {n for n, (status, _) in verified.items() if status == "applied"}
    assert EDITED_FIX in applied_on_base and "fp8-moe-w8a16" in applied_on_base
    for name, (status, reason) in unverified.items():
        assert status == verified[name][0], (name, verified[name], unverified[name])
        if status == "applied":
            assert reason.startswith(f"unverified version, anchors match {BASE}"), (name, reason)
    # one anchored function edited: that fix skips, naming the symbol; nothing else changes
    status, reason = edited[EDITED_FIX]
    assert status == "skipped"
    assert f"{NEXT} is unverified and {EDITED_TARGET} differs from every verified source" in reason
    assert {n: s for n, (s, _) in edited.items() if n != EDITED_FIX} == \
        {n: s for n, (s, _) in unverified.items() if n != EDITED_FIX}


def test_audit_shows_the_drifted_function_and_the_series(releases):
    proc = run_module("rocm_enable.cli", ["audit", "--vllm-src", releases["edited"], "--json"],
                      capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]  # drift -> non-zero
    report = json.loads(proc.stdout)
    assert report["vllm_version"] == NEXT
    fixes = {f["name"]: f for f in report["fixes"]}
    (edited,) = [t for t in fixes[EDITED_FIX]["targets"] if t["target"] == EDITED_TARGET]
    assert edited["status"] == "drifted" and edited["against"] == BASE
    added = [ln for ln in edited["diff"].splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    assert added == [f"+    _ = None  # {EDIT_MARK}"]
    # every other record reads as on the verified release (matched, or not needed there)
    vllm_fixes = {f.name: f for f in all_fixes() if f.stack == "vllm"}
    for name, fa in fixes.items():
        if name == EDITED_FIX:
            continue
        for t in fa["targets"]:
            if t["status"] == "matched":
                assert BASE in t["matches"] or not any(
                    BASE in p.anchors for p in vllm_fixes[name].patches), (name, t)
    # the newest series was tried patch by patch against the release
    assert report["series"] and report["patches"]
    assert {p["status"] for p in report["patches"]} <= {"applies", "needs rebase"}
    assert all("fix" in p for p in report["patches"])
