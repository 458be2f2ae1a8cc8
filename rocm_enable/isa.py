"""Ahead-of-time AMDGCN reports for the shipped W8A16 kernels and launch configs (no GPU).

Compiles ``rocm_enable.ops.w8a16_kernel`` for ``GPUTarget("hip", arch, warp)`` through
Triton's own JIT binder (so specialisation -- constexpr 1s, divisibility-16, buffer-op
pointer ranges -- is what a real launch gets) and reads the assembly:
VGPR / spills / scratch, v_cndmask (whole kernel and K loop), WMMA/MFMA count, K-loop
instructions per matrix instruction, LDS and occupancy.

  python -m rocm_enable.isa gfx1151 [gfx1100 ...]      # markdown table
"""
from __future__ import annotations

import importlib.util
import os
import sys
from typing import Optional

import triton
import triton.language as tl

from rocm_enable.gates.capabilities import capabilities_for
from rocm_enable.ops import config as cfgmod
# The AOT helpers live one level down (ops.aot) so every report can share them; the names stay
# importable from here for tools and tests.
from rocm_enable.ops.aot import (  # noqa: F401
    asm_metrics, compile_for_arch, fake_tensor as _t, lds_per_occupancy_unit, warp_size)
from rocm_enable.ops.aot import load_compilable_kernels as _load_kernels

KERNEL_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops", "w8a16_kernel.py")

# Representative shapes: Qwen3-Next-80B-A3B / Qwen3-Coder-Next (E=512, top-10, hidden 2048,
# moe_intermediate 512) and the dense Qwen3.6-27B (hidden 5120, intermediate 17408).
MOE_SHAPE = dict(E=512, top_k=10, hidden=2048, inter=512)
DENSE_SHAPE = dict(N=17408, K=5120)


def family_for_arch(arch: str) -> str:
    """Launch-config family of an arch, from the capability table."""
    return capabilities_for(arch).kernel_family


def load_compilable_kernels(path: str = KERNEL_FILE, module_name: str = "_rocm_enable_isa_w8a16_kernel"):
    """The W8A16 kernel module (or `path`) imported afresh with the interpreter off (ops.aot)."""
    return _load_kernels(path, module_name)


def _split_args(K: int, bk: int, split_k: int, group_m: int = 1):
    steps = -(-K // bk)
    iters = -(-steps // split_k)
    return dict(ws_ptr=_t(tl.float32), cnt_ptr=_t(tl.int32),
                k_iters=iters, SPLIT_K=split_k, GROUP_M=group_m)


GEMM, GEMV = "w8a16_gemm_kernel", "w8a16_gemv_kernel"


def _gemv_args(g: dict, N_w: int, K: int, n_out: int, rows: int, routed: bool, top_k: int,
               fuse: bool, up_offset: int, E: int = 1):
    """Launch-style args of w8a16_gemv_kernel (block-128 scales, as the checkpoints ship)."""
    bk = min(g["BLOCK_K"], max(16, triton.next_power_of_2(K)))
    return dict(
        a_ptr=_t(tl.float16), w_ptr=_t(tl.int32, E * N_w * K), c_ptr=_t(tl.bfloat16),
        scale_ptr=_t(tl.float32), bias_ptr=_t(tl.float32), topk_weights_ptr=_t(tl.float32),
        expert_ids_ptr=_t(tl.int32) if routed else None,
        N=n_out, K=K, num_rows=rows, up_offset=up_offset,
        stride_am=K, stride_ak=1, stride_we=N_w * K // 4, stride_wn=K // 4, stride_cm=n_out, stride_cn=1,
        stride_se=(N_w // 128) * (K // 128), stride_sn=K // 128, stride_sk=1,
        top_k=top_k, ROUTED=routed, SCALE_MODE=0, GROUP_N=128, GROUP_K=128,
        MUL_ROUTED_WEIGHT=routed and not fuse, FUSE_SILU=fuse, HAS_BIAS=False,
        BLOCK_N=g["BLOCK_N"], BLOCK_K=bk, EVEN_K=K % bk == 0)


def weights_per_loop_iteration(args: dict) -> int:
    """Weight bytes one GEMV program consumes per K-loop iteration (both halves when SiLU is fused)."""
    rows = args["BLOCK_N"] * (2 if args["FUSE_SILU"] else 1)
    return rows * args["BLOCK_K"]


def _moe_args(gemm: str, bucket: dict, m: int, naive: bool, split_k: int = 1):
    """(kernel function name, args, compile options, specialisation) of one MoE GEMM."""
    E, top_k, H, inter = (MOE_SHAPE[k] for k in ("E", "top_k", "hidden", "inter"))
    fuse = gemm == "w13" and bucket["fuse_silu"]
    N_w, K = (2 * inter, H) if gemm == "w13" else (H, inter)
    n_out = N_w // 2 if fuse else N_w
    g = bucket[gemm]
    bm = bucket["BLOCK_M"]
    if g.get("kernel") == "gemv" and naive and split_k == 1:
        args = _gemv_args(g, N_w, K, n_out, m * top_k, True, top_k if gemm == "w13" else 1, fuse,
                          inter if fuse else 0, E)
        spec = f"M={m} naive fuse_silu={fuse} gemv"
        return GEMV, args, cfgmod.split_options(g)[1], spec
    bk = min(g["BLOCK_K"], 128)
    pairs = m * top_k
    args = dict(
        a_ptr=_t(tl.float16), w_ptr=_t(tl.int32, E * N_w * K), c_ptr=_t(tl.bfloat16),
        scale_ptr=_t(tl.float32), bias_ptr=_t(tl.float32),
        topk_weights_ptr=_t(tl.float32), sorted_token_ids_ptr=None if naive else _t(tl.int32),
        expert_ids_ptr=_t(tl.int32), num_tokens_post_padded_ptr=_t(tl.int32),
        N=n_out, K=K, EM=pairs * bm, num_valid_tokens=pairs, up_offset=inter if fuse else 0,
        stride_am=K, stride_ak=1, stride_we=N_w * K // 4, stride_wn=K // 4, stride_cm=n_out, stride_cn=1,
        stride_se=(N_w // 128) * (K // 128), stride_sn=K // 128, stride_sk=1,
        top_k=top_k if gemm == "w13" else 1, ROUTING=1 if naive else 2, SCALE_MODE=0,
        GROUP_N=128, GROUP_K=128, MUL_ROUTED_WEIGHT=gemm == "w2", FUSE_SILU=fuse, HAS_BIAS=False,
        BLOCK_M=bm, BLOCK_N=g["BLOCK_N"], BLOCK_K=bk, EVEN_K=K % bk == 0, A_SPLIT=bool(g.get("a_split")),
        **_split_args(K, bk, split_k))
    spec = f"M={m} {'naive' if naive else 'sorted'} fuse_silu={fuse}" + (f" split_k={split_k}" if split_k > 1 else "")
    spec += " a_split" if g.get("a_split") else ""
    return GEMM, args, cfgmod.split_options(g)[1], spec


def _dense_args(bucket: dict, m: int, split_k: int = 1, shape=None):
    """(kernel function name, args, compile options, specialisation) of one dense GEMM."""
    N, K = shape or (DENSE_SHAPE["N"], DENSE_SHAPE["K"])
    if bucket.get("kernel") == "gemv" and split_k == 1:
        return (GEMV, _gemv_args(bucket, N, K, N, m, False, 1, False, 0),
                cfgmod.split_options(bucket)[1], f"M={m} gemv")
    bk = min(bucket["BLOCK_K"], 128)
    args = dict(
        a_ptr=_t(tl.float16), w_ptr=_t(tl.int32, N * K), c_ptr=_t(tl.bfloat16),
        scale_ptr=_t(tl.float32), bias_ptr=_t(tl.float32), topk_weights_ptr=None,
        sorted_token_ids_ptr=None, expert_ids_ptr=None, num_tokens_post_padded_ptr=None,
        N=N, K=K, EM=m, num_valid_tokens=m, up_offset=0,
        stride_am=K, stride_ak=1, stride_we=N * K // 4, stride_wn=K // 4, stride_cm=N, stride_cn=1,
        stride_se=(N // 128) * (K // 128), stride_sn=K // 128, stride_sk=1,
        top_k=1, ROUTING=0, SCALE_MODE=0, GROUP_N=128, GROUP_K=128, MUL_ROUTED_WEIGHT=False,
        FUSE_SILU=False, HAS_BIAS=False, BLOCK_M=bucket["BLOCK_M"], BLOCK_N=bucket["BLOCK_N"],
        BLOCK_K=bk, EVEN_K=K % bk == 0, A_SPLIT=bool(bucket.get("a_split")),
        **_split_args(K, bk, split_k, int(bucket.get("GROUP_M", 1))))
    spec = f"M={m}" + (f" N={N} K={K} split_k={split_k}" if split_k > 1 else "")
    if int(bucket.get("GROUP_M", 1)) > 1:
        spec += f" GROUP_M={bucket['GROUP_M']}"
    spec += " a_split" if bucket.get("a_split") else ""
    return GEMM, args, cfgmod.split_options(bucket)[1], spec


# the split-K specialisation compiled for every family's decode buckets (whether or not the
# family's configs ask for split-K): dense down_proj (K=17408) and the naive MoE w13/w2
SPLIT_K_ISA = 4
DENSE_DOWN_SHAPE = (5120, 17408)


def split_k_cases(family: str):
    """(name, kind, bucket_index, bucket, kernel, args, options, specialisation): SPLIT_K=4 builds of
    the first tile-kernel (decode) MoE and dense buckets."""
    d = cfgmod.load_shipped(family)
    b = next(b for b in d["moe"] if all(b[g].get("kernel") != "gemv" for g in ("w13", "w2")))
    i = d["moe"].index(b)
    for gemm in ("w13", "w2"):
        fn, args, opts, spec = _moe_args(gemm, b, 1, True, split_k=SPLIT_K_ISA)
        yield f"moe_{gemm}[{i}]", "moe", i, b, fn, args, opts, spec
    j, bd = next((j, dict(b)) for j, b in enumerate(d["dense"]) if b.get("kernel") != "gemv")
    bd.pop("GROUP_M", None)
    fn, args, opts, spec = _dense_args(bd, 1, split_k=SPLIT_K_ISA, shape=DENSE_DOWN_SHAPE)
    yield f"dense[{j}]", "dense", j, bd, fn, args, opts, spec


def shipped_cases(family: str):
    """(name, kind, bucket_index, bucket, kernel, args, options, specialisation) per shipped config.
    Each bucket is compiled at the largest M it serves (capped at 2048); MoE buckets whose M
    range crosses the naive/sorted threshold are compiled both ways."""
    d = cfgmod.load_shipped(family)
    sparsity = cfgmod.naive_sparsity(family)
    lo = 1
    for i, b in enumerate(d["moe"]):
        hi = b["max_m"] or 2048
        modes = sorted({lo * MOE_SHAPE["top_k"] * sparsity <= MOE_SHAPE["E"],
                        hi * MOE_SHAPE["top_k"] * sparsity <= MOE_SHAPE["E"]})
        for naive in modes:
            m = lo if naive else hi
            for gemm in ("w13", "w2"):
                fn, args, opts, spec = _moe_args(gemm, b, m, naive)
                yield f"moe_{gemm}[{i}]", "moe", i, b, fn, args, opts, spec
        lo = hi + 1
    lo = 1
    for i, b in enumerate(d["dense"]):
        hi = b["max_m"] or 2048
        fn, args, opts, spec = _dense_args(b, hi)
        yield f"dense[{i}]", "dense", i, b, fn, args, opts, spec
        lo = hi + 1


def _interpreter_active() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _in_clean_process(*cli_args) -> list:
    """Run ``python -m rocm_enable.isa --json ...`` without TRITON_INTERPRET. Needed when
    this process has run the interpreter: it patches triton.language in place, after which
    real compilation of the same builtins fails."""
    import json
    import subprocess
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-m", "rocm_enable.isa", "--json", *cli_args], env=env,
                       capture_output=True, text=True, check=False)
    if p.returncode:
        raise RuntimeError(f"AOT compile subprocess failed:\n{p.stderr[-4000:]}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def isa_report(arch: str, family: Optional[str] = None, save_dir: Optional[str] = None,
               split_k: bool = False) -> list[dict]:
    """Compile every shipped kernel+config of ``arch``'s family for ``arch``; one dict per
    compile: module, function, case, specialisation, options and the asm_metrics fields.
    ``split_k=True``: the SPLIT_K=4 builds of the decode buckets instead (split_k_cases)."""
    family = family or family_for_arch(arch)
    if _interpreter_active():
        return _in_clean_process(arch, "--family", family, *(["--save-dir", save_dir] if save_dir else []),
                                 *(["--split-k"] if split_k else []))
    mod = load_compilable_kernels()
    rows = []
    for name, kind, i, bucket, fn, args, opts, spec in (split_k_cases if split_k else shipped_cases)(family):
        k = compile_for_arch(getattr(mod, fn), args, opts, arch)
        asm = k.asm["amdgcn"]
        if save_dir:
            os.makedirs(save_dir, exist_ok=True)
            with open(os.path.join(save_dir, f"{name.replace('[', '_').replace(']', '')}.{arch}.s"), "w") as f:
                f.write(asm)
        tile = {kk: args[kk] for kk in ("BLOCK_M", "BLOCK_N", "BLOCK_K") if kk in args}
        m = asm_metrics(asm, k.metadata, arch)
        # per wave: each of num_warps waves consumes 1/num_warps of the program's weights
        per_wave = weights_per_loop_iteration(args) / k.metadata.num_warps
        m["loop_insts_per_256_weights"] = round(m["loop_insts"] * 256 / per_wave, 1) if fn == GEMV else None
        rows.append(dict(module="rocm_enable.ops.w8a16_kernel", function=fn, arch=arch,
                         family=family, case=name, kind=kind, bucket=i, specialisation=spec,
                         tile=tile, options=opts, **m))
    return rows


def fp8_cast_control(arch: str) -> dict:
    """Negative control for the metrics: a plain fp8 -> fp16 cast kernel (what the W8A16
    kernels avoid). On gfx11 it must show the per-byte compare/select ladder."""
    if _interpreter_active():
        return _in_clean_process(arch, "--control")[0]
    import tempfile
    src = (
        "import triton\nimport triton.language as tl\n\n\n@triton.jit\n"
        "def fp8_cast_kernel(x_ptr, y_ptr, N: tl.constexpr):\n"
        "    o = tl.arange(0, N)\n"
        "    tl.store(y_ptr + o, tl.load(x_ptr + o).to(tl.float16))\n")
    path = os.path.join(tempfile.mkdtemp(prefix="rocm_enable_isa_"), "fp8_cast_control.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("_rocm_enable_fp8_cast_control", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    k = compile_for_arch(m.fp8_cast_kernel, dict(x_ptr=_t(tl.float8e4nv), y_ptr=_t(tl.float16), N=256),
                         {"num_warps": 1}, arch)
    return dict(case="fp8_cast_control", arch=arch, **asm_metrics(k.asm["amdgcn"], k.metadata, arch))



def attention_isa_report(arch: str) -> list[dict]:
    """AOT report of the RDNA attention backend's kernels: every launch configuration it can
    choose on ``arch`` for head_dim 128 and 256 (bf16 and fp16), with VGPRs, VGPR spills, LDS
    and waves/SIMD. Lives in rocm_enable.ops.attention_isa; this is the entry point for tools."""
    from rocm_enable.ops.attention_isa import attention_isa_report as _report

    return _report(arch)


def gdn_isa_report(arch: str) -> list[dict]:
    """AOT report of every Gated-DeltaNet kernel and launch config that can run on ``arch`` with
    rocm-enable's GDN fixes (prefill and decode, Qwen3-Next / Qwen3.6 shape). Lives in
    rocm_enable.ops.gdn_isa; this is the entry point for tools."""
    from rocm_enable.ops.gdn_isa import gdn_isa_report as _report

    return _report(arch, "selected")


COLUMNS = ("case", "function", "specialisation", "tile", "options", "vgpr", "spills", "scratch", "cndmask",
           "loop_cndmask", "wmma", "loop_mma", "loop_insts", "loop_insts_per_wmma",
           "loop_insts_per_256_weights", "lds",
           "occupancy", "occupancy_lds")


def to_markdown(rows: list[dict]) -> str:
    out = ["| arch | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    for r in rows:
        def fmt(v):
            if isinstance(v, dict):
                return " ".join(f"{k.replace('BLOCK_', '')}{x}" if k.startswith("BLOCK_") else f"{k}={x}"
                                for k, x in v.items())
            return "-" if v is None else str(v)
        out.append(f"| {r['arch']} | " + " | ".join(fmt(r.get(c)) for c in COLUMNS) + " |")
    return "\n".join(out)


def main(argv=None):
    import argparse
    import json
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archs", nargs="*", default=["gfx1151"])
    ap.add_argument("--family", help="config family (default: from the arch)")
    ap.add_argument("--save-dir", help="write each kernel's .s here")
    ap.add_argument("--json", action="store_true", help="one JSON row per line instead of markdown")
    ap.add_argument("--control", action="store_true", help="compile the fp8-cast negative control")
    ap.add_argument("--split-k", action="store_true", help="the SPLIT_K=4 decode builds (split_k_cases)")
    a = ap.parse_args(argv)
    for arch in a.archs:
        rows = [fp8_cast_control(arch)] if a.control else isa_report(arch, a.family, a.save_dir, a.split_k)
        if a.json:
            for r in rows:
                print(json.dumps(r), flush=True)
        else:
            print(to_markdown(rows), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    main()
