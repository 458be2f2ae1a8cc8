"""Decide with vLLM's real selection code, plugin vs. patched tree, and compare.

The decision snippets are the gate tests' own (imported from tests/gates, not copied): each runs
vLLM's selection code, loads the general plugins, and reports the decision "after". For one vLLM
version and arch, every snippet runs in ONE simulated process, first with the default environment
and then with the aiter switches set (the snippets read them at call time; both sides of the
comparison run the identical procedure):

  plugin side:  the installed vLLM, the plugin active with the fixes that have a patch in the
                version's series (the others, still pending, switched off with
                ROCM_ENABLE_DISABLE: the series claims nothing about them)
                                                              -> the snippets' "after"
  patched side: the patched copy first on PYTHONPATH, ROCM_ENABLE=0 (the plugin loads and applies
                nothing)                                      -> "before" and "after"

Cases run in named processes (`Case.process`): "main" with vLLM's own environment, "aiter" with
the aiter stand-in package (tests/gates/fakeaiter: only the module names vLLM probes) on the path
and the aiter switches set from the start, since vLLM reads them when _aiter_ops is imported. Both
sides run the same processes with the same environment, the union of their cases' `env` (e.g.
vLLM's extensions "built for" some archs), and run the cases in CASES order.

Equivalence: for each snippet, the patched side's "before" and "after" both equal the plugin
side's "after". A snippet belongs to fix records (CASES); a mismatch names them and their patches.
Where a gate snippet cannot be used as it is, the case says what it changes and why.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import test_aiter_triton as gate_aiter
import test_attention_selection as gate_attention
import test_capability_integers as gate_ct
import test_fp8_linear_selection as gate_fp8_linear
import test_fp8_moe_selection as gate_fp8_moe
import test_fused_shared_expert_selection as gate_fse
import test_fp8_group_quant_code_object as gate_fp8_quant
import test_gdn_autotune as gate_gdn
import test_gdn_decode_selection as gate_gdn_decode
import test_gdn_selection as gate_gdn_prefill
import test_hip_code_objects as gate_hip
import test_moe_config_lookup as gate_moe_config
import test_moe_align_code_object as gate_moe_align
import test_moe_expert_ops_code_object as gate_moe_ops
import test_norm_routing as gate_norm
from sim_harness import VllmUnderTest, run_python

ARCHS = ("gfx1151", "gfx1100", "gfx1201", "gfx942")
AITER_ENV = {"VLLM_ROCM_USE_AITER": "1", "VLLM_ROCM_USE_AITER_MOE": "1",
             "VLLM_ROCM_USE_AITER_RMSNORM": "1"}


# process name -> (extra PYTHONPATH entry, environment from the start, rounds of (name, env))
PROCESSES = {
    "main": (None, {}, (("default", {}), ("aiter", AITER_ENV))),
    "aiter": (gate_aiter.FAKE_AITER, {**AITER_ENV, "VLLM_ROCM_USE_AITER_TRITON_ROPE": "1"},
              (("aiter-found", {}),)),
}


@dataclass(frozen=True)
class Case:
    name: str
    fixes: tuple[str, ...]  # the fix records whose decisions this snippet shows
    snippet: str  # a tests/gates snippet: assigns result = {"before": ..., "after": ..., ...}
    env: Callable[[], dict[str, str]] | None = field(default=None)  # the process environment
    process: str = "main"  # PROCESSES key


def _once(name: str, code: str) -> str:
    """`code` run only the first time in a process (the runner executes every snippet once per
    round): torch.library registrations cannot be repeated, and the Library objects are kept on
    `sys` so that the exec namespace going away does not unregister their ops."""
    return (f"if not hasattr(sys, {name!r}):\n" + textwrap.indent(code.strip("\n"), "    ") + "\n"
            f"    sys.{name} = [v for k, v in list(globals().items()) if k.startswith('_lib')]\n")


# The gate snippets that define decide() (tests/gates/test_hip_code_objects.py CASE_1/CASE_2)
# decide before and after the plugin in one process, as that module's PROBE does per group.
DECIDE_TWICE = """
before = decide()
import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""


# ---- HIP code objects (tests/gates/test_hip_code_objects.py CASE_1) --------------------------
# The process's vLLM extensions are "built for gfx1151 and gfx942": on gfx1151 the RDNA3 kernels
# are admitted (the code object is there, vLLM asks for gfx1100), on gfx1100 and gfx1201 the HIP
# ops are routed around (absent; gfx1100 also rejects the RDNA3 kernels with the reason), gfx942
# keeps vLLM's ops. The "unknown" case (no readable file) is the gate tests' own
# test_unknown_extension_keeps_vllm. One scenario per process: both sides cache the verdict.
HIP_TARGETS = ("gfx1151", "gfx942")
HIP = ("import torch\n" + _once("_rocm_enable_eq_hip_standins", gate_hip.STANDIN_OPS)
       + gate_hip.CASE_1 + DECIDE_TWICE)


@functools.cache
def _hip_env() -> dict[str, str]:
    folder = tempfile.mkdtemp(prefix="rocm-enable-eq-ext-")
    atexit.register(shutil.rmtree, folder, True)
    path = Path(folder) / "ext.so"
    path.write_bytes(gate_hip.elf_with_fatbin(gate_hip.bundle(list(HIP_TARGETS))))
    return {"EXT_FILE": str(path)}


# ---- more HIP ops (tests/gates/test_hip_code_objects.py CASE_2) -------------------------------
# The same "built for gfx1151 and gfx942" extension file as above (HIP_TARGETS; the snippet stubs
# vllm._moe_C's file too). Its imports stay outside the once-only block: every snippet runs in a
# fresh namespace. vLLM's Triton KV write runs on CPU tensors under TRITON_INTERPRET.
_STANDIN_2_IMPORTS = "import sys, types, torch\n"
assert gate_hip.STANDIN_OPS_2.lstrip("\n").startswith(_STANDIN_2_IMPORTS)
HIP_2 = (_STANDIN_2_IMPORTS + _once("_rocm_enable_eq_hip_standins_2", gate_hip.STANDIN_OPS_2)
         + gate_hip.CASE_2 + DECIDE_TWICE)


def _hip_2_env() -> dict[str, str]:
    return {**_hip_env(), **gate_hip.ENV_2}


# ---- BF16 MoE ops (tests/layers/test_moe_align_code_object.py, test_moe_expert_ops_code_object.py)
# The same "built for gfx1151 and gfx942" extension file as above (HIP_TARGETS): gfx1100 / gfx1201
# route vLLM's align, SiLU-and-mul and top-k sum around _moe_C / _C, gfx1151 and gfx942 keep the
# HIP ops. The align runs in Triton's interpreter, which more-hip-ops already sets for the process.
MOE_ALIGN = ("import os, sys, torch\n" + _once("_rocm_enable_eq_moe_align", gate_moe_align.ALIGN_STANDIN)
             + gate_moe_align.ALIGN_DECIDE)
MOE_EXPERT_OPS = ("import os, sys, torch\n" + _once("_rocm_enable_eq_moe_ops", gate_moe_ops.OPS_STANDIN)
                  + gate_moe_ops.OPS_DECIDE)

# ---- W8A8 FP8 activation quant (tests/layers/test_fp8_group_quant_code_object.py) -----------
# The same "built for gfx1151 and gfx942" extension file (HIP_TARGETS): gfx1100 / gfx1201 quantise
# in torch (QuantFP8 dispatching to forward_native, eager and under torch.compile; the MoE's group
# quant), gfx1151 and gfx942 launch the _C ops. vLLM's Triton group quant (the reference for the
# MoE's scales) runs in Triton's interpreter, which more-hip-ops sets for the process.
FP8_GROUP_QUANT = ("import os, sys, torch\n"
                   + _once("_rocm_enable_eq_fp8_quant", gate_fp8_quant.QUANT_STANDIN)
                   + gate_fp8_quant.QUANT_DECIDE)

# ---- GDN autotune (tests/gates/test_gdn_autotune.py DECIDE) ----------------------------------
# The gate snippet replaces the autotuner's run() and records `tuner.configs`, where the runtime
# fix narrows the list. vLLM patched with the series keeps the list and prunes it the way Triton
# does before benchmarking (early_config_prune, Autotuner.prune_configs). So both sides record
# what Autotuner.run would benchmark: prune_configs() with the launch's arguments (without an
# early_config_prune, as in unpatched vLLM, that is exactly `tuner.configs`).
_GDN_SEEN = ('        seen[name] = sorted((c.kwargs.get("BK", 0), c.kwargs["BV"], c.num_warps, '
             'c.num_stages) for c in tuner.configs)\n')
assert gate_gdn.DECIDE.count(_GDN_SEEN) == 1, "tests/gates/test_gdn_autotune.py DECIDE changed"
GDN = gate_gdn.DECIDE.replace(_GDN_SEEN, (
    "        tuner.nargs = dict(zip(tuner.arg_names, a))  # as Autotuner.run does first\n"
    + _GDN_SEEN.replace("for c in tuner.configs)", "for c in tuner.prune_configs(k))")))

# ---- Qwen3-Next attention (fused-qk-norm-rope-gate) ------------------------------------------
# tests/gates/test_qk_norm_rope_gate.py has no decision snippet that can run next to the others
# in one process (its model-construction snippet initialises torch.distributed). This one runs
# vLLM's own Qwen3NextAttention.__init__ with the projections and the attention layer stubbed
# (they need a TP group and a KV-cache config; the flag does not read them) and real RoPE, and
# reports use_fused_qk_norm_rope_gate for the dtypes and output-gate settings that decide it.
QK_NORM_ROPE_GATE = """
import torch
import vllm.plugins
from transformers import Qwen3NextConfig
from vllm.config import VllmConfig, set_current_vllm_config
import vllm.model_executor.models.qwen3_next as qn

class _Stub(torch.nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

def decide():
    stubbed = ("QKVParallelLinear", "RowParallelLinear", "Attention", "get_tensor_model_parallel_world_size")
    saved = {n: getattr(qn, n) for n in stubbed}
    qn.QKVParallelLinear = qn.RowParallelLinear = qn.Attention = _Stub
    qn.get_tensor_model_parallel_world_size = lambda: 1
    out = {}
    try:
        for name, dtype, gate in (("bf16", torch.bfloat16, True), ("fp16", torch.float16, True),
                                  ("fp32", torch.float32, True), ("bf16/no-gate", torch.bfloat16, False)):
            cfg = Qwen3NextConfig(hidden_size=256, num_attention_heads=4, num_key_value_heads=2,
                                  head_dim=256, partial_rotary_factor=0.25, max_position_embeddings=4096)
            cfg.attn_output_gate = gate
            default = torch.get_default_dtype()
            torch.set_default_dtype(dtype)   # what vLLM's model loader sets while building layers
            try:
                with set_current_vllm_config(VllmConfig()):
                    layer = qn.Qwen3NextAttention(cfg, prefix="model.layers.3.self_attn")
                out[name] = bool(layer.use_fused_qk_norm_rope_gate)
            except Exception as exc:
                out[name] = f"raises {type(exc).__name__}: {exc}"
            finally:
                torch.set_default_dtype(default)
    finally:
        for n, v in saved.items():
            setattr(qn, n, v)
    return out

before = decide()
vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""

# ---- attention selection (tests/attention/test_attention_selection.py SELECT) ----------------
# The gate snippet also reports `by_name`, the class path AttentionBackendEnum["ROCM_RDNA_ATTN"]
# resolves to: the plugin registers its own class, and only on wave32 RDNA, while the patched
# vLLM lists the backend in its enum on every platform (as it lists every backend) and rejects it
# off RDNA in validation (supports_compute_capability). What a user sees is the same: here both
# sides report, instead of the path, what `--attention-backend ROCM_RDNA_ATTN` selects for each
# layer ("raises" where it is refused, either way).
ATTENTION = gate_attention.SELECT + """
def _explicit_rdna():
    out = {}
    with set_current_vllm_config(VllmConfig()):
        for key, (hd, dt, kv, bs) in CASES.items():
            cfg = AttentionSelectorConfig(head_size=hd, dtype=dt, kv_cache_dtype=kv, block_size=bs)
            try:
                backend = AttentionBackendEnum["ROCM_RDNA_ATTN"]
                path = current_platform.get_attn_backend_cls(backend, cfg)
                out[key] = resolve_obj_by_qualname(path).get_name()
            except Exception:
                out[key] = "raises"
    return out
result.pop("by_name")
result["explicit_rdna"] = _explicit_rdna()
"""


CASES = (
    Case("hip-code-objects", ("silu-and-mul-code-object", "skinny-gemm-code-object",
                              "rdna3-kernels-code-object"), HIP, _hip_env),
    Case("fp8-moe-oracle", ("fp8-moe-w8a16",), gate_fp8_moe.ORACLE),
    Case("fp8-linear-selection", ("fp8-linear-w8a16",), gate_fp8_linear.SELECT),
    Case("moe-config-lookup", ("moe-config-board-names",), gate_moe_config.LOOKUP),
    Case("rms-norm-priority", ("rms-norm-not-aiter-hip",), gate_norm.DECIDE),
    Case("more-hip-ops", ("topk-softmax-code-object", "c-ops-code-object", "ir-vllm-c-code-object",
                          "gdn-mtp-decode-code-object"), HIP_2, _hip_2_env),
    Case("moe-align", ("moe-align-code-object",), MOE_ALIGN, _hip_2_env),
    Case("moe-expert-ops", ("moe-expert-ops-code-object",), MOE_EXPERT_OPS, _hip_env),
    Case("fp8-group-quant", ("fp8-group-quant-code-object",), FP8_GROUP_QUANT, _hip_2_env),
    Case("qk-norm-rope-gate", ("fused-qk-norm-rope-gate",), QK_NORM_ROPE_GATE),
    # the block's decision and, where it fuses, its router's routing (Triton's interpreter, which
    # more-hip-ops sets for the process)
    Case("fused-shared-expert", ("fused-shared-expert",), gate_fse.DECIDE, _hip_2_env),
    Case("ct-fp8-scheme", ("ct-fp8-scheme-by-fp8-compute",), gate_ct.DECIDE),
    Case("gdn-autotune", ("gdn-autotune-lds",), GDN),
    # the plugin's launchers and their copies in the patched tree are both spied on (the snippets'
    # own module loops); the autotune spies see the narrowed lists on both sides
    Case("gdn-prefill", ("gdn-prefill-rdna",), gate_gdn_prefill.DECIDE),
    Case("gdn-decode", ("gdn-decode-rdna",), gate_gdn_decode.DECIDE),
    Case("attention-selection", ("rdna-attention",), ATTENTION),
    # aiter found (stand-in) and switched on. The GDN decode choice is read when
    # qwen_gdn_linear_attn is imported: this case runs first in its process. The gate's PROBE
    # answers the GDN decode, the op registrations and the Triton RoPE choice together.
    Case("aiter-gdn-triton-rope", ("aiter-gdn-triton-decode", "aiter-triton-rope"),
         gate_aiter.PROBE, process="aiter"),
    Case("aiter-unified-attention", ("aiter-unified-attention-rdna",), gate_aiter.SELECT,
         process="aiter"),
    Case("aiter-unified-attention-impl", ("aiter-unified-attention-rdna",), gate_aiter.IMPL,
         process="aiter"),
    Case("rms-norm-user-priority", ("rms-norm-aiter-ir-priority",), gate_norm.USER_PRIORITY,
         process="aiter"),
)
assert {c.process for c in CASES} <= set(PROCESSES)
COVERED_FIXES = {f for c in CASES for f in c.fixes}

RUNNER = """
import json as _json, os as _os
_cases = _json.loads(CASES_JSON)
_rounds = ROUNDS
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


def unpatched_fixes(version: str) -> list[str]:
    """The vLLM fix records without a patch in the version's series."""
    from rocm_enable import patches as rp

    series = rp.series_root() / version
    patched = ({rp.fix_of(n) for n in rp.read_series(series)} if (series / "series").is_file()
               else set())
    return sorted(f.name for f in rp.vllm_fixes() if f.name not in patched)


def decisions_group(version: str, arch: str) -> str:
    """The xdist group of the tests that use the plugin side of (version, arch): one worker
    runs them, so plugin_decisions computes it once (tests/patches/conftest.py)."""
    return f"plugin-decisions-{version}-{arch}"


def run_decisions(vllm: VllmUnderTest, arch: str, *, plugin: bool, cases=CASES) -> dict:
    """{"<round>/<case>": snippet result} from one simulated process per PROCESSES entry, and
    where vLLM came from (the same for every process)."""
    base = {"ROCM_ENABLE": "0"}
    if plugin:
        pending = unpatched_fixes(vllm.version)
        base = {"ROCM_ENABLE_DISABLE": ",".join(pending)} if pending else {}
    out = {"decisions": {}, "vllm_file": None}
    for process, (extra_path, start_env, rounds) in PROCESSES.items():
        group = [c for c in cases if c.process == process]
        if not group:
            continue
        body = (f"CASES_JSON = {json.dumps(json.dumps({c.name: c.snippet for c in group}))}\n"
                f"ROUNDS = {[(name, env) for name, env in rounds]!r}\n" + RUNNER)
        env = {**base, **start_env}
        for case in group:
            env.update(case.env() if case.env else {})
        under = vllm if extra_path is None else VllmUnderTest(
            vllm.version, os.pathsep.join(p for p in (vllm.pythonpath, extra_path) if p))
        got = run_python(body, arch=arch, vllm=under, env=env, timeout=600)["result"]
        assert out["vllm_file"] in (None, got["vllm_file"]), (out["vllm_file"], got["vllm_file"])
        out["vllm_file"] = got["vllm_file"]
        out["decisions"].update(got["decisions"])
    return out


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
