"""ct-fp8-scheme-by-fp8-compute: vLLM's real compressed-tensors FP8 scheme choice (gate E8) under
simulated archs, before and after the plugin loads (one process)."""
import pytest

from sim_harness import run_python
from shared_sim import ON_ONE_WORKER, run_shared

pytestmark = pytest.mark.vllm_sim

DECIDE = """
from compressed_tensors.quantization import QuantizationArgs
from vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors import CompressedTensorsConfig
W = {"channel": QuantizationArgs(num_bits=8, type="float", symmetric=True, strategy="channel", dynamic=False),
     "tensor": QuantizationArgs(num_bits=8, type="float", symmetric=True, strategy="tensor", dynamic=False)}
A = QuantizationArgs(num_bits=8, type="float", symmetric=True, strategy="token", dynamic=True)
cfg = CompressedTensorsConfig.from_config({"format": "float-quantized", "ignore": [], "config_groups": {
    "group_0": {"targets": ["Linear"], "weights": W["channel"].model_dump(), "input_activations": A.model_dump()}}})
import vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors as ct_mod
# Spy on the scheme classes vLLM instantiates (their __init__ needs a full model config).
for _name in ("CompressedTensorsW8A8Fp8", "CompressedTensorsW8A16Fp8"):
    _real = getattr(ct_mod, _name)
    setattr(ct_mod, _name, type(_name, (), {"get_min_capability": _real.get_min_capability,
                                            "__init__": lambda self, **kw: None}))
def decide():
    out = {k: type(cfg._get_scheme_from_parts(w, A)).__name__ for k, w in W.items()}
    out["probe89"] = CompressedTensorsConfig._check_scheme_supported(89, error=False)
    out["probe80"] = CompressedTensorsConfig._check_scheme_supported(80, error=False)
    return out
before = decide()
if os.environ.get("LOAD_PLUGIN", "1") == "1":
    import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""
W8A8, W8A16 = "CompressedTensorsW8A8Fp8", "CompressedTensorsW8A16Fp8"


@ON_ONE_WORKER
@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100"])
def test_gfx11_chooses_w8a16(arch, vllm_under_test):
    out = run_shared(DECIDE, arch=arch, vllm=vllm_under_test)["result"]
    assert out["before"] == {"channel": W8A8, "tensor": W8A8, "probe89": True, "probe80": True}
    assert out["after"] == {"channel": W8A16, "tensor": W8A16, "probe89": False, "probe80": True}


@ON_ONE_WORKER
@pytest.mark.parametrize("arch", ["gfx1201", "gfx942", "gfx950"])
def test_fp8_archs_unchanged(arch, vllm_under_test):
    out = run_shared(DECIDE, arch=arch, vllm=vllm_under_test)["result"]
    assert out["after"] == out["before"] and out["after"]["channel"] == W8A8


@ON_ONE_WORKER
def test_disable_toggle_restores_vllm(vllm_under_test):
    out = run_shared(DECIDE, arch="gfx1151", vllm=vllm_under_test,
                     env={"ROCM_ENABLE_DISABLE": "ct-fp8-scheme-by-fp8-compute"})["result"]
    assert out["after"] == out["before"] and out["after"]["channel"] == W8A8


# ---- I8: triton_reshape_and_cache_flash accepts an FP8 KV cache by `capability >= 89` ----------
# The answer on gfx11 (True, because 115/110 >= 89) is right for the wrong reason: an FP8 KV cache
# needs FP8 *storage* (convert and store one byte), which Triton emits in software on every AMD
# arch, not FP8 matrix instructions. Kept as is; these tests are the evidence.

I8_DECIDE = """
import torch
import vllm.v1.attention.ops.triton_reshape_and_cache_flash as rc
from vllm.platforms import current_platform
def decide():
    return {"fp8": rc._is_supported_kv_cache_dtype("fp8"), "fp8_e4m3": rc._is_supported_kv_cache_dtype("fp8_e4m3"),
            "cap89": current_platform.has_device_capability(89),
            "fp8_dtype": str(current_platform.fp8_dtype())}
before = decide()
import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""


@ON_ONE_WORKER
@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100"])
def test_i8_fp8_kv_cache_store_accepted(arch, vllm_under_test):
    out = run_shared(I8_DECIDE, arch=arch, vllm=vllm_under_test)["result"]
    # vLLM's decision: accepted, via the integer capability (gfx11 reads as 115 / 110 >= 89)
    assert out["before"] == {"fp8": True, "fp8_e4m3": True, "cap89": True, "fp8_dtype": "torch.float8_e4m3fn"}
    assert out["after"] == out["before"]                     # nothing rocm-enable changes
    # (What the kernel stores is not checked in the Triton CPU interpreter: its fp32 -> e4m3
    # conversion is not bit-exact -- it drops the mantissa carry at binade edges, 126.9 -> 64, and
    # rounds ties away from zero. The AOT compile below is the evidence for the hardware path.)


I8_AOT = """
import re, torch, triton.language as tl
from rocm_enable.isa import compile_for_arch, _t
import vllm.v1.attention.ops.triton_reshape_and_cache_flash as rc
fn = rc.reshape_and_cache_kernel_flash
# Qwen3-Next full attention, TP=1: 2 KV heads x 256, hybrid page 544; vLLM's ROCm launch: 8 warps, 4 stages
CACHE = {"gfx1151": tl.float8e4nv, "gfx1100": tl.float8e4nv, "gfx950": tl.float8e4nv, "gfx942": tl.float8e4b8}
result = {}
for arch, cache_ty in CACHE.items():
    vals = dict(key_ptr=_t(tl.bfloat16), value_ptr=_t(tl.bfloat16), key_cache_ptr=_t(cache_ty),
                value_cache_ptr=_t(cache_ty), slot_mapping_ptr=_t(tl.int64), k_scale=_t(tl.float32),
                v_scale=_t(tl.float32), num_heads=2, head_size=256, block_size=544, x=1,
                USE_HEAD_MAJOR_LAYOUT=False, FP8_KV_CACHE=True, TILE_SIZE=512, INTERLEAVED_V_PACK_FACTOR=0)
    args = {p.name: vals.get(p.name, 4096) for p in fn.params}
    ck = compile_for_arch(fn, args, {"num_warps": 8, "num_stages": 4}, arch)
    mnems = re.findall(r"^\\s+(v_[a-z0-9_]+)", ck.asm["amdgcn"], re.M)
    result[arch] = {"fp8_insts": sorted({m for m in mnems if "fp8" in m or "bf8" in m}),
                    "cndmask": sum(m.startswith("v_cndmask") for m in mnems), "insts": len(mnems)}
"""


@pytest.mark.slow
def test_i8_fp8_kv_store_compiles_for_gfx11_without_fp8_instructions(vllm_under_test):
    out = run_python(I8_AOT, arch="gfx1151", vllm=vllm_under_test, timeout=900)["result"]
    for arch in ("gfx1151", "gfx1100"):
        assert out[arch]["fp8_insts"] == [], out[arch]       # software conversion: no FP8 hardware needed
        assert out[arch]["cndmask"] > 0                       # the select ladder of the software encoder
    for arch in ("gfx942", "gfx950"):                          # control: the same kernel uses FP8 converts
        assert out[arch]["fp8_insts"], out[arch]
