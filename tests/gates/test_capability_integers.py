"""ct-fp8-scheme-by-fp8-compute: vLLM's real compressed-tensors FP8 scheme choice (gate E8) under
simulated archs, before and after the plugin loads (one process)."""
import pytest

from sim_harness import run_python

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


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100"])
def test_gfx11_chooses_w8a16(arch, vllm_under_test):
    out = run_python(DECIDE, arch=arch, vllm=vllm_under_test)["result"]
    assert out["before"] == {"channel": W8A8, "tensor": W8A8, "probe89": True, "probe80": True}
    assert out["after"] == {"channel": W8A16, "tensor": W8A16, "probe89": False, "probe80": True}


@pytest.mark.parametrize("arch", ["gfx1201", "gfx942", "gfx950"])
def test_fp8_archs_unchanged(arch, vllm_under_test):
    out = run_python(DECIDE, arch=arch, vllm=vllm_under_test)["result"]
    assert out["after"] == out["before"] and out["after"]["channel"] == W8A8


def test_disable_toggle_restores_vllm(vllm_under_test):
    out = run_python(DECIDE, arch="gfx1151", vllm=vllm_under_test,
                     env={"ROCM_ENABLE_DISABLE": "ct-fp8-scheme-by-fp8-compute"})["result"]
    assert out["after"] == out["before"] and out["after"]["channel"] == W8A8
