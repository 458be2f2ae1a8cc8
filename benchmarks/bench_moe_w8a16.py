#!/usr/bin/env python3
"""GPU benchmark (NVIDIA H100/H200 stand-in; no AMD hardware exists here) of the W8A16 MoE
expert GEMMs and the dense linear, side by side IN THE SAME RUN with vLLM's own
``fused_moe_kernel`` in bf16 and in native FP8 (w8a8 block-128), plus copy bandwidth.
Prints tables; it is not a test.

  # where vLLM is installed (no GPU): extract vLLM's @triton.jit functions into the
  # git-ignored .bench_vendor/ (benchmarks/_harness/vllm_moe.py; --vllm-src DIR for another vLLM)
  python benchmarks/bench_moe_w8a16.py --extract
  # GPU machine (carry .bench_vendor; no vLLM needed there):
  python3 benchmarks/bench_moe_w8a16.py --out $OUT [--dense] [--sweep [--sweep-round 2]]
  python3 benchmarks/_harness/read_floor.py   # the read floor, same call

Method (docs/benchmarks.md): weights are NBUF full independent copies and routing sets are
fresh random top-k per set, rotated so the touched experts are not L2-resident; each variant is
timed as one CUDA graph of NSETS launches, median of replays (benchmarks/_harness/timing.py).
vLLM FP8 is timed on the GEMM alone (activations pre-quantised).
"""
import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENDOR = os.path.join(ROOT, ".bench_vendor")
sys.path.insert(0, ROOT)

from benchmarks._harness import moe_data, vllm_moe  # noqa: E402
from benchmarks._harness.timing import copy_bandwidth, graph_median_us  # noqa: E402


# ---------------------------------------------------------------- GPU run
def log(msg):
    print(msg, flush=True)


def run(args):
    import torch
    import triton
    import triton.language as tl
    from rocm_enable.ops import config as cfgmod
    from rocm_enable.ops.fp8_dequant import fold_fp8_scale_for_fp16_bits
    from rocm_enable.ops.linear_w8a16 import linear_w8a16
    from rocm_enable.ops.moe_align import moe_align
    from rocm_enable.ops.moe_w8a16 import launch_w8a16_gemm, silu_and_mul

    vllm_kernel = vllm_moe.load_extracted(VENDOR).fused_moe_kernel
    dev = "cuda"
    p = torch.cuda.get_device_properties(0)
    cap = tuple(torch.cuda.get_device_capability(0))
    info = dict(device=torch.cuda.get_device_name(0), sms=p.multi_processor_count, capability=list(cap),
                torch=torch.__version__, triton=triton.__version__)
    log(json.dumps(info))
    bw = copy_bandwidth()
    copy_gbs = bw.get("copy_GBps_rw") if isinstance(bw, dict) else None
    log("bandwidth " + json.dumps(bw))
    res = {"info": info, "bw": bw, "rows": [], "dense": [], "sweep": []}
    g = torch.Generator(device=dev).manual_seed(args.seed)
    fam = "nvidia"

    def timed(calls):
        return graph_median_us(calls, args.replays)

    models = {"qwen3next": (512, 10), "qwen36_35b": (256, 8)}
    H, I = 2048, 512
    for model in args.models.split(","):
        E, TOPK = models[model]
        W = {}
        for gemm, (N, K) in (("w13", (2 * I, H)), ("w2", (H, I))):
            for b in range(args.bufs):
                wb = (torch.randn(E, N, K, generator=g, device=dev, dtype=torch.bfloat16) * 0.02)
                q, s = moe_data.quant_weight_block(wb)
                W[gemm, b] = (wb, q, s, fold_fp8_scale_for_fp16_bits(s))
        torch.cuda.synchronize()
        log(f"[{model}] weights ready, {torch.cuda.memory_allocated() / 2**30:.1f} GiB")
        for M in [int(m) for m in args.ms.split(",")]:
            bucket = cfgmod.get_moe_config(fam, M)
            naive = M * TOPK * cfgmod.naive_sparsity(fam) <= E
            sets = []
            for i in range(args.sets):
                ids = torch.rand(M, E, generator=g, device=dev).argsort(1)[:, :TOPK].to(torch.int32).contiguous()
                tw = torch.rand(M, TOPK, generator=g, device=dev)
                tw = (tw / tw.sum(1, keepdim=True)).float().contiguous()
                x = torch.randn(M, H, generator=g, device=dev).to(torch.bfloat16)
                a2 = (torch.randn(M * TOPK, I, generator=g, device=dev) * 0.5).to(torch.bfloat16)
                sets.append(dict(ids=ids, tw=tw, x=x, a2=a2, buf=i % args.bufs,
                                 distinct=int(torch.unique(ids).numel())))
            distinct = statistics.mean(s["distinct"] for s in sets)
            cfg_a = vllm_moe.default_config(M, E, False)
            cfg_b = vllm_moe.default_config(M, E, True)
            swap_b = vllm_moe.swap_ab(cfg_b, cap)
            for s in sets:
                s["asg_a"] = vllm_moe.assignment(s["ids"], cfg_a["BLOCK_SIZE_M"], E)
                s["asg_b"] = vllm_moe.assignment(s["ids"], cfg_b["BLOCK_SIZE_M"], E)
                s["route"] = moe_align(s["ids"], bucket["BLOCK_M"], E, naive=naive)
            for gemm in ("w13", "w2"):
                N, K = (2 * I, H) if gemm == "w13" else (H, I)
                top_k = TOPK if gemm == "w13" else 1
                mb_fp8 = distinct * N * K / 1e6
                for s in sets:
                    A = s["x"] if gemm == "w13" else s["a2"]
                    s["A"] = A
                    af = A.float().view(A.shape[0], K // 128, 128)
                    sc = af.abs().amax(-1).clamp(min=1e-10) / 448.0
                    s["Aq"] = (af / sc[..., None]).to(torch.float8_e4m3fn).view(A.shape[0], K)
                    s["As"] = sc.contiguous()
                    s["Ca"] = torch.empty(M, TOPK, N, dtype=torch.bfloat16, device=dev)
                    fuse = gemm == "w13" and bucket["fuse_silu"]
                    s["Co"] = torch.full((M * TOPK, N // 2 if fuse else N), float("nan"), dtype=torch.bfloat16,
                                         device=dev)
                    s["Cg"] = torch.empty(M * TOPK, N, dtype=torch.bfloat16, device=dev)
                    s["Cs"] = torch.empty(M * TOPK, N // 2, dtype=torch.bfloat16, device=dev)
                    s["Cf"] = torch.empty(M * TOPK, N // 2, dtype=torch.bfloat16, device=dev)
                mul = gemm == "w2"

                def ours(s, cfg=None, bm=None, route_key="route", fuse=None, silu=True):
                    cfg = cfg or bucket[gemm]
                    fuse_ = (gemm == "w13" and bucket["fuse_silu"]) if fuse is None else fuse
                    wb, q, sc, scf = W[gemm, s["buf"]]
                    out = (s["Co"] if cfg is bucket[gemm] else s["Cf"]) if fuse_ else s["Co"] if gemm == "w2" else s["Cg"]
                    launch_w8a16_gemm(s["A"], q, scf, out, routing=s[route_key], top_k=top_k,
                                      block_shape=[128, 128], gemm_cfg=cfg, block_m=bm or bucket["BLOCK_M"],
                                      topk_weights=s["tw"].view(-1) if mul else None, fuse_silu=fuse_)
                    if gemm == "w13" and not fuse_ and silu:
                        silu_and_mul(s["Cg"], s["Cs"])

                def vllm(s, fp8):
                    wb, q, sc, _ = W[gemm, s["buf"]]
                    cfg = cfg_b if fp8 else cfg_a
                    asg = s["asg_b"] if fp8 else s["asg_a"]
                    vllm_moe.launch(vllm_kernel, s["Aq"] if fp8 else s["A"], q if fp8 else wb, s["Ca"],
                                    s["As"] if fp8 else None, sc if fp8 else None,
                                    s["tw"] if mul else None, asg[0], asg[1], asg[2], mul, top_k, cfg,
                                    tl.bfloat16, fp8, [128, 128] if fp8 else None, swap_b if fp8 else False)

                # correctness of ours on set 0 (NaN-poisoned output, float32 reference)
                s0 = sets[0]
                ours(s0)
                torch.cuda.synchronize()
                wb, q, sc, _ = W[gemm, s0["buf"]]
                npc = min(M * TOPK, 320)  # check the first pairs only (time)
                flat = s0["ids"].view(-1).long()[:npc]
                A_rows = s0["A"][torch.arange(npc, device=dev) // top_k]
                ref = moe_data.ref_gemm(lambda idx: moe_data.dequant_rows(q, sc, idx), A_rows, flat,
                                   s0["tw"].view(-1)[:npc] if mul else None)
                if gemm == "w13":
                    ref = torch.nn.functional.silu(ref[:, :I]) * ref[:, I:]
                    got = (s0["Co"] if bucket["fuse_silu"] else s0["Cs"])[:npc]
                else:
                    got = s0["Co"][:npc]
                err = moe_data.rel_err(got.float(), ref)
                row = dict(model=model, M=M, gemm=gemm, distinct=distinct, MB_fp8=round(mb_fp8, 1),
                           rel_err=err, naive=naive, cfg=bucket[gemm], fuse=gemm == "w13" and bucket["fuse_silu"])
                row["ours_us"] = timed([lambda s=s: ours(s) for s in sets])
                row["vllm_bf16_us"] = timed([lambda s=s: vllm(s, False) for s in sets])
                row["vllm_fp8_us"] = timed([lambda s=s: vllm(s, True) for s in sets])
                if copy_gbs:
                    row["floor_us_copyBW"] = round(mb_fp8 * 1e3 / copy_gbs, 2)
                res["rows"].append(row)
                log(json.dumps(row))
                if args.sweep and model == "qwen3next":
                    for cand in sweep_candidates(M, gemm, args.sweep_round):
                        bm, cfg, fuse, silu = cand
                        key = f"route{bm}"
                        for s in sets:
                            if key not in s:
                                s[key] = moe_align(s["ids"], bm, E, naive=naive and bm == 16)
                        try:
                            us = timed([lambda s=s: ours(s, cfg, bm, key, fuse, silu) for s in sets])
                        except Exception as e:  # noqa: BLE001 (out of shared memory etc.)
                            us = f"{type(e).__name__}"
                        sw = dict(model=model, M=M, gemm=gemm, BLOCK_M=bm, fuse=fuse, silu=silu, cfg=cfg, us=us)
                        res["sweep"].append(sw)
                        log("sweep " + json.dumps(sw))
                for s in sets:
                    for k in ("Ca", "Co", "Cg", "Cs", "Cf", "Aq", "As"):
                        s.pop(k, None)
        del W
        torch.cuda.empty_cache()

    if args.dense:
        # Qwen3.6-27B dense MLP: gate_up [2*17408, 5120], down [5120, 17408]
        for name, (N, K) in (("gate_up", (2 * 17408, 5120)), ("down", (5120, 17408))):
            wb = torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02
            q, sc = moe_data.quant_weight_block(wb.unsqueeze(0))
            q, sc = q[0], sc[0]
            scf = fold_fp8_scale_for_fp16_bits(sc)
            for M in (1, 16, 32, 256, 2048):
                x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
                y = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
                y2 = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
                ref = x.float() @ (q.float().view(N // 128, 128, K // 128, 128) * sc[:, None, :, None]).view(N, K).T
                linear_w8a16(x, q, scf, block_shape=[128, 128], arch_family=fam, out=y)
                err = moe_data.rel_err(y.float(), ref)
                t_ours = timed([lambda: linear_w8a16(x, q, scf, block_shape=[128, 128], arch_family=fam, out=y)] * 8)
                t_bf16 = timed([lambda: torch.matmul(x, wb.T, out=y2)] * 8)
                row = dict(layer=name, N=N, K=K, M=M, rel_err=err, ours_us=t_ours, torch_bf16_us=t_bf16,
                           floor_us_copyBW=round(N * K / 1e3 / copy_gbs, 2) if copy_gbs else None)
                res["dense"].append(row)
                log("dense " + json.dumps(row))
                if args.sweep:
                    for dc in dense_sweep_candidates(M, args.sweep_round):
                        dc = dict(dc)
                        bm = dc.pop("BLOCK_M")
                        call = lambda: launch_w8a16_gemm(x, q.unsqueeze(0), scf, y, routing=None, top_k=1,  # noqa: E731
                                                         block_shape=[128, 128], gemm_cfg=dc, block_m=bm)
                        try:
                            y.fill_(float("nan"))
                            call()
                            e = moe_data.rel_err(y.float(), ref)
                            us = timed([call] * 8)
                        except Exception as ex:  # noqa: BLE001
                            e, us = None, f"{type(ex).__name__}: {str(ex)[:80]}"
                        sw = dict(model="dense_" + name, M=M, gemm=name, BLOCK_M=bm, fuse=False, cfg=dc, us=us,
                                  rel_err=e)
                        res["sweep"].append(sw)
                        log("sweep " + json.dumps(sw))
            del wb, q
            torch.cuda.empty_cache()
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        json.dump(res, open(os.path.join(args.out, "bench_moe_w8a16.json"), "w"), indent=1)
    summary(res)


def sweep_candidates(M, gemm, rnd=1):
    """(BLOCK_M, gemm cfg, fuse_silu, run_silu) alternatives for the NVIDIA config choice.
    cfg may carry SPLIT_K (naive routing only). run_silu=False times the unfused w13 GEMM
    alone (no silu_and_mul launch): the cost of the GEMM without the fused epilogue."""
    c = lambda bn, bk, w, s, **kw: {"BLOCK_N": bn, "BLOCK_K": bk, "num_warps": w, "num_stages": s, **kw}  # noqa: E731
    w13 = gemm == "w13"
    if rnd == 5:  # prefill: activation pre-split (A_SPLIT) vs the shipped tiles
        a = lambda bn, bk, w, s: c(bn, bk, w, s, a_split=True)  # noqa: E731
        cands = [] if M <= 16 else [
            (16, a(64, 128, 4, 4), w13), (64, a(128, 128, 4, 3), False), (64, a(128, 128, 8, 3), False),
            (64, a(128, 64, 4, 3), False), (64, a(128, 128, 4, 4), False), (64, a(256, 128, 8, 3), False),
            (128, a(128, 128, 8, 3), False), (128, a(256, 128, 8, 3), False), (32, a(128, 128, 4, 3), False)]
    elif rnd == 4:  # GEMV refinement around round 3's winners (docs/benchmarks.md)
        v = lambda bn, bk, w, s: c(bn, bk, w, s, kernel="gemv")  # noqa: E731
        grid = ((16, 512, 4, 2), (16, 512, 4, 1), (16, 512, 8, 2), (8, 512, 4, 2), (8, 1024, 4, 2),
                (8, 256, 2, 2)) if w13 else (
                (32, 256, 4, 2), (32, 256, 4, 1), (16, 256, 4, 2), (32, 256, 8, 2), (64, 256, 8, 2),
                (32, 128, 2, 2))
        cands = [(16, v(*t), w13) for t in grid] if M <= 16 else []
    elif rnd == 3:  # decode GEMV kernel (no MMA, BLOCK_K across scale groups) vs the shipped tile
        v = lambda bn, bk, w, s: c(bn, bk, w, s, kernel="gemv")  # noqa: E731
        cands = [(16, v(bn, bk, w, st), w13) for bn, bk, w, st in (
            (16, 512, 4, 2), (16, 512, 2, 2), (16, 256, 2, 2), (16, 256, 1, 2), (32, 512, 4, 2),
            (32, 256, 4, 2), (32, 256, 2, 2), (64, 256, 4, 2), (64, 512, 8, 2), (16, 512, 4, 3),
            (16, 1024, 4, 2), (8, 512, 2, 2))] if M <= 16 else []
    elif rnd == 2 and M <= 16:  # round 2: around round 1's winners (docs/benchmarks.md)
        cands = [(16, c(32, 128, 2, 4), w13), (16, c(32, 128, 2, 3), w13), (16, c(32, 128, 2, 6), w13),
                 (16, c(64, 128, 2, 4), w13), (16, c(16, 128, 1, 4), w13), (16, c(32, 128, 1, 4), w13),
                 (16, c(64, 128, 4, 3), w13), (16, c(64, 64, 2, 4), w13), (16, c(32, 128, 2, 4, SPLIT_K=2), w13)]
    elif rnd == 2:
        cands = [(16, c(64, 128, 4, 4), w13), (16, c(128, 128, 4, 3), w13), (16, c(128, 128, 4, 4), False),
                 (16, c(128, 64, 4, 4), False), (16, c(64, 128, 4, 3), False),
                 (64, c(128, 128, 4, 3), False), (64, c(128, 64, 4, 4), False), (64, c(128, 64, 4, 3), False),
                 (32, c(128, 64, 4, 4), False)]
    elif M <= 16:
        cands = [(16, c(64, 128, 4, 4), w13), (16, c(32, 128, 4, 4), w13), (16, c(16, 128, 4, 4), w13),
                 (16, c(32, 128, 2, 4), w13), (16, c(64, 64, 4, 4), w13), (16, c(64, 128, 8, 4), w13),
                 (16, c(64, 128, 4, 4, SPLIT_K=2), w13), (16, c(64, 128, 4, 4, SPLIT_K=4), w13),
                 (16, c(32, 128, 4, 4, SPLIT_K=2), w13), (16, c(128, 128, 4, 4, SPLIT_K=4), w13),
                 (16, c(128, 128, 8, 4, SPLIT_K=4), w13), (16, c(64, 64, 4, 4, SPLIT_K=4), w13)]
        if w13:  # unfused GEMM alone (N=1024 outputs), to see what the fusion costs
            cands += [(16, c(64, 128, 4, 4), False, False), (16, c(128, 128, 4, 4), False, False),
                      (16, c(32, 128, 4, 4), False, False), (16, c(128, 128, 4, 4, SPLIT_K=2), False, False)]
    else:
        cands = [(16, c(64, 128, 4, 4), w13), (16, c(128, 128, 4, 3), False), (16, c(128, 128, 8, 3), False),
                 (32, c(64, 128, 4, 4), False), (32, c(128, 128, 4, 3), False), (32, c(128, 128, 8, 3), False),
                 (64, c(128, 128, 4, 3), False), (64, c(128, 128, 8, 3), False), (64, c(128, 64, 8, 4), False),
                 (64, c(64, 128, 4, 4), False), (64, c(256, 64, 8, 3), False),
                 (128, c(128, 64, 8, 3), False), (128, c(128, 128, 8, 3), False)]
    out = []
    for cand in cands:
        bm, cfg, fuse = cand[:3]
        silu = cand[3] if len(cand) > 3 else True
        if gemm == "w2":
            fuse, silu = False, True
        out.append((bm, cfg, fuse, silu))
    return out


def dense_sweep_candidates(M, rnd=1):
    c = lambda bm, bn, bk, w, s, **kw: {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "num_warps": w,  # noqa: E731
                                        "num_stages": s, **kw}
    if rnd == 5:
        a = lambda bm, bn, bk, w, s: c(bm, bn, bk, w, s, GROUP_M=8, a_split=True)  # noqa: E731
        return [] if M <= 128 else [a(128, 128, 128, 8, 4), a(128, 128, 128, 8, 3), a(128, 128, 128, 4, 3),
                                    a(64, 128, 128, 4, 3), a(128, 256, 128, 8, 3), a(256, 128, 128, 8, 3)]
    if rnd == 4:
        g = lambda bn, bk, w, s: c(16, bn, bk, w, s, kernel="gemv")  # noqa: E731
        return [g(bn, bk, w, st) for bn, bk, w, st in (
            (16, 1024, 4, 2), (8, 1024, 4, 2), (16, 2048, 4, 2), (16, 1024, 8, 2), (32, 1024, 8, 2),
            (8, 1024, 2, 2), (16, 1024, 4, 1))] if M <= 4 else []
    if rnd == 3:
        g = lambda bn, bk, w, s: c(16, bn, bk, w, s, kernel="gemv")  # noqa: E731
        return [g(bn, bk, w, st) for bn, bk, w, st in (
            (16, 512, 4, 2), (16, 256, 2, 2), (32, 512, 4, 2), (32, 256, 4, 2), (64, 256, 4, 2),
            (64, 512, 8, 2), (16, 1024, 4, 2), (8, 512, 2, 2))] if M <= 4 else []
    if rnd == 2 and M <= 16:
        return [c(16, 64, 128, 4, 4, SPLIT_K=4), c(16, 64, 128, 2, 4, SPLIT_K=4), c(16, 32, 128, 2, 4, SPLIT_K=4),
                c(16, 32, 128, 2, 4, SPLIT_K=8), c(16, 64, 128, 4, 4, SPLIT_K=3), c(16, 64, 128, 4, 3, SPLIT_K=6),
                c(16, 64, 128, 2, 4), c(16, 32, 128, 2, 4)]
    if rnd == 2:
        return [c(128, 128, 128, 8, 3, GROUP_M=8), c(128, 128, 128, 8, 4, GROUP_M=8), c(128, 128, 128, 8, 3, GROUP_M=16),
                c(64, 128, 128, 4, 3, GROUP_M=16), c(128, 128, 64, 8, 4, GROUP_M=8), c(64, 256, 128, 8, 3, GROUP_M=8)]
    if M <= 16:
        return [c(16, 64, 128, 4, 4), c(16, 64, 128, 4, 4, SPLIT_K=2), c(16, 64, 128, 4, 4, SPLIT_K=4),
                c(16, 64, 128, 4, 4, SPLIT_K=8), c(16, 32, 128, 4, 4), c(16, 32, 128, 4, 4, SPLIT_K=4),
                c(16, 128, 128, 4, 4), c(16, 128, 128, 4, 4, SPLIT_K=4), c(16, 128, 128, 8, 4, SPLIT_K=8)]
    return [c(64, 128, 128, 4, 3), c(64, 128, 128, 4, 3, GROUP_M=8), c(128, 128, 64, 8, 3, GROUP_M=8),
            c(128, 128, 128, 8, 3, GROUP_M=8), c(128, 256, 64, 8, 3, GROUP_M=8), c(64, 256, 64, 8, 3, GROUP_M=8),
            c(256, 128, 64, 8, 3, GROUP_M=8), c(64, 128, 128, 8, 4, GROUP_M=8), c(128, 128, 64, 4, 4, GROUP_M=8)]


def summary(res):
    log("\n## MoE expert GEMMs (us per launch, CUDA graph, median); ours w13 includes SiLU*mul")
    log("| model | M | gemm | ours | vLLM bf16 | vLLM fp8 (GEMM only) | copyBW floor | ours/fp8 | ours/bf16 | rel err |")
    log("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|")
    for r in res["rows"]:
        log(f"| {r['model']} | {r['M']} | {r['gemm']} | {r['ours_us']:.1f} | {r['vllm_bf16_us']:.1f} | "
            f"{r['vllm_fp8_us']:.1f} | {r.get('floor_us_copyBW', '-')} | {r['ours_us'] / r['vllm_fp8_us']:.2f} | "
            f"{r['ours_us'] / r['vllm_bf16_us']:.2f} | {r['rel_err']:.1e} |")
    if res["dense"]:
        log("\n## dense (Qwen3.6-27B MLP), us")
        log("| layer | M | ours | torch bf16 | floor | rel err |")
        log("|---|--:|--:|--:|--:|--:|")
        for r in res["dense"]:
            log(f"| {r['layer']} | {r['M']} | {r['ours_us']:.1f} | {r['torch_bf16_us']:.1f} | "
                f"{r['floor_us_copyBW']} | {r['rel_err']:.1e} |")
    if res["sweep"]:
        best = {}
        for s in res["sweep"]:
            if isinstance(s["us"], float):
                k = (s["M"], s["gemm"])
                if k not in best or s["us"] < best[k]["us"]:
                    best[k] = s
        log("\n## sweep (all candidates, us)")
        for s in res["sweep"]:
            us = f"{s['us']:.1f}" if isinstance(s["us"], float) else s["us"]
            log(f"{s['model']} M={s['M']} {s['gemm']} BM{s['BLOCK_M']} fuse={s['fuse']} silu={s.get('silu', True)} "
                f"{s['cfg']}: {us}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extract", action="store_true")
    ap.add_argument("--vllm-src", help="with --extract: a vLLM package folder instead of the installed vLLM")
    ap.add_argument("--out")
    ap.add_argument("--models", default="qwen3next,qwen36_35b")
    ap.add_argument("--ms", default="1,4,16,64,256,2048")
    ap.add_argument("--sets", type=int, default=16)
    ap.add_argument("--bufs", type=int, default=4)
    ap.add_argument("--replays", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--dense", action="store_true")
    ap.add_argument("--sweep-round", type=int, default=1, help="candidate set (1: broad, 2: refine, 3: decode GEMV, 4: GEMV refine, 5: A pre-split)")
    a = ap.parse_args()
    if a.extract:
        print("wrote", vllm_moe.extract(VENDOR, a.vllm_src))
    else:
        run(a)


if __name__ == "__main__":
    main()
