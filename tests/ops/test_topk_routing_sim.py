"""topk-softmax-code-object in vLLM's own router: the launches of a decode step's routing.

In a simulated gfx1151 process whose _moe_C offload bundles hold only CDNA code objects
(tests/gates/test_hip_code_objects.py builds the ELF), vLLM's fused_topk (FusedTopKRouter's
routing, what every Qwen3-Next / Qwen3.6 MoE layer calls) runs at M=1 with Qwen3.6-35B-A3B's
router shape under the graph guard's recorder (tests/ops/graph_guard.py): every aten op that
launches device work and every Triton launch is counted, and any host sync raises. With the
plugin: one Triton launch and no torch op; the routing matches torch's top-k of the softmax.
Before the plugin vLLM launches its HIP op, which has no code object here.
"""
import os
import sys

import pytest

from sim_harness import run_python

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "gates"))
from test_hip_code_objects import bundle, elf_with_fatbin, write  # noqa: E402

pytestmark = pytest.mark.vllm_sim

ROUTING = """
import os, sys, torch
sys.path.insert(0, os.environ["GRAPH_GUARD_DIR"])
from graph_guard import NO_LAUNCH, Launches, RefuseHostSync, record_triton_launches
_lib = torch.library.Library("_moe_C", "FRAGMENT")
_lib.define("topk_softmax(Tensor(a!) topk_weights, Tensor(b!) topk_ids, Tensor(c!) token_expert_indices, "
            "Tensor gating_output, bool renormalize, Tensor? bias, Tensor? is_padding) -> ()")
_lib.impl("topk_softmax", lambda w, i, t, g, r, b, p: (w.fill_(7.0), None)[1], "CPU")  # "the HIP op ran"
for _name in ("vllm._moe_C", "vllm._moe_C_stable_libtorch"):
    sys.modules[_name].__file__ = os.environ["EXT_FILE"]
from vllm.model_executor.layers.fused_moe.router.fused_topk_router import fused_topk

E, K = 256, 8   # Qwen3.6-35B-A3B
gating = (torch.randn(1, E, generator=torch.Generator().manual_seed(1)) * 3).float()

def route():
    launches, guard = Launches(), RefuseHostSync()
    hidden = torch.empty(1, 2048, dtype=torch.bfloat16)
    # counted with the Triton launches recorded, not run (the interpreter's own tensor copies
    # would be counted too); then run for the numbers
    with record_triton_launches(launches, run=False), guard:
        fused_topk(hidden, gating, K, True)
    ops = [str(op) for op in guard.ops if op not in NO_LAUNCH and not op.is_view]
    w, ids, tei = fused_topk(hidden, gating, K, True)
    ref_w, ref_ids = torch.topk(torch.softmax(gating.double(), -1), K)
    ok = (torch.equal(ids.long(), ref_ids) and torch.allclose(w.double(), ref_w / ref_w.sum(), rtol=1e-5)
          and tei.tolist() == [list(range(K))])
    return {"triton": [n for n, _ in launches.triton], "torch_ops": ops,
            "result": "hip" if bool((w == 7.0).all()) else ("exact" if ok else "wrong")}

before = route()
import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": route()}
"""


def test_decode_routing_is_one_launch(vllm_under_test, tmp_path):
    env = {"TRITON_INTERPRET": "1", "GRAPH_GUARD_DIR": HERE,
           "EXT_FILE": write(tmp_path, "moe_c.so", elf_with_fatbin(bundle(["gfx90a", "gfx942"])))}
    out = run_python(ROUTING, arch="gfx1151", vllm=vllm_under_test, env=env)["result"]
    assert out["before"]["result"] == "hip"  # vLLM launches a kernel this GPU has no code for
    assert out["after"] == {"triton": ["moe_topk_routing_kernel"], "torch_ops": [], "result": "exact"}
