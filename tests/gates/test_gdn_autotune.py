"""gdn-autotune-lds: the autotune candidate lists vLLM's real GDN launchers (as chunk.py calls them)
hand to Triton, under simulated archs, and AOT proof that every dropped candidate exceeds 64 KiB LDS
on gfx1151 while every kept one fits (Triton 3.9 HIP backend, no GPU)."""
import pytest

from sim_harness import run_python

pytestmark = pytest.mark.vllm_sim

DECIDE = """
import torch
import vllm.third_party.flash_linear_attention.ops.chunk as chunk
import vllm.third_party.flash_linear_attention.ops.chunk_delta_h as cdh
import vllm.third_party.flash_linear_attention.ops.chunk_o as co
seen = {}
class Seen(Exception):
    pass
def spy(name, tuner):
    def run(*a, **k):
        seen[name] = sorted((c.kwargs.get("BK", 0), c.kwargs["BV"], c.num_warps, c.num_stages) for c in tuner.configs)
        raise Seen()
    return run
def tuner(k):
    while not hasattr(k, "configs"):
        k = k.fn
    return k
for name, k in (("delta_h", cdh.chunk_gated_delta_rule_fwd_kernel_h_blockdim64), ("o", co.chunk_fwd_kernel_o)):
    t = tuner(k); t.run = spy(name, t)
B, T, H, K, V = 1, 128, 2, 128, 128
q = torch.randn(B, T, H, K, dtype=torch.bfloat16); w = torch.randn(B, T, H, K, dtype=torch.bfloat16)
u = torch.randn(B, T, H, V, dtype=torch.bfloat16); g = torch.randn(B, T, H)
def decide():
    seen.clear()
    for call in (lambda: chunk.chunk_gated_delta_rule_fwd_h(k=q, w=w, u=u, g=g, chunk_size=64),
                 lambda: chunk.chunk_fwd_o(q=q, k=q, v=u, h=torch.randn(B, 2, H, V, K), g=g, chunk_size=64)):
        try:
            call()
        except Seen:
            pass
    return dict(seen)
before = decide()
import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""


def dropped(out, name):
    return sorted(set(map(tuple, out["before"][name])) - set(map(tuple, out["after"][name])))


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100", "gfx1201"])
def test_rdna_drops_lds_overflow_candidates(arch, vllm_under_test):
    out = run_python(DECIDE, arch=arch, vllm=vllm_under_test)["result"]
    # CPU torch: vLLM's own list has stages [2,3,4] (ROCm builds: [2,3]); only stages 2 fit.
    assert all(s >= 3 for *_, s in dropped(out, "delta_h"))
    assert {s for *_, s in out["after"]["delta_h"]} == {2} and len(out["after"]["delta_h"]) == 4
    assert dropped(out, "o") == [[64, 64, 4, 4], [64, 64, 8, 4]] or dropped(out, "o") == [(64, 64, 4, 4), (64, 64, 8, 4)]
    assert len(out["before"]["o"]) - len(out["after"]["o"]) == 2


@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
def test_cdna_unchanged(arch, vllm_under_test):
    out = run_python(DECIDE, arch=arch, vllm=vllm_under_test)["result"]
    assert out["after"] == out["before"]


def test_disable_toggle_restores_vllm(vllm_under_test):
    out = run_python(DECIDE, arch="gfx1151", vllm=vllm_under_test,
                     env={"ROCM_ENABLE_DISABLE": "gdn-autotune-lds"})["result"]
    assert out["after"] == out["before"]


AOT = """
import torch, triton
from rocm_enable.isa import compile_for_arch, _t
from rocm_enable.stacks.vllm.gdn_autotune import chunk_delta_h_lds, chunk_o_lds
import vllm.third_party.flash_linear_attention.ops.chunk_delta_h as cdh
import vllm.third_party.flash_linear_attention.ops.chunk_o as co
def jit(k):
    while not hasattr(k, "params"):
        k = k.fn
    return k
arch = os.environ["AOT_ARCH"]
bf, f32 = torch.bfloat16, torch.float32
rows = []
h = jit(cdh.chunk_gated_delta_rule_fwd_kernel_h_blockdim64)
for bv in (32, 64):
    for s in (2, 3):
        cfg = triton.Config({"BV": bv}, num_warps=4, num_stages=s)
        args = dict(k=_t(bf), v=_t(bf), w=_t(bf), v_new=_t(bf), g=_t(f32), gk=None, h=_t(bf), h0=None,
                    ht=None, cu_seqlens=None, chunk_offsets=None, T=128, H=32, Hg=16, K=128, V=128, BT=64,
                    BV=bv, USE_G=True, USE_GK=False, USE_INITIAL_STATE=False, STORE_FINAL_STATE=False,
                    SAVE_NEW_VALUE=True, IS_VARLEN=False)
        args = {p.name: args.get(p.name, False) for p in h.params}
        ck = compile_for_arch(h, args, {"num_warps": 4, "num_stages": s}, arch)
        rows.append(["delta_h", bv, s, ck.metadata.shared, chunk_delta_h_lds(cfg, 128, 64)])
o = jit(co.chunk_fwd_kernel_o)
for s in (3, 4):
    cfg = triton.Config({"BK": 64, "BV": 64}, num_warps=4, num_stages=s)
    args = dict(q=_t(bf), k=_t(bf), v=_t(bf), h=_t(bf), g=_t(f32), o=_t(bf), cu_seqlens=None,
                chunk_indices=None, scale=0.088, T=128, H=32, Hg=16, K=128, V=128, BT=64, BK=64, BV=64,
                USE_G=True, IS_VARLEN=False)
    args = {p.name: args.get(p.name, False) for p in o.params}
    ck = compile_for_arch(o, args, {"num_warps": 4, "num_stages": s}, arch)
    rows.append(["o", 64, s, ck.metadata.shared, chunk_o_lds(cfg, 128, 64)])
result = rows
"""


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gfx1151"])
def test_lds_model_matches_aot_compile(arch):
    rows = run_python(AOT, arch=arch, env={"AOT_ARCH": arch}, timeout=900)["result"]
    for name, bv, stages, lds, model in rows:
        assert lds == model, (name, bv, stages, lds, model)
        assert (lds > 64 * 1024) == ((name == "delta_h" and stages >= 3) or (name == "o" and stages >= 4))
