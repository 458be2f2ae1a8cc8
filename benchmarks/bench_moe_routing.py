#!/usr/bin/env python3
"""GPU check and benchmark of the MoE routing of record topk-softmax-code-object (NVIDIA stand-in;
no AMD hardware here): rocm_enable's one-launch Triton top-k softmax against the torch twin the
record ran before (fp32 softmax, torch.topk, renormalise, three copies, two aranges, int mul and
add: 12 kernels on an H100), CUDA-graph timed in the same run. Prints a table (and writes JSON
with --out); it is not a test.

  python3 benchmarks/bench_moe_routing.py [--out $OUT]

Per (experts, top-k, tokens), bf16 router logits, renormalised as Qwen3-Next / Qwen3.6 route:
  ids        rows whose expert ids equal the float64 reference's (stable descending sort of the
             logits: equal logits go to the lower expert id, vLLM's CUDA kernel's rule)
  vs topk    rows whose expert SET differs from torch.topk on the GPU (only where equal logits
             straddle the k-th place: torch.topk leaves their order unspecified)
  w err      max |weight - float64 reference|
  replay     a CUDA graph of the call, replayed on new logits, equals eager bit for bit
  us         CUDA-graph time per call: ours, the torch twin
"""
import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

SHAPES = ((256, 8), (512, 10), (128, 8))  # Qwen3.6-35B-A3B, Qwen3-Next, a 128-expert top-8 model
TOKENS = (1, 8, 64, 512)


def torch_twin(weights, ids, token_expert_indices, logits):
    """The record's routing before the Triton kernel (its launches, for the timing baseline)."""
    import torch

    w, i = torch.topk(torch.softmax(logits.float(), dim=-1), weights.shape[-1], dim=-1)
    w = w / w.sum(dim=-1, keepdim=True)
    weights.copy_(w)
    ids.copy_(i)
    m, k = i.shape
    rows = torch.arange(m, device=i.device, dtype=torch.int32).unsqueeze(1)
    slots = torch.arange(k, device=i.device, dtype=torch.int32).unsqueeze(0)
    token_expert_indices.copy_(slots * m + rows)


def row(experts, top_k, tokens):
    import torch

    from benchmarks._harness.timing import graph_time
    from rocm_enable.ops.topk_softmax import topk_softmax

    g = torch.Generator(device="cuda").manual_seed(experts * 7 + tokens)
    sets = [(torch.randn(tokens, experts, device="cuda", generator=g) * 2).to(torch.bfloat16)
            for _ in range(8)]
    out = lambda: (torch.empty(tokens, top_k, device="cuda"),  # noqa: E731
                   torch.empty(tokens, top_k, device="cuda", dtype=torch.int32),
                   torch.empty(tokens, top_k, device="cuda", dtype=torch.int32))
    w, ids, tei = out()
    logits = sets[0]
    topk_softmax(w, ids, tei, logits, True)
    x = logits.double()
    ref_ids = torch.sort(x, dim=-1, descending=True, stable=True).indices[:, :top_k]
    p = torch.softmax(x, dim=-1)
    ref_w = torch.gather(p, 1, ref_ids)
    ref_w = ref_w / ref_w.sum(-1, keepdim=True)
    t_ids = torch.topk(torch.softmax(logits.float(), -1), top_k).indices
    set_diff = int((torch.sort(ids.long(), -1).values != torch.sort(t_ids, -1).values).any(-1).sum())
    rows_equal = int((ids.long() == ref_ids).all(-1).sum())
    w_err = float((w.double() - ref_w).abs().max())
    tei_ok = torch.equal(tei.cpu(), (torch.arange(top_k) * tokens + torch.arange(tokens)[:, None]).int())

    # capture once on a static input buffer, replay on other logits, compare with eager
    static = sets[1].clone()
    gw, gi, gt = out()
    topk_softmax(gw, gi, gt, static, True)  # compiled outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        topk_softmax(gw, gi, gt, static, True)
    static.copy_(sets[2])
    graph.replay()
    ew, ei, et = out()
    topk_softmax(ew, ei, et, sets[2], True)
    torch.cuda.synchronize()
    replay_ok = torch.equal(gw, ew) and torch.equal(gi, ei) and torch.equal(gt, et)

    bufs = [out() for _ in sets]
    ours = graph_time([lambda s=s, b=b: topk_softmax(*b, s, True) for s, b in zip(sets, bufs)], 20)
    twin = graph_time([lambda s=s, b=b: torch_twin(*b, s) for s, b in zip(sets, bufs)], 20)
    return {"experts": experts, "top_k": top_k, "tokens": tokens, "ids_equal_rows": rows_equal,
            "set_differs_from_torch_topk_rows": set_diff, "weight_max_abs_err": w_err,
            "token_expert_indices_ok": tei_ok, "graph_replay_bitwise": replay_ok,
            "ours_us": statistics.median(ours), "torch_twin_us": statistics.median(twin)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="folder for routing.json")
    a = ap.parse_args()
    import torch

    rows = [row(e, k, m) for e, k in SHAPES for m in TOKENS]
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("| experts | top-k | tokens | ids = ref (rows) | set != torch.topk | w err | replay | ours us | twin us |")
    print("|--:|--:|--:|--:|--:|--:|---|--:|--:|")
    for r in rows:
        print(f"| {r['experts']} | {r['top_k']} | {r['tokens']} | {r['ids_equal_rows']}/{r['tokens']} | "
              f"{r['set_differs_from_torch_topk_rows']} | {r['weight_max_abs_err']:.1e} | "
              f"{'ok' if r['graph_replay_bitwise'] and r['token_expert_indices_ok'] else 'FAIL'} | "
              f"{r['ours_us']:.2f} | {r['torch_twin_us']:.2f} |")
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "routing.json"), "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)
    bad = [r for r in rows if r["ids_equal_rows"] != r["tokens"] or not r["graph_replay_bitwise"]
           or not r["token_expert_indices_ok"] or r["weight_max_abs_err"] > 1e-5]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
