"""Code-object detection (gates/code_objects.py) and the fixes that use it:
silu-and-mul-code-object, skinny-gemm-code-object, rdna3-kernels-code-object.

There is no ROCm build of vLLM here. The bundle parser is tested on synthetic ELF files built below
(real layout: ELF64 section `.hip_fatbin` holding Clang offload bundles, plain and CCOB-compressed).
In the simulated vLLM processes, vLLM's stubbed extension modules get `__file__` pointing at such a
file ("an extension built without gfx1151"), and the HIP ops vLLM calls are stand-in torch ops that
fill their output with a marker (7.0): "vLLM launched its HIP kernel" (on a real GPU without the
code object, that launch dies with 'invalid device function')."""
import struct
import zlib

import pytest

from rocm_enable.gates import code_objects as co
from rocm_enable.sim.gpu import elf_with_fatbin  # noqa: F401 (also imported from here by other tests)
from sim_harness import run_python

HOST = "host-x86_64-unknown-linux-gnu-"


def bundle(targets, host=True):
    triples = ([HOST] if host else []) + [
        t if "-" in t and "amdgcn" in t else f"hipv4-amdgcn-amd-amdhsa--{t}" for t in targets]
    header_len = 24 + 8 + sum(24 + len(t) for t in triples)
    out, blobs, offset = bytearray(co.BUNDLE_MAGIC + struct.pack("<Q", len(triples))), b"", header_len
    for t in triples:
        blob = b"\x7fELF-code-object-" + t.encode()
        out += struct.pack("<QQQ", offset, len(blob), len(t)) + t.encode()
        blobs += blob
        offset += len(blob)
    return bytes(out) + blobs


def compressed(inner, version=2, method=1):
    payload = zlib.compress(inner) if method == 1 else b"\x28\xb5\x2f\xfd" + inner
    if version == 2:
        head = struct.pack("<4sHHIIQ", b"CCOB", 2, method, 24 + len(payload), len(inner), 0)
    else:
        head = struct.pack("<4sHHQQQ", b"CCOB", 3, method, 32 + len(payload), len(inner), 0)
    return head + payload


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# ---- the parser -------------------------------------------------------------------------------

def test_plain_bundle_in_hip_fatbin(tmp_path):
    path = write(tmp_path, "_rocm_C.abi3.so",
                 elf_with_fatbin(bundle(["gfx1100", "hip-amdgcn-amd-amdhsa--gfx942:sramecc+:xnack-"])))
    scan = co.scan_file(path)
    assert scan.source == "hip_fatbin" and scan.targets == {"gfx1100", "gfx942"}
    assert co.code_object_status(path, "gfx1100").present
    assert co.code_object_status(path, "gfx942").present
    verdict = co.code_object_status(path, "gfx1151")
    assert verdict.absent and "gfx1100, gfx942" in verdict.reason


def test_generic_target_runs_on_family(tmp_path):
    path = write(tmp_path, "g.so", elf_with_fatbin(bundle(["gfx11-generic"])))
    assert co.code_object_status(path, "gfx1151").present
    assert co.code_object_status(path, "gfx1100").present
    assert co.code_object_status(path, "gfx1201").absent


@pytest.mark.parametrize("version", [2, 3])
def test_compressed_bundles(tmp_path, version):
    fatbin = compressed(bundle(["gfx1151"]), version) + b"\0" * 13 + compressed(bundle(["gfx1201"]), version)
    path = write(tmp_path, "c.so", elf_with_fatbin(fatbin))
    assert co.scan_file(path).targets == {"gfx1151", "gfx1201"}
    assert co.code_object_status(path, "gfx1151").present
    assert co.code_object_status(path, "gfx1100").absent


def test_unreadable_is_unknown_not_absent(tmp_path):
    zstd = write(tmp_path, "z.so", elf_with_fatbin(compressed(bundle(["gfx1151"]), 2, method=2)))
    try:
        import zstandard  # noqa: F401
    except ImportError:
        assert co.code_object_status(zstd, "gfx1100").status == co.UNKNOWN
    none = write(tmp_path, "n.so", elf_with_fatbin(b"no bundles here"))
    assert co.code_object_status(none, "gfx1151").status == co.UNKNOWN
    assert co.code_object_status(str(tmp_path / "missing.so"), "gfx1151").status == co.UNKNOWN
    assert co.code_object_status(None, "gfx1151").status == co.UNKNOWN


def test_non_elf_falls_back_to_scan(tmp_path):
    path = write(tmp_path, "raw.bin", b"junk" * 100 + bundle(["gfx1151"]) + b"junk")
    scan = co.scan_file(path)
    assert scan.source == "scan" and scan.targets == {"gfx1151"}


# ---- vLLM's real decisions under simulated archs ---------------------------------------------

STANDIN_OPS = """
import sys, torch
# Stand-ins for the compiled extensions' ops (see module docstring): marker 7.0 = HIP op launched.
_lib_c = torch.library.Library("_C", "FRAGMENT")
_lib_c.define("silu_and_mul(Tensor(a!) out, Tensor input) -> ()")
_lib_c.impl("silu_and_mul", lambda out, x: (out.fill_(7.0), None)[1], "CPU")
_lib_r = torch.library.Library("_rocm_C", "FRAGMENT")
_lib_r.define("wvSplitK(Tensor a, Tensor b, Tensor? bias, int cu) -> Tensor")
_lib_r.impl("wvSplitK", lambda a, b, bias, cu: torch.full((b.shape[0], a.shape[0]), 7.0), "CPU")
_lib_r.define("LLMM1(Tensor a, Tensor b, int rows) -> Tensor")
_lib_r.impl("LLMM1", lambda a, b, r: torch.full((b.shape[0], a.shape[0]), 7.0), "CPU")
_lib_r.define("gptq_gemm_rdna3(Tensor a) -> Tensor")
_lib_r.define("moe_gptq_gemm_rdna3(Tensor a) -> Tensor")
for _name in ("vllm._C", "vllm._rocm_C"):
    if os.environ.get("EXT_FILE"):
        sys.modules[_name].__file__ = os.environ["EXT_FILE"]
"""

# What one simulated process decides about these ops, before and after the plugin (PROBE below).
CASE_1 = """
from vllm.config import VllmConfig, set_current_vllm_config
import vllm._custom_ops as ops
from vllm.model_executor.layers.activation import SiluAndMul
from vllm.model_executor.kernels.linear.mixed_precision.rdna3_w4a16 import RDNA3W4A16LinearKernel
from vllm.model_executor.kernels.linear.mixed_precision.MPLinearKernel import MPLinearLayerConfig
from vllm.model_executor.layers.fused_moe.experts import rdna3_moe
from vllm.scalar_type import scalar_types

x = torch.randn(3, 16)
w = torch.randn(8, 16)
def decide():
    out = {}
    with set_current_vllm_config(VllmConfig()):
        act = SiluAndMul()
        y = act.forward_cuda(x)
        out["silu_and_mul"] = "hip" if bool((y == 7.0).all()) else (
            "native" if torch.allclose(y, SiluAndMul.forward_native(x)) else "wrong")
    for name, call in (("wvSplitK", lambda: ops.wvSplitK(w, x, 40, None)),
                       ("LLMM1", lambda: ops.LLMM1(w, x[:1], 4))):
        y = call()
        ref = torch.nn.functional.linear(x if name == "wvSplitK" else x[:1], w)
        out[name] = "hip" if bool((y == 7.0).all()) else ("native" if torch.allclose(y, ref) else "wrong")
    cfg = MPLinearLayerConfig(full_weight_shape=(2048, 4096), partition_weight_shape=(2048, 4096),
                              weight_type=scalar_types.uint4b8, act_type=torch.bfloat16,
                              group_size=128, zero_points=False)
    out["rdna3_w4a16"] = list(RDNA3W4A16LinearKernel.can_implement(cfg))
    out["rdna3_moe"] = rdna3_moe.rdna3_moe_kernel_available()
    return out
"""
ALL_HIP = {"silu_and_mul": "hip", "wvSplitK": "hip", "LLMM1": "hip"}
ALL_NATIVE = {"silu_and_mul": "native", "wvSplitK": "native", "LLMM1": "native"}


def decide(probe, arch, vllm, targets, extra_env=None):
    return probe(arch, vllm, targets, extra_env)["ops_1"]


def ops_of(d):
    return {k: d[k] for k in ALL_HIP}


@pytest.mark.vllm_sim
@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100", "gfx1201"])
def test_extension_without_arch_routes_to_native(arch, vllm_under_test, probe):
    out = decide(probe, arch, vllm_under_test, ["gfx90a", "gfx942"])  # a CDNA-only build
    assert ops_of(out["before"]) == ALL_HIP          # vLLM launches kernels that are not there
    assert ops_of(out["after"]) == ALL_NATIVE
    if arch != "gfx1201":                             # RDNA3 ISA kernels: rejected, with the reason
        assert out["after"]["rdna3_w4a16"][0] is False and "no code object" in out["after"]["rdna3_w4a16"][1]
        assert out["after"]["rdna3_moe"] is False


@pytest.mark.vllm_sim
def test_gfx1151_build_admits_rdna3_kernels(vllm_under_test, probe):
    out = decide(probe, "gfx1151", vllm_under_test, ["gfx1100", "gfx1151"])
    assert out["before"]["rdna3_w4a16"] == [False, "RDNA3 W4A16 kernel requires gfx1100"]  # F2
    assert out["before"]["rdna3_moe"] is False                                              # D4
    assert out["after"]["rdna3_w4a16"] == [True, None] and out["after"]["rdna3_moe"] is True
    assert ops_of(out["after"]) == ALL_HIP


@pytest.mark.vllm_sim
def test_gfx1100_needs_its_code_object(vllm_under_test, probe):
    out = decide(probe, "gfx1100", vllm_under_test, ["gfx1100"])
    assert out["before"]["rdna3_w4a16"] == [True, None] and out["after"] == out["before"]
    out = decide(probe, "gfx1100", vllm_under_test, ["gfx11-generic"])
    assert out["after"]["rdna3_w4a16"] == [True, None]


@pytest.mark.vllm_sim
def test_unknown_extension_keeps_vllm(vllm_under_test, probe):
    out = decide(probe, "gfx1151", vllm_under_test, None)  # stub: no __file__
    assert out["after"] == out["before"]


@pytest.mark.vllm_sim
@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
def test_cdna_unchanged(arch, vllm_under_test, probe):
    out = decide(probe, arch, vllm_under_test, ["gfx1151"])
    assert out["after"] == out["before"] and ops_of(out["after"]) == ALL_HIP


@pytest.mark.vllm_sim
def test_disable_toggles_restore_vllm(vllm_under_test, probe):
    env = {"ROCM_ENABLE_DISABLE": "silu-and-mul-code-object,skinny-gemm-code-object,rdna3-kernels-code-object"}
    out = decide(probe, "gfx1151", vllm_under_test, ["gfx942"], env)
    assert out["after"] == out["before"]
    out = decide(probe, "gfx1151", vllm_under_test, ["gfx1151"], env)
    assert out["after"] == out["before"] and out["after"]["rdna3_w4a16"][0] is False


# ---- topk-softmax-code-object, c-ops-code-object, ir-vllm-c-code-object, gdn-mtp-decode ------

STANDIN_OPS_2 = """
import sys, types, torch
# Stand-ins for the compiled ops (marker 7.0 = vLLM launched its HIP kernel), schemas as vLLM calls them.
_libs = {ns: torch.library.Library(ns, "FRAGMENT") for ns in ("_C", "_moe_C", "_C_cache_ops")}
def _std(ns, schema, fn):
    _libs[ns].define(schema)
    _libs[ns].impl(schema.split("(")[0], fn, "CPU")
_std("_moe_C", "topk_softmax(Tensor(a!) topk_weights, Tensor(b!) topk_ids, Tensor(c!) token_expert_indices, "
     "Tensor gating_output, bool renormalize, Tensor? bias, Tensor? is_padding) -> ()",
     lambda w, i, t, g, r, b, p: (w.fill_(7.0), i.zero_(), None)[2])
_std("_C", "rotary_embedding(Tensor positions, Tensor(a!) query, Tensor(b!)? key, int head_size, "
     "Tensor cos_sin_cache, bool is_neox, int rope_dim_offset=0, bool inverse=False) -> ()",
     lambda pos, q, k, hs, cs, neox, off=0, inv=False: (q.fill_(7.0), None)[1])
_std("_C_cache_ops", "reshape_and_cache_flash(Tensor key, Tensor value, Tensor(a!) key_cache, "
     "Tensor(b!) value_cache, Tensor slot_mapping, str kv_cache_dtype, Tensor k_scale, Tensor v_scale) -> ()",
     lambda k, v, kc, vc, s, d, ks, vs: (kc.fill_(7.0), None)[1])
_std("_C", "apply_repetition_penalties_(Tensor(a!) logits, Tensor prompt_mask, Tensor output_mask, "
     "Tensor repetition_penalties) -> ()", lambda l, p, o, r: (l.fill_(7.0), None)[1])
_std("_C", "static_scaled_fp8_quant(Tensor(a!) result, Tensor input, Tensor scale, int[]? group_shape=None) -> ()",
     lambda out, x, s, g=None: (out.copy_(torch.full(out.shape, 7.0).to(out.dtype)), None)[1])
_std("_C", "fused_gdn_decode_post_conv_mtp(Tensor x) -> Tensor", lambda x: x)
for _name in ("vllm._C", "vllm._moe_C", "vllm._moe_C_stable_libtorch"):
    if os.environ.get("EXT_FILE"):
        sys.modules[_name].__file__ = os.environ["EXT_FILE"]
"""

CASE_2 = """
from vllm.config import CompilationConfig, VllmConfig, set_current_vllm_config
from vllm.config.compilation import CompilationMode
from vllm.platforms import current_platform
import vllm._custom_ops as ops
from vllm import ir
from vllm.model_executor.layers.fused_moe.router.fused_topk_router import fused_topk
from vllm.model_executor.layers.rotary_embedding.base import RotaryEmbedding
import vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn as gdn

torch.manual_seed(0)
M, E, K = 5, 16, 4
gating = torch.randn(M, E)
pos = torch.tensor([0, 1, 7, 100, 1000])
key = torch.randn(3, 2, 64, dtype=torch.bfloat16); value = torch.randn(3, 2, 64, dtype=torch.bfloat16)
logits = torch.randn(2, 32); pm = torch.rand(2, 32) < 0.3; om = torch.rand(2, 32) < 0.3; pen = torch.tensor([1.2, 0.8])
w = torch.randn(48, 64, dtype=torch.bfloat16); scale = torch.tensor([0.01])

class _GdnLayer:  # the attributes _fused_gdn_decode_unsupported_reason reads, for a Qwen3.5/3.6 GDN layer
    gqa_interleaved_layout = False; head_k_dim = 128; head_v_dim = 128
    norm = types.SimpleNamespace(activation="silu")
    def get_state_dtype(self):
        return torch.bfloat16, torch.bfloat16
_cfg = types.SimpleNamespace(model_config=types.SimpleNamespace(dtype=torch.bfloat16))

def kind(y, ref):
    if bool((y.float() == 7.0).all()):
        return "hip"
    return "native" if torch.allclose(y.float(), ref.float(), atol=1e-2, rtol=1e-2) else f"wrong {float((y.float() - ref.float()).abs().max())}"

def decide():
    out = {}
    tw, ti, _ = fused_topk(torch.empty(M, 8), gating, K, True)
    ref_w, ref_i = torch.topk(torch.softmax(gating, -1), K)
    out["topk_softmax"] = "hip" if bool((tw == 7.0).all()) else (
        "native" if torch.allclose(tw, ref_w / ref_w.sum(-1, keepdim=True)) and torch.equal(ti.long(), ref_i) else "wrong")
    with set_current_vllm_config(VllmConfig(compilation_config=CompilationConfig(custom_ops=["+rotary_embedding"]))):
        rope = RotaryEmbedding(64, 64, 4096, 10000, True, torch.bfloat16)
        q = torch.randn(5, 2 * 64, dtype=torch.bfloat16); k = torch.randn(5, 64, dtype=torch.bfloat16)
        rq, _ = rope.forward_native(pos, q.clone(), k.clone())
        yq, _ = rope.forward_cuda(pos, q.clone(), k.clone())
    out["rotary_embedding"] = kind(yq, rq)
    kc = torch.zeros(4, 16, 2, 64, dtype=torch.bfloat16); vc = torch.zeros_like(kc)
    slots = torch.tensor([0, 17, 63])
    ops.reshape_and_cache_flash(key, value, kc, vc, slots, "auto", torch.tensor(1.0), torch.tensor(1.0))
    out["reshape_and_cache_flash"] = kind(kc.view(-1, 2, 64)[slots], key)
    l1 = logits.clone(); ops.apply_repetition_penalties_cuda(l1, pm, om, pen)  # what vLLM calls for GPU logits
    l2 = logits.clone(); ops.apply_repetition_penalties_torch(l2, pm, om, pen)
    out["repetition_penalties"] = kind(l1, l2)
    q8, _ = ops.scaled_fp8_quant(w, scale)
    ref8 = (w.float() / 0.01).clamp(-448, 448).to(current_platform.fp8_dtype())
    out["static_fp8_quant"] = "hip" if bool((q8.float() == 7.0).all()) else (
        "native" if torch.equal(q8.view(torch.uint8), ref8.view(torch.uint8)) else "wrong")
    # the IR priority vLLM installs in its workers when it does not compile with inductor
    prio = current_platform.get_default_ir_op_priority(
        VllmConfig(compilation_config=CompilationConfig(mode=CompilationMode.NONE)))
    prio.set_default()
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    out["ir_rms_norm"] = ir.ops.rms_norm.dispatch(x, torch.ones(64, dtype=torch.bfloat16), 1e-6).provider
    out["ir_fused_add_rms_norm"] = ir.ops.fused_add_rms_norm.dispatch(
        x, x.clone(), torch.ones(64, dtype=torch.bfloat16), 1e-6).provider
    # Qwen's GemmaRMSNorm hands an fp32 (1 + weight): vllm_c's supports_args already says no
    out["ir_gemma_rms_norm"] = ir.ops.rms_norm.dispatch(x, torch.ones(64), 1e-6).provider
    out["gdn_mtp_reason"] = gdn.QwenGatedDeltaNetAttention._fused_gdn_decode_unsupported_reason(_GdnLayer(), _cfg)
    return out
"""
OPS_2 = ("topk_softmax", "rotary_embedding", "reshape_and_cache_flash", "repetition_penalties",
         "static_fp8_quant")


# One fresh process per (arch, vLLM, extension targets, toggles) answers both groups of ops: each
# group's stand-in ops and extension __file__ as above (the verdicts are per extension: _C and
# _rocm_C for the first group, _C and _moe_C for the second), each group's names in a scope of its
# own. Every case is decided before and after the plugin in the same process, as before.
PROBE = STANDIN_OPS + STANDIN_OPS_2 + f"""
def _group(body):
    scope = dict(globals())
    exec(compile(body, "<ops group>", "exec"), scope)
    return scope["decide"]
decide_1, decide_2 = _group({CASE_1!r}), _group({CASE_2!r})
before = {{"ops_1": decide_1(), "ops_2": decide_2()}}
import vllm.plugins; vllm.plugins.load_general_plugins()
after = {{"ops_1": decide_1(), "ops_2": decide_2()}}
result = {{group: {{"before": before[group], "after": after[group]}} for group in before}}
"""
ENV_2 = {"TRITON_INTERPRET": "1"}  # vLLM's Triton KV write runs on CPU tensors


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """probe(arch, vllm, targets, extra_env) -> PROBE's result, one process per distinct call in
    this module (module scope: tests/conftest.py runs the module on one xdist worker). targets:
    the code objects of the extension file the stand-in extensions point to (None: no file)."""
    folder, answers = tmp_path_factory.mktemp("extensions"), {}

    def run(arch, vllm, targets, extra_env=None):
        env = {**ENV_2, **(extra_env or {})}
        if targets is not None:
            env["EXT_FILE"] = write(folder, "-".join(targets) + ".so", elf_with_fatbin(bundle(targets)))
        key = (arch, vllm.version, tuple(sorted(env.items())))
        if key not in answers:
            answers[key] = run_python(PROBE, arch=arch, vllm=vllm, env=env)["result"]
        return answers[key]
    return run


def decide_2(probe, arch, vllm, targets, extra_env=None):
    return probe(arch, vllm, targets, extra_env)["ops_2"]


@pytest.mark.vllm_sim
@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100", "gfx1201"])
def test_more_ops_route_to_vllm_twins_without_code_object(arch, vllm_under_test, probe):
    out = decide_2(probe, arch, vllm_under_test, ["gfx90a", "gfx942"])  # a CDNA-only build
    b, a = out["before"], out["after"]
    assert {k: b[k] for k in OPS_2} == dict.fromkeys(OPS_2, "hip")   # vLLM launches absent kernels
    assert {k: a[k] for k in OPS_2} == dict.fromkeys(OPS_2, "native")
    assert b["ir_rms_norm"] == b["ir_fused_add_rms_norm"] == "vllm_c"
    assert a["ir_rms_norm"] == a["ir_fused_add_rms_norm"] == "native"
    assert b["ir_gemma_rms_norm"] == a["ir_gemma_rms_norm"] == "native"  # Qwen's norms: native already
    if vllm_under_test.version == "0.32.0":
        assert b["gdn_mtp_reason"] is None                                  # vLLM would use the HIP op
        assert "no code object" in a["gdn_mtp_reason"]                      # -> its Triton MTP path
    else:
        assert b["gdn_mtp_reason"] is None and a["gdn_mtp_reason"] is None  # 0.33: Triton port on ROCm


@pytest.mark.vllm_sim
def test_more_ops_keep_hip_when_code_object_present(vllm_under_test, probe):
    out = decide_2(probe, "gfx1151", vllm_under_test, ["gfx11-generic"])
    assert out["after"] == out["before"] and out["after"]["topk_softmax"] == "hip"


@pytest.mark.vllm_sim
def test_more_ops_unknown_extension_keeps_vllm(vllm_under_test, probe):
    out = decide_2(probe, "gfx1151", vllm_under_test, None)  # stub without a file: unknown
    assert out["after"] == out["before"]


@pytest.mark.vllm_sim
@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
def test_more_ops_cdna_unchanged(arch, vllm_under_test, probe):
    out = decide_2(probe, arch, vllm_under_test, ["gfx1151"])
    assert out["after"] == out["before"] and out["after"]["rotary_embedding"] == "hip"


@pytest.mark.vllm_sim
def test_more_ops_disable_toggles_restore_vllm(vllm_under_test, probe):
    env = {"ROCM_ENABLE_DISABLE": "topk-softmax-code-object,c-ops-code-object,ir-vllm-c-code-object,"
                                  "gdn-mtp-decode-code-object"}
    out = decide_2(probe, "gfx1151", vllm_under_test, ["gfx942"], env)
    assert out["after"] == out["before"] and out["after"]["topk_softmax"] == "hip"


def test_topk_softmax_warns_once_per_reason(monkeypatch):
    """The routing wrapper runs for every MoE layer of every decode step: a call it cannot serve
    names its reason once, a different reason warns again, and vLLM's op runs every time."""
    import torch

    from rocm_enable.ops import topk_softmax as routing
    from rocm_enable.stacks.vllm import hip_code_objects as hco

    def vllm_topk_softmax(topk_weights, topk_ids, token_expert_indices, gating_output,
                          renormalize=False, e_score_correction_bias=None, is_padding=None):
        ran.append(gating_output.shape)  # vLLM's signature, standing in for its _moe_C op

    def call(ids_dtype, gating_shape):
        outputs = (torch.empty(4, 2), torch.empty(4, 2, dtype=ids_dtype),
                   torch.empty(4, 2, dtype=torch.int32), torch.empty(gating_shape))
        hco._topk_softmax_without_code_object(vllm_topk_softmax, None, outputs, {"renormalize": True})
        return routing.unsupported_reason(*outputs)

    ran, warned = [], []
    monkeypatch.setattr(hco, "verdict_for", lambda extensions: co.CodeObjectVerdict(co.ABSENT, "test"))
    monkeypatch.setattr(hco.log, "warning", lambda msg, *args: warned.append(msg % args))
    hco._warn_routing_unserved.cache_clear()
    try:
        float_ids = call(torch.float32, (4, 8))
        call(torch.float32, (4, 8))                   # same reason, new tensors: no second warning
        too_many = call(torch.int32, (4, 8192))       # another reason: its own warning
        call(torch.float32, (4, 8))
    finally:
        hco._warn_routing_unserved.cache_clear()
    assert float_ids and too_many and float_ids != too_many
    assert len(ran) == 4
    assert len(warned) == 2 and float_ids in warned[0] and too_many in warned[1]
