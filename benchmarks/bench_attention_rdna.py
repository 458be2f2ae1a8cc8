#!/usr/bin/env python3
"""GPU benchmark (NVIDIA H100 stand-in; no AMD GPU exists here) of rocm_enable's RDNA paged
attention against vLLM's own Triton unified attention kernel (the TRITON_ATTN backend's kernel),
IN THE SAME RUN, head_dim 256, GQA 8 (16 query heads, 2 KV heads: Qwen3-Next / Qwen3.6-35B-A3B).
Not a test: prints a markdown table (and JSON with --out).

  # local (no GPU): copy vLLM's unified-attention module + its Triton helpers from the installed
  # wheel into the git-ignored .bench_vendor/attention/ with tiny stand-ins for the vLLM modules
  # they import (never committed)
  python benchmarks/bench_attention_rdna.py --extract
  # GPU machine (carry .bench_vendor):
  python3 benchmarks/bench_attention_rdna.py --out $OUT

Method:
  * decode: batch 1/8/32 x context 4K/32K/128K, one query token per seq; KV cache in vLLM's
    layout with a shuffled block table (block 544: vLLM's hybrid-model page for Qwen3-Next at
    bf16). Reported as bytes of K+V read / time, as % of the measured device-to-device copy rate
    (bytes read + written).
  * prefill: one seq of 2K / 8K new tokens, no prefix, causal; FLOPs = 4 * H * D * N(N+1)/2, as %
    of a measured 8192^3 bf16 torch.matmul.
  * timing: triton.testing.do_bench (L2 flushed before each call, median); both kernels with the
    same inputs, outputs compared (max |diff|).
  * ours runs with the launch plan of gfx1151's capability row (wave 32, 64 KiB LDS), with the
    device's SM count for the split count -- the configuration the backend chooses on RDNA.
  * vLLM's kernel runs with TRITON_ATTN's launch settings: seq_threshold_3D = 128 // kv_heads,
    16 softmax segments (vLLM 0.32 builder, non-SM120).
"""
import argparse
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENDOR = os.path.join(ROOT, ".bench_vendor", "attention")
sys.path.insert(0, ROOT)

H, KVH, D = 16, 2, 256
BLOCK = 544

_STUBS = {
    "vllm/__init__.py": "",
    "vllm/envs.py": "VLLM_BATCH_INVARIANT = False\n",
    "vllm/logger.py": "import logging\n\ndef init_logger(name):\n    return logging.getLogger(name)\n",
    "vllm/platforms/__init__.py": (
        "import torch\n\nclass _P:\n"
        "    def fp8_dtype(self):\n        return torch.float8_e4m3fn\n"
        "    def is_device_capability_family(self, cap):\n"
        "        major, minor = torch.cuda.get_device_capability()\n"
        "        return (major * 10 + minor) // 10 == cap // 10\n"
        "    def is_cuda(self):\n        return True\n"
        "    def is_rocm(self):\n        return False\n"
        "current_platform = _P()\n"),
    "vllm/triton_utils/__init__.py": "import triton\nimport triton.language as tl\n",
    "vllm/v1/__init__.py": "",
    "vllm/v1/attention/__init__.py": "",
    "vllm/v1/attention/ops/__init__.py": "",
}


def do_extract():
    import importlib.util
    import re
    import vllm

    pkg = os.path.dirname(importlib.util.find_spec("vllm").origin)
    if os.path.isdir(VENDOR):
        shutil.rmtree(VENDOR)
    for rel, text in _STUBS.items():
        p = os.path.join(VENDOR, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "w").write(text)
    for rel in ("v1/attention/ops/triton_unified_attention.py", "v1/attention/ops/triton_attention_helpers.py"):
        shutil.copy(os.path.join(pkg, rel), os.path.join(VENDOR, "vllm", rel))
    # KVQuantMode: the enum class alone, from vLLM's kv_cache_interface
    src = open(os.path.join(pkg, "v1/kv_cache_interface.py")).read()
    m = re.search(r"^class KVQuantMode\(IntEnum\):.*?(?=^\S)", src, re.S | re.M)
    open(os.path.join(VENDOR, "vllm/v1/kv_cache_interface.py"), "w").write(
        "from enum import IntEnum\n\n\n" + m.group(0))
    open(os.path.join(VENDOR, "SOURCE"), "w").write(f"vLLM {vllm.__version__} from {pkg}\n")
    print(f"vendored vLLM {vllm.__version__} unified attention into {VENDOR}")


def make_cache(num_seqs, ctx, dtype, device, seed=0):
    import torch
    g = torch.Generator(device=device).manual_seed(seed)
    per = -(-ctx // BLOCK)
    nblocks = num_seqs * per + 1
    kv = torch.empty(nblocks, KVH, BLOCK, 2 * D, dtype=dtype, device=device).uniform_(-1, 1, generator=g)
    kc, vc = kv.transpose(1, 2).split(D, dim=-1)
    bt = torch.randperm(nblocks, device=device, generator=g)[: num_seqs * per].view(num_seqs, per).to(torch.int32)
    return kc, vc, bt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--extract", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--quick", action="store_true", help="small shapes (smoke)")
    a = ap.parse_args()
    if a.extract:
        return do_extract()

    import torch
    import triton
    from triton.testing import do_bench

    sys.path.insert(0, VENDOR)
    from vllm.v1.attention.ops.triton_unified_attention import unified_attention  # vendored

    from rocm_enable.ops import attention_rdna as A

    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    target = A.AttnTarget(wave_size=32, lds_bytes=64 * 1024, num_cus=props.multi_processor_count)
    dtype = torch.bfloat16
    scale = D ** -0.5

    # copy bandwidth and matmul rate
    x = torch.empty(1 << 30, dtype=torch.uint8, device=dev)
    y = torch.empty_like(x)
    t = do_bench(lambda: y.copy_(x), warmup=5, rep=50)
    copy_bw = 2 * x.numel() / (t * 1e-3)
    del x, y
    m = torch.randn(8192, 8192, dtype=dtype, device=dev)
    t = do_bench(lambda: m @ m, warmup=5, rep=50)
    mm_rate = 2 * 8192 ** 3 / (t * 1e-3)
    del m
    print(f"device {props.name}, {props.multi_processor_count} SMs; copy {copy_bw / 1e12:.2f} TB/s "
          f"(read+write); bf16 matmul {mm_rate / 1e12:.0f} TFLOP/s", flush=True)

    def run_vllm(q, kc, vc, out, bt, sl, cu, maxq, maxk):
        nseq = sl.shape[0]
        segs = 16
        thr = 128 // KVH
        so = torch.empty(q.shape[0], H, segs, triton.next_power_of_2(D), dtype=torch.float32, device=dev)
        sm = torch.empty(q.shape[0], H, segs, dtype=torch.float32, device=dev)
        se = torch.empty_like(sm)
        desc = torch.ones(nseq, KVH, dtype=torch.float32, device=dev)

        def f():
            unified_attention(q=q, k=kc, v=vc, out=out, cu_seqlens_q=cu, max_seqlen_q=maxq, seqused_k=sl,
                              max_seqlen_k=maxk, softmax_scale=scale, causal=True, window_size=(-1, -1),
                              block_table=bt, softcap=0, q_descale=None, k_descale=desc, v_descale=desc,
                              seq_threshold_3D=thr, num_par_softmax_segments=segs, softmax_segm_output=so,
                              softmax_segm_max=sm, softmax_segm_expsum=se)
        return f

    rows = []
    decode = [(b, c) for c in (4096, 32768, 131072) for b in (1, 8, 32)]
    prefill = [2048, 8192]
    if a.quick:
        decode, prefill = [(1, 4096), (8, 4096)], [2048]
    for b, ctx in decode:
        kc, vc, bt = make_cache(b, ctx, dtype, dev)
        q = torch.randn(b, H, D, dtype=dtype, device=dev)
        sl = torch.full((b,), ctx, dtype=torch.int32, device=dev)
        cu = torch.arange(b + 1, dtype=torch.int32, device=dev)
        scratch = A.alloc_scratch(target, KVH, H // KVH, D, dev)
        o1, o2 = torch.empty_like(q), torch.empty_like(q)
        ours = lambda: A.paged_attention(q, kc, vc, o1, bt, sl, cu, 1, scale, target, scratch)  # noqa: E731
        theirs = run_vllm(q, kc, vc, o2, bt, sl, cu, 1, ctx)
        ours(); theirs(); torch.cuda.synchronize()
        diff = (o1.float() - o2.float()).abs().max().item()
        t1, t2 = do_bench(ours, warmup=10, rep=100), do_bench(theirs, warmup=10, rep=100)
        nbytes = 2 * b * ctx * KVH * D * 2
        r = dict(kind="decode", batch=b, ctx=ctx, splits=A.decode_num_splits(b, KVH, H // KVH, target),
                 ours_us=t1 * 1e3, vllm_us=t2 * 1e3, ours_pct=100 * nbytes / (t1 * 1e-3) / copy_bw,
                 vllm_pct=100 * nbytes / (t2 * 1e-3) / copy_bw, max_diff=diff)
        rows.append(r)
        print(json.dumps(r), flush=True)
        del kc, vc, bt
        torch.cuda.empty_cache()
    for n in prefill:
        kc, vc, bt = make_cache(1, n, dtype, dev)
        q = torch.randn(n, H, D, dtype=dtype, device=dev)
        sl = torch.tensor([n], dtype=torch.int32, device=dev)
        cu = torch.tensor([0, n], dtype=torch.int32, device=dev)
        o1, o2 = torch.empty_like(q), torch.empty_like(q)
        ours = lambda: A.paged_attention(q, kc, vc, o1, bt, sl, cu, n, scale, target)  # noqa: E731
        theirs = run_vllm(q, kc, vc, o2, bt, sl, cu, n, n)
        ours(); theirs(); torch.cuda.synchronize()
        diff = (o1.float() - o2.float()).abs().max().item()
        t1, t2 = do_bench(ours, warmup=5, rep=50), do_bench(theirs, warmup=5, rep=50)
        flops = 4 * H * D * n * (n + 1) / 2
        r = dict(kind="prefill", batch=1, ctx=n, ours_us=t1 * 1e3, vllm_us=t2 * 1e3,
                 ours_pct=100 * flops / (t1 * 1e-3) / mm_rate, vllm_pct=100 * flops / (t2 * 1e-3) / mm_rate,
                 ours_tflops=flops / (t1 * 1e-3) / 1e12, vllm_tflops=flops / (t2 * 1e-3) / 1e12, max_diff=diff)
        rows.append(r)
        print(json.dumps(r), flush=True)

    print("\n| kind | batch | context | splits | ours µs | vLLM µs | ours % | vLLM % | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['batch']} | {r['ctx']} | {r.get('splits', '-')} | {r['ours_us']:.1f} | "
              f"{r['vllm_us']:.1f} | {r['ours_pct']:.0f} | {r['vllm_pct']:.0f} | "
              f"{r['vllm_us'] / r['ours_us']:.2f}x | {r['max_diff']:.1e} |")
    if a.out:
        json.dump(dict(device=props.name, sms=props.multi_processor_count, copy_bw=copy_bw, mm_rate=mm_rate,
                       target=target.__dict__, rows=rows), open(os.path.join(a.out, "attention_bench.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
