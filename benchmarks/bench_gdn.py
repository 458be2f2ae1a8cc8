#!/usr/bin/env python3
"""GPU benchmark (NVIDIA H100 stand-in; no AMD GPU exists here) of rocm_enable's GDN prefill kernels
against the vLLM FLA kernels they replace on wave32 RDNA, IN THE SAME RUN, at the Qwen3-Next /
Qwen3.6 shape (K = V = 128, 16 key heads, 32 value heads, chunk 64, bf16, fp32 gates and states).
Not a test: prints a markdown table (and JSON lines with --out).

  # local (no GPU): copy vLLM's FLA ops sources from the installed wheel into the git-ignored
  # .bench_vendor/gdn/ (never committed)
  python benchmarks/bench_gdn.py --extract
  # GPU machine (carry .bench_vendor):
  python3 benchmarks/bench_gdn.py --vllm-dir .bench_vendor/gdn --out $OUT

Method:
  * state recurrence: vLLM's chunk_gated_delta_rule_fwd_kernel_h_blockdim64 vs
    rocm_enable.ops.gdn.chunk_gated_delta_rule_fwd_h; WY recompute: vLLM's recompute_w_u_fwd_kernel
    vs rocm_enable.ops.gdn.recompute_w_u_fwd. Variable-length batches with initial states and the
    final state stored, as vLLM's GDN prefill calls them.
  * vLLM's kernels: every candidate of the autotune list as it evaluates on an H100
    (rocm_enable.ops.gdn_isa.CUDA_HOPPER_CONSTANTS), each timed; the table shows the best (what
    vLLM's autotuner picks) and the worst. Ours: its one shipped config (the RDNA one; no tuning).
  * timing: triton.testing.do_bench (L2 flushed before each call, median ms); outputs compared.
  * decode is not here: on RDNA vLLM's own decode kernels run (they compile without spills,
    docs/gdn.md), so there is no second kernel to compare.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
VENDOR = os.path.join(ROOT, ".bench_vendor", "gdn")
HK, HV, K, V, BT = 16, 32, 128, 128, 64
CASES = ((1, 4096), (1, 16384), (8, 2048))  # (sequences, tokens each)


def extract():
    from rocm_enable.ops.gdn_isa import FLA_REL, vllm_package_dir

    src = os.path.join(vllm_package_dir(), FLA_REL)
    dst = os.path.join(VENDOR, FLA_REL)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    print(f"copied {src} -> {dst}")


def inputs(n_seqs, seq_len, seed=0):
    import torch

    g = torch.Generator(device="cuda").manual_seed(seed)
    T = n_seqs * seq_len
    dev, bf = "cuda", torch.bfloat16
    k = torch.nn.functional.normalize(torch.randn(1, T, HK, K, device=dev, generator=g), dim=-1).to(bf)
    w = (torch.randn(1, T, HV, K, device=dev, generator=g) * 0.05).to(bf)
    u = torch.randn(1, T, HV, V, device=dev, generator=g).to(bf)
    v = torch.randn(1, T, HV, V, device=dev, generator=g).to(bf)
    beta = torch.rand(1, T, HV, device=dev, generator=g).to(bf)
    gate = -torch.rand(1, T, HV, device=dev, generator=g) * 0.05
    # within-chunk cumulative gates, as chunk_local_cumsum leaves them
    gc = gate.view(1, n_seqs, -1, HV)
    gc = gc.view(1, n_seqs, seq_len // BT, BT, HV).cumsum(3).view(1, T, HV)
    A = (torch.randn(1, T, HV, BT, device=dev, generator=g) * 0.1).to(bf)
    h0 = torch.randn(n_seqs, HV, V, K, device=dev, generator=g) * 0.1
    cu = torch.arange(0, T + 1, seq_len, device=dev, dtype=torch.int32)
    nt = seq_len // BT
    idx = torch.stack([torch.arange(n_seqs).repeat_interleave(nt), torch.arange(nt).repeat(n_seqs)], 1)
    idx = idx.to(device=dev, dtype=torch.int32)
    offs = torch.arange(0, n_seqs * nt + 1, nt, device=dev, dtype=torch.int32)
    return dict(k=k, w=w, u=u, v=v, beta=beta, g=gc, A=A, h0=h0, cu=cu, idx=idx, offs=offs, T=T)


def vllm_state(mod, cfg, x):
    import torch
    import triton

    B, T = 1, x["T"]
    NT, N = x["idx"].shape[0], x["cu"].shape[0] - 1
    h = x["k"].new_empty(B, NT, HV, V, K)
    ht = torch.empty(N, HV, V, K, device="cuda", dtype=torch.float32)
    v_new = torch.empty_like(x["u"])
    grid = (triton.cdiv(V, cfg.kwargs["BV"]), N * HV)

    def run():
        mod.chunk_gated_delta_rule_fwd_kernel_h_blockdim64[grid](
            k=x["k"], v=x["u"], w=x["w"], v_new=v_new, g=x["g"], gk=None, h=h, h0=x["h0"], ht=ht,
            cu_seqlens=x["cu"], chunk_offsets=x["offs"], T=T, H=HV, Hg=HK, K=K, V=V, BT=BT, USE_G=True,
            USE_GK=False, USE_INITIAL_STATE=True, STORE_FINAL_STATE=True, SAVE_NEW_VALUE=True, IS_VARLEN=True,
            USE_EXP2=False, num_warps=cfg.num_warps, num_stages=cfg.num_stages, **cfg.kwargs)
        return h, v_new, ht
    return run


def vllm_wy(mod, cfg, x):
    import torch

    T = x["T"]
    NT = x["idx"].shape[0]
    u = torch.empty_like(x["v"])
    w = x["k"].new_empty(1, T, HV, K)

    def run():
        mod.recompute_w_u_fwd_kernel[(NT, HV)](
            k=x["k"], v=x["v"], beta=x["beta"], w=w, u=u, A=x["A"], g=x["g"], cu_seqlens=x["cu"],
            chunk_indices=x["idx"], T=T, H=HV, Hg=HK, K=K, V=V, BT=BT, BK=64, BV=64, IS_VARLEN=True,
            num_warps=cfg.num_warps, num_stages=cfg.num_stages)
        return w, u
    return run


def ours_state(x):
    from rocm_enable.ops import gdn

    return lambda: gdn.chunk_gated_delta_rule_fwd_h(
        k=x["k"], w=x["w"], u=x["u"], g=x["g"], initial_state=x["h0"], output_final_state=True,
        cu_seqlens=x["cu"], chunk_indices=x["idx"], chunk_offsets=x["offs"])


def ours_wy(x):
    from rocm_enable.ops import gdn

    return lambda: gdn.recompute_w_u_fwd(k=x["k"], v=x["v"], beta=x["beta"], g_cumsum=x["g"], A=x["A"],
                                         cu_seqlens=x["cu"], chunk_indices=x["idx"])


def max_diff(a, b):
    return max(float((p.float() - q.float()).abs().max()) for p, q in zip(a, b))


def bench(vllm_dir, out_dir):
    import torch
    from triton.testing import do_bench

    from rocm_enable.ops.gdn_isa import load_fla

    mod, tunes = load_fla(os.path.abspath(vllm_dir), hopper=True)
    dev = torch.cuda.get_device_name()
    rows = []
    out = open(os.path.join(out_dir, "bench_gdn.jsonl"), "w") if out_dir else None
    steps = (("state recurrence (chunk_delta_h)", "chunk_gated_delta_rule_fwd_kernel_h_blockdim64", vllm_state, ours_state),
             ("WY recompute (recompute_w_u)", "recompute_w_u_fwd_kernel", vllm_wy, ours_wy))
    for n_seqs, seq_len in CASES:
        x = inputs(n_seqs, seq_len)
        for step, kernel, vllm_fn, ours_fn in steps:
            timed = []
            for cfg in tunes[kernel]:
                run = vllm_fn(mod, cfg, x)
                try:
                    timed.append((do_bench(run, warmup=5, rep=25), cfg, run))
                except Exception as exc:  # a candidate that cannot launch here (resources)
                    print(f"# {kernel} {cfg}: {type(exc).__name__}", flush=True)
            best_ms, best_cfg, best_run = min(timed, key=lambda t: t[0])
            worst_ms = max(t[0] for t in timed)
            ours = ours_fn(x)
            ours_ms = do_bench(ours, warmup=5, rep=25)
            diff = max_diff(ours(), best_run())
            r = dict(device=dev, step=step, seqs=n_seqs, tokens_each=seq_len, vllm_best_ms=round(best_ms, 4),
                     vllm_best_config=f"{best_cfg.kwargs} w{best_cfg.num_warps} s{best_cfg.num_stages}",
                     vllm_worst_ms=round(worst_ms, 4), candidates=len(timed), ours_ms=round(ours_ms, 4),
                     speedup=round(best_ms / ours_ms, 3), max_abs_diff=diff)
            rows.append(r)
            print(json.dumps(r), flush=True)
            if out:
                out.write(json.dumps(r) + "\n")
                out.flush()
    print(f"\n{dev}\n")
    print("| step | seqs x tokens | vLLM best ms (config) | vLLM worst ms | ours ms | vLLM best / ours | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['step']} | {r['seqs']} x {r['tokens_each']} | {r['vllm_best_ms']} ({r['vllm_best_config']}) | "
              f"{r['vllm_worst_ms']} | {r['ours_ms']} | {r['speedup']} | {r['max_abs_diff']:.3g} |")


def sweep(out_dir):
    """Ours under other launch configs on this GPU (1 x 16384 tokens): which part of the gap to vLLM
    is the RDNA config (no software pipelining: num_stages > 1 spills on gfx1151) and which the
    kernel. Not selectable on RDNA; the shipped config is gdn.CHUNK_STATE_CONFIG / WY_CONFIG."""
    import itertools

    from triton.testing import do_bench

    from rocm_enable.ops import gdn

    x = inputs(1, 16384)
    out = open(os.path.join(out_dir, "bench_gdn_sweep.jsonl"), "w") if out_dir else None
    shipped = dict(gdn.CHUNK_STATE_CONFIG), dict(gdn.WY_CONFIG)
    spaces = (("state", gdn.CHUNK_STATE_CONFIG, ours_state, itertools.product((16, 32, 64), (4, 8), (1, 2, 3)), "BV"),
              ("wy", gdn.WY_CONFIG, ours_wy, itertools.product((32, 64), (4, 8), (1, 2)), "BC"))
    print("| step | tile | warps | stages | ms |\n|---|---|---|---|---|")
    for name, cfg, fn, space, tile in spaces:
        for t, w, st in space:
            cfg.update({tile: t, "num_warps": w, "num_stages": st})
            try:
                ms = do_bench(fn(x), warmup=5, rep=25)
            except Exception as exc:
                ms = f"{type(exc).__name__}"
            print(f"| {name} | {tile}{t} | {w} | {st} | {ms if isinstance(ms, str) else round(ms, 4)} |", flush=True)
            if out:
                out.write(json.dumps(dict(step=name, tile=t, warps=w, stages=st, ms=ms)) + "\n")
    gdn.CHUNK_STATE_CONFIG.update(shipped[0])
    gdn.WY_CONFIG.update(shipped[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extract", action="store_true", help="copy vLLM's FLA ops into .bench_vendor/gdn")
    ap.add_argument("--vllm-dir", default=None, help="folder holding third_party/flash_linear_attention/ops "
                                                     "(default: the installed vLLM)")
    ap.add_argument("--out", help="write bench_gdn.jsonl here")
    ap.add_argument("--sweep", action="store_true", help="also time ours under other launch configs")
    a = ap.parse_args()
    if a.extract:
        extract()
        return
    bench(a.vllm_dir or __import__("rocm_enable.ops.gdn_isa", fromlist=["x"]).vllm_package_dir(), a.out)
    if a.sweep:
        sweep(a.out)


if __name__ == "__main__":
    main()
