"""fused-qk-norm-rope-gate (J1): vLLM's fused Triton split + QK-RMSNorm + RoPE + gate kernel,
compiled from the installed vLLM at test time: numerics against vLLM's eager path (GemmaRMSNorm +
RotaryEmbedding, forward_native) in the Triton CPU interpreter, and an AOT AMDGCN compile for
gfx1151 / gfx1201 (no spills). Decision: the flag Qwen3NextAttention.__init__ computes."""
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
