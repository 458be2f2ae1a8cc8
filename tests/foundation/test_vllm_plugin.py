"""The entry point inside real vLLM (0.32.0 and 0.33.0) under a simulated ROCm arch."""
import json
import os

import pytest

from sim_harness import run_python
from zygote import run_module

pytestmark = pytest.mark.vllm_sim

LOAD = """
import vllm.plugins, wrapt
from rocm_enable.engine import apply as engine
vllm.plugins.load_general_plugins()
import vllm.platforms.rocm as R
raw = vars(R.RocmPlatform)["get_default_ir_op_priority"]
result = {"applied": engine.applied_names(), "wrapped": isinstance(raw, wrapt.FunctionWrapper)}
"""


def test_vllm_discovers_and_runs_the_entry_point(vllm_under_test):
    out = run_python(LOAD, arch="gfx1151", vllm=vllm_under_test)
    assert "rms-norm-not-aiter-hip" in out["result"]["applied"]
    assert out["result"]["wrapped"]
    assert "rocm-enable: arch gfx1151" in out["log"]  # one summary line through vLLM's logger


def test_second_registration_changes_nothing(vllm_under_test):
    body = LOAD + """
import rocm_enable.plugin as plugin
first = vars(R.RocmPlatform)["get_default_ir_op_priority"]
vllm.plugins.plugins_loaded = False  # vLLM calls the entry point again in some processes
vllm.plugins.load_general_plugins()
plugin.register()
second = vars(R.RocmPlatform)["get_default_ir_op_priority"]
result["same_object"] = first is second
result["double_wrapped"] = isinstance(second.__wrapped__, wrapt.FunctionWrapper)
result["applied_after"] = engine.applied_names()
"""
    out = run_python(body, arch="gfx1151", vllm=vllm_under_test)["result"]
    assert out["same_object"] and not out["double_wrapped"]
    assert out["applied_after"] == out["applied"]


def test_summary_logged_once_per_process(vllm_under_test):
    body = LOAD + """
import rocm_enable.plugin as plugin
plugin.register(); plugin.register()
"""
    out = run_python(body, arch="gfx1151", vllm=vllm_under_test)
    assert out["log"].count("rocm-enable: arch gfx1151") == 1


def test_spawned_subprocess_applies_fixes_again(vllm_under_test):
    body = LOAD + """
import multiprocessing as mp, sys
sys.path.insert(0, %r)
import spawn_child
ctx = mp.get_context("spawn")
q = ctx.Queue()
p = ctx.Process(target=spawn_child.child, args=(q,))
p.start(); child = q.get(timeout=240); p.join(60)
result["child"] = child
result["parent_pid"] = os.getpid()
""" % (str(__import__("pathlib").Path(__file__).parent),)
    out = run_python(body, arch="gfx1151", vllm=vllm_under_test)["result"]
    assert out["child"]["pid"] != out["parent_pid"]
    assert out["child"]["before"] == []  # nothing leaked from the parent: a new interpreter
    assert "rms-norm-not-aiter-hip" in out["child"]["after"]


def test_rocm_enable_zero_applies_nothing(vllm_under_test):
    out = run_python(LOAD, arch="gfx1151", vllm=vllm_under_test, env={"ROCM_ENABLE": "0"})
    assert out["result"] == {"applied": [], "wrapped": False}


def test_malformed_toggle_applies_nothing_and_says_why(vllm_under_test):
    out = run_python(LOAD, arch="gfx1151", vllm=vllm_under_test, env={"ROCM_ENABLE_ONLY": "no-such-fix"})
    assert out["result"] == {"applied": [], "wrapped": False}
    assert "ROCM_ENABLE_ONLY names unknown fix(es) no-such-fix" in out["log"]


def test_non_rocm_platform_is_left_alone(vllm_under_test):
    out = run_python(LOAD.replace("import vllm.platforms.rocm as R", "import types; R = None") .replace(
        'raw = vars(R.RocmPlatform)["get_default_ir_op_priority"]', "raw = None"),
        arch=None, vllm=vllm_under_test)
    assert out["result"]["applied"] == []


def test_drifted_anchor_in_real_vllm_is_skipped_without_exception(vllm_under_test):
    body = """
import logging, vllm.plugins
import rocm_enable.stacks.vllm.norm_routing as nr
from rocm_enable.engine import apply as engine
patch = nr.RMS_NORM_NOT_AITER_HIP.patches[0]
object.__setattr__(patch, "anchors", {"0.0.0": "deadbeefdeadbeef"})
records = []
class Grab(logging.Handler):
    def emit(self, record): records.append(record.getMessage())
logging.getLogger("vllm.rocm_enable").addHandler(Grab())
vllm.plugins.load_general_plugins()
import vllm.platforms.rocm as R, wrapt
result = {"applied": engine.applied_names(), "warnings": records,
          "wrapped": isinstance(vars(R.RocmPlatform)["get_default_ir_op_priority"], wrapt.FunctionWrapper)}
"""
    out = run_python(body, arch="gfx1151", vllm=vllm_under_test)["result"]
    assert "rms-norm-not-aiter-hip" not in out["applied"] and not out["wrapped"]
    assert "fp8-moe-w8a16" in out["applied"]  # one drifted record does not take the others down
    assert any("skipped fix rms-norm-not-aiter-hip: anchor mismatch" in w for w in out["warnings"])


@pytest.mark.parametrize("arch,expect_fp8", [("gfx1151", False), ("gfx1201", True)])
def test_doctor_json(arch, expect_fp8):
    proc = run_module("rocm_enable.cli", ["doctor", "--arch", arch, "--json"],
                      capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert {"arch", "capabilities", "vllm_version", "fixes"} <= set(data)
    assert data["arch"] == arch and data["capabilities"]["fp8_compute"] is expect_fp8
    assert data["fixes"] and all({"name", "status", "reason"} <= set(f) for f in data["fixes"])
    assert all(f["status"] in {"applied", "skipped", "disabled", "not-applicable"} for f in data["fixes"])


def test_doctor_unknown_arch_is_a_clear_error():
    proc = run_module("rocm_enable.cli", ["doctor", "--arch", "gfx1036"],
                      capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown AMD architecture 'gfx1036'" in proc.stderr and "Traceback" not in proc.stderr


def test_doctor_reports_hsa_override():
    env = dict(os.environ, HSA_OVERRIDE_GFX_VERSION="11.0.0")
    proc = run_module("rocm_enable.cli", ["doctor", "--arch", "gfx1151", "--json"],
                      capture_output=True, text=True, timeout=300, env=env)
    data = json.loads(proc.stdout)
    assert data["arch"] == "gfx1151"
    assert data["hsa_override"]["spoofed_arch"] == "gfx1100"
    assert "unset it" in data["hsa_override"]["warning"]
