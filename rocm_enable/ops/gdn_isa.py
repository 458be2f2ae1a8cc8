"""AOT AMDGCN report for the Gated-DeltaNet (GDN) kernels on the Qwen3-Next / Qwen3.6 path (no GPU).

Two sets of kernels, each compiled through Triton's own binder for ``GPUTarget("hip", arch, 32)``
(rocm_enable.isa.compile_for_arch) at the models' GDN shape (head dims K = V = 128, 16 key heads,
32 value heads per GPU, chunk 64):

* ``vllm``: vLLM's own FLA kernels (vllm/third_party/flash_linear_attention/ops), read out of the
  installed vLLM's source at run time (vLLM's CPU build disables Triton at import, so the
  JITFunctions cannot be imported as objects), with every autotune candidate as FLA's module
  constants evaluate on a ROCm RDNA device (64 KiB shared memory: BKV_LIST [32, 64], BS_LIST
  [16, 32], chunk_delta_h stages [2, 3]) and the launch parameters of the launchers
  that hard-code them.
* ``selected``: what runs on wave32 RDNA with rocm-enable's GDN fixes: rocm_enable.ops.gdn_kernels
  under their configs (``rocm_enable_selectable``: prefill state recurrence and WY, packed decode),
  vLLM's other prefill kernels under the one autotune candidate gdn-prefill-rdna leaves them, and
  vLLM's remaining decode kernels (spec decode, other callers) under their fixed launches.
* ``rocm_enable``: rocm_enable's kernels only; with ``--candidate`` the (kernel, config) pairs given
  instead of the shipped ones (the sweep that chose them).

  python -m rocm_enable.ops.gdn_isa gfx1151 [gfx1100 ...] [--set selected|vllm|rocm_enable] [--json]
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile

FLA_REL = os.path.join("third_party", "flash_linear_attention", "ops")
# (file, kernel) on the Qwen3-Next / Qwen3.6 GDN path: prefill chunk pipeline, then decode.
FLA_KERNELS = (
    ("cumsum.py", "chunk_local_cumsum_scalar_kernel"),
    ("chunk_scaled_dot_kkt.py", "chunk_scaled_dot_kkt_fwd_kernel"),
    ("solve_tril.py", "merge_16x16_to_64x64_inverse_kernel"),
    ("wy_fast.py", "recompute_w_u_fwd_kernel"),
    ("chunk_delta_h.py", "chunk_gated_delta_rule_fwd_kernel_h_blockdim64"),
    ("chunk_o.py", "chunk_fwd_kernel_o"),
    ("fused_recurrent.py", "fused_recurrent_gated_delta_rule_fwd_kernel"),
    ("fused_recurrent.py", "fused_recurrent_gated_delta_rule_packed_decode_kernel"),
    ("fused_sigmoid_gating.py", "fused_sigmoid_gating_delta_rule_update_kernel"),
    # the prefill's input preparation (q/k l2norm, v, gates g and beta from the conv output), which
    # qwen_gdn_linear_attn runs before the chunk pipeline (fused_post_conv_prep)
    ("fused_gdn_prefill_post_conv.py", "_fused_post_conv_kernel"),
)
# FLA's module-level names that its autotune lists and kernels read, as they evaluate under ROCm
# on a 64 KiB-LDS RDNA GPU (utils.check_shared_mem() is False there; not Hopper; torch.version.hip set).
ROCM_RDNA_CONSTANTS = {
    "BKV_LIST": [32, 64], "NUM_WARPS": [2, 4, 8], "BS_LIST": [16, 32], "BT_LIST": [8, 16, 32, 64, 128],
    "_CHUNK_DELTA_H_NUM_STAGES": [2, 3],
}
# The same names on an H100 (benchmarks/bench_gdn.py times vLLM's kernels over the candidates vLLM
# autotunes there: Hopper, 227 KiB shared memory, CUDA).
CUDA_HOPPER_CONSTANTS = {
    "BKV_LIST": [64, 128], "NUM_WARPS": [2, 4], "BS_LIST": [32, 64], "BT_LIST": [8, 16, 32, 64, 128],
    "_CHUNK_DELTA_H_NUM_STAGES": [2, 3, 4],
}
# Launchers that hard-code their launch parameters (no autotune): (num_warps, num_stages, BV).
FIXED_LAUNCH = {
    "fused_recurrent_gated_delta_rule_fwd_kernel": (1, 3, 32),
    "fused_recurrent_gated_delta_rule_packed_decode_kernel": (1, 3, 32),
    "fused_sigmoid_gating_delta_rule_update_kernel": (4, 3, 32),
    "_fused_post_conv_kernel": (4, 2, 128),  # BV = next_power_of_2(V) at V = 128; BLOCK_T 16
}
PRELUDE = """import triton
import triton.language as tl
exp, exp2, log, log2 = tl.exp, tl.exp2, tl.log, tl.log2
gather = tl.gather
make_tensor_descriptor = getattr(tl, "make_tensor_descriptor", None)
"""
# Per GPU, TP=1: Qwen3-Next-80B / Qwen3.6-35B-A3B: 16 key heads, 32 value heads (Qwen3.6-27B: 48).
H_K, H_V, K, V, BT = 16, 32, 128, 128, 64
T_TOKENS = 4096
POOL = 256  # state slots


def vllm_package_dir() -> str:
    from rocm_enable.ops.vllm_moe_isa import vllm_package_dir as find

    return find()


def _jit_functions(src: str):
    """(name, decorator-stripped source starting at @triton.jit, autotune configs expr or None)."""
    lines = src.splitlines()
    for node in ast.parse(src).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        decos = {ast.unparse(d).split("(")[0]: d for d in node.decorator_list}
        jit = decos.get("triton.jit")
        if jit is None:
            continue
        body = lines[jit.lineno - 1:node.end_lineno]
        tune = decos.get("triton.autotune")
        configs = None
        if tune is not None:
            configs = next(ast.unparse(k.value) for k in tune.keywords if k.arg == "configs")
        yield node.name, "\n".join(body), configs


@functools.lru_cache(maxsize=None)
def load_fla(vllm_dir: str | None = None, hopper: bool = False):
    """(module of vLLM's FLA @triton.jit functions, {kernel: [triton.Config]} autotune lists as they
    evaluate on ROCm RDNA, or on an H100 with ``hopper``)."""
    import triton

    from rocm_enable.isa import load_compilable_kernels

    root = os.path.join(vllm_dir or vllm_package_dir(), FLA_REL)
    parts, tunes = [PRELUDE], {}
    for fname in sorted({f for f, _ in FLA_KERNELS}):
        with open(os.path.join(root, fname)) as f:
            for name, text, configs in _jit_functions(f.read()):
                parts.append(text + "\n\n")
                if configs is not None:
                    tunes[name] = configs
    text = "\n".join(parts)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), f"rocm_enable_vllm_fla_{digest}")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "vllm_fla_kernels.py")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    mod = load_compilable_kernels(path, f"_rocm_enable_vllm_fla_{digest}")
    configs = {}
    for name, expr in tunes.items():
        try:
            constants = CUDA_HOPPER_CONSTANTS if hopper else ROCM_RDNA_CONSTANTS
            configs[name] = eval(expr, {"triton": triton, **constants})  # noqa: S307 vLLM's own list
        except NameError as e:
            raise ImportError(f"FLA autotune list of {name} reads a name rocm_enable.ops.gdn_isa does not "
                              f"model ({e}); add it to ROCM_RDNA_CONSTANTS") from e
    for _, kernel in FLA_KERNELS:
        if not hasattr(mod, kernel):
            raise ImportError(f"{root} has no @triton.jit {kernel}")
    return mod, configs


def _ptrs(**dtypes):
    from rocm_enable.isa import _t

    return {n: (None if d is None else _t(d, 1 << 28)) for n, d in dtypes.items()}


def fla_args(kernel: str, cfg_kwargs: dict) -> dict:
    """Launch-style arguments vLLM's launcher passes (varlen prefill batch, bf16 activations, fp32
    gates and states), plus the heuristics' constexprs; autotune kwargs merged in."""
    import triton.language as tl

    bf, f32, i32 = tl.bfloat16, tl.float32, tl.int32
    var = dict(cu_seqlens=i32, chunk_indices=i32)
    if kernel == "chunk_local_cumsum_scalar_kernel":
        a = dict(**_ptrs(s=f32, o=f32, **var), T=T_TOKENS, B=1, H=H_V, BT=BT, HEAD_FIRST=False,
                 REVERSE=False, IS_VARLEN=True)
    elif kernel == "chunk_scaled_dot_kkt_fwd_kernel":
        a = dict(**_ptrs(k=bf, beta=bf, g=f32, A=f32, **var), T=T_TOKENS, H=H_V, Hg=H_K, K=K, BT=BT,
                 IS_VARLEN=True, USE_G=True, CAST_DOT_TO_K_DTYPE=True)
    elif kernel == "merge_16x16_to_64x64_inverse_kernel":
        a = dict(**_ptrs(A=f32, Ai=bf, **var), T=T_TOKENS, H=H_V, BT=BT, USE_TMA=False, IS_VARLEN=True,
                 DOT_PRECISION="ieee")
    elif kernel == "recompute_w_u_fwd_kernel":
        a = dict(**_ptrs(k=bf, v=bf, beta=bf, w=bf, u=bf, A=bf, g=f32, **var), T=T_TOKENS, H=H_V, Hg=H_K,
                 K=K, V=V, BT=BT, BK=64, BV=64, IS_VARLEN=True)
    elif kernel == "chunk_gated_delta_rule_fwd_kernel_h_blockdim64":
        a = dict(**_ptrs(k=bf, v=bf, w=bf, v_new=bf, g=f32, gk=None, h=bf, h0=f32, ht=f32, cu_seqlens=i32,
                         chunk_offsets=i32), T=T_TOKENS, H=H_V, Hg=H_K, K=K, V=V, BT=BT, USE_G=True,
                 USE_GK=False, USE_INITIAL_STATE=True, STORE_FINAL_STATE=True, SAVE_NEW_VALUE=True,
                 IS_VARLEN=True, USE_EXP2=False)
    elif kernel == "chunk_fwd_kernel_o":
        a = dict(**_ptrs(q=bf, k=bf, v=bf, h=bf, g=f32, o=bf, **var), scale=K ** -0.5, T=T_TOKENS, H=H_V,
                 Hg=H_K, K=K, V=V, BT=BT, USE_G=True, IS_VARLEN=True)
    elif kernel in ("fused_recurrent_gated_delta_rule_fwd_kernel", "fused_sigmoid_gating_delta_rule_update_kernel"):
        a = dict(**_ptrs(q=bf, k=bf, v=bf, g=f32, beta=bf, o=bf, h0=f32, ht=f32, cu_seqlens=i32,
                         ssm_state_indices=i32, num_accepted_tokens=None),
                 scale=K ** -0.5, N=64, T=64, B=1, H=H_K, HV=H_V, K=K, V=V, BK=K,
                 stride_init_state_token=H_V * V * K, stride_final_state_token=H_V * V * K,
                 stride_indices_seq=1, stride_indices_tok=1, USE_INITIAL_STATE=True, INPLACE_FINAL_STATE=True,
                 IS_BETA_HEADWISE=False, USE_QK_L2NORM_IN_KERNEL=True, IS_VARLEN=True,
                 IS_CONTINUOUS_BATCHING=True, IS_SPEC_DECODING=False, IS_KDA=False)
        if kernel.startswith("fused_sigmoid"):
            a.update(_ptrs(A_log=f32, a=bf, b=bf, dt_bias=f32), beta=1.0, threshold=20.0)
    elif kernel == "fused_recurrent_gated_delta_rule_packed_decode_kernel":
        a = dict(**_ptrs(mixed_qkv=bf, a=bf, b=bf, A_log=f32, dt_bias=f32, o=bf, h0=f32, ht=f32,
                         ssm_state_indices=i32),
                 scale=K ** -0.5, stride_mixed_qkv_tok=2 * H_K * K + H_V * V, stride_a_tok=H_V,
                 stride_b_tok=H_V, stride_init_state_token=H_V * V * K, stride_final_state_token=H_V * V * K,
                 stride_indices_seq=1, H=H_K, HV=H_V, K=K, V=V, BK=K, SOFTPLUS_THRESHOLD=20.0,
                 USE_QK_L2NORM_IN_KERNEL=True, SPLIT_BATCH_HEAD_GRID=False)
    elif kernel == "_fused_post_conv_kernel":
        a = dict(**_ptrs(mixed_qkv_ptr=bf, a_ptr=bf, b_ptr=bf, A_log_ptr=f32, dt_bias_ptr=f32, q_ptr=bf, k_ptr=bf,
                         v_ptr=bf, g_ptr=f32, beta_ptr=f32),
                 stride_x_tok=2 * H_K * K + H_V * V, stride_a_tok=H_V, stride_b_tok=H_V, stride_q_tok=H_K * K,
                 stride_k_tok=H_K * K, stride_v_tok=H_V * V, L=T_TOKENS, H=H_K, HV=H_V, K=K, V=V,
                 APPLY_L2NORM=True, L2NORM_EPS=1e-6, OUTPUT_G_EXP=False, SOFTPLUS_THRESHOLD=20.0, BLOCK_T=16, BK=K)
    else:
        raise KeyError(kernel)
    a.update(cfg_kwargs)
    return a


def fla_cases(kernels=None, candidate=None):
    """(kernel, candidate kwargs, options) of every candidate vLLM can launch on ROCm RDNA (only
    ``candidate`` = (kwargs, num_warps, num_stages) when given)."""
    if candidate is not None:
        kwargs, warps, stages = candidate
        for kernel in kernels:
            yield kernel, dict(kwargs), {"num_warps": warps, "num_stages": stages}
        return
    _, tunes = load_fla()
    for _, kernel in FLA_KERNELS:
        if kernels and kernel not in kernels:
            continue
        if kernel in FIXED_LAUNCH:
            nw, ns, bv = FIXED_LAUNCH[kernel]
            yield kernel, {"BV": bv}, {"num_warps": nw, "num_stages": ns}
            continue
        for cfg in tunes[kernel]:
            yield kernel, dict(cfg.kwargs), {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}


def _row(arch, source, kernel, fn, args, kwargs, opts):
    from rocm_enable.gates.capabilities import capabilities_for
    from rocm_enable.isa import asm_metrics, compile_for_arch

    args = {p.name: args[p.name] for p in fn.params}
    k = compile_for_arch(fn, args, opts, arch)
    asm = k.asm["amdgcn"]
    m = asm_metrics(asm, k.metadata, arch)
    vspill = 0
    for line in asm.splitlines():
        if ".vgpr_spill_count:" in line:
            vspill = int(line.split(":")[1])
    return dict(arch=arch, source=source, kernel=kernel,
                config=" ".join(f"{a}{b}" for a, b in sorted(kwargs.items())) or "-",
                num_warps=opts["num_warps"], num_stages=opts.get("num_stages"), vgpr=m["vgpr"],
                vgpr_spills=vspill, spills=m["spills"], scratch=m["scratch"], lds=m["lds"],
                lds_limit=capabilities_for(arch).lds_per_workgroup_kib * 1024, occupancy=m["occupancy"],
                wmma=m["wmma"])


# vLLM kernels that rocm-enable's GDN fixes replace on wave32 RDNA at the models' shape
# (gdn-prefill-rdna: state recurrence, WY recompute; gdn-decode-rdna: packed decode)
REPLACED = ("recompute_w_u_fwd_kernel", "chunk_gated_delta_rule_fwd_kernel_h_blockdim64",
            "fused_recurrent_gated_delta_rule_packed_decode_kernel")


def selected_cases():
    """(kernel, candidate kwargs, options) of vLLM's FLA kernels that can run on wave32 RDNA with
    rocm-enable's GDN fixes: the one candidate gdn-prefill-rdna leaves, the fixed launches of the
    decode kernels not in REPLACED (spec decode, other callers)."""
    from rocm_enable.ops.gdn import VLLM_NO_SPILL_CANDIDATE

    for kernel, (kwargs, warps, stages) in VLLM_NO_SPILL_CANDIDATE.items():
        yield kernel, dict(kwargs), {"num_warps": warps, "num_stages": stages}
    for kernel, (warps, stages, bv) in FIXED_LAUNCH.items():
        if kernel not in REPLACED:
            yield kernel, {"BV": bv}, {"num_warps": warps, "num_stages": stages}


def rocm_enable_selectable():
    """(kernel, launch config) of every rocm_enable GDN kernel config that can run on wave32 RDNA."""
    from rocm_enable.ops import gdn, gdn_decode

    return gdn.selectable_configs() + gdn_decode.selectable_configs()


def rocm_enable_cases(configs=None):
    """(kernel, JITFunction, launch args, config kwargs, options): every selectable config (or the
    given (kernel, config) pairs) at the Qwen3-Next / Qwen3.6 shape, in the form vLLM calls them
    (varlen prefill with initial states; packed decode with bf16 activations and an fp32 state)."""
    import triton.language as tl

    from rocm_enable.isa import _t, load_compilable_kernels

    mod = load_compilable_kernels(os.path.join(os.path.dirname(os.path.abspath(__file__)), "gdn_kernels.py"),
                                  "_rocm_enable_isa_gdn_kernels")
    bf, f32, i32 = tl.bfloat16, tl.float32, tl.int32
    big = 1 << 28
    for kernel, cfg in (configs or rocm_enable_selectable()):
        tile = {key: x for key, x in cfg.items() if key not in ("num_warps", "num_stages")}
        if kernel == "gdn_chunk_state_kernel":
            args = dict(k=_t(bf, big), v=_t(bf, big), w=_t(bf, big), v_new=_t(bf, big), g=_t(f32, big),
                        h=_t(bf, big), h0=_t(f32, big), ht=_t(f32, big), cu_seqlens=_t(i32),
                        chunk_offsets=_t(i32), T=T_TOKENS, H=H_V, Hg=H_K, K=K, V=V, BT=BT, BK=K, USE_G=True,
                        USE_INITIAL_STATE=True, STORE_FINAL_STATE=True, SAVE_NEW_VALUE=True, IS_VARLEN=True,
                        USE_EXP2=False, **tile)
        elif kernel == "gdn_wy_kernel":
            args = dict(k=_t(bf, big), v=_t(bf, big), beta=_t(bf, big), w=_t(bf, big), u=_t(bf, big),
                        A=_t(bf, big), g=_t(f32, big), cu_seqlens=_t(i32), chunk_indices=_t(i32), T=T_TOKENS,
                        H=H_V, Hg=H_K, K=K, V=V, BT=BT, IS_VARLEN=True, **tile)
        elif kernel == "gdn_packed_decode_kernel":
            args = dict(mixed_qkv=_t(bf, big), a=_t(bf, big), b=_t(bf, big), A_log=_t(f32), dt_bias=_t(f32),
                        o=_t(bf, big), state=_t(f32, big), state_indices=_t(i32), scale=K ** -0.5,
                        stride_qkv=2 * H_K * K + H_V * V, stride_a=H_V, stride_b=H_V, stride_state=H_V * V * K,
                        stride_idx=1, H=H_K, HV=H_V, K=K, V=V, BK=K, SOFTPLUS_THRESHOLD=20.0,
                        L2NORM_QK=True, **tile)
        else:
            raise KeyError(kernel)
        opts = {"num_warps": cfg["num_warps"], "num_stages": cfg["num_stages"]}
        yield kernel, getattr(mod, kernel), args, tile, opts


def _iter_report(arch: str, source: str, kernels=None, candidate=None):
    if source == "rocm_enable":  # only rocm_enable's kernels (the configs ``candidate`` lists, else all)
        for kernel, fn, args, kwargs, opts in rocm_enable_cases(candidate):
            if not kernels or kernel in kernels:
                yield _row(arch, "rocm_enable", kernel, fn, args, kwargs, opts)
        return
    mod, _ = load_fla()
    if source == "vllm":
        for kernel, kwargs, opts in fla_cases(kernels, candidate):
            yield _row(arch, "vllm", kernel, getattr(mod, kernel), fla_args(kernel, kwargs), kwargs, opts)
        return
    for kernel, fn, args, kwargs, opts in rocm_enable_cases():
        if not kernels or kernel in kernels:
            yield _row(arch, "rocm_enable", kernel, fn, args, kwargs, opts)
    for kernel, kwargs, opts in selected_cases():
        if not kernels or kernel in kernels:
            yield _row(arch, "vllm", kernel, getattr(mod, kernel), fla_args(kernel, kwargs), kwargs, opts)


def gdn_isa_report(arch: str, source: str = "selected", kernels=None, subprocess_: bool = False,
                   candidate=None) -> list[dict]:
    """One dict per (kernel, launch config). ``source``: "selected" (every GDN kernel and config
    that can run on wave32 RDNA with rocm-enable's fixes: rocm_enable's kernels and vLLM's under the
    candidates those fixes leave) or "vllm" (every candidate of vLLM's FLA kernels). Compiles in a
    clean subprocess when asked or when this process has the Triton interpreter on."""
    interp = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")
    if interp or subprocess_:
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, "-m", "rocm_enable.ops.gdn_isa", "--json", "--set", source, arch]
        if kernels:
            cmd += ["--kernels", ",".join(kernels)]
        if candidate:
            cmd += ["--candidate", json.dumps(candidate)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if p.returncode:
            raise RuntimeError(f"AOT compile subprocess failed:\n{p.stderr[-4000:]}")
        return [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    return list(_iter_report(arch, source, kernels, candidate))


COLUMNS = ("arch", "source", "kernel", "config", "num_warps", "num_stages", "vgpr", "vgpr_spills", "spills",
           "scratch", "lds", "lds_limit", "occupancy", "wmma")


def to_markdown(rows: list[dict]) -> str:
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        out.append("| " + " | ".join("-" if r.get(c) is None else str(r.get(c)) for c in COLUMNS) + " |")
    return "\n".join(out)


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archs", nargs="*", default=["gfx1151"])
    ap.add_argument("--set", choices=("selected", "vllm", "rocm_enable"), default="selected",
                    help="selected: what runs on wave32 RDNA with rocm-enable; vllm: every vLLM candidate; "
                         "rocm_enable: rocm-enable's kernels only (with --candidate: a JSON list of "
                         "[kernel, config] pairs to compile instead of the shipped configs)")
    ap.add_argument("--kernels", help="comma-separated kernel names (default: all)")
    ap.add_argument("--candidate", help='with --set vllm and --kernels: only this one, JSON [kwargs, warps, stages]')
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    kernels = tuple(a.kernels.split(",")) if a.kernels else None
    candidate = json.loads(a.candidate) if a.candidate else None
    for arch in a.archs:
        if a.json:
            for r in _iter_report(arch, a.set, kernels, candidate):
                print(json.dumps(r), flush=True)
        else:
            print(to_markdown(gdn_isa_report(arch, a.set, kernels, candidate=candidate)), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    main()
