#!/usr/bin/env python3
"""The fastest anything can merely read the routed experts' FP8 bytes at M=1 (Qwen3-Next w13 and
w2 shapes): a Triton kernel that loads the touched experts' weights and writes one partial sum per
row, timed in a CUDA graph over rotated routing sets and weight buffers; plus the device's copy
bandwidth and the cost of an empty graph node. The W8A16 decode kernels are judged against it.

  python3 benchmarks/_harness/read_floor.py        # on the GPU machine; prints one line per item
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from benchmarks._harness.timing import copy_bandwidth, graph_median_us  # noqa: E402

# (BLOCK_N, BLOCK_K, num_warps, SPLIT_K) tried per shape; the best is the floor.
TILES = ((64, 128, 4, 1), (32, 256, 4, 1), (16, 512, 4, 1), (16, 256, 2, 1), (16, 256, 4, 2),
         (32, 128, 4, 4), (16, 128, 2, 4), (64, 256, 8, 2), (32, 512, 8, 1), (8, 512, 1, 1),
         (16, 128, 1, 2))
# name: (experts, N, K, top_k) of Qwen3-Next-80B-A3B's expert GEMMs
SHAPES = {"w13": (512, 1024, 2048, 10), "w2": (512, 2048, 512, 10)}


@triton.jit
def _empty(out_ptr):
    tl.store(out_ptr + tl.program_id(0), 1)


@triton.jit
def _read_experts(w_ptr, ids_ptr, out_ptr, N, K, stride_e, BLOCK_N: tl.constexpr,
                  BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr):
    pid_n, slot, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    expert = tl.load(ids_ptr + slot).to(tl.int64)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.int32)
    for k in range(pid_k * BLOCK_K, K, BLOCK_K * SPLIT_K):
        cols = k + tl.arange(0, BLOCK_K)
        acc += tl.load(w_ptr + expert * stride_e + rows[:, None] * K + cols[None, :]).to(tl.int32)
    # the sum keeps the loads alive; atomics because SPLIT_K programs share a row
    tl.atomic_add(out_ptr + slot * N + rows, tl.sum(acc, axis=1))


def read_floor(experts: int, n: int, k: int, top_k: int, sets: int = 32, bufs: int = 8) -> dict:
    import torch

    weights = [torch.randint(0, 255, (experts, n, k), dtype=torch.uint8, device="cuda")
               for _ in range(bufs)]
    routes = [torch.randperm(experts, device="cuda")[:top_k].int() for _ in range(sets)]
    out = torch.empty(top_k * n, dtype=torch.int32, device="cuda")
    per_tile = {}
    for bn, bk, warps, split in TILES:
        if k % (bk * split):
            continue
        grid = (n // bn, top_k, split)
        calls = [lambda i=i: _read_experts[grid](weights[i % bufs], routes[i], out, n, k, n * k,
                                                 BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=split,
                                                 num_warps=warps) for i in range(sets)]
        per_tile[f"BN{bn}_BK{bk}_w{warps}_sk{split}"] = round(graph_median_us(calls), 2)
    del weights
    torch.cuda.empty_cache()
    return per_tile


def main() -> None:
    import torch

    bw = copy_bandwidth()
    print("device", torch.cuda.get_device_name(), "copy GB/s", round(bw["copy_GBps_rw"]))
    sink = torch.zeros(1024, dtype=torch.int32, device="cuda")
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    empty_us = graph_median_us([lambda: _empty[(sms,)](sink)] * 32)
    print("empty kernel per graph node us", round(empty_us, 2))
    for name, (experts, n, k, top_k) in SHAPES.items():
        per_tile = read_floor(experts, n, k, top_k)
        mb = top_k * n * k / 1e6
        best = min(per_tile.values())
        print(name, f"{mb:.1f} MB", "best us", best, "GB/s", round(mb * 1e3 / best),
              f"{100 * mb * 1e3 / best / bw['copy_GBps_rw']:.0f}% of copy", json.dumps(per_tile))


if __name__ == "__main__":
    main()
