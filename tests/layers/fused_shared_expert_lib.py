"""A real Qwen3NextSparseMoeBlock (vLLM's, from the scaled-down Qwen3-Next FP8 config) with random
FP8 checkpoint tensors loaded through Qwen3NextModel.load_weights (vLLM's maybe_fuse_shared_experts
mapping and AutoWeightsLoader), run on the simulated arch, measured against a float64 reference
and counted in launches. Imported INSIDE a simulated process (after rocm_enable.sim.activate,
TRITON_INTERPRET=1), beside fp8_layer_lib.

What is not vLLM's here: the block sits in a stand-in for Qwen3NextModel (its layers list, config
and FSE flag, computed by vLLM's is_model_fused_shared_expert_compatible) so that vLLM's model
load_weights runs on it; the MoE runner's custom-op entry (which finds the layer through the
engine's forward context) calls the runner's _forward_impl directly; vLLM's compiled extensions
(simulated) are given a file that carries only CDNA code objects, so the code-object records
route them as on a vLLM build without gfx11 code objects.
"""
from __future__ import annotations

import atexit
import json
import os
import pathlib
import shutil
import sys
import tempfile

import torch

import fp8_layer_lib as lib

HERE = os.path.dirname(os.path.abspath(__file__))
EXTENSIONS = ("vllm._C", "vllm._C_stable_libtorch", "vllm._rocm_C", "vllm._moe_C",
              "vllm._moe_C_stable_libtorch")
# Enough experts that decode's E + 1 experts at top-k + 1 stay on the naive (GEMV) routing of
# the real models (257 / 513 experts, 9 / 11 pairs), and 5 tokens take the sorted one.
NUM_EXPERTS = 64


def extensions_without_code_objects() -> None:
    for folder in ("gates", ""):  # the gate test's ELF builders (it imports sim_harness)
        sys.path.insert(0, os.path.join(HERE, os.pardir, folder))
    from test_hip_code_objects import bundle, elf_with_fatbin, write

    folder = tempfile.mkdtemp(prefix="fse_ext_")
    atexit.register(shutil.rmtree, folder, True)
    path = write(pathlib.Path(folder), "ext.so", elf_with_fatbin(bundle(["gfx90a", "gfx942"])))
    for name in EXTENSIONS:
        sys.modules[name].__file__ = path
    # SiluAndMul (the unfused shared expert) binds torch.ops._C.silu_and_mul at construction; the
    # simulation registers no _C op. silu-and-mul-code-object must route around it: it raises.
    if not hasattr(torch.ops._C, "silu_and_mul"):
        ops = torch.library.Library("_C", "FRAGMENT")
        ops.define("silu_and_mul(Tensor(a!) result, Tensor input) -> ()")

        def ran(result, input):
            raise AssertionError("the HIP silu_and_mul ran, which has no gfx11 code object here")

        ops.impl("silu_and_mul", ran, "CompositeExplicitAutograd")
        extensions_without_code_objects.ops = ops  # keep the registration alive


def model_context(variant: str):
    """VllmConfig of the tiny Qwen3-Next with NUM_EXPERTS experts, bf16, made current."""
    from vllm.config import ModelConfig, VllmConfig, set_current_vllm_config

    cfg = {k: v for k, v in lib.tiny_config().items() if not k.startswith("_")}
    cfg["num_experts"] = NUM_EXPERTS
    cfg["quantization_config"] = lib.tiny_config()["_quantization_variants"][variant]
    path = tempfile.mkdtemp(prefix=f"fse_{variant}_")
    atexit.register(shutil.rmtree, path, True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    vc = VllmConfig(model_config=ModelConfig(model=path, dtype=torch.bfloat16,
                                             skip_tokenizer_init=True))
    ctx = set_current_vllm_config(vc)
    ctx.__enter__()
    lib._OPEN_CONTEXTS.append(ctx)
    return vc


def checkpoint(scheme: str, layer: int, seed: int) -> dict[str, torch.Tensor]:
    """Checkpoint tensors of one MoE block, named as in the Qwen3-Next checkpoint."""
    cfg = lib.tiny_config()
    H, I = cfg["hidden_size"], cfg["moe_intermediate_size"]
    gen = torch.Generator().manual_seed(seed)
    sn, pre = lib.SCALE_NAME[scheme], f"layers.{layer}.mlp"
    ckpt = {}
    for owner in [f"experts.{e}" for e in range(NUM_EXPERTS)] + ["shared_expert"]:
        for proj, (n, k) in (("gate_proj", (I, H)), ("up_proj", (I, H)), ("down_proj", (H, I))):
            ckpt[f"{pre}.{owner}.{proj}.weight"] = lib.rand_fp8(n, k, gen=gen)
            ckpt[f"{pre}.{owner}.{proj}.{sn}"] = lib.ckpt_scale(scheme, n, k, gen)
    # the router and the shared-expert gate stay BF16 in the FP8 checkpoints
    ckpt[f"{pre}.gate.weight"] = (torch.randn(NUM_EXPERTS, H, generator=gen) * 0.06).bfloat16()
    ckpt[f"{pre}.shared_expert_gate.weight"] = (torch.randn(1, H, generator=gen) * 0.06).bfloat16()
    return ckpt


def renamed(ckpt: dict, layer: int) -> dict:
    """The same tensors for another decoder layer."""
    return {f"layers.{layer}." + k.split(".", 2)[2]: v for k, v in ckpt.items()}


def build_and_load(vc, layer: int, ckpt: dict):
    """vLLM's block at model.layers.<layer>.mlp, NaN-poisoned, then loaded by
    Qwen3NextModel.load_weights and processed as the model loader does."""
    from vllm.model_executor.model_loader.utils import process_weights_after_loading
    from vllm.model_executor.models.qwen3_next import Qwen3NextModel, Qwen3NextSparseMoeBlock

    class DecoderLayer(torch.nn.Module):
        def __init__(self, mlp):
            super().__init__()
            self.mlp = mlp

    class Model(torch.nn.Module):  # what Qwen3NextModel.load_weights reads of its model
        hf_to_vllm_mapper = getattr(Qwen3NextModel, "hf_to_vllm_mapper", None)

        def __init__(self, blocks):
            super().__init__()
            self.layers = torch.nn.ModuleList(blocks)
            self.config = vc.model_config.hf_text_config
            # what Qwen3NextModel.__init__ computes for load_weights: one flag up to 0.33, the
            # fused layers from 0.34 (per-layer FSE)
            if "fused_shared_expert_layers" in Qwen3NextModel.load_weights.__code__.co_names:
                from vllm.model_executor.models.utils import get_fused_shared_expert_layers

                self.fused_shared_expert_layers = get_fused_shared_expert_layers(
                    self, Qwen3NextSparseMoeBlock)
            else:
                from vllm.model_executor.layers.fused_moe.utils import (
                    is_model_fused_shared_expert_compatible,
                )

                self.is_fused_shared_expert_enabled = is_model_fused_shared_expert_compatible(
                    self.layers, Qwen3NextSparseMoeBlock, "mlp")

    with lib.loading(vc):
        block = Qwen3NextSparseMoeBlock(vc, prefix=f"model.layers.{layer}.mlp")
        lib.poison_params(block)
        holder = Model([torch.nn.Identity() for _ in range(layer)] + [DecoderLayer(block)])
        loaded = Qwen3NextModel.load_weights(holder, list(ckpt.items()))
        process_weights_after_loading(block, vc.model_config, torch.device("cpu"))
    runner = block.experts
    runner._forward_entry = lambda h, logits, shared_in, ids, name, unpadded: runner._forward_impl(
        h, logits, shared_in, ids)
    return block, sorted(loaded)


def describe(block) -> dict:
    """What vLLM built (the experts class exists once the weights are processed)."""
    runner = block.experts
    experts = runner.routed_experts
    kernel = getattr(experts.quant_method, "moe_kernel", None)
    return {"fused": block.is_fused_shared_expert_enabled,
            "shared_expert_module": type(block.shared_expert).__name__,
            "router": type(runner.router).__name__,
            "combined_gate": runner._fse_fuse_gate,
            "local_experts": experts.local_num_experts,
            "w13_experts": experts.w13_weight.shape[0],
            "experts_class": kernel and type(kernel.fused_experts).__name__}


def slot_matches_shared_checkpoint(block, ckpt: dict, layer: int) -> bool:
    """Expert slot E holds the shared expert's checkpoint bytes ([gate; up] and down)."""
    e, pre = NUM_EXPERTS, f"layers.{layer}.mlp.shared_expert"
    experts = block.experts.routed_experts
    w13 = torch.cat([ckpt[f"{pre}.gate_proj.weight"], ckpt[f"{pre}.up_proj.weight"]])
    return (torch.equal(experts.w13_weight[e].view(torch.uint8), w13.view(torch.uint8))
            and torch.equal(experts.w2_weight[e].view(torch.uint8),
                            ckpt[f"{pre}.down_proj.weight"].view(torch.uint8)))


def forward(block, vc, x):
    from vllm.forward_context import set_forward_context

    with set_forward_context(None, vc, num_tokens=x.shape[0]):
        return block(x)


def _mlp(x, ckpt, pre, scheme):
    sn = lib.SCALE_NAME[scheme]
    w1, w3, w2 = (lib.dequant(ckpt[f"{pre}.{p}.weight"], ckpt[f"{pre}.{p}.{sn}"], scheme)
                  for p in ("gate_proj", "up_proj", "down_proj"))
    return (torch.nn.functional.silu(x @ w1.T) * (x @ w3.T)) @ w2.T


def reference(x, ckpt, scheme: str, layer: int) -> torch.Tensor:
    """float64: sum over the top-k (softmax over the routed logits, renormalised) of w * expert(x),
    plus sigmoid(shared gate logit) * shared_expert(x). The gate logits are torch's bf16 GEMM, as
    both vLLM paths compute them (separately or as one [E + 1, H] GEMM), so near-ties choose as
    the model does; the rest is float64."""
    pre = f"layers.{layer}.mlp"
    k = lib.tiny_config()["num_experts_per_tok"]
    xd = x.double()
    logits = torch.nn.functional.linear(x, ckpt[f"{pre}.gate.weight"]).double()
    p = torch.softmax(logits, dim=-1)
    # bf16 logits tie often: equal logits go to the lower expert id (vLLM's routing rule)
    ids = torch.sort(logits, dim=-1, descending=True, stable=True).indices[:, :k]
    w = torch.gather(p, 1, ids)
    w = w / w.sum(-1, keepdim=True)
    gate = torch.sigmoid(torch.nn.functional.linear(x, ckpt[f"{pre}.shared_expert_gate.weight"]).double())
    out = gate * _mlp(xd, ckpt, f"{pre}.shared_expert", scheme)
    for m in range(x.shape[0]):
        for j in range(k):
            out[m] += w[m, j] * _mlp(xd[m:m + 1], ckpt, f"{pre}.experts.{int(ids[m, j])}", scheme)[0]
    return out


def decode_launches(block, vc, hidden: int) -> dict:
    """Device launches of one block forward at M=1: every Triton launch (recorded, not run) and
    every aten op that launches device work, under tests/ops/graph_guard's recorder, which also
    raises on any host sync. Custom ops (rocm_enable::w8a16_*) are containers: what they launch
    is counted as their Triton kernels."""
    sys.path.insert(0, os.path.join(HERE, os.pardir, "ops"))
    from graph_guard import NO_LAUNCH, Launches, RefuseHostSync, record_triton_launches

    x = torch.randn(1, hidden).bfloat16()
    launches, guard = Launches(), RefuseHostSync()
    from vllm.forward_context import set_forward_context

    with set_forward_context(None, vc, num_tokens=1):
        with record_triton_launches(launches, run=False), guard:
            block(x)
    torch_ops = [str(op) for op in guard.ops  # empty_like allocates, launches nothing
                 if op not in NO_LAUNCH and not op.is_view and op.namespace == "aten"
                 and op != torch.ops.aten.empty_like.default]
    containers = sorted({str(op) for op in guard.ops if op.namespace not in ("aten", "prim")})
    return {"triton": [name for name, _ in launches.triton], "torch_ops": torch_ops,
            "custom_ops": containers}
