#!/usr/bin/env python3
"""GPU benchmark (NVIDIA H100 stand-in; no AMD GPU exists here) of rocm_enable's RDNA paged
attention against vLLM's own Triton unified attention kernel (the TRITON_ATTN backend's kernel),
IN THE SAME RUN, head_dim 256, GQA 8 (16 query heads, 2 KV heads: Qwen3-Next / Qwen3.6-35B-A3B),
with a bf16 KV cache and an fp8 (e4m3, per-tensor scales) KV cache.
Not a test: prints markdown tables (and JSON lines with --out, written as they are measured).

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
    (bytes read + written). The fp8 cache is the bf16 one quantised (x4 -> e4m3), scales 0.25;
    vLLM's kernel reads it with KVQuantMode.FP8_PER_TENSOR (its fp8 casts), ours by bit decode.
  * --split-sweep: at batch >= 8, the plan's tile also with the split counts for at most 2, 4, 8
    and 16 programs per CU (the plan: PROGRAMS_PER_CU = 4) and the round-2 rule's count (at least 8
    per CU, rounded up).
  * sweep: ours also with 4 / 8 warps and 32-key tiles (spill on gfx11 at head_dim 256: not
    selectable there) and, at batch >= 8, the split count for 4 and 8 programs per CU, so the
    plan's choice is compared with its neighbours in the same run.
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
        "    def is_xpu(self):\n        return False\n"
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
    bt = torch.randperm(nblocks, device=device, generator=g)[: num_seqs * per].view(num_seqs, per).to(torch.int32)
    return kv, bt


def to_fp8(kv):
    """bf16 cache -> e4m3 bytes (uint8, as vLLM allocates it), in place of the bf16 one."""
    import torch
    out = torch.empty(kv.shape, dtype=torch.uint8, device=kv.device)
    for i in range(0, kv.shape[0], 256):  # chunks: no 2x-size temporaries
        out[i:i + 256] = (kv[i:i + 256] * 4).to(torch.float8_e4m3fn).view(torch.uint8)
    return out


def split_kv(kv):
    return kv.transpose(1, 2).split(D, dim=-1)


class plan_override:
    """Sweep only: the decode plan with another num_warps / BLOCK_N."""

    def __init__(self, A, warps, block_n):
        self.A, self.change, self.base = A, {"num_warps": warps, "BLOCK_N": block_n}, A.decode_config

    def __enter__(self):
        base, change = self.base, self.change
        self.A.decode_config = lambda *a, **k: {**base(*a, **k), **change}

    def __exit__(self, *exc):
        self.A.decode_config = self.base


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--extract", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--quick", action="store_true", help="small shapes (smoke)")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--split-sweep", action="store_true",
                    help="at batch >= 8 also the plan's tile with the split count for 2, 4, 8 and 16 programs "
                         "per CU (cheap; for the split decision)")
    ap.add_argument("--smoke", action="store_true",
                    help="no GPU: tiny shapes on the CPU under TRITON_INTERPRET=1 (checks the script, times nothing)")
    a = ap.parse_args()
    if a.extract:
        return do_extract()

    import torch
    import triton
    from triton.testing import do_bench

    sys.path.insert(0, VENDOR)
    from vllm.v1.attention.ops.triton_unified_attention import unified_attention  # vendored
    from vllm.v1.kv_cache_interface import KVQuantMode  # vendored

    from rocm_enable.ops import attention_rdna as A

    if a.smoke:
        from types import SimpleNamespace
        assert os.environ.get("TRITON_INTERPRET") == "1", "--smoke needs TRITON_INTERPRET=1"
        dev = torch.device("cpu")
        props = SimpleNamespace(name="cpu (smoke)", multi_processor_count=4)
        torch.cuda.synchronize = torch.cuda.empty_cache = lambda: None
        torch.cuda.get_device_capability = lambda *_: (9, 0)  # vLLM's kernel asks (prefill tuning)

        def do_bench(f, **_):
            f()
            return 1.0
    else:
        dev = torch.device("cuda")
        props = torch.cuda.get_device_properties(dev)
    target = A.AttnTarget(wave_size=32, lds_bytes=64 * 1024, num_cus=props.multi_processor_count)
    dtype = torch.bfloat16
    scale = D ** -0.5
    sink = open(os.path.join(a.out, "attention_bench.jsonl"), "w") if a.out else None

    def emit(r):
        print(json.dumps(r), flush=True)
        if sink:
            sink.write(json.dumps(r) + "\n")
            sink.flush()

    def bench(f):
        return do_bench(f, warmup=5, rep=25) * 1e3  # µs

    # copy bandwidth and matmul rate
    x = torch.empty(1 << (16 if a.smoke else 30), dtype=torch.uint8, device=dev)
    y = torch.empty_like(x)
    t = do_bench(lambda: y.copy_(x), warmup=5, rep=50)
    copy_bw = 2 * x.numel() / (t * 1e-3)
    del x, y
    mm = 64 if a.smoke else 8192
    m = torch.randn(mm, mm, dtype=dtype, device=dev)
    t = do_bench(lambda: m @ m, warmup=5, rep=50)
    mm_rate = 2 * mm ** 3 / (t * 1e-3)
    del m
    emit(dict(kind="device", name=props.name, sms=props.multi_processor_count, copy_bw=copy_bw,
              mm_rate=mm_rate, target=target.__dict__, torch=torch.__version__, triton=triton.__version__))

    k_scale = torch.tensor([0.25], dtype=torch.float32, device=dev)
    v_scale = torch.tensor([0.25], dtype=torch.float32, device=dev)

    def run_vllm(q, kc, vc, out, bt, sl, cu, maxq, maxk, fp8):
        nseq = sl.shape[0]
        segs = 16
        thr = 128 // KVH
        so = torch.empty(q.shape[0], H, segs, triton.next_power_of_2(D), dtype=torch.float32, device=dev)
        sm = torch.empty(q.shape[0], H, segs, dtype=torch.float32, device=dev)
        se = torch.empty_like(sm)
        if fp8:  # as TritonAttentionImpl.forward: fp8 views, layer scales expanded per (seq, kv head)
            kc, vc = kc.view(torch.float8_e4m3fn), vc.view(torch.float8_e4m3fn)
            kd, vd = k_scale.expand(nseq, KVH), v_scale.expand(nseq, KVH)
            mode = KVQuantMode.FP8_PER_TENSOR
        else:
            kd = vd = torch.ones(nseq, KVH, dtype=torch.float32, device=dev)
            mode = KVQuantMode.NONE

        def f():
            unified_attention(q=q, k=kc, v=vc, out=out, cu_seqlens_q=cu, max_seqlen_q=maxq, seqused_k=sl,
                              max_seqlen_k=maxk, softmax_scale=scale, causal=True, window_size=(-1, -1),
                              block_table=bt, softcap=0, q_descale=None, k_descale=kd, v_descale=vd,
                              seq_threshold_3D=thr, num_par_softmax_segments=segs, softmax_segm_output=so,
                              softmax_segm_max=sm, softmax_segm_expsum=se, kv_quant_mode=mode)
        return f

    rows, sweep = [], []
    # the targets' points first: a run cut short by its time limit still returns them (--out)
    decode = [(8, 32768), (32, 32768), (8, 131072), (32, 131072), (1, 4096), (1, 32768), (1, 131072),
              (8, 4096), (32, 4096)]
    prefill = [2048, 8192]
    if a.quick:
        decode, prefill = [(1, 4096), (8, 4096)], [2048]
    if a.smoke:
        decode, prefill = [(1, 40), (8, 40)], [24]
    qpkv = H // KVH
    for b, ctx in decode:
        kv, bt = make_cache(b, ctx, dtype, dev)
        q = torch.randn(b, H, D, dtype=dtype, device=dev)
        sl = torch.full((b,), ctx, dtype=torch.int32, device=dev)
        cu = torch.arange(b + 1, dtype=torch.int32, device=dev)
        plan_cfg = A.decode_config(D, target, BLOCK)
        plan = (A.decode_num_splits(b, KVH, qpkv, target), plan_cfg["num_warps"], plan_cfg["BLOCK_N"])
        variants = {plan}
        if not a.no_sweep:  # neighbours: 4 / 8 programs per CU; 4 or 8 warps with 32-key tiles
            ps = (4, 8) if b >= 8 else (A.PROGRAMS_PER_CU,)
            variants |= {(A.decode_num_splits(b, KVH, qpkv, target, p), w, n)
                         for p in ps for w, n in ((plan[1], plan[2]), (4, 32), (8, 32))}
        if a.split_sweep and b >= 8:
            variants |= {(A.decode_num_splits(b, KVH, qpkv, target, p), plan[1], plan[2]) for p in (2, 4, 8, 16)}
            # the split count of the round-2 rule (rounded up: at least 8 programs per CU)
            programs = b * KVH * A.num_groups(qpkv)
            variants.add((min(A.MAX_SPLITS, triton.cdiv(8 * target.num_cus, programs)),
                          plan[1], plan[2]))
        max_splits = max(v[0] for v in variants)
        scratch = (torch.empty(b * KVH * A.num_groups(qpkv) * max_splits * A.DECODE_ROWS, D,
                               dtype=torch.float32, device=dev),
                   torch.empty(b * KVH * A.num_groups(qpkv) * max_splits * A.DECODE_ROWS, 2,
                               dtype=torch.float32, device=dev))
        for kvname in ("bf16", "fp8"):
            if kvname == "fp8":
                kv = to_fp8(kv)
                torch.cuda.empty_cache()
            kc, vc = split_kv(kv)
            fp8 = kvname == "fp8"
            scales = dict(k_scale=k_scale, v_scale=v_scale) if fp8 else {}
            o1, o2 = torch.empty_like(q), torch.empty_like(q)
            theirs = run_vllm(q, kc, vc, o2, bt, sl, cu, 1, ctx, fp8)
            nbytes = 2 * b * ctx * KVH * D * kv.element_size()
            t_vllm = bench(theirs)
            for splits, warps, block_n in sorted(variants):
                def ours():
                    A.paged_attention(q, kc, vc, o1, bt, sl, cu, 1, scale, target, scratch,
                                      num_splits=splits, **scales)
                with plan_override(A, warps, block_n):
                    ours(); theirs(); torch.cuda.synchronize()
                    diff = (o1.float() - o2.float()).abs().max().item()
                    t = bench(ours)
                r = dict(kind="decode", kv=kvname, batch=b, ctx=ctx, splits=splits, warps=warps,
                         block_n=block_n, plan=(splits, warps, block_n) == plan, ours_us=t, vllm_us=t_vllm,
                         ours_pct=100 * nbytes / (t * 1e-6) / copy_bw,
                         vllm_pct=100 * nbytes / (t_vllm * 1e-6) / copy_bw, max_diff=diff)
                (rows if r["plan"] else sweep).append(r)
                emit(r)
        del kv, kc, vc, bt, scratch
        torch.cuda.empty_cache()
    for n in prefill:
        kv, bt = make_cache(1, n, dtype, dev)
        q = torch.randn(n, H, D, dtype=dtype, device=dev)
        sl = torch.tensor([n], dtype=torch.int32, device=dev)
        cu = torch.tensor([0, n], dtype=torch.int32, device=dev)
        for kvname in ("bf16", "fp8"):
            if kvname == "fp8":
                kv = to_fp8(kv)
            kc, vc = split_kv(kv)
            fp8 = kvname == "fp8"
            scales = dict(k_scale=k_scale, v_scale=v_scale) if fp8 else {}
            o1, o2 = torch.empty_like(q), torch.empty_like(q)
            ours = lambda: A.paged_attention(q, kc, vc, o1, bt, sl, cu, n, scale, target, **scales)  # noqa: E731
            theirs = run_vllm(q, kc, vc, o2, bt, sl, cu, n, n, fp8)
            ours(); theirs(); torch.cuda.synchronize()
            diff = (o1.float() - o2.float()).abs().max().item()
            t1, t2 = bench(ours), bench(theirs)
            flops = 4 * H * D * n * (n + 1) / 2
            r = dict(kind="prefill", kv=kvname, batch=1, ctx=n, ours_us=t1, vllm_us=t2,
                     ours_pct=100 * flops / (t1 * 1e-6) / mm_rate, vllm_pct=100 * flops / (t2 * 1e-6) / mm_rate,
                     max_diff=diff)
            rows.append(r)
            emit(r)

    print(f"\ndevice {props.name}, {props.multi_processor_count} SMs; copy {copy_bw / 1e12:.2f} TB/s "
          f"(read+write); bf16 matmul {mm_rate / 1e12:.0f} TFLOP/s")
    print("\n| kind | KV | batch | context | splits | warps | BLOCK_N | ours µs | vLLM µs | ours % | vLLM % | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows + sweep:
        print(f"| {r['kind']}{'' if r.get('plan', True) else ' (sweep)'} | {r['kv']} | {r['batch']} | {r['ctx']} | "
              f"{r.get('splits', '-')} | {r.get('warps', '-')} | {r.get('block_n', '-')} | {r['ours_us']:.1f} | {r['vllm_us']:.1f} | "
              f"{r['ours_pct']:.0f} | {r['vllm_pct']:.0f} | {r['vllm_us'] / r['ours_us']:.2f}x | {r['max_diff']:.1e} |")


if __name__ == "__main__":
    main()
