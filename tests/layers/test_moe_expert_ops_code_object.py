"""moe-expert-ops-code-object: vLLM's BF16 MoE experts run their SiLU-and-mul and top-k sum without
the _C / _moe_C code objects.

In a simulated gfx1151 process, torch.ops._C.silu_and_mul and torch.ops._moe_C.moe_sum are stand-ins
that mark their output with -7 ("vLLM launched its HIP kernel"; on a GPU without the code object
that launch dies, as vLLM's own engine did on the harness's BF16 run), and the extensions' files are
ELFs whose offload bundles hold the given code objects. The calls are the ones TritonExperts makes:
modular_kernel.apply_moe_activation and _custom_ops.moe_sum (as topk_weight_and_reduce calls it).
"""
import os
import sys

import pytest

from sim_harness import run_python

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "gates"))
from test_hip_code_objects import bundle, elf_with_fatbin, write  # noqa: E402

pytestmark = pytest.mark.vllm_sim

# Stand-ins registered once per process (tests/patches/equivalence.py reuses both parts, in a
# process whose _C.silu_and_mul stand-in from the hip-code-objects case marks with 7.0).
OPS_STANDIN = """
_lib_moe_ops = {}
for _ns, _op, _schema, _fn in (
        ("_C", "silu_and_mul", "silu_and_mul(Tensor(a!) result, Tensor input) -> ()",
         lambda out, x: (out.fill_(-7), None)[1]),
        ("_moe_C", "moe_sum", "moe_sum(Tensor input, Tensor(a!) output, Tensor? topk_ids, Tensor? expert_map) -> ()",
         lambda x, out, ids, m: (out.fill_(-7), None)[1])):
    if not hasattr(getattr(torch.ops, _ns), _op):
        _lib_moe_ops[_op] = torch.library.Library(_ns, "FRAGMENT")
        _lib_moe_ops[_op].define(_schema)
        _lib_moe_ops[_op].impl(_op, _fn, "CPU")
"""
OPS_DECIDE = """
import torch.nn.functional as F
for _name in ("vllm._C", "vllm._C_stable_libtorch", "vllm._moe_C", "vllm._moe_C_stable_libtorch"):
    if os.environ.get("EXT_FILE") and sys.modules.get(_name) is not None:
        sys.modules[_name].__file__ = os.environ["EXT_FILE"]
from vllm import _custom_ops as ops
from vllm.model_executor.layers.fused_moe import modular_kernel as mk
from vllm.model_executor.layers.fused_moe.activation import MoEActivation

g = torch.Generator().manual_seed(0)
x = torch.randn(6, 2 * 48, generator=g).to(torch.bfloat16)
ref_act = F.silu(x[:, :48]) * x[:, 48:]
y = torch.randn(6, 4, 32, generator=g).to(torch.bfloat16)
ref_sum = y.sum(dim=1)

def verdict(got, ref):
    # a stand-in fills its output with one marker value: vLLM launched its HIP kernel
    if bool((got == got.flatten()[0]).all()) and float(got.flatten()[0]) in (7.0, -7.0):
        return "hip"
    return "native" if torch.equal(got, ref) else "wrong"

def decide():
    act = torch.zeros(6, 48, dtype=torch.bfloat16)
    mk.apply_moe_activation(MoEActivation.SILU, act, x)
    s = torch.zeros(6, 32, dtype=torch.bfloat16)
    ops.moe_sum(y, s)
    return {"activation": verdict(act, ref_act), "moe_sum": verdict(s, ref_sum)}

before = decide()
import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""
OPS = "import os, sys, torch\n" + OPS_STANDIN + OPS_DECIDE


def _decide(tmp_path, vllm, targets, env=None):
    env = {"EXT_FILE": write(tmp_path, "ext.so", elf_with_fatbin(bundle(targets))), **(env or {})}
    return run_python(OPS, arch="gfx1151", vllm=vllm, env=env)["result"]


def test_bf16_moe_expert_ops_run_without_code_object(vllm_under_test, tmp_path):
    out = _decide(tmp_path, vllm_under_test, ["gfx90a", "gfx942"])
    assert out["before"] == {"activation": "hip", "moe_sum": "hip"}, out
    assert out["after"] == {"activation": "native", "moe_sum": "native"}, out


def test_bf16_moe_expert_ops_keep_hip_when_the_build_has_the_arch(vllm_under_test, tmp_path):
    out = _decide(tmp_path, vllm_under_test, ["gfx942", "gfx1151"])
    assert out["after"] == {"activation": "hip", "moe_sum": "hip"}, out


def test_bf16_moe_expert_ops_fix_can_be_disabled(vllm_under_test, tmp_path):
    out = _decide(tmp_path, vllm_under_test, ["gfx942"],
                  env={"ROCM_ENABLE_DISABLE": "moe-expert-ops-code-object"})
    assert out["after"] == {"activation": "hip", "moe_sum": "hip"}, out
