"""fp8-group-quant-code-object: vLLM's W8A8 FP8 activation quant runs without the _C code object.

In a simulated gfx1201 process (native FP8: vLLM's own W8A8 block-FP8 path), the _C quant ops are
stand-ins that raise "invalid device function", as the launch does on a GPU whose _C lacks the
code object (vLLM's own engine stopped there on the harness's Qwen3.6 FP8 run), and the
extensions' files are ELFs whose offload bundles hold the given code objects. The calls are vLLM's:
QuantFP8 as its FP8 linear kernels build and call it (block-128 groups and dynamic per-token), the
same group QuantFP8 inside torch.compile(fullgraph=True) (the fix must hold in traced code, where
Dynamo does not run wrappers on the forward path), fused_moe.utils._fp8_quantize, the FP8 MoE's
input quant (block-128 groups, dynamic per-token and per-tensor scales), and
ops.silu_and_mul_per_block_quant, the Triton FP8 MoE's fused SiLU-and-mul + block quant (row- and
column-major scales; the engine stopped there next, at "Could not run
'_C::silu_and_mul_per_block_quant'").

"native" means: QuantFP8 and the MoE's dynamic quant give exactly vLLM's forward_native result
(QuantFP8's of the same scale shape); the MoE group quant (and the fused one, of vLLM's
SiluAndMul.forward_native output) gives exactly
the scales of vLLM's Triton fallback (run in Triton's interpreter on a non-contiguous view, the
input vLLM sends there) in vLLM's scale layout; both agree with a float64 reference of the op's
contract (the scales to 1e-6, the FP8 values exactly).
"""
import os
import sys

import pytest

from sim_harness import run_python

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "gates"))
from test_hip_code_objects import bundle, elf_with_fatbin, write  # noqa: E402

pytestmark = pytest.mark.vllm_sim

# Stand-ins registered once per process (tests/patches/equivalence.py reuses both parts). Fake
# (meta) implementations let Dynamo put the ops into a graph, as it does with vLLM's real ones.
QUANT_STANDIN = """
_lib_fp8_quant = {}
def _no_code_object(*args):
    raise RuntimeError("HIP error: invalid device function")
for _op, _schema in (
        ("per_token_group_fp8_quant",
         "per_token_group_fp8_quant(Tensor input, Tensor(a!) output_q, Tensor(b!) output_s, "
         "int group_size, float eps, float fp8_min, float fp8_max, bool scale_ue8m0, "
         "bool dummy_is_scale_transposed, bool dummy_is_tma_aligned) -> ()"),
        ("dynamic_per_token_scaled_fp8_quant",
         "dynamic_per_token_scaled_fp8_quant(Tensor(a!) result, Tensor input, Tensor(b!) scale, "
         "Tensor? scale_ub) -> ()"),
        ("dynamic_scaled_fp8_quant",
         "dynamic_scaled_fp8_quant(Tensor(a!) result, Tensor input, Tensor(b!) scale) -> ()"),
        ("silu_and_mul_per_block_quant",
         "silu_and_mul_per_block_quant(Tensor(a!) out, Tensor input, Tensor(b!) scales, "
         "int group_size, Tensor? scale_ub=None, bool is_scale_transposed=False) -> ()")):
    if not hasattr(torch.ops._C, _op):
        _lib_fp8_quant[_op] = torch.library.Library("_C", "FRAGMENT")
        _lib_fp8_quant[_op].define(_schema)
        _lib_fp8_quant[_op].impl(_op, _no_code_object, "CPU")
        torch.library.register_fake(f"_C::{_op}", lambda *args: None, lib=_lib_fp8_quant[_op])
"""
QUANT_DECIDE = """
for _name in ("vllm._C", "vllm._C_stable_libtorch"):
    if os.environ.get("EXT_FILE") and sys.modules.get(_name) is not None:
        sys.modules[_name].__file__ = os.environ["EXT_FILE"]
from vllm import _custom_ops as ops
from vllm.config import CompilationConfig, VllmConfig, set_current_vllm_config
from vllm.model_executor.layers.activation import SiluAndMul
from vllm.model_executor.layers.fused_moe import utils as moe_utils
from vllm.model_executor.layers.quantization.input_quant_fp8 import QuantFP8
from vllm.model_executor.layers.quantization.utils import fp8_utils
from vllm.model_executor.layers.quantization.utils.quant_utils import GroupShape, get_fp8_min_max
from vllm.platforms import current_platform

FP8 = current_platform.fp8_dtype()
FP8_MAX = get_fp8_min_max()[1]
GROUP = 128
g = torch.Generator().manual_seed(0)
# magnitudes over four decades across the row, one all-zero group (the eps clamp)
x = (torch.randn(5, 3 * GROUP, generator=g) * torch.logspace(-3, 1, 3 * GROUP)).to(torch.bfloat16)
x[1, :GROUP] = 0

def contract_ok(q, s, x, amax_floor):
    # float64 reference: scale = max(absmax, amax_floor) / fp8_max per group, and q = x / scale
    # rounded once to FP8. The _C op and the Triton fallback floor absmax at eps (1e-10);
    # forward_native floors the scale at 1 / (fp8_max * 512), i.e. absmax at 1 / 512.
    groups = x.double().unflatten(-1, (-1, GROUP))
    scale = groups.abs().amax(-1).clamp(min=amax_floor) / FP8_MAX
    exact = (groups / s.double().unsqueeze(-1)).clamp(-FP8_MAX, FP8_MAX).to(FP8).flatten(-2)
    return torch.allclose(s.double(), scale, rtol=1e-6, atol=0) and same(q, exact)

def launch(fn):
    try:
        return fn()
    except RuntimeError as exc:
        if "invalid device function" in str(exc):
            return None  # vLLM launched its HIP kernel
        raise

def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.uint8), b.view(torch.uint8))

def quant_kind(got, ref):
    if got is None:
        return "hip"
    (q, s), (rq, rs) = got, ref
    return "native" if same(q, rq) and torch.equal(s, rs) else "wrong"

def group_kind(got, src, column_major):
    if got is None:
        return "hip"
    # vLLM's Triton fallback takes inputs whose rows are not contiguous; its scales are the
    # reference (Triton's interpreter does not round to FP8 as the GPU does: q is checked
    # against float64)
    wide = torch.zeros(src.shape[0], src.shape[1] + GROUP, dtype=src.dtype)
    wide[:, :src.shape[1]] = src
    rq, rs = fp8_utils.per_token_group_quant_fp8(wide[:, :src.shape[1]], GROUP,
                                                 column_major_scales=column_major)
    q, s = got
    ok = torch.equal(s, rs) and s.stride() == rs.stride() and contract_ok(q, s, src, 1e-10)
    return "native" if ok else "wrong"

def decide():
    out = {}
    config = VllmConfig(compilation_config=CompilationConfig(custom_ops=["+quant_fp8"]))
    with set_current_vllm_config(config):
        group = QuantFP8(False, GroupShape(1, GROUP), use_ue8m0=False)  # BlockScaledMMLinearKernel's
        per_token = QuantFP8(False, GroupShape.PER_TOKEN)  # dynamic per-token (per-channel W8A8)
    ref = group.forward_native(x)
    out["linear_group"] = quant_kind(launch(lambda: group(x)), ref)
    if out["linear_group"] == "native" and not contract_ok(*ref, x, 1 / 512):
        out["linear_group"] = "wrong (contract)"
    out["linear_per_token"] = quant_kind(launch(lambda: per_token(x)), per_token.forward_native(x))
    torch._dynamo.reset()
    compiled = torch.compile(lambda t: group(t), fullgraph=True, backend="eager")
    out["linear_group_compiled"] = quant_kind(launch(lambda: compiled(x)), ref)

    out["moe_group"] = group_kind(
        launch(lambda: moe_utils._fp8_quantize(x, None, False, [GROUP, GROUP])), x, False)
    # TritonExperts' fused SiLU-and-mul + block quant (block [128, 128]): vLLM's unfused path,
    # SiluAndMul's torch forward then the group quant, is the reference, in both scale layouts
    gate_up = torch.cat([x, x.flip(0) * 3], dim=-1)
    act = SiluAndMul.forward_native(gate_up)  # a staticmethod
    for name, transposed in (("moe_silu_mul_group", False), ("moe_silu_mul_group_t", True)):
        got = launch(lambda: ops.silu_and_mul_per_block_quant(
            gate_up, GROUP, FP8, is_scale_transposed=transposed))
        out[name] = group_kind(got, act, transposed)
    # W8A8 MoE without a block shape (e.g. compressed-tensors per-channel): dynamic scales
    for name, per_token, shape in (("moe_per_token", True, GroupShape.PER_TOKEN),
                                   ("moe_per_tensor", False, GroupShape.PER_TENSOR)):
        with set_current_vllm_config(config):
            native = QuantFP8(False, shape).forward_native(x)
        out[name] = quant_kind(launch(lambda: moe_utils._fp8_quantize(x, None, per_token, None)), native)
    return out

before = decide()
import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""
ENV = {"TRITON_INTERPRET": "1"}  # vLLM's Triton group quant (the reference) runs on CPU tensors
QUANT = "import os, sys, torch\n" + QUANT_STANDIN + QUANT_DECIDE
PATHS = ("linear_group", "linear_per_token", "linear_group_compiled", "moe_group", "moe_per_token",
         "moe_per_tensor", "moe_silu_mul_group", "moe_silu_mul_group_t")
ALL_HIP = dict.fromkeys(PATHS, "hip")


# The MoE twins run eagerly inside vLLM's fused-MoE op, but a CUDA/HIP graph captures them: no host
# sync, no data-dependent shape. Dynamo with fullgraph=True fails on either (.item(), nonzero, ...).
# Appended to the first test's process (one simulated process fewer per vLLM version).
GRAPH_SAFE = """
from rocm_enable.stacks.vllm import fp8_group_quant_code_object as fix
graph_safe = {}
for name, fn in (("group", lambda t: fix._group_quant_fp8(t, GROUP, 1e-10, FP8, True, None)),
                 ("per_token", lambda t: fix._dynamic_quant_fp8(t, True)),
                 ("per_tensor", lambda t: fix._dynamic_quant_fp8(t, False))):
    torch._dynamo.reset()
    q, s = torch.compile(fn, fullgraph=True, backend="eager", dynamic=True)(x)
    rq, rs = fn(x)
    graph_safe[name] = same(q, rq) and torch.equal(s, rs) and s.stride() == rs.stride()
result["graph_safe"] = graph_safe
"""


def _decide(tmp_path, vllm, targets, env=None, body=QUANT):
    env = {**ENV, "EXT_FILE": write(tmp_path, "ext.so", elf_with_fatbin(bundle(targets))), **(env or {})}
    return run_python(body, arch="gfx1201", vllm=vllm, env=env)["result"]


def test_fp8_activation_quant_runs_without_code_object(vllm_under_test, tmp_path):
    out = _decide(tmp_path, vllm_under_test, ["gfx90a", "gfx942"], body=QUANT + GRAPH_SAFE)
    assert out["before"] == ALL_HIP, out
    assert out["after"] == dict.fromkeys(PATHS, "native"), out
    assert out["graph_safe"] == {"group": True, "per_token": True, "per_tensor": True}, out


def test_fp8_activation_quant_keeps_hip_when_the_build_has_the_arch(vllm_under_test, tmp_path):
    out = _decide(tmp_path, vllm_under_test, ["gfx942", "gfx1201"])
    assert out["after"] == ALL_HIP, out


def test_fp8_activation_quant_fix_can_be_disabled(vllm_under_test, tmp_path):
    out = _decide(tmp_path, vllm_under_test, ["gfx942"],
                  env={"ROCM_ENABLE_DISABLE": "fp8-group-quant-code-object"})
    assert out["after"] == ALL_HIP, out
