#!/usr/bin/env python3
"""GPU benchmark of the whole W8A16 MoE layer (NVIDIA H100/H200 stand-in; no AMD hardware here)
beside vLLM's whole native-FP8 and bf16 Triton MoE layers, in the same run, CUDA-graph timed;
plus capture-and-replay of our layer at vLLM's default capture sizes, compared bit for bit with
eager. Prints tables (and writes JSON with --out); it is not a test.

  # where vLLM is installed (no GPU): extract vLLM's @triton.jit functions (fused_moe.py and the
  # FP8 activation quantiser of fp8_utils.py) into the git-ignored .bench_vendor/
  python benchmarks/bench_moe_layer.py --extract
  # GPU machine (carry .bench_vendor; no vLLM needed there):
  python3 benchmarks/bench_moe_layer.py --out $OUT [--shapes ...] [--ms ...]
  # the shape-grid subset (issue 13 point 5) in one device call:
  python3 benchmarks/bench_moe_layer.py --grid --single-launch --sets 6 --budget-s 450 --out $OUT

What each layer launches (per call, inside one CUDA graph of NSETS calls over rotated routing
sets and weight buffers, median of replays):
  ours      rocm_enable fused_experts_w8a16 with vLLM-style preallocated workspaces: Triton align,
            w13 (+SiLU), w2 (routed weight in the epilogue), top-k sum (at decode: no align, and
            the w2 GEMV sums the top-k itself: two launches).
  vllm-fp8  vLLM 0.32's TritonExperts path for block-128 FP8: per-token-group FP8 quant of x
            (vLLM's Triton _per_token_group_quant_fp8; on CUDA vLLM runs the same math as a C op),
            align, fused_moe_kernel w13 (fp8 x fp8, vLLM's CUDA default config), silu_and_mul,
            FP8 quant of the activation, fused_moe_kernel w2 (routed weight), sum over top-k.
  vllm-bf16 the same without the two quantisations, bf16 weights.
vLLM's compiled ops that cannot run without vLLM are stood in by one launch each: align = the
vLLM-layout Triton align of rocm_enable (what record moe-align-code-object gives vLLM on a build
without the arch), silu_and_mul = rocm_enable's one-launch SiLU kernel, moe_sum = torch.sum (what
vLLM's moe_sum calls for top_k > 4). Read floor: the routed experts' FP8 bytes (w13 + w2 of the
distinct experts touched) at the measured read rate.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENDOR = os.path.join(ROOT, ".bench_vendor")
sys.path.insert(0, ROOT)

from benchmarks._harness import moe_data, vllm_moe  # noqa: E402
from benchmarks._harness.timing import copy_bandwidth, graph_median_us  # noqa: E402

QUANT_JIT = "vllm_fp8_quant_jit.py"
FP8_UTILS_REL = os.path.join("model_executor", "layers", "quantization", "utils", "fp8_utils.py")
# name: (E, top_k, hidden, intermediate per shard)
SHAPES = {
    "qwen3next": (512, 10, 2048, 512),      # Qwen3-Next-80B-A3B, TP=1
    "qwen3next-tp2": (512, 10, 2048, 256),  # its TP-2 shard
    "qwen36-35b": (256, 8, 2048, 512),      # Qwen3.6-35B-A3B
    "e128-k8": (128, 8, 2048, 768),         # Qwen3-30B-A3B class
    "e64-k6": (64, 6, 2048, 1408),          # DeepSeek-V2-Lite class
    "e256-k8-h7168": (256, 8, 7168, 256),   # DeepSeek-V3 class, TP-8 shard
    "e128-k4-h4096": (128, 4, 4096, 1536),  # top-4, hidden 4096
    "e64-k4-h3072": (64, 4, 3072, 2048),    # top-4, hidden 3072, the widest intermediate
    "e512-k10-h5120": (512, 10, 5120, 128),  # hidden 5120, the narrowest intermediate (a TP shard)
}
# --grid: a subset of issue 13's shape grid (E in 64..512, top-k 4..10, hidden 2048..7168,
# intermediate per shard 128..2048) that covers every E, top-k and hidden and seven
# intermediates, at every grid M; ordered so the targets' shapes run first under --budget-s
GRID_SHAPES = ["qwen3next", "qwen36-35b", "e128-k8", "e64-k6", "e256-k8-h7168", "e128-k4-h4096",
               "e64-k4-h3072", "e512-k10-h5120"]
GRID_MS = "1,2,4,8,16,32,64,128,256,512,2048"
L2_ROTATE_BYTES = 256 << 20  # weight sets smaller than this are rotated over --bufs copies
# vLLM's default CUDA-graph capture sizes (max_cudagraph_capture_size 512)
CAPTURE_SIZES = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, 513, 16))


def log(msg):
    print(msg, flush=True)


def extract(vllm_dir=None):
    import ast

    from rocm_enable.ops.vllm_moe_isa import vllm_package_dir

    log(vllm_moe.extract(VENDOR, vllm_dir))
    path = os.path.join(vllm_dir or vllm_package_dir(), FP8_UTILS_REL)
    src = open(path).read()
    lines = src.splitlines()
    node = next(n for n in ast.parse(src).body
                if isinstance(n, ast.FunctionDef) and n.name == "_per_token_group_quant_fp8")
    start = min(d.lineno for d in node.decorator_list)
    out = os.path.join(VENDOR, QUANT_JIT)
    with open(out, "w") as f:
        f.write("import triton\nimport triton.language as tl\n\n\n" + "\n".join(lines[start - 1:node.end_lineno])
                + f"\n\n# extracted from vllm/{FP8_UTILS_REL}\n")
    log(out)


def load_quant():
    import importlib.util

    path = os.path.join(VENDOR, QUANT_JIT)
    if not os.path.isfile(path):
        raise SystemExit(f"{path} is missing: run `python benchmarks/bench_moe_layer.py --extract`")
    spec = importlib.util.spec_from_file_location("vllm_fp8_quant_jit", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._per_token_group_quant_fp8


def run(args):
    import torch
    import triton
    import triton.language as tl

    from rocm_enable.ops import config as cfgmod
    from rocm_enable.ops.fp8_dequant import fold_fp8_scale_for_fp16_bits
    from rocm_enable.ops.moe_align import vllm_moe_align_block_size
    from rocm_enable.ops.moe_w8a16 import fused_experts_w8a16, silu_and_mul, workspace_sizes

    kernel = vllm_moe.load_extracted(VENDOR).fused_moe_kernel
    quant_kernel = load_quant()
    dev = "cuda"
    cap = tuple(torch.cuda.get_device_capability(0))
    info = dict(device=torch.cuda.get_device_name(0), torch=torch.__version__, triton=triton.__version__)
    log(json.dumps(info))
    bw = copy_bandwidth()
    read_gbps = bw["read_sum_GBps"]
    log("bandwidth " + json.dumps(bw))
    res = {"info": info, "bw": bw, "args": vars(args), "rows": [], "capture": [], "skipped": []}
    g = torch.Generator(device=dev).manual_seed(0)
    fam = "nvidia"

    def quant(x, xq, xs):  # vLLM per_token_group_quant_fp8, group 128, row-major scales
        n = x.numel() // 128
        quant_kernel[(n,)](x, xq, xs, 128, x.shape[-1], x.stride(0), 1e-10, fp8_min=-448.0,
                           fp8_max=448.0, use_ue8m0=False, BLOCK=128, num_warps=1, num_stages=1)

    def vllm_align(ids, bm, E):
        numel = ids.numel()
        max_len = numel + E * (bm - 1)
        if numel < E:
            max_len = min(numel * bm, max_len)
        st = torch.empty(max_len, dtype=torch.int32, device=dev)
        ex = torch.empty(triton.cdiv(max_len, bm), dtype=torch.int32, device=dev)
        nt = torch.empty(1, dtype=torch.int32, device=dev)
        vllm_moe_align_block_size(ids, E, bm, st, ex, nt)
        return st, ex, nt

    def vllm_layer(s, W, fp8):
        """vLLM's TritonExperts sequence for one routing set (all buffers sized from shapes)."""
        E, TOPK, H, I = s["shape"]
        M = s["x"].shape[0]
        cfg = vllm_moe.default_config(M, E, fp8)
        swap = vllm_moe.swap_ab(cfg, cap) if fp8 else False
        wb13, q13, sc13, _, wb2, q2, sc2, _ = W
        bm = cfg["BLOCK_SIZE_M"]
        if M * TOPK * 4 <= E:
            st, ex, nt = None, s["ids"].view(-1), s["naive_nt"][bm]
        else:
            st, ex, nt = vllm_align(s["ids"], bm, E)
        x = s["x"]
        if fp8:
            quant(x, s["xq"], s["xs"])
        c1 = s["ws2"][:M * TOPK * 2 * I].view(M, TOPK, 2 * I)
        vllm_moe.launch(kernel, s["xq"] if fp8 else x, q13 if fp8 else wb13, c1, s["xs"] if fp8 else None,
                        sc13 if fp8 else None, None, st, ex, nt, False, TOPK, cfg, tl.bfloat16, fp8,
                        [128, 128] if fp8 else None, swap)
        c2 = s["ws13"][:M * TOPK * I].view(M * TOPK, I)
        silu_and_mul(c1.view(M * TOPK, 2 * I), c2)
        if fp8:
            quant(c2, s["aq"], s["as"])
        c3 = s["ws2"][:M * TOPK * H].view(M, TOPK, H)
        vllm_moe.launch(kernel, s["aq"] if fp8 else c2, q2 if fp8 else wb2, c3, s["as"] if fp8 else None,
                        sc2 if fp8 else None, s["tw"], st, ex, nt, True, 1, cfg, tl.bfloat16, fp8,
                        [128, 128] if fp8 else None, swap)
        torch.sum(c3, dim=1, out=s["out_v"])

    def ours(s, W, out=None):
        E, TOPK, H, I = s["shape"]
        _, q13, _, f13, _, q2, _, f2 = W
        fused_experts_w8a16(s["x"], q13, q2, f13, f2, s["tw"], s["ids"], block_shape=[128, 128],
                            global_num_experts=E, output=s["out"] if out is None else out,
                            arch_family=fam, workspace13=s["ws13o"], workspace2=s["ws2o"])

    def make_sets(shape, M, n):
        E, TOPK, H, I = shape
        sets = []
        for i in range(n):
            ids = torch.rand(M, E, generator=g, device=dev).argsort(1)[:, :TOPK].to(torch.int32).contiguous()
            tw = torch.rand(M, TOPK, generator=g, device=dev)
            s = dict(shape=shape, ids=ids, tw=(tw / tw.sum(1, keepdim=True)).contiguous(),
                     x=torch.randn(M, H, generator=g, device=dev).to(torch.bfloat16), buf=i % args.bufs,
                     distinct=int(torch.unique(ids).numel()))
            ws13, ws2 = workspace_sizes(M, TOPK, I, H)
            s["ws13o"] = torch.empty(ws13, dtype=torch.bfloat16, device=dev)
            s["ws2o"] = torch.empty(ws2, dtype=torch.bfloat16, device=dev)
            s["ws13"] = torch.empty(M * TOPK * max(I, H), dtype=torch.bfloat16, device=dev)
            s["ws2"] = torch.empty(M * TOPK * max(2 * I, H), dtype=torch.bfloat16, device=dev)
            s["out"] = torch.empty(M, H, dtype=torch.bfloat16, device=dev)
            s["out_v"] = torch.empty(M, H, dtype=torch.bfloat16, device=dev)
            s["xq"] = torch.empty(M, H, dtype=torch.float8_e4m3fn, device=dev)
            s["xs"] = torch.empty(M, H // 128, dtype=torch.float32, device=dev)
            s["aq"] = torch.empty(M * TOPK, I, dtype=torch.float8_e4m3fn, device=dev)
            s["as"] = torch.empty(M * TOPK, triton.cdiv(I, 128), dtype=torch.float32, device=dev)
            s["naive_nt"] = {bm: torch.tensor([M * TOPK * bm], dtype=torch.int32, device=dev)
                             for bm in (16, 32, 64, 128)}
            sets.append(s)
        return sets

    started = time.monotonic()
    for name in args.shapes.split(","):
        shape = SHAPES[name]
        E, TOPK, H, I = shape
        if I % 128:
            raise SystemExit(f"{name}: intermediate {I} is not a multiple of the 128 scale block")
        if time.monotonic() - started > args.budget_s:
            res["skipped"] += [dict(shape=name, M=int(m)) for m in args.ms.split(",")]
            continue
        nbufs = args.bufs if 3 * E * H * I < L2_ROTATE_BYTES else 1
        bufs = []
        for b in range(nbufs):
            w = []
            for N, K in ((2 * I, H), (H, I)):
                wb = torch.randn(E, N, K, generator=g, device=dev, dtype=torch.bfloat16) * 0.02
                q, sc = moe_data.quant_weight_block(wb)
                w += [wb, q, sc, fold_fp8_scale_for_fp16_bits(sc)]
            bufs.append(w)
        torch.cuda.synchronize()
        log(f"[{name}] E={E} top{TOPK} H={H} I={I}: weights ready, "
            f"{torch.cuda.memory_allocated() / 2**30:.1f} GiB")
        for M in [int(m) for m in args.ms.split(",")]:
            if time.monotonic() - started > args.budget_s:
                res["skipped"].append(dict(shape=name, M=M))
                continue
            sets = make_sets(shape, M, args.sets)
            for s in sets:
                s["buf"] %= nbufs
            t = {}
            t["ours"] = graph_median_us([lambda s=s: ours(s, bufs[s["buf"]]) for s in sets], args.replays)
            bucket = cfgmod.get_moe_config(fam, M, E, TOPK)
            single = None
            if args.single_launch and bucket["w13"].get("kernel") == bucket["w2"].get("kernel") == "gemv" \
                    and M * TOPK * cfgmod.naive_sparsity(fam) <= E:
                single = single_launch_check(sets, bufs, ours, fam)
                t["ours-1launch"] = single.pop("us")
            t["vllm-fp8"] = graph_median_us([lambda s=s: vllm_layer(s, bufs[s["buf"]], True) for s in sets],
                                           args.replays)
            t["vllm-bf16"] = graph_median_us([lambda s=s: vllm_layer(s, bufs[s["buf"]], False) for s in sets],
                                            args.replays)
            s0 = sets[0]
            ours(s0, bufs[0])
            vllm_layer(s0, bufs[0], False)
            torch.cuda.synchronize()
            err = moe_data.rel_err(s0["out"], s0["out_v"].float())
            distinct = statistics.mean(s["distinct"] for s in sets)
            floor = distinct * 3 * I * H / 1e3 / read_gbps  # us: w13 (2I x H) + w2 (H x I) bytes
            ours_cfg = (f"BM{bucket['BLOCK_M']} " + "/".join(
                ("gemv" if bucket[gemm].get("kernel") == "gemv" else "tile")
                + f"{bucket[gemm]['BLOCK_N']}x{bucket[gemm]['BLOCK_K']}" for gemm in ("w13", "w2")))
            row = dict(shape=name, E=E, top_k=TOPK, hidden=H, inter=I, M=M, ours_cfg=ours_cfg,
                       **{k: round(v, 2) for k, v in t.items()},
                       vs_fp8=round(t["ours"] / t["vllm-fp8"], 3), vs_bf16=round(t["ours"] / t["vllm-bf16"], 3),
                       floor_us=round(floor, 2), vs_floor=round(t["ours"] / floor, 3),
                       rel_err_vs_bf16_layer=round(err, 5))
            if single:
                row.update(single, vs_floor_1launch=round(t["ours-1launch"] / floor, 3),
                           vs_fp8_1launch=round(t["ours-1launch"] / t["vllm-fp8"], 3))
            res["rows"].append(row)
            log(json.dumps(row))
            save(res, args.out)  # a run cut short by the device limit keeps what it measured
            del sets
        if name == args.capture_shape:
            res["capture"] = capture_check(shape, bufs[0], ours, make_sets)
            save(res, args.out)
        del bufs
        torch.cuda.empty_cache()
    res["elapsed_s"] = round(time.monotonic() - started, 1)
    save(res, args.out)
    summarize(res)


def summarize(res):
    """The markdown table and the target counts of one run's results (also: --summarize JSON)."""
    log("\n| shape (E, top-k, hidden, inter) | M | ours config | ours us | vLLM FP8 us | vLLM bf16 us | "
        "ours/FP8 | ours/bf16 | floor us | ours/floor |")
    log("|---|---|---|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        log(f"| {r['shape']} ({r['E']}, {r['top_k']}, {r['hidden']}, {r['inter']}) | {r['M']} | {r['ours_cfg']} | "
            f"{r['ours']} | {r['vllm-fp8']} | {r['vllm-bf16']} | {r['vs_fp8']} | {r['vs_bf16']} | "
            f"{r['floor_us']} | {r['vs_floor']} |")
    for r in res["rows"]:
        if "ours-1launch" in r:
            log(f"single launch | {r['shape']} | M={r['M']} | {r['ours-1launch']} us vs {r['ours']} (2 launches) | "
                f"/floor {r['vs_floor_1launch']} | /FP8 {r['vs_fp8_1launch']} | rel err vs ours "
                f"{r['rel_err_1launch_vs_ours']} | replay == eager: {r['replay_equal_1launch']}")
    slower = [r for r in res["rows"] if r["M"] <= 512 and r["vs_fp8"] > 1.0]
    log(f"rows with M <= 512 slower than vLLM's FP8 layer: {len(slower)} of "
        f"{sum(r['M'] <= 512 for r in res['rows'])}")
    if res["skipped"]:
        log(f"not run (--budget-s {res.get('args', {}).get('budget_s')} reached): {len(res['skipped'])} rows, "
            f"e.g. {res['skipped'][:3]}")
    big = [r for r in res["rows"] if r["M"] == 2048]
    log(f"M=2048 ours / vLLM bf16 layer: {', '.join(str(r['vs_bf16']) for r in big)} (target <= 1.3)")
    bad = [c for c in res["capture"] if not c["equal"]]
    log(f"capture+replay at {len(res['capture'])} capture sizes: {len(bad)} differ from eager {bad[:3]}; "
        f"elapsed {res.get('elapsed_s')} s")


def save(res, out):
    if out:
        with open(os.path.join(out, "bench_moe_layer.json"), "w") as f:
            json.dump(res, f, indent=1)


def single_launch_check(sets, bufs, ours, fam):
    """The decode bucket with single_launch (w8a16_moe_decode_kernel: the whole layer in one
    launch; not shipped on): graph-timed like ours, its output against ours (rel. error) and one
    captured replay against its eager output, bit for bit."""
    import torch

    from rocm_enable.ops import config as cfgmod

    d = json.loads(json.dumps(cfgmod.load_family(fam)))
    d["moe"][0]["single_launch"] = True
    real = cfgmod.load_family
    cfgmod.load_family = lambda f: d if f == fam else real(f)
    try:
        us = graph_median_us([lambda s=s: ours(s, bufs[s["buf"]]) for s in sets], 20)
        s0 = sets[0]
        ours(s0, bufs[s0["buf"]])
        torch.cuda.synchronize()
        single_out = s0["out"].clone()
        graph_out = torch.full_like(single_out, float("nan"))
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            ours(s0, bufs[s0["buf"]], graph_out)
        graph_out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        replay_equal = bool(torch.equal(graph_out, single_out))
    finally:
        cfgmod.load_family = real
    ours(s0, bufs[s0["buf"]])  # s0["out"] back to the two-launch layer's output for the row
    torch.cuda.synchronize()
    return {"us": us, "rel_err_1launch_vs_ours": round(moe_data.rel_err(single_out, s0["out"].float()), 6),
            "replay_equal_1launch": replay_equal}


def capture_check(shape, W, ours, make_sets):
    """Each default capture size: eager output, then one CUDA graph of the layer into a
    NaN-poisoned buffer, replayed; bitwise comparison."""
    import torch

    out = []
    for M in CAPTURE_SIZES:
        s = make_sets(shape, M, 1)[0]
        ours(s, W)
        torch.cuda.synchronize()
        eager = s["out"].clone()
        graph_out = torch.empty_like(eager)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            ours(s, W, graph_out)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            ours(s, W, graph_out)
        graph_out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        out.append(dict(M=M, equal=bool(torch.equal(graph_out, eager))))
    log(f"capture check: {sum(c['equal'] for c in out)}/{len(out)} sizes bit-identical")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extract", action="store_true", help="write vLLM's jit sources to .bench_vendor/")
    ap.add_argument("--vllm-src", help="vLLM package folder to extract from (default: the installed one)")
    ap.add_argument("--out", help="folder for bench_moe_layer.json")
    ap.add_argument("--shapes", default="qwen3next,qwen36-35b,e128-k8,e64-k6")
    ap.add_argument("--ms", default="1,4,16,64,256,512,2048")
    ap.add_argument("--capture-shape", default="qwen3next", help="shape of the capture check ('' skips)")
    ap.add_argument("--sets", type=int, default=8)
    ap.add_argument("--bufs", type=int, default=2)
    ap.add_argument("--replays", type=int, default=20)
    ap.add_argument("--summarize", metavar="JSON", help="print the table of a bench_moe_layer.json (no GPU)")
    ap.add_argument("--single-launch", action="store_true",
                    help="also time the decode rows with the whole layer in one launch (w8a16_moe_decode_kernel)")
    ap.add_argument("--grid", action="store_true",
                    help=f"the grid subset: --shapes {','.join(GRID_SHAPES)} --ms {GRID_MS}")
    ap.add_argument("--budget-s", type=float, default=float("inf"),
                    help="start no new row after this many seconds (rows left are listed as skipped)")
    args = ap.parse_args()
    if args.grid:
        args.shapes, args.ms = ",".join(GRID_SHAPES), GRID_MS
    unknown = [n for n in args.shapes.split(",") if n not in SHAPES]
    if unknown:
        ap.error(f"unknown shape(s) {unknown}; known: {', '.join(SHAPES)}")
    if args.extract:
        extract(args.vllm_src)
    elif args.summarize:
        with open(args.summarize) as f:
            summarize(json.load(f))
    else:
        run(args)


if __name__ == "__main__":
    main()
