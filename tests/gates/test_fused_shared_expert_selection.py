"""fused-shared-expert's decisions with vLLM's own code, before and after the plugin: whether
Qwen3NextSparseMoeBlock fuses its shared expert (and what it hands FusedMoEFactory), and the
routing create_fused_moe_router's router gives fused shared experts. The snippet is also the
patch series' equivalence case (tests/patches/equivalence.py).

The block is vLLM's, with its layers stubbed (linears, the MLP, FusedMoEFactory records its
arguments; the EP group of one rank): only the decision runs. Where the block fuses, the router
create_fused_moe_router gives it routes three tokens of [16 routed + 1 shared] logits in
Triton's interpreter.
"""
import pytest

from sim_harness import run_python, vllm_versions_under_test

pytestmark = pytest.mark.vllm_sim

DECIDE = """
import json, os, shutil, tempfile, types
import torch
import vllm.plugins
from importlib import resources
from vllm.config import ModelConfig, VllmConfig, set_current_vllm_config
import vllm.model_executor.models.qwen3_next as qn

class _Stub(torch.nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

def decide():
    tiny = json.loads(resources.files("rocm_enable.models").joinpath("qwen3_next_tiny_fp8.json").read_text())
    stubbed = ("FusedMoEFactory", "GateLinear", "ReplicatedLinear", "Qwen3NextMLP", "get_ep_group",
               "get_tensor_model_parallel_world_size")
    saved = {n: getattr(qn, n) for n in stubbed}
    handed = {}
    def factory(**kwargs):
        handed.update(kwargs)
        return _Stub()
    qn.FusedMoEFactory = factory
    qn.GateLinear = qn.ReplicatedLinear = qn.Qwen3NextMLP = _Stub
    qn.get_ep_group = lambda: types.SimpleNamespace(device_group=types.SimpleNamespace(size=lambda: 1))
    qn.get_tensor_model_parallel_world_size = lambda: 1
    out = {}
    folder = tempfile.mkdtemp()
    try:
        for variant in ("fp8_block128", "fp8_tensor", "ct_fp8_dynamic", "bf16"):
            cfg = {k: v for k, v in tiny.items() if not k.startswith("_") and k != "quantization_config"}
            if variant != "bf16":
                cfg["quantization_config"] = tiny["_quantization_variants"][variant]
            with open(os.path.join(folder, "config.json"), "w") as f:
                json.dump(cfg, f)
            vc = VllmConfig(model_config=ModelConfig(model=folder, dtype=torch.bfloat16,
                                                     skip_tokenizer_init=True))
            handed.clear()
            with set_current_vllm_config(vc):
                block = qn.Qwen3NextSparseMoeBlock(vc, prefix="model.layers.0.mlp")
            out[variant] = {"fused": block.is_fused_shared_expert_enabled,
                            "separate_shared_expert": block.shared_expert is not None,
                            "n_shared_experts": handed["n_shared_experts"],
                            "fuse_shared_experts": handed["fuse_shared_experts"],
                            "gate_to_runner": handed["shared_expert_gate"] is not None}
    finally:
        for n, v in saved.items():
            setattr(qn, n, v)
        shutil.rmtree(folder, True)
    out["router"] = None
    if not out["fp8_block128"]["fused"]:
        return out  # no layer asks for a router of fused shared experts
    from vllm.model_executor.layers.fused_moe.layer import create_fused_moe_router
    logits = torch.randn(3, 17, generator=torch.Generator().manual_seed(0)) * 2
    try:
        router = create_fused_moe_router(top_k=4, global_num_experts=16, renormalize=True,
                                         num_fused_shared_experts=1)
        w, ids = router.select_experts(torch.empty(3, 8, dtype=torch.bfloat16), logits)
        out["router"] = {"ids": ids.tolist(), "weights": [[round(x, 6) for x in r] for r in w.tolist()]}
    except Exception as exc:
        out["router"] = f"{type(exc).__name__}: {exc}"
    return out

before = decide()
vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""


def test_fused_on_gfx1151_for_fp8_block_only():
    version = vllm_versions_under_test()[0]  # every version: tests/layers/test_fused_shared_expert.py
    out = run_python(DECIDE, arch="gfx1151", vllm=version, env={"TRITON_INTERPRET": "1"})["result"]
    unfused = {"fused": False, "separate_shared_expert": True, "n_shared_experts": None,
               "fuse_shared_experts": False, "gate_to_runner": False}
    for variant in ("fp8_block128", "fp8_tensor", "ct_fp8_dynamic", "bf16"):
        assert out["before"][variant] == unfused, (variant, out["before"][variant])
    assert out["after"]["fp8_block128"] == {"fused": True, "separate_shared_expert": False,
                                            "n_shared_experts": 1, "fuse_shared_experts": True,
                                            "gate_to_runner": True}
    for variant in ("fp8_tensor", "ct_fp8_dynamic", "bf16"):  # vLLM's check / BF16 experts
        assert out["after"][variant] == unfused, (variant, out["after"][variant])
    assert out["before"]["router"] is None  # vLLM fuses nothing here, so routes nothing fused
    router = out["after"]["router"]
    assert [r[-1] for r in router["ids"]] == [16, 16, 16]  # the shared expert, last
    assert all(abs(sum(r[:4]) - 1) < 1e-5 for r in router["weights"])
