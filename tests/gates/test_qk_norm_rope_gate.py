"""fused-qk-norm-rope-gate (J1): vLLM's fused Triton split + QK-RMSNorm + RoPE + gate kernel,
compiled from the installed vLLM at test time: numerics against vLLM's eager path (GemmaRMSNorm +
RotaryEmbedding, forward_native) in the Triton CPU interpreter, and an AOT AMDGCN compile for
gfx1151 / gfx1201 (no spills). Decision: the flag Qwen3NextAttention.__init__ computes."""
import os

import pytest

from sim_harness import run_python

pytestmark = pytest.mark.vllm_sim

NUMERICS = """
import torch
from vllm.config import VllmConfig, set_current_vllm_config
from vllm.model_executor.layers.fused_qk_norm_rope import fused_qk_rmsnorm_rope_gate
from vllm.model_executor.layers.layernorm import GemmaRMSNorm
from vllm.model_executor.layers.rotary_embedding.base import RotaryEmbedding
torch.manual_seed(0)
n, hq, hk, d, rd = 5, 4, 2, 256, 64     # Qwen3-Next: head 256, partial rotary 64
dt = torch.bfloat16
with set_current_vllm_config(VllmConfig()):
    qn, kn = GemmaRMSNorm(d, eps=1e-6), GemmaRMSNorm(d, eps=1e-6)
    with torch.no_grad():
        qn.weight.normal_(0, 0.1); kn.weight.normal_(0, 0.1)
    rope = RotaryEmbedding(d, rd, 4096, 10000000, True, dt)
    q_gate = torch.randn(n, hq * 2 * d, dtype=dt); k = torch.randn(n, hk * d, dtype=dt)
    pos = torch.tensor([0, 1, 17, 500, 4000])
    qg = q_gate.view(n, hq, 2 * d)
    q_ref, gate_ref = qg[..., :d].reshape(n, -1), qg[..., d:].reshape(n, -1)
    q_ref = qn.forward_native(q_ref.reshape(-1, hq, d)).reshape(n, -1)
    k_ref = kn.forward_native(k.reshape(-1, hk, d)).reshape(n, -1)
    q_ref, k_ref = rope.forward_native(pos, q_ref, k_ref)
    q, kk, gate = fused_qk_rmsnorm_rope_gate(q_gate, k, qn.weight.data, kn.weight.data,
                                             rope.cos_sin_cache, pos, 1e-6, hq, hk, d, rd, norm_beta=1.0)
err = lambda a, b: float((a.float() - b.float()).abs().max())
result = {"q": err(q, q_ref), "k": err(kk, k_ref), "gate": err(gate, gate_ref)}
"""


def test_numerics_match_eager_path(vllm_under_test):
    out = run_python(NUMERICS, arch="gfx1151", vllm=vllm_under_test,
                     env={"TRITON_INTERPRET": "1"})["result"]
    assert out["gate"] == 0.0
    assert out["q"] < 0.07 and out["k"] < 0.07, out  # bf16 output rounding (|x| up to ~8)


ISA = """
import torch, triton.language as tl
from rocm_enable.isa import compile_for_arch, _t, asm_metrics
import vllm.model_executor.layers.fused_qk_norm_rope as m
fn = m._fused_qk_rmsnorm_rope_gate_kernel
bf = torch.bfloat16
# Qwen3-Next full attention per GPU (TP=1): 16 q heads, 2 kv heads, head 256, rotary 64;
# vLLM launches num_warps = max(1, HEAD_BLOCK // 64) = 4.
const = dict(num_q_heads=16, num_kv_heads=2, head_dim=256, rotary_dim=64, half_rotary=32, eps=1e-6,
             norm_beta=1.0, INPUT_DTYPE=tl.bfloat16, HEAD_BLOCK=256, ROT_HALF_BLOCK=32, HAS_PASS=True,
             HAS_MROPE=False, MROPE_SECTION_H=0, MROPE_SECTION_W=0)
ptr = dict(q_gate_ptr=_t(bf), k_ptr=_t(bf), q_out_ptr=_t(bf), k_out_ptr=_t(bf), gate_out_ptr=_t(bf),
           q_weight_ptr=_t(bf), k_weight_ptr=_t(bf), cos_sin_cache_ptr=_t(bf), positions_ptr=_t(torch.int64))
args = {p.name: const.get(p.name, ptr.get(p.name, 8192)) for p in fn.params}
result = {}
for arch in ("gfx1151", "gfx1100", "gfx1201"):
    ck = compile_for_arch(fn, args, {"num_warps": 4}, arch)
    r = asm_metrics(ck.asm["amdgcn"], ck.metadata, arch)
    result[arch] = {"spills": r["spills"], "vgpr": r["vgpr"], "lds": r["lds"]}
"""


@pytest.mark.slow
def test_isa_compiles_for_rdna():
    out = run_python(ISA, arch="gfx1151", timeout=600)["result"]  # sim: vLLM keeps real Triton
    for arch, r in out.items():
        assert r["spills"] == 0, (arch, r)


# ---- the model's own decision: vLLM's Qwen3NextAttention built from a scaled-down config -------

LAYERS_LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "layers")

BUILD = """
import sys, torch
sys.path.insert(0, os.environ["LAYERS_LIB"])
import fp8_layer_lib as L   # builds vLLM layers from rocm_enable/models/qwen3_next_tiny_fp8.json
L.setup_vllm(load_plugins=False)
vc = L.model_context("fp8_block128", torch.bfloat16)
from vllm.model_executor.models.qwen3_next import Qwen3NextAttention
def build(layer):
    with L.loading(vc):
        return Qwen3NextAttention(vc.model_config.hf_text_config, model_config=vc.model_config,
                                  cache_config=vc.cache_config, quant_config=vc.quant_config,
                                  prefix=f"model.layers.{layer}.self_attn")
# vLLM alone, then (LOAD_PLUGIN=1) the same construction after the plugin loaded, one process
attn = build(3)
before = {"fused": attn.use_fused_qk_norm_rope_gate, "backend": attn.attn.attn_backend.get_name()}
if os.environ.get("LOAD_PLUGIN") == "1":
    import vllm.plugins
    vllm.plugins.load_general_plugins()
    attn = build(7)
result = {"before": before, "fused": attn.use_fused_qk_norm_rope_gate,
          "backend": attn.attn.attn_backend.get_name()}
if os.environ.get("RUN_PROJECTION") == "1":
    # The model's own _project_qkv_gate (the fused Triton kernel when the flag is set, in the
    # interpreter) against its eager split + GemmaRMSNorm + RoPE, built from the same modules.
    torch.manual_seed(0)
    with torch.no_grad():
        attn.q_norm.weight.normal_(0, 0.1); attn.k_norm.weight.normal_(0, 0.1)
    n = 5
    qkv = torch.randn(n, attn.q_size * 2 + 2 * attn.kv_size, dtype=torch.bfloat16)
    pos = torch.tensor([0, 3, 17, 500, 4000])
    q, k, v, gate = attn._project_qkv_gate(qkv, pos)
    q_gate, k_ref, v_ref = qkv.split([attn.q_size * 2, attn.kv_size, attn.kv_size], dim=-1)
    q_ref, g_ref = torch.chunk(q_gate.view(n, attn.num_heads, -1), 2, dim=-1)
    q_ref = attn.q_norm.forward_native(q_ref.reshape(-1, attn.num_heads, attn.head_dim)).reshape(n, -1)
    k_ref = attn.k_norm.forward_native(k_ref.reshape(-1, attn.num_kv_heads, attn.head_dim)).reshape(n, -1)
    q_ref, k_ref = attn.rotary_emb.forward_native(pos, q_ref, k_ref)
    err = lambda a, b: float((a.float() - b.float()).abs().max())
    result.update(q=err(q, q_ref), k=err(k, k_ref), v=err(v, v_ref), gate=err(gate, g_ref.reshape(n, -1)))
"""


def build(arch, vllm, **env):
    """{'before': vLLM's own layer, 'fused'/'backend': the layer built after the plugin loaded}."""
    base = {"LAYERS_LIB": LAYERS_LIB, "LOAD_PLUGIN": "1"}
    base.update(env)
    return run_python(BUILD, arch=arch, vllm=vllm, env=base)["result"]


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100", "gfx1201"])
def test_model_attention_layer_decides_fused_path(arch, vllm_under_test):
    """J1 at model construction: vLLM's Qwen3NextAttention.__init__ computes
    use_fused_qk_norm_rope_gate itself; vLLM alone says no on ROCm, the plugin says yes."""
    out = build(arch, vllm_under_test)
    assert out["before"]["fused"] is False and out["fused"] is True


@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
def test_model_attention_layer_cdna_unchanged(arch, vllm_under_test):
    out = build(arch, vllm_under_test)
    assert out["before"] == {"fused": out["fused"], "backend": out["backend"]}
    assert out["fused"] is False


def test_model_attention_layer_disable_restores_vllm(vllm_under_test):
    out = build("gfx1151", vllm_under_test, ROCM_ENABLE_DISABLE="fused-qk-norm-rope-gate")
    assert out["fused"] is False and out["before"]["fused"] is False


def test_model_projection_runs_fused_kernel(vllm_under_test):
    out = build("gfx1151", vllm_under_test, RUN_PROJECTION="1", TRITON_INTERPRET="1")
    assert out["fused"] is True
    assert out["v"] == 0.0 and out["gate"] == 0.0
    assert out["q"] < 0.07 and out["k"] < 0.07, out  # bf16 output rounding, as above
