"""`rocm-enable explain`: what vLLM runs for each op family of a model on an arch, with the plugin
and without it.

Every decision comes from running vLLM's own selection code in a fresh process per mode
(ROCM_ENABLE=0, then =1) in which vLLM's RocmPlatform believes it runs on the arch (rocm_enable.sim
on a machine without that GPU): the FP8 and unquantized MoE oracles, init_fp8_linear_kernel, the
attention backend selector, vLLM's BF16 GEMM dispatcher (run on meta tensors with the launches
intercepted), the IR op priority and dispatch for RMSNorm, CustomOp dispatch for SiluAndMul, the
GDN prefill resolver and the MoE tuned-config lookup. What no Python decides (which Triton or HIP
kernel a chosen backend launches, build-time code objects) is labelled "from source reading" with
the id of the gate in the audit of vLLM 0.32.0's architecture gates made before the project
(the ids the ledger, patches/README.md, also cites). Rows name the fix records that exist
at run time and touch the row's gates, so new records show up without changes here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict

from rocm_enable.gates.capabilities import capabilities_for
from rocm_enable.models import ModelSpec, load_model

MARK = "@@ROCM_ENABLE_EXPLAIN@@"
RAN = "ran vLLM"
READ = "from source reading"
DTYPES = {"auto": None, "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}


class ExplainError(RuntimeError):
    """The simulated vLLM process could not produce an answer."""


# ---------------------------------------------------------------------------------------------
# The probe: runs inside a fresh process, after the arch is simulated (or overridden on ROCm).
# ---------------------------------------------------------------------------------------------

def _row(family, backend, kernel, precision, decided_by, gates, how=RAN, error=None):
    return {"family": family, "backend": backend, "kernel": kernel, "precision": precision,
            "decided_by": decided_by, "gates": list(gates), "how": how, "error": error}


def _fails(exc: BaseException) -> str:
    return f"fails: {type(exc).__name__}: {exc}"


def _guard(family, gates, fn):
    try:
        return fn()
    except Exception as exc:  # the row reports vLLM's exact error instead of stopping
        return [_row(family, None, None, None, "vLLM raised while selecting", gates, error=_fails(exc))]


def w8a16_moe_config_row(kernel_family: str) -> dict:
    """The launch-config row when rocm-enable's W8A16 experts run: they read their own family
    file (rocm_enable.ops.config), never vLLM's fused-MoE config files. Which file that is: the
    user's `rocm-enable tune` cache when it validates (with its provenance), else the shipped one."""
    from rocm_enable.ops import config as cfgmod

    gates = ("A5", "C9", "C1", "C2", "C3")  # the FP8 MoE oracle's choice decides whose configs
    decided = (f"rocm_enable.ops.config.load_family({kernel_family!r}): the measured file in "
               f"${cfgmod.CACHE_ENV}/w8a16/ when it validates, else the shipped file; read by "
               "rocm-enable's W8A16 experts (vLLM's config files are not consulted)")
    tuned = cfgmod.tuned_path(kernel_family)
    family = cfgmod.load_family(kernel_family)
    if family is not cfgmod.load_shipped(kernel_family):
        runs = family.get("_tuned", {}).get("runs", [])
        provenance = "; ".join(f"{r.get('kind')} measured on {r.get('device')} at {r.get('date')} "
                               f"for {r.get('source') or 'the given shapes'} (M={r.get('ms')})"
                               for r in runs) or "no provenance recorded in the file"
        return _row("MoE launch config", "W8A16 configs measured by `rocm-enable tune`",
                    f"{tuned} ({provenance})", None, decided, gates)
    shipped = os.path.join("rocm_enable", "ops", "configs", f"{kernel_family}.json")
    note = "not measured on this GPU; how it was chosen: the file's _why"
    if os.path.exists(tuned):
        note += f"; the measured file {tuned} does not validate and is ignored (re-run `rocm-enable tune`)"
    return _row("MoE launch config", "W8A16 configs shipped with rocm-enable",
                f"{shipped} ({note})", None, decided, gates)


def _probe(spec: dict, act: str, enforce_eager: bool) -> dict:
    import types
    from unittest import mock

    import torch
    import vllm.plugins

    vllm.plugins.load_general_plugins()  # what vLLM does in every process it starts
    from rocm_enable.runtime import activate

    report = activate(apply=True)  # idempotent: reports the statuses of what is now in place
    from vllm.platforms import current_platform as platform

    caps = capabilities_for(os.environ["ROCM_ENABLE_ARCH"])
    board = caps.boards[0]
    adt = getattr(torch, act)
    fp8_native = caps.fp8_compute != "none"
    matrix = f"{caps.matrix_unit.upper()} ({'native FP8 ' + caps.fp8_compute if fp8_native else 'no FP8 matrix instructions'})"
    from vllm.config.compilation import CompilationConfig, CompilationMode, CUDAGraphMode

    if enforce_eager:
        cc = CompilationConfig(mode=CompilationMode.NONE, cudagraph_mode=CUDAGraphMode.NONE)
    else:
        cc = CompilationConfig(mode=CompilationMode.VLLM_COMPILE, backend="inductor",
                               cudagraph_mode=CUDAGraphMode.FULL_AND_PIECEWISE)
    from vllm.config import VllmConfig, set_current_vllm_config

    vllm_config = VllmConfig(compilation_config=cc)
    rows: list[dict] = []
    q = spec["quant"]

    # ---- BF16 GEMM dispatch: vLLM's rocm_unquantized_gemm_impl on meta tensors ----------------
    def bf16_gemm(m: int, k: int, n_tokens: int) -> str:
        import vllm.model_executor.layers.utils as lu

        called = []

        def rec(name):
            def f(*a, **kw):
                called.append(name)
                return torch.empty((n_tokens, m), dtype=adt, device="meta")
            return f

        def linear(x, w, b=None):
            called.append("torch.nn.functional.linear (hipBLASLt/rocBLAS)")
            return torch.empty((*x.shape[:-1], w.shape[0]), dtype=x.dtype, device="meta")

        x = torch.empty((n_tokens, k), dtype=adt, device="meta")
        w = torch.empty((m, k), dtype=adt, device="meta")
        with mock.patch.object(lu.ops, "wvSplitK", rec("wvSplitK skinny GEMM (HIP, _rocm_C)"), create=True), \
                mock.patch.object(lu.ops, "LLMM1", rec("LLMM1 GEMV (HIP, _rocm_C)"), create=True), \
                mock.patch.object(lu.ops, "wvSplitKrc", rec("wvSplitKrc (HIP, _rocm_C)"), create=True), \
                mock.patch.object(lu, "num_compute_units", lambda *a: board.compute_units), \
                mock.patch.object(torch.nn.functional, "linear", linear):
            lu.rocm_unquantized_gemm_impl(x, w, None)
        return called[-1] if called else "unknown"

    def bf16_rows(family, m, k, gates=("G6", "G7")):
        dec = bf16_gemm(m, k, 1)
        pre = bf16_gemm(m, k, 512)
        return _row(family, "UnquantizedLinearMethod -> rocm_unquantized_gemm",
                    f"decode (1 token): {dec}; prefill (512 tokens): {pre}",
                    f"{act} x {act}, fp32 accumulate",
                    "vLLM's rocm_unquantized_gemm_impl run on meta tensors of the layer's shape "
                    "(skinny path needs on_gfx9() or on_gfx1x())", gates)

    def fp8_linear_keys(scheme):
        from vllm.model_executor.layers.quantization.utils import quant_utils as qu
        if scheme == "block128":
            return qu.kFp8Static128BlockSym, qu.create_fp8_quant_key(static=False, group_shape=qu.GroupShape(1, 128))
        if scheme == "channel":
            return qu.kFp8StaticChannelSym, qu.kFp8DynamicTokenSym
        return qu.kFp8StaticTensorSym, qu.kFp8DynamicTensorSym

    act_quant_words = {"block128": "per-token-group-128", "channel": "per-token", "tensor": "per-tensor"}

    def fp8_precision(cls_name: str, module: str, scheme: str) -> str:
        if module.startswith("rocm_enable") or "W8A16" in cls_name:
            return (f"W8A16: e4m3 weights decoded in-kernel to {act} by integer bit ops, {act} "
                    f"activations not quantized, {act} x {act} on {caps.matrix_unit.upper()}, fp32 accumulate")
        mm = (f"native FP8 {caps.matrix_unit.upper()} ({caps.fp8_compute})" if fp8_native
              else "FP8 decoded to f16 in software (select ladder) before f16 " + caps.matrix_unit.upper())
        return (f"W8A8: activations quantized to FP8 ({act_quant_words[scheme]}, dynamic), {mm}, "
                "fp32 accumulate")

    hidden = spec["hidden_size"]
    hk, hv = spec["linear_num_key_heads"], spec["linear_num_value_heads"]
    dk, dv = spec["linear_key_head_dim"], spec["linear_value_head_dim"]
    qkvz = 2 * hk * dk + 2 * hv * dv

    # ---- MoE experts ------------------------------------------------------------------------
    def moe():
        from vllm.model_executor.layers.fused_moe.activation import MoEActivation
        from vllm.model_executor.layers.fused_moe.config import (
            FusedMoEConfig, FusedMoEParallelConfig, RoutingMethodType)
        E, topk, N = spec["num_experts"], spec["top_k"], spec["moe_intermediate_size"]
        cfg = FusedMoEConfig(num_experts=E, experts_per_token=topk, hidden_dim=hidden,
                             intermediate_size=N, num_local_experts=E, num_logical_experts=E,
                             activation=MoEActivation.SILU, device="cuda",
                             routing_method=RoutingMethodType.Renormalize,
                             moe_parallel_config=FusedMoEParallelConfig.make_no_parallel(),
                             in_dtype=adt, moe_backend="auto")
        if q is None:
            from vllm.model_executor.layers.fused_moe.oracle.unquantized import select_unquantized_moe_backend
            be, cls = select_unquantized_moe_backend(cfg)
            return [_row("MoE expert GEMMs", f"{type(be).__name__}.{be.name}",
                         getattr(cls, "__name__", str(cls)), f"{act} x {act}, fp32 accumulate",
                         "select_unquantized_moe_backend (unquantized MoE oracle)", ("D1", "D2"))]
        import vllm.model_executor.layers.fused_moe.oracle.fp8 as oracle
        from vllm.model_executor.layers.quantization.utils import quant_utils as qu
        keys = {"block128": (qu.kFp8Static128BlockSym, qu.kFp8Dynamic128Sym, False),
                "channel": (qu.kFp8StaticChannelSym, qu.kFp8DynamicTokenSym, True),
                "tensor": (qu.kFp8StaticTensorSym, qu.kFp8DynamicTensorSym, False)}[q["scheme"]]
        be, cls = oracle.select_fp8_moe_backend(cfg, keys[0], keys[1], allow_vllm_cutlass=keys[2])
        experts_chosen.append(cls)
        name = getattr(cls, "__name__", str(cls))
        return [_row("MoE expert GEMMs", f"Fp8MoeBackend.{be.name}", name,
                     fp8_precision(name, getattr(cls, "__module__", ""), q["scheme"]),
                     "select_fp8_moe_backend (FP8 MoE oracle)", ("C1", "C2", "C3"))]

    experts_chosen: list = []  # the experts class the MoE step resolved (its configs differ)

    def moe_config():
        chosen = experts_chosen[-1] if experts_chosen else None
        if getattr(chosen, "__module__", "").startswith("rocm_enable"):
            return [w8a16_moe_config_row(caps.kernel_family)]
        import vllm.model_executor.layers.fused_moe.fused_moe as fm
        E, N = spec["num_experts"], spec["moe_intermediate_size"]
        dtype, block = (None, None) if q is None else ("fp8_w8a8", q.get("block"))
        bn, bk = (block or (None, None))
        found = fm.get_moe_configs(E, N, dtype, bn, bk)
        fname = fm.get_config_file_name(E, N, dtype, list(block) if block else None)
        return [_row("MoE launch config", "vLLM's tuned config file" if found else "vLLM default config",
                     fname, None, "vLLM's get_moe_configs (lookup by get_device_name()), read by "
                     "vLLM's fused-MoE kernels", ("A5", "C9"), error=None)]

    # ---- dense projections -------------------------------------------------------------------
    def dense():
        label = "shared expert and dense projections" if spec["num_experts"] else "dense projections (GDN, attention, MLP)"
        if q is None:
            return [bf16_rows(label, qkvz, hidden)]
        import vllm.model_executor.kernels.linear as linear
        wk, ak = fp8_linear_keys(q["scheme"])
        k = linear.init_fp8_linear_kernel(activation_quant_key=ak, weight_quant_key=wk,
                                          input_dtype=adt, out_dtype=adt, weight_shape=(qkvz, hidden))
        name = type(k).__name__
        return [_row(label, "FP8 ScaledMM linear kernel table", name,
                     fp8_precision(name, type(k).__module__, q["scheme"]),
                     "init_fp8_linear_kernel (vLLM's ROCm FP8 kernel tables)", ("E1", "E2", "E3"))]

    # ---- attention --------------------------------------------------------------------------
    def attention():
        from vllm.v1.attention.selector import AttentionSelectorConfig
        import vllm.platforms.rocm as R
        head, nq, nkv = spec["head_dim"], spec["num_attention_heads"], spec["num_kv_heads"]
        # The backend selector decides prefill and decode together: every attention gate applies.
        ATTN_GATES = ("A8", "A10", "I1", "I2", "I3", "I5", "I6")
        out = []
        path = None
        for block in (None, 16):
            try:
                path = platform.get_attn_backend_cls(None, AttentionSelectorConfig(
                    head_size=head, dtype=adt, kv_cache_dtype="auto", block_size=block))
                break
            except TypeError:
                continue
        backend = path.rsplit(".", 1)[-1]
        decided = "RocmPlatform.get_attn_backend_cls (attention backend selector, priority order)"
        if "RocmAttention" in backend:
            out.append(_row("attention prefill", backend, "prefix_prefill.context_attention_fwd (Triton _fwd_kernel)",
                            f"{act} QK/PV, fp32 softmax and accumulate", decided, ATTN_GATES, how=READ + " (kernel)"))
            hip = R.use_rocm_custom_paged_attention(adt, head, 16, nq // nkv, 4096, 0, "auto")
            kern = ("paged_attention_rocm (HIP custom paged attention)" if hip
                    else "kernel_paged_attention_2d (Triton)")
            out.append(_row("attention decode", backend, kern, f"{act}, fp32 accumulate",
                            f"use_rocm_custom_paged_attention(head {head}, GQA {nq // nkv}) = {hip}",
                            ATTN_GATES))
        elif "RdnaAttention" in backend:  # rocm-enable's backend (rdna-attention)
            kv = "bf16/fp16 or e4m3 KV (fp8, integer bit decode)"
            out.append(_row("attention prefill", backend, "rocm_enable paged_prefill_kernel (Triton)",
                            f"{act} Q, {kv}, fp32 accumulate", decided, ATTN_GATES, how=READ + " (kernel)"))
            out.append(_row("attention decode", backend,
                            "rocm_enable paged_decode_kernel + split_combine_kernel (Triton, split-KV)",
                            f"{act} Q, {kv}, fp32 accumulate", decided, ATTN_GATES, how=READ + " (kernel)"))
        elif "Triton" in backend:
            out.append(_row("attention prefill", backend, "kernel_unified_attention (Triton, 2D)",
                            f"{act}, fp32 accumulate", decided, ATTN_GATES, how=READ + " (kernel)"))
            out.append(_row("attention decode", backend, "kernel_unified_attention (Triton, 3D split-softmax)",
                            f"{act}, fp32 accumulate", decided, ATTN_GATES, how=READ + " (kernel)"))
        else:
            for fam in ("attention prefill", "attention decode"):
                out.append(_row(fam, backend, "backend's own kernels", f"{act}", decided, ATTN_GATES,
                                how=READ + " (kernel)"))
        return out

    # ---- GDN and conv1d ---------------------------------------------------------------------
    def gdn():
        import vllm.envs as envs
        import vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn as g
        ns = types.SimpleNamespace(additional_config={}, model_config=types.SimpleNamespace(
            hf_text_config=types.SimpleNamespace(linear_key_head_dim=dk, linear_value_head_dim=dv), dtype=adt))
        _, prefill = g._resolve_gdn_prefill_backend(ns)
        aiter = bool(g.GDN_AITER_TRITON_AVAILABLE)
        state = spec["mamba_ssm_dtype"]
        from rocm_enable.engine.apply import applied_names
        from rocm_enable.ops import gdn as gdn_ops, gdn_decode

        # rocm-enable's GDN records (gdn-prefill-rdna, gdn-decode-rdna) decide per call from shapes
        # their launchers check; these are the model's shapes
        ours_prefill = "gdn-prefill-rdna" in applied_names() and (dk, dv) == (gdn_ops.NO_SPILL_K,) * 2
        ours_decode = "gdn-decode-rdna" in applied_names() and dk <= gdn_decode.MAX_K
        fla_prefill = ("FLA chunk_gated_delta_rule with rocm_enable gdn_wy_kernel + gdn_chunk_state_kernel "
                       "(Triton; FLA's kkt, solve_tril, chunk_o, cumsum at their spill-free candidate)"
                       if ours_prefill else
                       "FLA chunk_gated_delta_rule (Triton: kkt, solve_tril, wy_fast, chunk_delta_h, chunk_o)")
        out = [_row("GDN prefill", prefill, fla_prefill if prefill == "triton" else prefill,
                    f"{act} inputs, fp32 state ({state} cache)",
                    "_resolve_gdn_prefill_backend" + ("; gdn-prefill-rdna at K = V = 128, chunk 64" if ours_prefill
                                                      else ""), ("H2", "H5", "H6"))]
        packed = envs.VLLM_ENABLE_FLA_PACKED_RECURRENT_DECODE
        dec = ("aiter fused_rearrange_sigmoid_gated_delta_rule (aiter Triton)" if aiter else
               "rocm_enable gdn_packed_decode_kernel (Triton, 8 state rows per wave)" if packed and ours_decode else
               "FLA fused_recurrent_gated_delta_rule" + (" packed decode (Triton)" if packed else " (Triton)"))
        out.append(_row("GDN decode", "forward_hip -> " + ("aiter" if aiter else "forward_cuda (FLA Triton)"), dec,
                        f"{act} inputs, {state} recurrent state, fp32 math",
                        f"GDN_AITER_TRITON_AVAILABLE = {aiter}; VLLM_ENABLE_FLA_PACKED_RECURRENT_DECODE = {packed}; "
                        f"VLLM_GDN_DECODE_KERNEL={envs.VLLM_GDN_DECODE_KERNEL} only matters for MTP spec decode (H3)",
                        ("H1", "H3", "H6")))
        conv = ("aiter fused_reshape_causal_conv1d_update_single_token (decode) + Triton causal_conv1d_fn (prefill)"
                if aiter else "causal_conv1d_fn (prefill) / causal_conv1d_update (decode), Triton")
        out.append(_row("causal conv1d", "mamba ops (Triton)", conv, f"{act}, fp32 accumulate",
                        f"GDN_AITER_TRITON_AVAILABLE = {aiter}", ("H1", "H7"), how=READ + " (kernel)"))
        return out

    # ---- norms ------------------------------------------------------------------------------
    def norms():
        import vllm.kernels  # noqa: F401  (registers the IR implementations)
        from vllm import ir
        prio = platform.get_default_ir_op_priority(types.SimpleNamespace(compilation_config=cc))
        order = list(prio.rms_norm)
        x = torch.empty((4, hidden), dtype=adt, device="meta")
        w = torch.empty((hidden,), dtype=torch.float32, device="meta")  # GemmaRMSNorm: weight.float() + 1
        op = ir.ops.rms_norm
        with op.set_priority(order):
            chosen = op.dispatch(x, w, 1e-6).provider
        note = ""
        if order and order[0] == "aiter" and chosen != "aiter":
            verdict = ("aiter's HIP rms_norm, a gfx9-only code object: the first launch fails on this arch (B8)"
                       if not caps.aiter_hip_kernels else "aiter's HIP rms_norm")
            note = f"; with aiter installed (VLLM_ROCM_USE_AITER=1 implies it) vLLM picks {verdict}"
        native = "native implementation (torch" + (")" if enforce_eager else ", fused by inductor)")
        from rocm_enable.engine.apply import applied_names
        # Qwen3NextAttention (also Qwen3.5/3.6's full-attention layers) with an output gate: the q/k
        # norms run in vLLM's fused Triton kernel when its platform term admits the GPU (audit J1;
        # the fused-qk-norm-rope-gate record admits RDNA); vLLM's other terms (neox RoPE, bf16/fp16)
        # hold for these models
        qk_fused = spec["attn_output_gate"] and "fused-qk-norm-rope-gate" in applied_names()
        rows_ = [_row("norms (RMSNorm / GemmaRMSNorm)", f"vllm.ir rms_norm priority {order}",
                      (native if chosen == "native" else f"{chosen} implementation")
                      + ("; full-attention q/k norms: _fused_qk_rmsnorm_rope_gate_kernel (Triton, with RoPE "
                         "and the gate split)" if qk_fused else "") + note,
                      f"{act} in, fp32 variance and weight", "get_default_ir_op_priority + IrOp.dispatch"
                      + ("; Qwen3NextAttention.use_fused_qk_norm_rope_gate (fused-qk-norm-rope-gate applied, "
                         "attn_output_gate)" if qk_fused else ""),
                      ("A13", "B8", "G2") + (("J1",) if spec["attn_output_gate"] else ()))]
        from vllm.model_executor.layers.layernorm import RMSNormGated
        with set_current_vllm_config(vllm_config):
            gated = RMSNormGated(dv, group_size=dv, norm_before_gate=True)
            method = gated._forward_method.__name__
        kern = native if method == "forward_native" else "FLA layer_norm_fwd_kernel (Triton, rmsnorm_fn)"
        rows_.append(_row("norms (GDN gated RMSNorm)", f"CustomOp {method} (enabled={gated.enabled()})", kern,
                          f"{act} in, fp32 math", "CustomOp dispatch (compilation mode and custom_ops)",
                          ("G3",)))
        return rows_

    def activation():
        from vllm.model_executor.layers.activation import SiluAndMul
        # The simulated process has no compiled _C; give the constructor the symbol a ROCm build
        # exports so that only vLLM's dispatch decision is observed.
        with set_current_vllm_config(vllm_config), \
                mock.patch.object(torch.ops._C, "silu_and_mul", object(), create=True):
            op = SiluAndMul()
            method = op._forward_method.__name__
            enabled = op.enabled()
        kern = {"forward_native": "torch SiLU * x" + ("" if enforce_eager else " (fused by inductor)"),
                "forward_cuda": "torch.ops._C.silu_and_mul (HIP, needs _C built for the arch)",
                "forward_hip": "torch.ops._C.silu_and_mul (HIP, needs _C built for the arch)"}.get(method, method)
        return [_row("activation (SiluAndMul)", f"CustomOp.{method} (enabled={enabled})", kern,
                     f"{act}", "CustomOp dispatch (compilation mode and custom_ops)", ("G1", "G4"))]

    def router():
        E = spec["num_experts"]
        r = bf16_rows("router", E, hidden)
        import vllm._aiter_ops as ao
        fused = bool(ao.rocm_aiter_ops.is_fused_moe_enabled())
        shared, fse_fused = shared_expert_fusion()
        if fse_fused:  # its router runs the Triton routing whatever _moe_C carries
            r["kernel"] += ("; top-k: moe_topk_routing_kernel (Triton, one launch, the shared expert "
                            "appended by fused-shared-expert)")
        else:
            # On a vLLM build whose _moe_C lacks this arch, record topk-softmax-code-object serves
            # the same call with one Triton launch (the engine runs on the lent GPU show that kernel).
            r["kernel"] += ("; top-k: aiter topk_softmax" if fused else
                            "; top-k: _moe_C.topk_softmax (HIP; on a build without this arch's code "
                            "object: moe_topk_routing_kernel, Triton, topk-softmax-code-object)")
        r["decided_by"] += f"; rocm_aiter_ops.is_fused_moe_enabled() = {fused} (top-k, D11)"
        r["gates"] = ["G7", "D11"]
        r["kernel"] += "; shared expert: " + shared
        return [r]

    def shared_expert_fusion() -> tuple[str, bool]:
        """What record fused-shared-expert decides for this model's MoE blocks (its own test)."""
        from rocm_enable.engine.apply import applied_names
        from rocm_enable.stacks.vllm import fused_shared_expert as fse

        if fse.NAME not in applied_names():
            return f"separate MLP and sigmoid gate ({fse.NAME} not applied)", False
        quant = None
        if q is not None and q["method"] == "fp8":
            from vllm.model_executor.layers.quantization.fp8 import Fp8Config
            quant = Fp8Config.from_config({"quant_method": "fp8", "activation_scheme": q["activation"],
                                           "weight_block_size": list(q["block"]) if q["block"] else None})
        elif q is not None:  # what explain knows of a compressed-tensors checkpoint is its scheme
            return f"separate MLP and sigmoid gate ({fse.NAME}: {q['method']} is not fused)", False
        text = types.SimpleNamespace(shared_expert_intermediate_size=spec["shared_expert_intermediate_size"],
                                     moe_intermediate_size=spec["moe_intermediate_size"],
                                     hidden_act="silu")  # Qwen3-Next / Qwen3.5 / Qwen3.6 MoE
        why = fse.refusal(quant, "model.layers.0.mlp", "shared_expert", text,
                          vllm_config.parallel_config, vllm_config.kernel_config.moe_backend)
        if why:
            return f"separate MLP and sigmoid gate ({fse.NAME}: {why})", False
        return (f"expert {spec['num_experts']} of the W8A16 routed experts, weight sigmoid(its gate "
                f"logit); router and shared-expert gate one [{spec['num_experts'] + 1}, {hidden}] GEMM "
                f"({fse.NAME})"), True

    def lm_head():
        return [bf16_rows("lm_head", spec["vocab_size"], hidden)]

    with set_current_vllm_config(vllm_config):
        steps = []
        if spec["num_experts"]:
            steps += [("MoE expert GEMMs", ("C1", "C2", "C3", "D1"), moe),
                      ("MoE launch config", ("A5", "C9"), moe_config)]
        steps += [("dense projections", ("E1", "E2", "E3", "G7"), dense),
                  ("attention", ("A10",), attention), ("GDN", ("H1", "H2"), gdn),
                  ("norms", ("A13", "B8"), norms), ("activation", ("G4",), activation)]
        if spec["num_experts"]:
            steps.append(("router", ("D11",), router))
        steps.append(("lm_head", ("G7",), lm_head))
        for family, gates, fn in steps:
            rows.extend(_guard(family, gates, fn))
    from rocm_enable.engine.hooks import all_fixes

    gates_of = {f.name: list(f.gates) for f in all_fixes()}
    return {
        "rows": rows,
        "fixes": [{**r.as_dict(), "gates": gates_of.get(r.name, [])} for r in report.results],
        "vllm_version": getattr(__import__("vllm"), "__version__", None),
        "platform": type(platform).__name__,
    }


def _probe_main() -> int:
    req = json.loads(sys.stdin.read())
    from rocm_enable.gates.process_arch import prepare_arch

    prepare_arch(req["arch"])
    results = []
    for spec, act in zip(req["specs"], req["acts"]):  # several models share one process per mode
        try:
            results.append(_probe(spec, act, req["enforce_eager"]))
        except Exception as exc:
            import traceback
            results.append({"error": _fails(exc), "traceback": traceback.format_exc()})
    print(MARK + json.dumps(results))
    return 0


# ---------------------------------------------------------------------------------------------
# The parent: two subprocesses, then a merged, labelled table.
# ---------------------------------------------------------------------------------------------

def _run_mode(specs: list[ModelSpec], arch: str, acts: list[str], enabled: bool, enforce_eager: bool,
              extra_env: dict | None = None, timeout: int = 900) -> list[dict]:
    env = dict(os.environ)
    env.update(extra_env or {})
    env["ROCM_ENABLE"] = "1" if enabled else "0"
    env.pop("ROCM_ENABLE_ARCH", None)  # the arch comes from --arch below
    req = {"specs": [asdict(s) for s in specs], "arch": arch, "acts": acts, "enforce_eager": enforce_eager}
    proc = subprocess.run([sys.executable, "-c", "import sys; from rocm_enable.explain import _probe_main; "
                           "sys.exit(_probe_main())"], input=json.dumps(req), capture_output=True,
                          text=True, env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if not lines:
        raise ExplainError(f"the simulated vLLM process ({'with' if enabled else 'without'} the plugin) "
                           f"produced no answer (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    outs = json.loads(lines[-1][len(MARK):])
    for out in outs:
        if "error" in out:
            raise ExplainError(f"the simulated vLLM process failed: {out['error']}\n{out.get('traceback', '')}")
    return outs


def _act_dtype(spec: ModelSpec, dtype: str) -> str:
    chosen = DTYPES.get(dtype.lower()) if dtype else None
    if dtype and dtype.lower() not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}")
    if chosen:
        return chosen
    return "float16" if "16" in spec.dtype and "b" not in spec.dtype else "bfloat16"


def _fixes_for(gates, fixes_with_gates) -> list[str]:
    return [f"{name} ({status})" for name, status, fgates in fixes_with_gates
            if set(fgates) & set(gates)]


def explain(model: str, arch: str, dtype: str = "auto", enforce_eager: bool = False,
            extra_env: dict | None = None) -> dict:
    return explain_many([model], arch, dtype, enforce_eager, extra_env)[0]


def explain_many(models: list[str], arch: str, dtype: str = "auto", enforce_eager: bool = False,
                 extra_env: dict | None = None) -> list[dict]:
    """explain() for several models with one simulated process per mode (vLLM resolves the arch
    once per process; each model's selections run afresh in it)."""
    specs = [load_model(m) for m in models]
    caps = capabilities_for(arch)
    acts = [_act_dtype(s, dtype) for s in specs]
    without = _run_mode(specs, caps.arch, acts, False, enforce_eager, extra_env)
    with_ = _run_mode(specs, caps.arch, acts, True, enforce_eager, extra_env)
    return [_merge(s, caps, a, wo, wi, enforce_eager, extra_env)
            for s, a, wo, wi in zip(specs, acts, without, with_)]


def _merge(spec, caps, act, without, with_, enforce_eager, extra_env) -> dict:
    fixes = [(f["name"], f["status"], tuple(f["gates"])) for f in with_["fixes"]]
    rows = []
    for a, b in zip(without["rows"], with_["rows"]):
        changed = {k: (a[k], b[k]) for k in ("backend", "kernel", "precision", "error") if a[k] != b[k]}
        gates = sorted(set(a["gates"]) | set(b["gates"]))
        rows.append({"family": b["family"], "without_plugin": a, "with_plugin": b,
                     "changed": bool(changed), "gates": gates,
                     "fixes": _fixes_for(gates, fixes)})
    return {
        "model": spec.name, "model_source": spec.source, "architecture": spec.architecture,
        "quantization": asdict(spec.quant) if spec.quant else None,
        "arch": caps.arch, "family": caps.family, "fp8_compute": caps.fp8_compute,
        "activation_dtype": act, "compilation": "enforce-eager" if enforce_eager else "VLLM_COMPILE + inductor, cudagraph FULL_AND_PIECEWISE",
        "vllm_version": with_["vllm_version"],
        "env": {k: v for k, v in sorted({**os.environ, **(extra_env or {})}.items())
                if k.startswith("VLLM_ROCM") or k == "ROCM_ENABLE_DISABLE"},
        "rows": rows,
        "fixes": [{"name": n, "status": s, "gates": list(g)} for n, s, g in fixes],
    }


def _cell(d: dict) -> str:
    if d["error"]:
        return d["error"]
    parts = [d["backend"] or "", d["kernel"] or ""]
    return " / ".join(p for p in parts if p)


def render(data: dict) -> str:
    out = []
    q = data["quantization"]
    out.append(f"model      {data['model']} ({data['architecture']}; "
               f"{'FP8 ' + q['scheme'] + ' (' + q['method'] + ')' if q else 'BF16'}; config: {data['model_source']})")
    out.append(f"arch       {data['arch']} ({data['family']}, FP8 compute: {data['fp8_compute']}); "
               f"vLLM {data['vllm_version']}; activations {data['activation_dtype']}; {data['compilation']}")
    if data["env"]:
        out.append("env        " + " ".join(f"{k}={v}" for k, v in data["env"].items()))
    out.append("")
    for row in data["rows"]:
        a, b = row["without_plugin"], row["with_plugin"]
        mark = "  [changed by rocm-enable]" if row["changed"] else ""
        out.append(f"{row['family']}{mark}")
        if row["changed"]:
            out.append(f"  without plugin: {_cell(a)}")
            if a["precision"] and not a["error"]:
                out.append(f"                  precision: {a['precision']}")
            out.append(f"  with plugin:    {_cell(b)}")
        else:
            out.append(f"  with and without plugin: {_cell(b)}")
        if b["precision"] and not b["error"]:
            out.append(f"  precision:      {b['precision']}")
        out.append(f"  decided by:     {b['decided_by']} [{b['how']}; gates {', '.join(row['gates'])}]")
        if row["fixes"]:
            out.append(f"  fix records:    {', '.join(row['fixes'])}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
