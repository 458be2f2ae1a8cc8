"""fused-shared-expert on vLLM's own Qwen3NextSparseMoeBlock, simulated gfx1151.

One simulated process per vLLM version (tests/layers/fused_shared_expert_lib.py): the scaled-down
Qwen3-Next FP8 config (64 experts top-4, moe and shared-expert intermediate 128), random FP8
checkpoint tensors loaded through Qwen3NextModel.load_weights (vLLM's maybe_fuse_shared_experts
renames mlp.shared_expert.* to expert slot E), the block's forward with the W8A16 kernels in
Triton's interpreter against a float64 reference:
  - with the record: E + 1 experts, no shared-expert module, one combined gate, our router, the
    shared checkpoint's bytes in slot E; fewer launches at M = 1, no host sync;
  - a compressed-tensors per-channel checkpoint: vLLM's own FSE check refuses it, unfused;
  - the record with a drifted anchor: skipped with a warning; with ROCM_ENABLE_FUSED_SHARED_EXPERT=0
    (the selection the plugin reads at load): disabled; the block is then vLLM's unfused one and
    its output matches the fused block's.
"""
import os

import pytest

from rocm_enable.toggles import ToggleError, read_selection
from sim_harness import run_python, vllm_versions_under_test

pytestmark = pytest.mark.vllm_sim

LIB_DIR = os.path.dirname(os.path.abspath(__file__))
ENV = {"TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1",
       # a CPU host has no stream for vLLM's overlapped shared expert (the unfused block)
       "VLLM_DISABLE_SHARED_EXPERTS_STREAM": "1"}
TOKENS = (1, 5)  # decode (naive routing, GEMV) and the sorted routing (25 pairs * 4 > 65)
# ||out - ref|| / ||ref|| against the float64 reference, bf16 activations and output. Measured on
# vLLM 0.32.0 / 0.33.0 / 0.34.0 (interpreter): fused and unfused 5.6e-3 .. 7.7e-3 per row, 6.1e-3 ..
# 6.3e-3 per case; fused vs unfused 2.6e-3 .. 3.2e-3 (bf16 roundings in different places: the
# unfused block rounds the shared expert's output, its sigmoid gate and the product to bf16, the
# fused one weights the shared expert by the fp32 sigmoid inside the w2 GEMV and sums in fp32).
# The MoE bound of test_fp8_layers (1.2e-2) holds for both; a dropped or doubled shared expert, a
# softmax over E + 1 logits or an ungated shared expert land at 0.2 .. 1.
BOUND = 1.2e-2
BOUND_FUSED_VS_UNFUSED = 6e-3

BODY = """
import sys, dataclasses, logging
sys.path.insert(0, {lib_dir!r})
import torch
import fp8_layer_lib as lib
import fused_shared_expert_lib as fse
fse.extensions_without_code_objects()
lib.setup_vllm()
import vllm
from rocm_enable.engine import apply as engine
from rocm_enable.engine.record import Stack
from rocm_enable.runtime import active_caps
from rocm_enable.stacks.vllm.fused_shared_expert import FUSED_SHARED_EXPERT as fix
from rocm_enable.toggles import read_selection

result = {{}}
gen = torch.Generator().manual_seed(7)
xs = {{m: torch.randn(m, 256, generator=gen).bfloat16() for m in {tokens!r}}}
ckpt = fse.checkpoint("block", 0, seed=3)

def run(name, block, vc, layer, ckpt, scheme, tokens):
    out = {{}}
    for m in tokens:
        y = fse.forward(block, vc, xs[m])
        out[m] = y
        result[f"{{name}}/M={{m}}"] = lib.rel_err(y, fse.reference(xs[m], ckpt, scheme, layer))
    return out

vc = fse.model_context("fp8_block128")
fused, loaded = fse.build_and_load(vc, 0, ckpt)
result["fused"] = {{**fse.describe(fused), "loaded": loaded,
                   "slot_E_is_shared_checkpoint": fse.slot_matches_shared_checkpoint(fused, ckpt, 0)}}
fused_out = run("fused", fused, vc, 0, ckpt, "block", {tokens!r})
result["fused_launches"] = fse.decode_launches(fused, vc, 256)

ct_vc = fse.model_context("ct_fp8_dynamic")
ct_ckpt = fse.checkpoint("channel", 2, seed=4)
ct, _ = fse.build_and_load(ct_vc, 2, ct_ckpt)
result["ct_channel"] = fse.describe(ct)
if {ct_forward!r}:
    run("ct_channel", ct, ct_vc, 2, ct_ckpt, "channel", (1,))

# the record as a vLLM with one changed target would see it: skipped with a warning
engine.revert(fix.name)
drifted = dataclasses.replace(fix, patches=(dataclasses.replace(
    fix.patches[0], anchors={{v: "0" * 16 for v in fix.patches[0].anchors}}),) + fix.patches[1:])
log = logging.getLogger("vllm.rocm_enable")
[res] = engine.apply_stacks([Stack("vllm", "vllm", (drifted,))], active_caps(),
                            read_selection({{fix.name}}), log)
result["drifted"] = [res.status, res.reason, fix.name in engine.applied_names()]
# ROCM_ENABLE_FUSED_SHARED_EXPERT=0 as the plugin reads it at load (read_selection)
[res] = engine.apply_stacks([Stack("vllm", "vllm", (fix,))], active_caps(),
                            read_selection({{fix.name}}, {{"ROCM_ENABLE_FUSED_SHARED_EXPERT": "0"}}), log)
result["toggled_off"] = [res.status, res.reason, fix.name in engine.applied_names()]

vc1 = fse.model_context("fp8_block128")
unfused, loaded = fse.build_and_load(vc1, 1, fse.renamed(ckpt, 1))
result["unfused"] = {{**fse.describe(unfused), "loaded": loaded}}
unfused_out = run("unfused", unfused, vc1, 0, ckpt, "block", {tokens!r})
for m in {tokens!r}:
    result[f"fused_vs_unfused/M={{m}}"] = lib.rel_err(fused_out[m], unfused_out[m].double())
result["unfused_launches"] = fse.decode_launches(unfused, vc1, 256)
"""


def test_fused_shared_expert_block(vllm_under_test):
    # The kernels' sorted routing and the compressed-tensors forward do not depend on the vLLM
    # version: the first version under test runs them, the others decode and the decisions.
    first = vllm_under_test == vllm_versions_under_test()[0]
    tokens = TOKENS if first else TOKENS[:1]
    r = run_python(BODY.format(lib_dir=LIB_DIR, tokens=tokens, ct_forward=first), arch="gfx1151",
                   vllm=vllm_under_test, env=ENV, timeout=900)
    out, log = r["result"], r["log"]
    E = 64
    routed = sorted(f"experts.routed_experts.{p}" for p in (
        "w13_weight", "w13_weight_scale_inv", "w2_weight", "w2_weight_scale_inv"))
    assert out["fused"] == {
        "fused": True, "shared_expert_module": "NoneType", "router": "RocmSharedExpertRouter",
        "combined_gate": True, "local_experts": E + 1, "w13_experts": E + 1,
        "experts_class": "RocmW8A16Fp8Experts",
        # the shared expert's tensors went into the routed experts' parameters: no other owner
        "loaded": sorted([f"layers.0.mlp.{p}" for p in routed]
                         + ["layers.0.mlp.gate.weight", "layers.0.mlp.shared_expert_gate.weight"]),
        "slot_E_is_shared_checkpoint": True}, out["fused"]
    assert out["unfused"]["fused"] is False and out["unfused"]["router"] == "FusedTopKRouter"
    assert out["unfused"]["shared_expert_module"] == "Qwen2MoeMLP"
    assert out["unfused"]["local_experts"] == E and not out["unfused"]["combined_gate"]
    assert "layers.1.mlp.shared_expert.gate_up_proj.weight" in out["unfused"]["loaded"]
    # compressed-tensors: vLLM's is_shared_expert_quant_fse_compatible has no branch for it
    assert out["ct_channel"]["fused"] is False
    assert out["ct_channel"]["experts_class"] == "RocmW8A16Fp8Experts"
    assert "the shared expert of model.layers.2.mlp (and of every layer like it) stays separate" in log
    status, reason, applied = out["drifted"]
    assert status == "skipped" and "anchor mismatch" in reason and "resolve_layer_fused_shared_expert" in reason
    assert not applied and "rocm-enable: skipped fix fused-shared-expert" in log
    assert out["toggled_off"] == ["disabled", "ROCM_ENABLE_FUSED_SHARED_EXPERT=0", False]

    errors = {k: v for k, v in out.items() if "/M=" in k and not k.startswith("fused_vs")}
    assert set(errors) == ({f"{n}/M={m}" for n in ("fused", "unfused") for m in tokens}
                           | ({"ct_channel/M=1"} if first else set()))
    assert all(e < BOUND for e in errors.values()), errors  # NaN fails too
    between = {k: v for k, v in out.items() if k.startswith("fused_vs")}
    assert all(e < BOUND_FUSED_VS_UNFUSED for e in between.values()), between

    # M = 1, per MoE block (eager: no inductor fusion). Fused: the combined [E + 1, H] gate GEMM,
    # the routing, the two GEMVs; the copy is the runner's, in both.
    fused, unfused = out["fused_launches"], out["unfused_launches"]
    assert fused == {"triton": ["moe_topk_routing_kernel", "w8a16_gemv_kernel", "w8a16_gemv_kernel"],
                     "torch_ops": ["aten.mm.default", "aten.copy_.default"],
                     "custom_ops": ["rocm_enable.w8a16_fused_experts.default"]}, fused
    # Unfused: the shared expert's gate_up and down W8A16 GEMVs, its SiLU and mul, the router GEMM,
    # the shared-expert gate GEMM, sigmoid, mul, add, besides the same routing and experts.
    assert sorted(unfused["triton"]) == sorted(fused["triton"] + ["w8a16_gemv_kernel"] * 2), unfused
    assert sorted(unfused["torch_ops"]) == sorted([
        "aten.mm.default", "aten.silu.default", "aten.mul.Tensor", "aten.mm.default",
        "aten.sigmoid.default", "aten.mul.Tensor", "aten.copy_.default", "aten.add.Tensor"]), unfused
    fused_n = len(fused["triton"]) + len(fused["torch_ops"])
    unfused_n = len(unfused["triton"]) + len(unfused["torch_ops"])
    assert (fused_n, unfused_n) == (5, 13)


@pytest.mark.parametrize("raw,off", [("0", True), ("off", True), ("1", False), ("", False)])
def test_toggle_values(raw, off):
    selection = read_selection({"fused-shared-expert"}, {"ROCM_ENABLE_FUSED_SHARED_EXPERT": raw})
    assert (selection.why_not_selected("fused-shared-expert") is not None) == off


def test_malformed_toggle_names_the_fix():
    with pytest.raises(ToggleError, match="ROCM_ENABLE_FUSED_SHARED_EXPERT='maybe' is not a "
                                          "boolean; use ROCM_ENABLE_FUSED_SHARED_EXPERT=1 or"):
        read_selection({"fused-shared-expert"}, {"ROCM_ENABLE_FUSED_SHARED_EXPERT": "maybe"})
