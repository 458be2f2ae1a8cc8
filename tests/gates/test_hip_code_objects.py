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


def elf_with_fatbin(fatbin: bytes) -> bytes:
    """A minimal ELF64 LE file: sections NULL, .hip_fatbin, .shstrtab."""
    names = b"\0.hip_fatbin\0.shstrtab\0"
    data_off = 64
    str_off = data_off + len(fatbin)
    sh_off = (str_off + len(names) + 7) & ~7
    hdr = bytearray(64)
    hdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", hdr, 0x28, sh_off)
    struct.pack_into("<HHH", hdr, 0x3A, 64, 3, 2)

    def sh(name, off, size, typ=1):
        return struct.pack("<IIQQQQIIQQ", name, typ, 0, 0, off, size, 0, 0, 1, 0)

    body = bytes(hdr) + fatbin + names
    body += b"\0" * (sh_off - len(body))
    return body + sh(0, 0, 0, 0) + sh(1, data_off, len(fatbin)) + sh(12, str_off, len(names), 3)


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

DECIDE = STANDIN_OPS + """
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

before = decide()
import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""
ALL_HIP = {"silu_and_mul": "hip", "wvSplitK": "hip", "LLMM1": "hip"}
ALL_NATIVE = {"silu_and_mul": "native", "wvSplitK": "native", "LLMM1": "native"}


def decide(tmp_path, arch, vllm, targets, extra_env=None):
    env = {"EXT_FILE": write(tmp_path, "ext.so", elf_with_fatbin(bundle(targets)))}
    env.update(extra_env or {})
    return run_python(DECIDE, arch=arch, vllm=vllm, env=env)["result"]


def ops_of(d):
    return {k: d[k] for k in ALL_HIP}


@pytest.mark.vllm_sim
@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100", "gfx1201"])
def test_extension_without_arch_routes_to_native(arch, vllm_under_test, tmp_path):
    out = decide(tmp_path, arch, vllm_under_test, ["gfx90a", "gfx942"])  # a CDNA-only build
    assert ops_of(out["before"]) == ALL_HIP          # vLLM launches kernels that are not there
    assert ops_of(out["after"]) == ALL_NATIVE
    if arch != "gfx1201":                             # RDNA3 ISA kernels: rejected, with the reason
        assert out["after"]["rdna3_w4a16"][0] is False and "no code object" in out["after"]["rdna3_w4a16"][1]
        assert out["after"]["rdna3_moe"] is False


@pytest.mark.vllm_sim
def test_gfx1151_build_admits_rdna3_kernels(vllm_under_test, tmp_path):
    out = decide(tmp_path, "gfx1151", vllm_under_test, ["gfx1100", "gfx1151"])
    assert out["before"]["rdna3_w4a16"] == [False, "RDNA3 W4A16 kernel requires gfx1100"]  # F2
    assert out["before"]["rdna3_moe"] is False                                              # D4
    assert out["after"]["rdna3_w4a16"] == [True, None] and out["after"]["rdna3_moe"] is True
    assert ops_of(out["after"]) == ALL_HIP


@pytest.mark.vllm_sim
def test_gfx1100_needs_its_code_object(vllm_under_test, tmp_path):
    out = decide(tmp_path, "gfx1100", vllm_under_test, ["gfx1100"])
    assert out["before"]["rdna3_w4a16"] == [True, None] and out["after"] == out["before"]
    out = decide(tmp_path, "gfx1100", vllm_under_test, ["gfx11-generic"])
    assert out["after"]["rdna3_w4a16"] == [True, None]


@pytest.mark.vllm_sim
def test_unknown_extension_keeps_vllm(vllm_under_test):
    out = run_python(DECIDE, arch="gfx1151", vllm=vllm_under_test)["result"]  # stub: no __file__
    assert out["after"] == out["before"]


@pytest.mark.vllm_sim
@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
def test_cdna_unchanged(arch, vllm_under_test, tmp_path):
    out = decide(tmp_path, arch, vllm_under_test, ["gfx1151"])
    assert out["after"] == out["before"] and ops_of(out["after"]) == ALL_HIP


@pytest.mark.vllm_sim
def test_disable_toggles_restore_vllm(vllm_under_test, tmp_path):
    env = {"ROCM_ENABLE_DISABLE": "silu-and-mul-code-object,skinny-gemm-code-object,rdna3-kernels-code-object"}
    out = decide(tmp_path, "gfx1151", vllm_under_test, ["gfx942"], env)
    assert out["after"] == out["before"]
    out = decide(tmp_path, "gfx1151", vllm_under_test, ["gfx1151"], env)
    assert out["after"] == out["before"] and out["after"]["rdna3_w4a16"][0] is False
