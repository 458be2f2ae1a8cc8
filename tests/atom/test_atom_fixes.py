"""ATOM records against stand-ins of ATOM's code, under a simulated arch (in a child process).

ATOM is not installable here: the child imports tests/atom/standin (stand-in `atom`/`aiter`
packages with the SHAPE of the targeted ATOM code and its failure; see standin/README.md) and a
generated dist-info. The real records are anchored to ATOM's source, so they must SKIP on the
stand-ins (fail closed); the "works" tests use test-only copies whose anchors are the stand-ins'
fingerprints (standin_records.use_standin_anchors), i.e. the same wrappers on same-shaped code."""
import json
import tomllib
from pathlib import Path

import pytest

from atom_harness import atom_env
from sim_harness import MARK, run_python
from zygote import run_module

pytestmark = pytest.mark.vllm_sim
ROOT = Path(__file__).resolve().parents[2]
FIX_NAMES = {"atom-gemma-rms-norm-native", "atom-silu-and-mul-native",
             "atom-gdn-prefill-block-tables"}

BEFORE_AND_AFTER = """
from standin_records import scenarios, use_standin_anchors, atom_rows
before = scenarios()
if os.environ.get("STANDIN_ANCHORS") == "1":
    use_standin_anchors()
import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "rows": atom_rows(), "after": scenarios()}
"""


def run(tmp_path, arch, standin_anchors=True, **env):
    env = {**atom_env(tmp_path), "STANDIN_ANCHORS": "1" if standin_anchors else "0", **env}
    return run_python(BEFORE_AND_AFTER, arch=arch, env=env)


def hip_failure(attempt):
    return not attempt["ok"] and "invalid device function" in attempt["error"]


def test_each_fix_removes_its_failure_on_gfx1151(tmp_path):
    out = run(tmp_path, "gfx1151")["result"]
    before, after = out["before"], out["after"]
    assert {name: row[0] for name, row in out["rows"].items()} == dict.fromkeys(FIX_NAMES, "applied")
    # GemmaRMSNorm: aiter's HIP kernel has no gfx1151 code object -> native forward, also compiled
    for case in ("plain", "residual", "compiled"):
        assert not before["norm"][case]["ok"], case
        assert after["norm"][case] == {"ok": True, "value": 0.0}, case
    assert hip_failure(before["norm"]["plain"]) and after["norm"]["forward_bound_on_instance"]
    # SiluAndMul: the HIP branches go native, the Triton FP8/MXFP4 branches are untouched
    for case in ("plain", "fused_no_scale"):
        assert hip_failure(before["silu"][case]) and after["silu"][case] == {"ok": True, "value": 0.0}
    for case in ("fused_static_scale", "mxfp4"):
        assert before["silu"][case] == after["silu"][case] and after["silu"][case]["ok"]
    # GDN prefill: None block_tables crash the full-attention layer; with the fix it is exact
    assert before["gdn"]["block_tables_none"]
    assert before["gdn"]["attention"] == {
        "ok": False, "error": "AttributeError: 'NoneType' object has no attribute 'stride'"}
    assert not after["gdn"]["block_tables_none"] and after["gdn"]["attention"]["value"] < 1e-5
    # under ATOM_USE_UNIFIED_ATTN the base builder already uploads the real tables: unchanged
    assert before["gdn_unified"] == after["gdn_unified"]
    assert after["gdn_unified"]["attention"]["value"] < 1e-5
    assert after["norm"]["hip_launches"] == after["silu"]["hip_launches"] == 0


def test_gfx942_is_unchanged(tmp_path):
    out = run(tmp_path, "gfx942")["result"]
    assert {name: row[0] for name, row in out["rows"].items()} == dict.fromkeys(
        FIX_NAMES, "not-applicable")
    assert all("aiter_hip_kernels_unsupported is false on gfx942" in r[1] for r in out["rows"].values())
    assert out["before"] == out["after"]
    assert out["after"]["norm"]["hip_launches"] > 0 and out["after"]["silu"]["hip_launches"] > 0
    assert not out["after"]["norm"]["forward_bound_on_instance"]
    assert out["after"]["gdn"]["block_tables_none"]  # gfx9 prefill does not read them


def test_real_records_fail_closed_on_standins(tmp_path):
    """The shipped anchors are ATOM's (pinned commit); stand-in bodies differ -> skipped."""
    res = run(tmp_path, "gfx1151", standin_anchors=False)
    out = res["result"]
    for name in FIX_NAMES:
        status, reason = out["rows"][name]
        assert status == "skipped" and "anchor mismatch" in reason and "ATOM@ffdf3bb5d" in reason
    assert out["before"] == out["after"]  # nothing touched: the failures remain
    assert hip_failure(out["after"]["norm"]["plain"])
    assert "skipped fix atom-gemma-rms-norm-native" in res["log"]


def test_disable_toggle_restores_atom(tmp_path):
    out = run(tmp_path, "gfx1151", ROCM_ENABLE_DISABLE="atom-gemma-rms-norm-native")["result"]
    assert out["rows"]["atom-gemma-rms-norm-native"][0] == "disabled"
    assert hip_failure(out["after"]["norm"]["plain"])
    assert out["after"]["silu"]["plain"]["ok"] and out["rows"]["atom-silu-and-mul-native"][0] == "applied"


def test_inactive_and_silent_without_atom():
    body = """
import vllm.plugins; vllm.plugins.load_general_plugins()
from standin_records import atom_rows  # noqa: E402  (imports rocm_enable only)
result = {"rows": atom_rows(),
          "imported": sorted(m for m in sys.modules if m == "atom" or m.startswith(("atom.", "aiter")))}
"""
    env = {"PYTHONPATH": str(Path(__file__).resolve().parent)}
    res = run_python(body, arch="gfx1151", env=env)
    rows = res["result"]["rows"]
    assert rows == {name: ["not-applicable", "atom is not installed"] for name in FIX_NAMES}
    assert res["result"]["imported"] == []
    log = [line for line in res["log"].splitlines() if MARK not in line]  # stderr: the logs
    assert not [line for line in log if "atom" in line.lower()]


def test_doctor_says_atom_not_installed():
    proc = run_module("rocm_enable.cli", ["doctor", "--arch", "gfx1151", "--json"],
                      capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = {f["name"]: f for f in json.loads(proc.stdout)["fixes"] if f["stack"] == "atom"}
    assert set(rows) == FIX_NAMES
    assert all(r["status"] == "not-applicable" and r["reason"] == "atom is not installed"
               for r in rows.values())


COEXIST = """
from vllm import platforms
from standin_records import use_standin_anchors, atom_rows, gemma_rms_norm, gdn_prefill
# vLLM's own platform resolution: an out-of-tree platform plugin wins over the built-in ROCm one
qualname = platforms.resolve_current_platform_cls_qualname()
module, _, cls = qualname.rpartition(".")
import importlib
platforms._current_platform = getattr(importlib.import_module(module), cls)()
use_standin_anchors()
import vllm.plugins; vllm.plugins.load_general_plugins()
from atom.plugin.vllm.register import MODEL_REGISTRY_CALLS
from vllm.platforms import current_platform
result = {"platform": type(current_platform).__name__, "is_rocm": current_platform.is_rocm(),
          "atom_general_plugin": MODEL_REGISTRY_CALLS, "rows": atom_rows(),
          "norm": gemma_rms_norm()["plain"], "gdn": gdn_prefill(unified=False)["attention"]["ok"]}
"""


def test_coexists_with_atoms_platform_plugin(tmp_path):
    env = atom_env(tmp_path, vllm_entry_points=True)
    out = run_python(COEXIST, arch="gfx1151", env=env)["result"]
    assert out["platform"] == "ATOMPlatform" and out["is_rocm"]
    assert out["atom_general_plugin"] == ["registered"]  # ATOM's own general plugin ran too
    assert {name: row[0] for name, row in out["rows"].items()} == dict.fromkeys(FIX_NAMES, "applied")
    assert out["norm"] == {"ok": True, "value": 0.0} and out["gdn"]


def test_rocm_enable_registers_no_platform_plugin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = project["entry-points"]
    assert "vllm.platform_plugins" not in groups
    assert groups["rocm_enable.stacks"]["atom"] == "rocm_enable.stacks.atom"
    from importlib.metadata import entry_points

    assert not [ep for ep in entry_points(group="vllm.platform_plugins")
                if ep.value.startswith("rocm_enable")]
