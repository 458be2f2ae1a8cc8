"""Builds vLLM's own FP8 layers from a scaled-down Qwen3-Next config, loads random FP8
checkpoint tensors through vLLM's weight loaders, runs them, and measures them against float64
references computed from the checkpoint tensors. Imported INSIDE a simulated process
(sim_harness.run_python, after rocm_enable.sim.activate and with TRITON_INTERPRET=1); nothing
here imports vLLM at module level.

What is not vLLM's or ours here, and why (everything else is vLLM's real code):
  - top-k routing is computed here (softmax, top-k, renormalize): vLLM's routing op
    (topk_softmax) is a compiled HIP op; we then call RoutedExperts.forward_modular, the entry
    MoERunner calls after routing, so vLLM's modular kernel (prepare, experts, finalize) runs.
  - two stand-ins for what a ROCm host has and this CPU host lacks (an accelerator allocator's
    empty_cache, a stream-capture query), and a CPU stand-in for one compiled vLLM op that the
    simulation stubs out (static_scaled_fp8_quant, per-tensor requantization): _cpu_host_shims.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import tempfile
from importlib import resources

import torch

TINY_CONFIG = "qwen3_next_tiny_fp8.json"
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
E4M3_MAX = 448.0


# ----------------------------------------------------------------------------- setup

def tiny_config() -> dict:
    return json.loads(resources.files("rocm_enable.models").joinpath(TINY_CONFIG).read_text())


_OPEN_CONTEXTS: list = []


def model_dir(variant: str) -> str:
    """A folder holding the tiny config.json with the variant's quantization_config, as a
    downloaded checkpoint folder holds it (no weights: they are made up per test)."""
    cfg = {k: v for k, v in tiny_config().items() if not k.startswith("_")}
    cfg["quantization_config"] = tiny_config()["_quantization_variants"][variant]
    path = tempfile.mkdtemp(prefix=f"qwen3_next_tiny_{variant}_")
    atexit.register(shutil.rmtree, path, True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    return path


def model_context(variant: str, dtype: torch.dtype):
    """vLLM's ModelConfig/VllmConfig for the tiny checkpoint at `dtype`, made current. The
    quantization config is the one vLLM derives from config.json (VllmConfig.quant_config),
    and model_config.dtype is what vLLM's FP8 methods read as the activation dtype."""
    from vllm.config import ModelConfig, VllmConfig, set_current_vllm_config

    mc = ModelConfig(model=model_dir(variant), dtype=dtype, skip_tokenizer_init=True)
    vc = VllmConfig(model_config=mc)
    ctx = set_current_vllm_config(vc)
    ctx.__enter__()
    _OPEN_CONTEXTS.append(ctx)  # a dropped generator context would exit (restore) on collection
    return vc


def loading(vllm_config):
    """The scope in which vLLM's model loader creates the model, loads its weights and runs
    process_weights_after_loading (BaseModelLoader.load_model): the default dtype is the model
    dtype, which FP8 methods also read as their output dtype."""
    from vllm.utils.torch_utils import set_default_torch_dtype

    return set_default_torch_dtype(vllm_config.model_config.dtype)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _cpu_host_shims() -> None:
    """Stand-ins for what a ROCm host provides and this CPU-only simulation lacks."""
    # No accelerator: vLLM's workspace manager and ROCm FP8 row padding call empty_cache().
    if not torch.accelerator.is_available():
        torch.accelerator.empty_cache = lambda: None
    # CPU torch has no CUDA/HIP stream to capture on (the experts ask before their NaN scan).
    if not torch.cuda.is_available():
        torch.cuda.is_current_stream_capturing = lambda: False
    # vLLM's per-tensor FP8 path requantizes fused shards to their max scale with its compiled
    # static_scaled_fp8_quant (vllm._C, a stub in the simulation): give it the op's semantics.
    if not hasattr(torch.ops._C, "static_scaled_fp8_quant"):
        lib = torch.library.Library("_C", "FRAGMENT")
        lib.define("static_scaled_fp8_quant(Tensor(a!) result, Tensor input, Tensor scale, "
                   "int[]? group_shape=None) -> ()")

        def static_scaled_fp8_quant(result, input, scale, group_shape=None):
            q = (input.float() / scale.float()).clamp(-E4M3_MAX, E4M3_MAX)
            result.copy_(q.to(result.dtype))

        lib.impl("static_scaled_fp8_quant", static_scaled_fp8_quant, "CompositeExplicitAutograd")
        _cpu_host_shims.lib = lib  # keep the registration alive


def setup_vllm(load_plugins: bool = True):
    """Plugin, TP=1 on gloo (CPU), the workspace vLLM's modular MoE kernel allocates from."""
    import vllm.plugins
    from vllm.config import VllmConfig, set_current_vllm_config
    from vllm.distributed import init_distributed_environment, initialize_model_parallel
    from vllm.v1.worker.workspace import init_workspace_manager

    _cpu_host_shims()
    if load_plugins:
        vllm.plugins.load_general_plugins()
    with set_current_vllm_config(VllmConfig()):
        init_distributed_environment(world_size=1, rank=0, local_rank=0,
                                     distributed_init_method=f"tcp://127.0.0.1:{_free_port()}",
                                     backend="gloo")
        initialize_model_parallel(1)
    init_workspace_manager(torch.device("cpu"))


# ----------------------------------------------------------------------------- checkpoint data

def rand_fp8(*shape, gen, min_exponent: int = 0) -> torch.Tensor:
    """Random e4m3fn checkpoint bytes: every finite code (subnormals too), never NaN, never 0.
    min_exponent > 0 keeps only normal codes with exponent field >= min_exponent."""
    b = torch.randint(0, 256, shape, dtype=torch.int32, generator=gen)
    b[(b & 0x7F) == 0x7F] -= 1
    b[(b & 0x7F) == 0] += 0x38  # +-1.0 instead of +-0
    if min_exponent:
        exp = (b >> 3) & 0xF
        b = torch.where(exp < min_exponent, b | (min_exponent << 3), b)
    return b.to(torch.uint8).view(torch.float8_e4m3fn)


def rand_scale(*shape, gen) -> torch.Tensor:
    """Positive fp32 scales spread over ~10x (a transposed or misindexed scale shows)."""
    return torch.rand(shape, generator=gen) * 4e-3 + 5e-4


def poison_params(module: torch.nn.Module) -> None:
    """NaN in every parameter before loading: an element the loaders leave unwritten then fails
    the experts'/kernels' NaN scan (weights) or the scale folding (scales) loudly."""
    for p in module.parameters():
        if p.dtype == torch.float8_e4m3fn:
            p.data.view(torch.uint8).fill_(0x7F)
        elif p.is_floating_point():
            p.data.fill_(float("nan"))


def dequant(w: torch.Tensor, s: torch.Tensor, scheme: str) -> torch.Tensor:
    """float64 value of checkpoint tensor w with its checkpoint-shaped scale s."""
    wd = w.to(torch.float64)
    sd = s.to(torch.float64)
    if scheme == "block":
        sd = sd.repeat_interleave(128, 0)[: w.shape[0]].repeat_interleave(128, 1)[:, : w.shape[1]]
        return wd * sd
    if scheme == "channel":
        return wd * sd.reshape(-1, 1)
    return wd * sd.reshape(())


def ckpt_scale(scheme: str, n: int, k: int, gen) -> torch.Tensor:
    if scheme == "block":
        return rand_scale(-(-n // 128), -(-k // 128), gen=gen)  # weight_scale_inv [N/128, K/128]
    if scheme == "channel":
        return rand_scale(n, 1, gen=gen)                         # weight_scale [N, 1]
    return rand_scale(1, gen=gen).reshape(())                   # weight_scale, a scalar


SCALE_NAME = {"block": "weight_scale_inv", "channel": "weight_scale", "tensor": "weight_scale"}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    if torch.isnan(out).any():
        return float("nan")  # an output element nobody wrote (the buffer was NaN-poisoned)
    return ((out.double() - ref).norm() / ref.norm()).item()


# ----------------------------------------------------------------------------- MoE

def build_moe(vllm_config, layer_idx: int = 0):
    """The routed experts of a Qwen3NextSparseMoeBlock, built as qwen3_next.py builds them
    (FusedMoEFactory; params_dtype from the default dtype, see loading()), minus the router gate
    and the shared expert (separate linears)."""
    from vllm.model_executor.layers.fused_moe import FusedMoEFactory

    cfg = tiny_config()
    return FusedMoEFactory(
        num_experts=cfg["num_experts"], top_k=cfg["num_experts_per_tok"],
        hidden_size=cfg["hidden_size"], intermediate_size=cfg["moe_intermediate_size"],
        renormalize=cfg["norm_topk_prob"], quant_config=vllm_config.quant_config,
        prefix=f"model.layers.{layer_idx}.mlp.experts")


def moe_checkpoint(scheme: str, gen) -> dict[str, torch.Tensor]:
    """Per-expert checkpoint tensors, named as in the Qwen3-Next checkpoint below
    `model.layers.N.mlp.experts.` (what AutoWeightsLoader hands the MoE runner)."""
    cfg = tiny_config()
    E, H, I = cfg["num_experts"], cfg["hidden_size"], cfg["moe_intermediate_size"]
    ckpt = {}
    for e in range(E):
        for proj, (n, k) in (("gate_proj", (I, H)), ("up_proj", (I, H)), ("down_proj", (H, I))):
            ckpt[f"{e}.{proj}.weight"] = rand_fp8(n, k, gen=gen)
            ckpt[f"{e}.{proj}.{SCALE_NAME[scheme]}"] = ckpt_scale(scheme, n, k, gen)
    return ckpt


def route(logits: torch.Tensor, top_k: int, renormalize: bool):
    """Softmax top-k routing (vLLM's Renormalize routing), float32 weights, int32 ids."""
    p = torch.softmax(logits.float(), dim=-1)
    w, ids = torch.topk(p, top_k, dim=-1)
    if renormalize:
        w = w / w.sum(dim=-1, keepdim=True)
    return w, ids.to(torch.int32)


def moe_reference(x, ckpt, scheme, topk_weights, topk_ids) -> torch.Tensor:
    """sum_k w_k * W2_e (silu(W1_e x) * (W3_e x)), float64, from the checkpoint tensors."""
    sn = SCALE_NAME[scheme]
    W = {}
    xd = x.double()
    out = torch.zeros(x.shape[0], x.shape[1], dtype=torch.float64)
    for m in range(x.shape[0]):
        for j in range(topk_ids.shape[1]):
            e = int(topk_ids[m, j])
            if e not in W:
                W[e] = [dequant(ckpt[f"{e}.{p}.weight"], ckpt[f"{e}.{p}.{sn}"], scheme)
                        for p in ("gate_proj", "up_proj", "down_proj")]
            w1, w3, w2 = W[e]
            h = torch.nn.functional.silu(w1 @ xd[m]) * (w3 @ xd[m])
            out[m] += float(topk_weights[m, j]) * (w2 @ h)
    return out


def run_moe(variant: str, scheme: str, dtype_names=("bfloat16", "float16"), tokens=(1, 3, 17),
            seed: int = 0) -> dict:
    """Build, load, process, check the selection and the handed-over weights, run, measure."""
    res: dict = {"cases": {}}
    cfg = tiny_config()
    E, K = cfg["num_experts"], cfg["hidden_size"]
    for layer_idx, dname in enumerate(dtype_names):  # one decoder layer per dtype (names unique)
        dtype = DTYPES[dname]
        gen = torch.Generator().manual_seed(seed)
        vllm_config = model_context(variant, dtype)
        with loading(vllm_config):
            runner = build_moe(vllm_config, layer_idx)
            experts_layer = runner.routed_experts
            qm = experts_layer.quant_method
            poison_params(experts_layer)
            ckpt = moe_checkpoint(scheme, gen)
            loaded = sorted(set(runner.load_weights(list(ckpt.items()))))
            qm.process_weights_after_loading(experts_layer)
        kernel = qm.moe_kernel
        experts = kernel.fused_experts
        info = {
            "quant_method": type(qm).__name__,
            "kernel": type(kernel).__name__,
            "prepare_finalize": type(kernel.prepare_finalize).__name__,
            "experts": type(experts).__name__,
            "loaded": loaded,
            "w13_dtype": str(experts_layer.w13_weight.dtype),
        }
        # The weights vLLM hands over are the checkpoint's bytes in w13 = [w1; w3] order, and
        # the scales our experts read are the checkpoint's, folded by 2^8 exactly once.
        sn = SCALE_NAME[scheme]
        w13 = torch.stack([torch.cat([ckpt[f"{e}.gate_proj.weight"], ckpt[f"{e}.up_proj.weight"]])
                           for e in range(E)])
        w2 = torch.stack([ckpt[f"{e}.down_proj.weight"] for e in range(E)])
        s13 = torch.stack([torch.cat([ckpt[f"{e}.gate_proj.{sn}"], ckpt[f"{e}.up_proj.{sn}"]])
                           for e in range(E)])
        s2 = torch.stack([ckpt[f"{e}.down_proj.{sn}"] for e in range(E)])
        info["w13_bytes_equal"] = torch.equal(experts_layer.w13_weight.view(torch.uint8),
                                              w13.view(torch.uint8))
        info["w2_bytes_equal"] = torch.equal(experts_layer.w2_weight.view(torch.uint8),
                                             w2.view(torch.uint8))
        info["w13_scale_folded_once"] = torch.equal(experts._w13_scale.reshape(s13.shape),
                                                    s13 * 256)
        info["w2_scale_folded_once"] = torch.equal(experts._w2_scale.reshape(s2.shape), s2 * 256)
        # Poison the output buffer vLLM's modular kernel hands the experts, record what arrives.
        calls = []
        real_apply = experts.apply

        def poisoned_apply(*args, **kwargs):
            names = ("output", "hidden_states", "w1", "w2", "topk_weights", "topk_ids")
            a = dict(zip(names, args), **kwargs)
            a["output"].fill_(float("nan"))
            calls.append({"hidden_dtype": str(a["hidden_states"].dtype),
                          "w1_is_layer_weight": a["w1"] is experts_layer.w13_weight
                          or a["w1"].data_ptr() == experts_layer.w13_weight.data_ptr(),
                          "a1q_scale": None if a.get("a1q_scale") is None else "set"})
            return real_apply(*args, **kwargs)

        experts.apply = poisoned_apply
        for M in tokens:
            x = torch.randn(M, K, generator=gen).to(dtype)
            logits = torch.randn(M, E, generator=gen)
            tw, ti = route(logits, cfg["num_experts_per_tok"], cfg["norm_topk_prob"])
            out = experts_layer.forward_modular(x, tw, ti)
            ref = moe_reference(x, ckpt, scheme, tw, ti)
            res["cases"][f"{dname}/M={M}"] = {"rel_err": rel_err(out, ref),
                                             "out_dtype": str(out.dtype),
                                             "shape": list(out.shape)}
        info["experts_calls"] = calls
        res[dname] = info
    return res


# ----------------------------------------------------------------------------- dense linears

def build_linears(vllm_config, layer_idx: int = 3):
    """The FP8 linears of a Qwen3-Next full-attention decoder layer, as qwen3_next.py builds
    them (params_dtype from the default dtype, see loading()): qkv_proj (QKVParallelLinear,
    gated Q), o_proj (RowParallelLinear) and the shared expert's gate_up_proj
    (MergedColumnParallelLinear)."""
    from vllm.model_executor.layers.linear import (
        MergedColumnParallelLinear,
        QKVParallelLinear,
        RowParallelLinear,
    )

    cfg = tiny_config()
    qc = vllm_config.quant_config
    H, hd = cfg["hidden_size"], cfg["head_dim"]
    nq, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    pre = f"model.layers.{layer_idx}"
    return {
        "qkv_proj": QKVParallelLinear(H, hd, nq * (1 + cfg["attn_output_gate"]), nkv, bias=False,
                                      quant_config=qc, prefix=f"{pre}.self_attn.qkv_proj"),
        "o_proj": RowParallelLinear(nq * hd, H, bias=False, quant_config=qc,
                                    prefix=f"{pre}.self_attn.o_proj"),
        "gate_up_proj": MergedColumnParallelLinear(
            H, [cfg["shared_expert_intermediate_size"]] * 2, bias=False, quant_config=qc,
            prefix=f"{pre}.mlp.shared_expert.gate_up_proj"),
    }


def linear_kernel(layer):
    """The kernel object vLLM's FP8 linear method / compressed-tensors scheme chose."""
    owner = getattr(layer, "scheme", None) or layer.quant_method
    for attr in ("fp8_linear", "linear_kernel"):  # Fp8LinearMethod, CT W8A8 / CT W8A16 FP8
        if getattr(owner, attr, None) is not None:
            return getattr(owner, attr)
    raise AttributeError(f"{type(owner).__name__} holds no linear kernel")


def linear_shards(name: str) -> list[tuple[str, object, int]]:
    """(checkpoint projection, vLLM shard id, rows) in the fused layer's row order."""
    cfg = tiny_config()
    hd, nq, nkv = cfg["head_dim"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    if name == "qkv_proj":
        return [("q_proj", "q", nq * (1 + cfg["attn_output_gate"]) * hd),
                ("k_proj", "k", nkv * hd), ("v_proj", "v", nkv * hd)]
    if name == "gate_up_proj":
        I = cfg["shared_expert_intermediate_size"]
        return [("gate_proj", 0, I), ("up_proj", 1, I)]
    return [("o_proj", None, cfg["hidden_size"])]


_DENSE_CALLS: list = []


def _poison_dense_kernel_output() -> list:
    """Wrap the dense W8A16 kernel behind the custom op our linear kernels call
    (torch.ops.rocm_enable.w8a16_linear, once per process): each call gets a NaN-filled output
    buffer and is recorded with what vLLM handed over."""
    from rocm_enable.ops import w8a16_ops

    real_linear = w8a16_ops.linear_w8a16
    if getattr(real_linear, "_poisoned", False):
        return _DENSE_CALLS

    def poisoned_linear(x, weight, weight_scale, **kwargs):
        out = torch.full((*x.shape[:-1], weight.shape[0]), float("nan"), dtype=x.dtype)
        _DENSE_CALLS.append({"x_dtype": str(x.dtype), "weight_shape": list(weight.shape),
                             "weight_stride": list(weight.stride()),
                             "weight_dtype": str(weight.dtype)})
        return real_linear(x, weight, weight_scale, out=out, **kwargs)

    poisoned_linear._poisoned = True
    w8a16_ops.linear_w8a16 = poisoned_linear
    return _DENSE_CALLS


def load_linear(layer, lname: str, scheme: str, gen):
    """Random checkpoint shards of one linear, loaded as the model loader does: stacked shards
    go to the fused parameter with their shard id (qwen3_next's packed modules: q/k/v, 0/1),
    unstacked ones without. Returns (checkpoint weights, checkpoint scales) in row order."""
    k = layer.input_size
    ckpt_w, ckpt_s = [], []
    for _, shard_id, n in linear_shards(lname):
        w = rand_fp8(n, k, gen=gen, min_exponent=3 if scheme == "tensor" else 0)
        s = ckpt_scale(scheme, n, k, gen)
        if scheme == "tensor" and ckpt_s:
            # Per-tensor shards of one fused layer: vLLM requantizes every shard to the max
            # scale, an FP8 rounding. Power-of-two scale ratios and normal codes
            # (min_exponent=3) make that requantization exact, so the float64 reference from
            # the checkpoint stays exact and the bound stays tight.
            s = ckpt_s[0] / 2 ** len(ckpt_s)
        ckpt_w.append(w)
        ckpt_s.append(s)
        for pname, tensor in (("weight", w), (SCALE_NAME[scheme], s)):
            param = getattr(layer, pname)
            if shard_id is None:
                param.weight_loader(param, tensor)
            else:
                param.weight_loader(param, tensor, shard_id)
    return ckpt_w, ckpt_s


def run_linears(variant: str, scheme: str, dtype_names=("bfloat16", "float16"),
                tokens=(1, 3, 17), seed: int = 1) -> dict:
    calls = _poison_dense_kernel_output()
    res: dict = {"cases": {}, "layers": {}}
    for dname in dtype_names:
        dtype = DTYPES[dname]
        gen = torch.Generator().manual_seed(seed)
        vllm_config = model_context(variant, dtype)
        with loading(vllm_config):
            layers = build_linears(vllm_config)
            ckpt = {}
            for lname, layer in layers.items():
                poison_params(layer)
                ckpt[lname] = load_linear(layer, lname, scheme, gen)
                layer.quant_method.process_weights_after_loading(layer)
        for lname, layer in layers.items():
            ckpt_w, ckpt_s = ckpt[lname]
            scheme_obj = getattr(layer, "scheme", None)  # compressed-tensors
            W = torch.cat([dequant(w, s, scheme) for w, s in zip(ckpt_w, ckpt_s)])
            folded = getattr(layer, SCALE_NAME[scheme])
            if scheme == "tensor":
                expect = max(ckpt_s, key=float).reshape(()) * 256
            else:
                expect = torch.cat(ckpt_s) * 256
            info = {"quant_method": type(layer.quant_method).__name__,
                    "scheme": type(scheme_obj).__name__ if scheme_obj is not None else None,
                    "kernel": type(linear_kernel(layer)).__name__,
                    "scale_folded_once": torch.equal(folded.reshape(expect.shape), expect)}
            # What vLLM hands over: block keeps (N, K); per-channel/per-tensor become (K, N).
            handed = layer.weight if scheme == "block" else layer.weight.t()
            if scheme == "tensor":  # requantized to the max scale (exactly, by construction)
                info["weight_matches_checkpoint"] = torch.equal(
                    handed.double() * (folded.double() / 256), W)
            else:  # the checkpoint bytes, shards in the fused layer's row order
                info["weight_matches_checkpoint"] = torch.equal(
                    handed.view(torch.uint8), torch.cat(ckpt_w).view(torch.uint8))
            bias = None
            if lname == "o_proj":  # the kernels' bias path (Qwen3-Next itself has no biases)
                bias = torch.randn(W.shape[0], generator=gen).to(dtype)
            n_calls = len(calls)
            for M in tokens:
                x = torch.randn(M, layer.input_size, generator=gen).to(dtype)
                out = layer.quant_method.apply(layer, x, bias)
                ref = x.double() @ W.T
                if bias is not None:
                    ref += bias.double()
                res["cases"][f"{dname}/{lname}/M={M}"] = {
                    "rel_err": rel_err(out, ref), "out_dtype": str(out.dtype),
                    "shape": list(out.shape)}
            info["kernel_calls"] = calls[n_calls:]
            res["layers"][f"{dname}/{lname}"] = info
    return res


def construct_only(family: str, variant: str) -> dict:
    """Build one layer (no load, no forward) and report the selection or vLLM's error."""
    try:
        vllm_config = model_context(variant, torch.bfloat16)
        with loading(vllm_config):
            if family == "moe":
                qm = build_moe(vllm_config).routed_experts.quant_method
                return {"built": type(qm).__name__, "experts": getattr(
                    getattr(qm, "experts_cls", None), "__name__", None)}
            layer = build_linears(vllm_config)["o_proj"]
        scheme = getattr(layer, "scheme", None)
        return {"built": type(scheme or layer.quant_method).__name__,
                "kernel": type(linear_kernel(layer)).__name__}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}

