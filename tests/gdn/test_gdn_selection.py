"""Which kernels vLLM's real GDN prefill (chunk.chunk_gated_delta_rule_fwd, what
ChunkGatedDeltaRuleFunction calls) and packed decode (tests/gdn/test_gdn_decode_selection.py's
snippet, decided in the same processes) launch once the plugin is loaded, under simulated archs: on
wave32 RDNA at the Qwen3-Next/Qwen3.6 shape the state recurrence and the WY recompute run on
rocm_enable's kernels and vLLM's other four autotuners see only their spill-free candidate; vLLM's
pipeline elsewhere, for other shapes, without precomputed chunk metadata (no host read added), and
with the fix disabled."""
import pytest

import test_gdn_decode_selection as gdn_decode_selection
from sim_harness import run_python

pytestmark = pytest.mark.vllm_sim

DECIDE = """
import torch
import vllm.third_party.flash_linear_attention.ops.chunk as chunk
import vllm.third_party.flash_linear_attention.ops.chunk_delta_h as cdh
import vllm.third_party.flash_linear_attention.ops.chunk_o as co
import vllm.third_party.flash_linear_attention.ops.chunk_scaled_dot_kkt as kkt
import vllm.third_party.flash_linear_attention.ops.cumsum as cs
import vllm.third_party.flash_linear_attention.ops.solve_tril as st
import vllm.third_party.flash_linear_attention.ops.wy_fast as wy
from rocm_enable.ops import gdn

seen = []

def tuner(k):
    while not hasattr(k, "configs"):
        k = k.fn
    return k

def spy_tuner(name, k):
    t = tuner(k)
    def run(*a, **kw):  # the launcher allocated its outputs already; the kernel does nothing here
        seen.append(["vllm", name, sorted([c.kwargs.get("BK", 0), c.kwargs.get("BV", 0), c.num_warps, c.num_stages]
                                          for c in t.configs)])
    t.run = run

for name, k in (("delta_h", cdh.chunk_gated_delta_rule_fwd_kernel_h_blockdim64), ("o", co.chunk_fwd_kernel_o),
                ("kkt", kkt.chunk_scaled_dot_kkt_fwd_kernel), ("cumsum", cs.chunk_local_cumsum_scalar_kernel),
                ("merge64", st.merge_16x16_to_64x64_inverse_kernel), ("wy", wy.recompute_w_u_fwd_kernel)):
    spy_tuner(name, k)

def ours_wy(k, v, beta, g_cumsum, A, cu_seqlens, chunk_indices=None):
    seen.append(["rocm_enable", "wy", None])
    return k.new_empty(*v.shape[:-1], k.shape[-1]), torch.empty_like(v)

def ours_delta_h(k, w, u, g=None, gk=None, initial_state=None, output_final_state=False, chunk_size=64,
                 save_new_value=True, cu_seqlens=None, chunk_indices=None, chunk_offsets=None, use_exp2=False):
    seen.append(["rocm_enable", "delta_h", None])
    B, T, H, V, K = *u.shape, k.shape[-1]
    NT = chunk_indices.shape[0] if cu_seqlens is not None else -(-T // chunk_size)
    N = B if cu_seqlens is None else cu_seqlens.shape[0] - 1
    return k.new_empty(B, NT, H, V, K), torch.empty_like(u), k.new_empty(N, H, V, K, dtype=torch.float32)

# rocm_enable's launchers, and their copies in vLLM's tree where the source patch series carries them
# (tests/patches runs this snippet on a patched vLLM too)
import importlib.util
for name in ("vllm.third_party.flash_linear_attention.ops.rocm_rdna_gdn",):
    if importlib.util.find_spec(name) is not None:
        mod = importlib.import_module(name)
        mod.recompute_w_u_fwd, mod.chunk_gated_delta_rule_fwd_h = ours_wy, ours_delta_h
gdn.recompute_w_u_fwd = ours_wy
gdn.chunk_gated_delta_rule_fwd_h = ours_delta_h

def run(K, varlen):
    T, Hg, H = 130, 2, 4
    q = torch.randn(1, T, Hg, K, dtype=torch.bfloat16)
    v = torch.randn(1, T, H, 128, dtype=torch.bfloat16)
    g, beta = torch.randn(1, T, H), torch.rand(1, T, H, dtype=torch.bfloat16)
    extra = {}
    if varlen:
        cu = torch.tensor([0, 1, 66, 130], dtype=torch.int32)
        # as vLLM's GDN metadata passes them (precomputed on the host)
        extra = dict(cu_seqlens=cu, chunk_indices=torch.tensor([[0, 0], [1, 0], [1, 1], [2, 0]], dtype=torch.int32),
                     chunk_offsets=torch.tensor([0, 1, 3, 4], dtype=torch.int32))
    seen.clear()
    out = chunk.chunk_gated_delta_rule_fwd(q=q, k=q, v=v, g=g, beta=beta, scale=K ** -0.5,
                                           initial_state=torch.zeros(3 if varlen else 1, H, 128, K),
                                           output_final_state=True, **extra)
    assert out[1].shape == v.shape and out[3].shape == (3 if varlen else 1, H, 128, K)
    return list(seen)

def decide():
    return {"fixed": run(128, False), "varlen": run(128, True), "K256": run(256, False)}

before = decide()
import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""

# the step order of vLLM's pipeline, each with the kernel and candidate list on wave32 RDNA
RDNA = [["vllm", "cumsum", [[0, 0, 4, 3]]], ["vllm", "kkt", [[64, 0, 4, 2]]], ["vllm", "merge64", [[0, 0, 8, 2]]],
        ["rocm_enable", "wy", None], ["rocm_enable", "delta_h", None], ["vllm", "o", [[64, 64, 8, 2]]]]
STEPS = [s[1] for s in RDNA]

# Prefill and decode (tests/gdn/test_gdn_decode_selection.py's snippet) are decided in one process per
# case: each snippet's set-up in its own namespace, both "before"s, then the plugin, both "after"s.
TAIL = 'before = decide()\nimport vllm.plugins; vllm.plugins.load_general_plugins()\nresult = {"before": before, "after": decide()}\n'


def _setup(snippet: str) -> str:
    assert snippet.endswith(TAIL), "the decision snippet's tail changed"
    return snippet[:-len(TAIL)]


JOINT = f"""
_prefill, _decode = {{}}, {{}}
exec({_setup(DECIDE)!r}, _prefill)
exec({_setup(gdn_decode_selection.DECIDE)!r}, _decode)
def both():
    return {{"prefill": _prefill["decide"](), "decode": _decode["decide"]()}}
before = both()
import vllm.plugins; vllm.plugins.load_general_plugins()
result = {{"before": before, "after": both()}}
"""


def prefill_and_decode(arch, **kw):
    out = run_python(JOINT, arch=arch, **kw)["result"]
    return ({"before": out["before"]["prefill"], "after": out["after"]["prefill"]},
            {"before": out["before"]["decode"], "after": out["after"]["decode"]})


def check_rdna(out):
    before, after = out["before"], out["after"]
    for case in before.values():
        assert [s[1] for s in case] == STEPS and all(s[0] == "vllm" for s in case)
        assert all(len(s[2]) > 1 for s in case)  # vLLM's autotuners time several candidates
    assert after["fixed"] == RDNA and after["varlen"] == RDNA
    # outside the proven case: vLLM's pipeline, vLLM's kernels
    assert all(s[0] == "vllm" for s in after["K256"]), after["K256"]
    assert after["K256"][1] == before["K256"][1]  # kkt: vLLM's whole list


def test_gfx1151_runs_only_spill_free_kernels(vllm_under_test):
    """On every verified vLLM (the anchors of each)."""
    prefill, decode = prefill_and_decode("gfx1151", vllm=vllm_under_test)
    check_rdna(prefill)
    gdn_decode_selection.check_rdna(decode)


def test_gfx1201_runs_only_spill_free_kernels():
    """RDNA4 takes the same route (one process, the installed vLLM)."""
    prefill, decode = prefill_and_decode("gfx1201")
    check_rdna(prefill)
    gdn_decode_selection.check_rdna(decode)


def test_cdna_unchanged():
    prefill, decode = prefill_and_decode("gfx942")
    assert prefill["after"] == prefill["before"]
    assert decode == {"before": gdn_decode_selection.VLLM, "after": gdn_decode_selection.VLLM}


def test_disable_toggles_restore_vllm():
    prefill, decode = prefill_and_decode("gfx1151", env={"ROCM_ENABLE_DISABLE": "gdn-prefill-rdna,gdn-decode-rdna"})
    assert all(s[0] == "vllm" for case in prefill["after"].values() for s in case)
    assert prefill["after"]["fixed"][1] == prefill["before"]["fixed"][1]
    assert decode["after"] == gdn_decode_selection.VLLM


def test_calls_outside_the_proven_case_keep_vllms_pipeline():
    import torch

    from rocm_enable.ops import gdn

    k, v = torch.empty(1, 8, 2, 128), torch.empty(1, 8, 4, 128)
    cu = torch.tensor([0, 8], dtype=torch.int32)
    assert gdn.prefill_supported(k, v, 64) is None
    assert "chunk_indices" in gdn.prefill_supported(k, v, 64, cu_seqlens=cu)  # computing them reads the host
    assert "K=256" in gdn.prefill_supported(torch.empty(1, 8, 2, 256), v, 64)
    assert "chunk=32" in gdn.prefill_supported(k, v, 32)
    assert "gk" in gdn.chunk_state_supported(k, gk=torch.empty(1))
