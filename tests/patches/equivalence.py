"""Decide with vLLM's real selection code, plugin vs. patched tree, and compare.

The decision snippets are the gate tests' own (imported from tests/gates, not copied): each runs
vLLM's selection code, loads the general plugins, and reports the decision "after". For one vLLM
version and arch, every snippet runs in ONE simulated process, first with the default environment
and then with the aiter switches set (the snippets read them at call time; both sides of the
comparison run the identical procedure):

  plugin side:  the installed vLLM, the plugin active        -> the snippets' "after"
  patched side: the patched copy first on PYTHONPATH, ROCM_ENABLE=0 (the plugin loads and applies
                nothing)                                      -> "before" and "after"

Equivalence: for each snippet, the patched side's "before" and "after" both equal the plugin
side's "after". A snippet belongs to fix records (CASES); a mismatch names them and their patches.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import test_fp8_linear_selection as gate_fp8_linear
import test_fp8_moe_selection as gate_fp8_moe
import test_moe_config_lookup as gate_moe_config
import test_norm_routing as gate_norm
from sim_harness import VllmUnderTest, run_python

ARCHS = ("gfx1151", "gfx1100", "gfx1201", "gfx942")
AITER_ENV = {"VLLM_ROCM_USE_AITER": "1", "VLLM_ROCM_USE_AITER_MOE": "1",
             "VLLM_ROCM_USE_AITER_RMSNORM": "1"}


@dataclass(frozen=True)
class Case:
    name: str
    fixes: tuple[str, ...]  # the fix records whose decisions this snippet shows
    snippet: str  # a tests/gates snippet: assigns result = {"before": ..., "after": ..., ...}


CASES = (
    Case("fp8-moe-oracle", ("fp8-moe-w8a16",), gate_fp8_moe.ORACLE),
    Case("fp8-linear-selection", ("fp8-linear-w8a16",), gate_fp8_linear.SELECT),
    Case("moe-config-lookup", ("moe-config-board-names",), gate_moe_config.LOOKUP),
    Case("rms-norm-priority", ("rms-norm-not-aiter-hip",), gate_norm.DECIDE),
    # No gate test carries a snippet for this decision yet (tests/gates has none for
    # aiter-gdn-triton-decode); it is the one vLLM call the fix changes. Without aiter installed
    # (as here) both sides answer False: the case guards against a patch that raises or
    # admits GDN Triton kernels with no aiter.
    Case("aiter-gdn-triton", ("aiter-gdn-triton-decode",), """
import vllm.plugins
from vllm._aiter_ops import rocm_aiter_ops
before = rocm_aiter_ops.is_rdna_gdn_triton_kernels_available()
vllm.plugins.load_general_plugins()
result = {"before": before, "after": rocm_aiter_ops.is_rdna_gdn_triton_kernels_available()}
"""),
)
COVERED_FIXES = {f for c in CASES for f in c.fixes}

RUNNER = """
import json as _json, os as _os
_cases = _json.loads(CASES_JSON)
_rounds = [("default", {}), ("aiter", AITER_ENV)]
_out = {}
_os.environ["LOAD_PLUGIN"] = "1"  # tests/gates/test_norm_routing.DECIDE loads plugins only then
for _round, _env in _rounds:
    _os.environ.update(_env)
    for _name, _code in _cases.items():
        _ns = {"__name__": "__gate_snippet__", "os": _os, "json": _json, "sys": sys}
        try:
            exec(_code, _ns)
            _out[f"{_round}/{_name}"] = _ns["result"]
        except Exception as _exc:  # a snippet that cannot run is a decision too
            _out[f"{_round}/{_name}"] = {"error": f"{type(_exc).__name__}: {_exc}"}
import vllm as _v
result = {"decisions": _out, "vllm_file": _v.__file__}
"""


def run_decisions(vllm: VllmUnderTest, arch: str, *, plugin: bool, cases=CASES) -> dict:
    """{"<round>/<case>": snippet result} from one simulated process, and where vLLM came from."""
    body = (f"CASES_JSON = {json.dumps(json.dumps({c.name: c.snippet for c in cases}))}\n"
            f"AITER_ENV = {AITER_ENV!r}\n" + RUNNER)
    env = {} if plugin else {"ROCM_ENABLE": "0"}
    return run_python(body, arch=arch, vllm=vllm, env=env, timeout=600)["result"]


def compare(plugin_out: dict, patched_out: dict, *, version: str, arch: str,
            patch_names: dict[str, str], cases=CASES) -> list[str]:
    """Every disagreement as a message naming the fix and its patch file."""
    problems = []
    by_name = {c.name: c for c in cases}
    for key, ref in plugin_out["decisions"].items():
        case = by_name[key.split("/", 1)[1]]
        got = patched_out["decisions"].get(key, {})
        expected = {k: v for k, v in ref.items() if k != "before"} if "error" not in ref else ref
        seen = {}
        if "error" in got or "error" in ref:
            seen = {"": got} if got != ref else {}
        else:
            for view in ("before", "after"):  # the patched vLLM decides so by itself
                for k, v in expected.items():
                    actual = got.get(view if k == "after" else k)
                    if actual != v:
                        seen[f"{view}:{k}"] = (v, actual)
        if seen:
            named = ", ".join(f"{f} ({patch_names.get(f, 'no patch')})" for f in case.fixes)
            diff = "; ".join(_diff(k, v) for k, v in seen.items())
            problems.append(f"vLLM {version} {arch} [{key}]: the patched tree decides differently "
                            f"from the plugin for {named}: {diff}")
    return problems


def _diff(view: str, pair) -> str:
    if not isinstance(pair, tuple):
        return f"{view} {pair}"
    plugin, patched = pair
    if isinstance(plugin, dict) and isinstance(patched, dict):
        keys = sorted(k for k in plugin.keys() | patched.keys() if plugin.get(k) != patched.get(k))
        return f"{view}: " + ", ".join(
            f"{k}: plugin={plugin.get(k)!r} patched={patched.get(k)!r}" for k in keys[:6])
    return f"{view}: plugin={plugin!r} patched={patched!r}"


def assert_patched_vllm(out: dict, patched_root: Path) -> None:
    where = os.path.realpath(out["vllm_file"])
    assert where.startswith(os.path.realpath(patched_root)), (
        f"the patched process imported vLLM from {where}, not from {patched_root}")
