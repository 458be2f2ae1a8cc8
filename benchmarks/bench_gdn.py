#!/usr/bin/env python3
"""GPU benchmark (NVIDIA H100 stand-in; no AMD GPU exists here) of rocm_enable's GDN prefill and
decode kernels against the vLLM FLA kernels they replace on wave32 RDNA, IN THE SAME RUN, at the
Qwen3-Next / Qwen3.6 shape (K = V = 128, 16 key heads, 32 value heads, chunk 64, bf16, fp32 gates
and states).
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
  * decode: vLLM's fused_recurrent_gated_delta_rule_packed_decode_kernel under its launcher's
    CUDA/ROCm launch (32 value rows per one-warp program; 0.33+/0.34 use 4-8 rows on Blackwell /
    H200 only) vs rocm_enable.ops.gdn_decode.packed_decode (the RDNA launch: 8 rows), batch
    1/8/32/128 one-token sequences, fp32 state pool, bf16 activations. Reported also as % of the
    copy rate for the state bytes (read + written). Outputs and updated states compared.
  * --sweep: ours under other launch configs (prefill state/WY kernels at 1 x 16384 tokens, decode
    rows per program at batch 8 and 128), for the choice of the shipped RDNA configs.
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


def decode_inputs(batch, seed=0):
    """One decode token per sequence, as qwen_gdn_linear_attn passes them: packed q|k|v row, a / b
    gates [B, HV], A_log / dt_bias [HV], an fp32 state pool with one spare slot per sequence
    (slot 0 = vLLM's null block, never used here), shuffled slot indices."""
    import torch

    g = torch.Generator(device="cuda").manual_seed(seed)
    dev, bf = "cuda", torch.bfloat16
    pool = torch.randn(2 * batch + 1, HV, V, K, device=dev, generator=g) * 0.1
    slots = (torch.randperm(2 * batch, device=dev, generator=g)[:batch] + 1).to(torch.int32)
    return dict(mixed=torch.randn(batch, 2 * HK * K + HV * V, device=dev, generator=g).to(bf),
                a=torch.randn(batch, HV, device=dev, generator=g).to(bf),
                b=torch.randn(batch, HV, device=dev, generator=g).to(bf),
                A_log=torch.randn(HV, device=dev, generator=g) * 0.5 - 1, dt_bias=torch.randn(HV, device=dev, generator=g),
                pool=pool, slots=slots, out=torch.empty(batch, 1, HV, V, device=dev, dtype=bf))


def vllm_decode(mod, x, state):
    """vLLM 0.32's launch of its packed decode kernel (fused_recurrent.py): BV = 32, 1 warp, 3 stages."""
    import triton

    B, BV = x["mixed"].shape[0], 32
    out = x["out"].clone()

    def run():
        mod.fused_recurrent_gated_delta_rule_packed_decode_kernel[(triton.cdiv(V, BV), B * HV)](
            mixed_qkv=x["mixed"], a=x["a"], b=x["b"], A_log=x["A_log"], dt_bias=x["dt_bias"], o=out, h0=state,
            ht=state, ssm_state_indices=x["slots"], scale=K ** -0.5, stride_mixed_qkv_tok=x["mixed"].stride(0),
            stride_a_tok=HV, stride_b_tok=HV, stride_init_state_token=state.stride(0),
            stride_final_state_token=state.stride(0), stride_indices_seq=1, H=HK, HV=HV, K=K, V=V, BK=K, BV=BV,
            SOFTPLUS_THRESHOLD=20.0, USE_QK_L2NORM_IN_KERNEL=True, SPLIT_BATCH_HEAD_GRID=False,
            num_warps=1, num_stages=3)
        return out, state
    return run


def ours_decode(x, state, config=None):
    from rocm_enable.ops import gdn_decode

    out = x["out"].clone()
    return lambda: gdn_decode.packed_decode(x["mixed"], x["a"], x["b"], x["A_log"], x["dt_bias"], K ** -0.5, state,
                                            out, x["slots"], use_qk_l2norm_in_kernel=True, config=config)


def copy_rate() -> float:
    """Device-to-device copy bytes (read + written) per second, 1 GiB."""
    import torch
    from triton.testing import do_bench

    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    return 2 * src.numel() / (do_bench(lambda: dst.copy_(src), warmup=5, rep=25) * 1e-3)


def bench_decode(mod, out, dev, sweep=False):
    """Packed decode, vLLM's launch vs ours, same inputs; ms, % of copy rate for the state bytes."""
    from triton.testing import do_bench

    from rocm_enable.ops import gdn_decode

    rate = copy_rate()
    rows = []
    configs = [None] + ([{"BV": bv, "num_warps": 1, "num_stages": 1} for bv in (4, 16, 32)] if sweep else [])
    for batch in (1, 8, 32, 128):
        x = decode_inputs(batch)
        state_bytes = 2 * batch * HV * V * K * 4  # fp32 state slices read and written
        ref_state = x["pool"].clone()
        ref = vllm_decode(mod, x, ref_state)
        o_ref, s_ref = (t.clone() for t in ref())
        vllm_ms = do_bench(vllm_decode(mod, x, x["pool"].clone()), warmup=10, rep=50)
        for cfg in configs:
            if cfg is not None and batch not in (8, 128):
                continue
            mine_state = x["pool"].clone()
            o, s = ours_decode(x, mine_state, cfg)()
            diff = max(float((o.float() - o_ref.float()).abs().max()), float((s - s_ref).abs().max()))
            ms = do_bench(ours_decode(x, x["pool"].clone(), cfg), warmup=10, rep=50)
            r = dict(device=dev, step="packed decode", batch=batch,
                     config=cfg or dict(gdn_decode.DECODE_CONFIG), shipped=cfg is None,
                     vllm_ms=round(vllm_ms, 4), ours_ms=round(ms, 4), speedup=round(vllm_ms / ms, 3),
                     vllm_pct_copy=round(100 * state_bytes / (vllm_ms * 1e-3) / rate, 1),
                     ours_pct_copy=round(100 * state_bytes / (ms * 1e-3) / rate, 1), max_abs_diff=diff)
            rows.append(r)
            print(json.dumps(r), flush=True)
            if out:
                out.write(json.dumps(r) + "\n")
                out.flush()
    print(f"\n{dev}: packed decode (copy rate {rate / 1e12:.2f} TB/s, read + written)\n")
    print("| batch | ours config | vLLM ms (BV32 w1 s3) | ours ms | vLLM % copy | ours % copy | vLLM / ours | max abs diff |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["config"]
        tag = f"BV{c['BV']} w{c['num_warps']} s{c['num_stages']}" + (" (shipped)" if r["shipped"] else "")
        print(f"| {r['batch']} | {tag} | {r['vllm_ms']} | {r['ours_ms']} | {r['vllm_pct_copy']} | "
              f"{r['ours_pct_copy']} | {r['speedup']}x | {r['max_abs_diff']:.3g} |")


def max_diff(a, b):
    return max(float((p.float() - q.float()).abs().max()) for p, q in zip(a, b))


def bench(vllm_dir, out_dir, sweep=False):
    import torch
    from triton.testing import do_bench

    from rocm_enable.ops.gdn_isa import load_fla

    mod, tunes = load_fla(os.path.abspath(vllm_dir), hopper=True)
    dev = torch.cuda.get_device_name()
    rows = []
    out = open(os.path.join(out_dir, "bench_gdn.jsonl"), "w") if out_dir else None
    steps = (("state recurrence (chunk_delta_h)", "chunk_gated_delta_rule_fwd_kernel_h_blockdim64", vllm_state, ours_state),
             ("WY recompute (recompute_w_u)", "recompute_w_u_fwd_kernel", vllm_wy, ours_wy))
    bench_decode(mod, out, dev, sweep)  # first: new in this round, kept if a time limit cuts the run
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
    spaces = (("state", gdn.CHUNK_STATE_CONFIG, ours_state, itertools.product((16, 32), (4, 8), (1, 2, 3)), "BV"),
              ("wy", gdn.WY_CONFIG, ours_wy, itertools.product((64,), (4, 8), (1, 2)), "BC"))
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
    bench(a.vllm_dir or __import__("rocm_enable.ops.gdn_isa", fromlist=["x"]).vllm_package_dir(), a.out, a.sweep)
    if a.sweep:
        sweep(a.out)


if __name__ == "__main__":
    main()
