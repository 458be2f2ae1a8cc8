#!/usr/bin/env python3
"""What record fused-shared-expert changes per MoE layer at decode, measured on an NVIDIA GPU
(H100/H200 stand-in; no AMD hardware here): the unfused block our product ran before the record
beside the fused one, CUDA-graph timed (NSETS calls over different inputs captured in one graph,
median of replays), their launches per layer, and their outputs compared. Prints a table (and
writes JSON with --out); it is not a test.

  # GPU machine (no carry: needs only torch, Triton and this repository; no vLLM):
  python3 benchmarks/bench_shared_expert_fusion.py --out $OUT --budget-s 90
  # CPU smoke check (tiny shape, both paths once, no timing; tests/user runs it):
  TRITON_INTERPRET=1 .venv/bin/python benchmarks/bench_shared_expert_fusion.py --cpu-smoke

Per layer (bf16 activations, FP8 block-128 expert weights, renormalised top-k as Qwen3-Next /
Qwen3.6 route), on one stream:
  separate  router GEMM x @ W_gate[E, H]^T (F.linear), rocm_enable topk_softmax over E, rocm_enable
            fused_experts_w8a16 over E experts at top-k, and the shared expert: linear_w8a16
            gate_up [2I, H], F.silu(gate) * up, linear_w8a16 down [H, I], the shared-expert gate
            F.linear(x, w_sg[1, H]) -> sigmoid -> multiply, added to the routed output.
  fused     one F.linear with the [E + 1, H] gate, route_with_shared (top-k + 1 ids, the last
            E with weight sigmoid(gate logit)), fused_experts_w8a16 over E + 1 experts (slot E:
            the shared expert's FP8 weights and scales) at top-k + 1.
Launches per layer: CUDA kernels of one eager call (torch.profiler), Triton launches of it
(rocm_enable.ops.launch_recorder) and the kernel nodes of one call captured in a CUDA graph
(driver API; reported as unavailable where torch cannot keep the graph).
Agreement: max |fused - separate| / max |separate| over the output rows whose routed experts
agree; a row may route differently only where its k-th and (k+1)-th router logits lie within the
two router GEMMs' rounding difference (a tie the [E + 1, H] GEMM breaks the other way), and such
rows are counted. The script exits non-zero when the agreement check fails.
"""
import argparse
import json
import os
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

# name: (E, top_k, hidden, moe / shared intermediate)
SHAPES = {
    "qwen36-35b": (256, 8, 2048, 512),  # Qwen3.6-35B-A3B
    "qwen3next": (512, 10, 2048, 512),  # Qwen3-Next-80B-A3B / Qwen3-Coder-Next, TP=1
}
# the CPU smoke shape: enough experts that both paths take the decode (naive, GEMV) routing
SMOKE_SHAPE = ("smoke", (32, 2, 256, 128))
SMOKE_MS = (1, 2)
BLOCK = [128, 128]
FAMILY = "nvidia"  # the launch configs tuned on H100 (rocm_enable/ops/configs/nvidia.json)
RENORMALIZE = True  # norm_topk_prob of Qwen3-Next / Qwen3.6
# bf16 roundings one path makes and the other does not, each <= u = 2**-8 of a value of the output's
# scale: the separate block rounds the shared expert's gate_up output, SiLU, SiLU * up, down output,
# sigmoid gate and gated product to bf16; the fused block keeps the sigmoid weight in fp32 inside the
# w2 GEMV and sums in fp32. 6 u = 2.3e-2. (The first H100 run, bound 1e-2 then, measured 7.0e-3 ..
# 1.18e-2, up to 3.0 u: docs/engine.md run 11.) A dropped, doubled or ungated shared expert, or a
# softmax over E + 1 logits, lands at 0.2 .. 1; the float64 check of both blocks is the CPU test's
# (tests/layers/test_fused_shared_expert.py).
TOLERANCE = 6 * 2.0 ** -8


def log(msg):
    print(msg, flush=True)


def make_layer(shape, device, gen, corrupt_shared_slot=False):
    """One MoE block's weights: routed experts 0..E-1 and the shared expert quantised together
    ([E + 1, ...] e4m3 + block scales, slot E the shared expert, as vLLM's FSE loads it); the
    separate path reads slots 0..E-1 as views and its own copy of slot E."""
    import torch

    from benchmarks._harness.moe_data import quant_weight_block
    from rocm_enable.ops.fp8_dequant import fold_fp8_scale_for_fp16_bits

    E, _, H, I = shape
    L = {}
    for name, (N, K) in (("13", (2 * I, H)), ("2", (H, I))):
        w = torch.randn(E + 1, N, K, generator=gen, device=device, dtype=torch.bfloat16) * 0.02
        q, scale = quant_weight_block(w)
        del w
        L["q" + name], L["f" + name] = q, fold_fp8_scale_for_fp16_bits(scale)
        L["q" + name + "_shared"] = q[E].clone()
        L["f" + name + "_shared"] = L["f" + name][E].clone()
    L["w_gate"] = (torch.randn(E, H, generator=gen, device=device) * H ** -0.5).bfloat16()
    L["w_sg"] = (torch.randn(1, H, generator=gen, device=device) * H ** -0.5).bfloat16()
    L["w_cat"] = torch.cat([L["w_gate"], L["w_sg"]])
    if corrupt_shared_slot:  # the fused path's copy of the shared expert only: the check must fail
        L["f13"][E] *= 2.0
    return L


def make_sets(shape, M, n, device, gen):
    """n decode inputs of M tokens, each with the preallocated workspaces and outputs of both
    paths (as vLLM's modular kernel passes its workspaces)."""
    import torch

    from rocm_enable.ops.moe_w8a16 import workspace_sizes

    E, top_k, H, I = shape
    sets = []
    for _ in range(n):
        s = {"x": torch.randn(M, H, generator=gen, device=device).bfloat16()}
        for path, k in (("sep", top_k), ("fused", top_k + 1)):
            ws13, ws2 = workspace_sizes(M, k, I, H)
            s["ws13_" + path] = torch.empty(ws13, dtype=torch.bfloat16, device=device)
            s["ws2_" + path] = torch.empty(ws2, dtype=torch.bfloat16, device=device)
            s["out_" + path] = torch.empty(M, H, dtype=torch.bfloat16, device=device)
        sets.append(s)
    return sets


def separate(L, s, shape):
    """The unfused block: returns (output, routed ids, router logits)."""
    import torch
    import torch.nn.functional as F

    from rocm_enable.ops.linear_w8a16 import linear_w8a16
    from rocm_enable.ops.moe_w8a16 import fused_experts_w8a16
    from rocm_enable.ops.topk_softmax import topk_softmax

    E, top_k, _, I = shape
    x = s["x"]
    M = x.shape[0]
    logits = F.linear(x, L["w_gate"])
    weights = torch.empty(M, top_k, dtype=torch.float32, device=x.device)
    ids = torch.empty(M, top_k, dtype=torch.int32, device=x.device)
    token_expert = torch.empty(M, top_k, dtype=torch.int32, device=x.device)
    topk_softmax(weights, ids, token_expert, logits, RENORMALIZE)
    routed = fused_experts_w8a16(x, L["q13"][:E], L["q2"][:E], L["f13"][:E], L["f2"][:E], weights, ids,
                                 block_shape=BLOCK, global_num_experts=E, output=s["out_sep"],
                                 arch_family=FAMILY, workspace13=s["ws13_sep"], workspace2=s["ws2_sep"])
    gate_up = linear_w8a16(x, L["q13_shared"], L["f13_shared"], block_shape=BLOCK, arch_family=FAMILY)
    act = F.silu(gate_up[:, :I]) * gate_up[:, I:]
    shared = linear_w8a16(act, L["q2_shared"], L["f2_shared"], block_shape=BLOCK, arch_family=FAMILY)
    shared = torch.sigmoid(F.linear(x, L["w_sg"])) * shared
    return routed + shared, ids, logits


def fused(L, s, shape):
    """The fused block: returns (output, ids [M, top_k + 1], router + shared-gate logits)."""
    import torch.nn.functional as F

    from rocm_enable.ops.moe_w8a16 import fused_experts_w8a16
    from rocm_enable.ops.topk_softmax import route_with_shared

    E, top_k, _, _ = shape
    x = s["x"]
    logits = F.linear(x, L["w_cat"])
    weights, ids = route_with_shared(logits, top_k, RENORMALIZE, 1)
    out = fused_experts_w8a16(x, L["q13"], L["q2"], L["f13"], L["f2"], weights, ids, block_shape=BLOCK,
                              global_num_experts=E + 1, output=s["out_fused"], arch_family=FAMILY,
                              workspace13=s["ws13_fused"], workspace2=s["ws2_fused"])
    return out, ids, logits


def agreement(L, sets, shape):
    """Both paths once per input set, compared (see the module docstring); also the Triton
    kernels each path launched for the first set."""
    from rocm_enable.ops.launch_recorder import recorded_launches

    E, top_k, _, _ = shape
    worst, rows, compared, flips, problems = 0.0, 0, 0, 0, []
    triton = {}
    for s in sets:
        with recorded_launches(run=True) as launched_s:
            out_s, ids_s, logits_s = (t.clone() for t in separate(L, s, shape))
        with recorded_launches(run=True) as launched_f:
            out_f, ids_f, logits_f = (t.clone() for t in fused(L, s, shape))
        for path, launched in (("separate", launched_s), ("fused", launched_f)):
            triton.setdefault(path, [launch.kernel for launch in launched])
        if not bool((ids_f[:, top_k] == E).all()):
            problems.append(f"fused slot {top_k} is not the shared expert {E}: {ids_f[:, top_k].tolist()}")
        same = (ids_s.sort(1).values == ids_f[:, :top_k].sort(1).values).all(1)
        rounding = (logits_f[:, :E].float() - logits_s.float()).abs().amax(1)
        ranked = logits_s.float().sort(1, descending=True).values
        tie = (ranked[:, top_k - 1] - ranked[:, top_k]) <= rounding
        for row in (~same).nonzero().flatten().tolist():
            if bool(tie[row]):
                flips += 1
            else:
                problems.append(f"token {row} routes to other experts without a router-logit tie")
        rows += out_s.shape[0]
        compared += int(same.sum())
        if bool(same.any()):
            ref = out_s[same].float()
            err = float((out_f[same].float() - ref).abs().max() / ref.abs().max().clamp(min=1e-30))
            worst = max(worst, err if err == err else float("inf"))  # NaN: fails
    if not compared:
        problems.append("no token routed alike in both paths: nothing compared")
    if worst > TOLERANCE:
        problems.append(f"max |fused - separate| / max |separate| = {worst:.3g} > {TOLERANCE}")
    return dict(rel_err=round(worst, 6), rows=rows, rows_compared=compared, tie_flips=flips,
                ok=not problems, problems=problems[:5]), triton


def profiled_kernels(call):
    """Names of the CUDA kernels (and memsets / copies) one eager call launches."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        call()
        torch.cuda.synchronize()
    names = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    if not names:  # a profiler without CUDA activity would report 0 launches as if measured
        raise RuntimeError("torch.profiler recorded no CUDA activity (is CUPTI available?)")
    return names


# CUgraphNodeType values of the CUDA driver API
NODE_TYPES = {0: "kernel", 1: "memcpy", 2: "memset", 3: "host", 4: "graph", 5: "empty"}


def graph_node_types(call):
    """Node types of one call captured in a CUDA graph (cuGraphGetNodes on the kept graph);
    {"unavailable": why} where this torch cannot keep the graph or the driver is not found."""
    import ctypes

    import torch

    try:
        graph = torch.cuda.CUDAGraph(keep_graph=True)
        with torch.cuda.graph(graph):
            call()
        handle = ctypes.c_void_p(graph.raw_cuda_graph())
        cuda = ctypes.CDLL("libcuda.so.1")
        n = ctypes.c_size_t(0)
        if cuda.cuGraphGetNodes(handle, None, ctypes.byref(n)):
            return {"unavailable": "cuGraphGetNodes failed"}
        nodes = (ctypes.c_void_p * n.value)()
        if cuda.cuGraphGetNodes(handle, nodes, ctypes.byref(n)):
            return {"unavailable": "cuGraphGetNodes failed"}
        types = Counter()
        for node in nodes:
            kind = ctypes.c_int(-1)
            cuda.cuGraphNodeGetType(ctypes.c_void_p(node), ctypes.byref(kind))
            types[NODE_TYPES.get(kind.value, str(kind.value))] += 1
        return dict(types)
    except Exception as exc:  # a reported gap, not a failed run
        return {"unavailable": f"{type(exc).__name__}: {exc}"}


def cpu_smoke(ms, corrupt_shared_slot=False):
    """Both paths once at the tiny shape on CPU (TRITON_INTERPRET=1), compared; no timing."""
    import torch

    name, shape = SMOKE_SHAPE
    gen = torch.Generator().manual_seed(0)
    L = make_layer(shape, "cpu", gen, corrupt_shared_slot)
    res = {"rows": []}
    for M in ms:
        check, triton = agreement(L, make_sets(shape, M, 1, "cpu", gen), shape)
        row = dict(shape=name, E=shape[0], top_k=shape[1], hidden=shape[2], inter=shape[3], M=M,
                   triton_separate=triton["separate"], triton_fused=triton["fused"], check=check)
        res["rows"].append(row)
        log(f"[cpu smoke] {name} E={shape[0]} top{shape[1]} H={shape[2]} I={shape[3]} M={M}: Triton launches "
            f"separate {len(triton['separate'])} {triton['separate']}, fused {len(triton['fused'])} "
            f"{triton['fused']}")
        log(f"[cpu smoke] M={M} agreement: " + check_line(row["check"]))
    return res


def check_line(c):
    return (f"max|fused - separate| / max|separate| = {c['rel_err']:.2e} (limit {TOLERANCE:g}) over "
            f"{c['rows_compared']}/{c['rows']} tokens, routing tie flips {c['tie_flips']}: "
            + ("OK" if c["ok"] else "FAILED " + "; ".join(c["problems"])))


def run(args):
    import torch
    import triton

    from benchmarks._harness.timing import graph_median_us

    dev = "cuda"
    info = dict(device=torch.cuda.get_device_name(0), torch=torch.__version__, triton=triton.__version__)
    log(json.dumps(info))
    res = {"info": info, "args": vars(args), "rows": [], "skipped": []}
    gen = torch.Generator(device=dev).manual_seed(0)
    started = time.monotonic()
    longest = [0.0]  # the longest row (or weight set-up) so far: no new one starts unless it fits

    def over_budget():
        return time.monotonic() - started + longest[0] > args.budget_s

    for name in args.shapes.split(","):
        shape = SHAPES[name]
        E, top_k, H, I = shape
        ms = [int(m) for m in args.ms.split(",")]
        if over_budget():
            res["skipped"] += [dict(shape=name, M=m) for m in ms]
            continue
        t0 = time.monotonic()
        L = make_layer(shape, dev, gen)
        torch.cuda.synchronize()
        longest[0] = max(longest[0], time.monotonic() - t0)
        log(f"[{name}] E={E} top{top_k} H={H} I={I}: weights ready, {torch.cuda.memory_allocated() / 2**30:.1f} GiB")
        for M in ms:
            if over_budget():
                res["skipped"].append(dict(shape=name, M=M))
                continue
            t0 = time.monotonic()
            sets = make_sets(shape, M, args.sets, dev, gen)
            t = {path: graph_median_us([lambda s=s: fn(L, s, shape) for s in sets], args.replays)
                 for path, fn in (("separate", separate), ("fused", fused))}
            check, triton_names = agreement(L, sets, shape)
            s0 = sets[0]
            count = {}
            for path, fn in (("separate", separate), ("fused", fused)):
                count[path] = dict(triton=len(triton_names[path]), triton_names=triton_names[path],
                                   graph_nodes=graph_node_types(lambda: fn(L, s0, shape)))
                try:
                    kernels = profiled_kernels(lambda: fn(L, s0, shape))
                    count[path].update(kernels=len(kernels), kernel_names=dict(Counter(kernels)))
                except Exception as exc:  # a reported gap: the timings stand without it
                    count[path].update(kernels=None, kernel_names={"unavailable": f"{type(exc).__name__}: {exc}"})
            row = dict(shape=name, E=E, top_k=top_k, hidden=H, inter=I, M=M,
                       separate_us=round(t["separate"], 2), fused_us=round(t["fused"], 2),
                       saved_us=round(t["separate"] - t["fused"], 2),
                       fused_over_separate=round(t["fused"] / t["separate"], 3),
                       launches_separate=count["separate"], launches_fused=count["fused"], check=check)
            res["rows"].append(row)
            log(f"[{name}] M={M}: separate {row['separate_us']} us, fused {row['fused_us']} us; CUDA kernels "
                f"{count['separate']['kernels']} -> {count['fused']['kernels']}; " + check_line(check))
            save(res, args.out)  # a run cut short by the device limit keeps what it measured
            longest[0] = max(longest[0], time.monotonic() - t0)
            del sets
        del L
        torch.cuda.empty_cache()
    res["elapsed_s"] = round(time.monotonic() - started, 1)
    save(res, args.out)
    summarize(res)
    return res


def nodes_text(counts):
    g = counts["graph_nodes"]
    return "n/a" if "unavailable" in g else f"{g.get('kernel', 0)}/{sum(g.values())}"


def summarize(res):
    info = res["info"]
    log(f"\n{info['device']}, torch {info['torch']}, triton {info['triton']}; CUDA-graph median per layer")
    log("| shape (E, top-k, hidden, inter) | M | separate us | fused us | saved us | fused/separate | "
        "CUDA kernels sep -> fused | Triton sep -> fused | graph kernel/all nodes sep -> fused | "
        "rel err | check |")
    log("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        a, b = r["launches_separate"], r["launches_fused"]
        log(f"| {r['shape']} ({r['E']}, {r['top_k']}, {r['hidden']}, {r['inter']}) | {r['M']} | "
            f"{r['separate_us']} | {r['fused_us']} | {r['saved_us']} | {r['fused_over_separate']} | "
            f"{a['kernels']} -> {b['kernels']} | {a['triton']} -> {b['triton']} | "
            f"{nodes_text(a)} -> {nodes_text(b)} | {r['check']['rel_err']:.2e} | "
            f"{'OK' if r['check']['ok'] else 'FAILED'} |")
    if res["skipped"]:
        log(f"not run (--budget-s reached): {res['skipped']}")
    log(f"elapsed {res.get('elapsed_s')} s")


def save(res, out):
    if out:
        with open(os.path.join(out, "bench_shared_expert_fusion.json"), "w") as f:
            json.dump(res, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="folder for bench_shared_expert_fusion.json")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--ms", help=f"token counts (default 1,2,4,8; with --cpu-smoke {','.join(map(str, SMOKE_MS))})")
    ap.add_argument("--sets", type=int, default=8, help="decode inputs captured round-robin in one graph")
    ap.add_argument("--replays", type=int, default=30)
    ap.add_argument("--budget-s", type=float, default=float("inf"),
                    help="start no row (or shape set-up) that would end past this many seconds, judged by "
                         "the longest so far; rows left are listed as skipped")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="both paths once at a tiny shape on CPU (run with TRITON_INTERPRET=1), no timing")
    ap.add_argument("--corrupt-shared-slot", action="store_true",
                    help="(with --cpu-smoke, for the test) double the fused path's shared-expert scales: "
                         "the agreement check must then fail")
    args = ap.parse_args()
    unknown = [n for n in args.shapes.split(",") if n not in SHAPES]
    if unknown:
        ap.error(f"unknown shape(s) {unknown}; known: {', '.join(SHAPES)}")
    if args.corrupt_shared_slot and not args.cpu_smoke:
        ap.error("--corrupt-shared-slot is a check of the check: use it with --cpu-smoke only")
    if args.cpu_smoke:
        if os.environ.get("TRITON_INTERPRET") != "1":
            ap.error("--cpu-smoke runs the Triton kernels on CPU: set TRITON_INTERPRET=1")
        res = cpu_smoke([int(m) for m in args.ms.split(",")] if args.ms else SMOKE_MS, args.corrupt_shared_slot)
        save(res, args.out)
    else:
        args.ms = args.ms or "1,2,4,8"
        res = run(args)
    failed = [r for r in res["rows"] if not r["check"]["ok"]]
    if failed:
        log(f"AGREEMENT CHECK FAILED in {len(failed)} row(s): fused and separate outputs differ")
        sys.exit(1)
    log("agreement check passed in every row")


if __name__ == "__main__":
    main()
