"""moe-align-code-object: vLLM's BF16 MoE aligns its routes without _moe_C's code object.

In a simulated gfx1151 process, torch.ops._moe_C.moe_align_block_size is a stand-in that marks
its output (sorted_token_ids filled with -7: "vLLM launched its HIP kernel"; on a real GPU
without the code object that launch dies with 'invalid device function'), and _moe_C's file is
an ELF whose offload bundles hold only CDNA code objects (tests/gates/test_hip_code_objects.py
builds it). The call is the one vLLM's BF16 Triton experts make: fused_moe's
_prepare_expert_assignment (sorted path, ignore_invalid_experts, with and without an expert map)
-> moe_align_block_size -> vllm._custom_ops.moe_align_block_size. The Triton align runs in
Triton's interpreter; its output must equal vLLM's golden layout bit for bit.
"""
import os
import sys

import pytest

from sim_harness import run_python

# the synthetic offload-bundle ELF builders of the code-object tests
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "gates"))
from test_hip_code_objects import bundle, elf_with_fatbin, write  # noqa: E402

pytestmark = pytest.mark.vllm_sim

# The stand-in op (registered once per process: tests/patches/equivalence.py reuses both parts)
ALIGN_STANDIN = """
_lib_align = torch.library.Library("_moe_C", "FRAGMENT")
_lib_align.define("moe_align_block_size(Tensor topk_ids, int num_experts, int block_size, "
                  "Tensor(a!) sorted_token_ids, Tensor(b!) experts_ids, Tensor(c!) num_tokens_post_pad, "
                  "Tensor? expert_map, Tensor(d!)? scatter_idx) -> ()")
_lib_align.impl("moe_align_block_size", lambda ids, e, b, st, ex, nt, m, sc: (st.fill_(-7), None)[1], "CPU")
"""
ALIGN_DECIDE = """
for _name in ("vllm._moe_C", "vllm._moe_C_stable_libtorch"):
    if os.environ.get("EXT_FILE"):
        sys.modules[_name].__file__ = os.environ["EXT_FILE"]
from vllm.model_executor.layers.fused_moe.fused_moe import _prepare_expert_assignment

def golden(ids, bm, E, max_len, emap):
    # vLLM's tests/kernels/moe torch_moe_align_block_size, with the map applied in the op
    flat = ids.reshape(-1).long(); n = flat.numel()
    keys = flat if emap is None else emap.long()[flat]
    st = torch.full((max_len,), n, dtype=torch.int32)
    ex = torch.zeros(-(-max_len // bm), dtype=torch.int32); pos = 0
    for e in range(E):
        r = (keys == e).nonzero().flatten()
        if r.numel():
            st[pos:pos + r.numel()] = r.int(); nb = -(-r.numel() // bm)
            ex[pos // bm:pos // bm + nb] = e; pos += nb * bm
    return st, ex, pos

g = torch.Generator().manual_seed(0)
M, K, E, BM = 24, 8, 64, 16   # M * K * 4 > E: the aligned (sorted) path
ids = torch.stack([torch.randperm(E, generator=g)[:K] for _ in range(M)]).int()
emap = torch.full((E,), -1, dtype=torch.int32); emap[::2] = torch.arange(E // 2, dtype=torch.int32)

def decide():
    out = {}
    for name, m in (("no-map", None), ("expert-map", emap)):
        st, ex, nt = _prepare_expert_assignment(ids, {"BLOCK_SIZE_M": BM}, M, K, E, m,
                                                ignore_invalid_experts=True)
        if bool((st == -7).all()):
            out[name] = "hip"
            continue
        gst, gex, total = golden(ids, BM, E, st.numel(), m)
        out[name] = "triton" if (torch.equal(st, gst) and torch.equal(ex, gex)
                                 and int(nt) == total) else "wrong"
    return out

before = decide()
import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""
ALIGN = "import os, sys, torch\n" + ALIGN_STANDIN + ALIGN_DECIDE


def _decide(tmp_path, vllm, targets):
    env = {"TRITON_INTERPRET": "1", "EXT_FILE": write(tmp_path, "moe_c.so", elf_with_fatbin(bundle(targets)))}
    return run_python(ALIGN, arch="gfx1151", vllm=vllm, env=env)["result"]


def test_bf16_moe_align_runs_without_code_object(vllm_under_test, tmp_path):
    out = _decide(tmp_path, vllm_under_test, ["gfx90a", "gfx942"])
    assert out["before"] == {"no-map": "hip", "expert-map": "hip"}        # vLLM launches an absent kernel
    assert out["after"] == {"no-map": "triton", "expert-map": "triton"}   # vLLM's layout, bit for bit


def test_align_keeps_vllm_op_when_code_object_present(vllm_under_test, tmp_path):
    out = _decide(tmp_path, vllm_under_test, ["gfx11-generic"])
    assert out["before"] == out["after"] == {"no-map": "hip", "expert-map": "hip"}
