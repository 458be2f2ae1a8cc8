"""AOT AMDGCN report for the RDNA attention kernels (no GPU): every launch configuration the
backend can choose on an arch (``attention_rdna.selectable_configs`` of the arch's capability
record) compiled through Triton's own binder for that arch, with VGPRs, spills, LDS and waves/SIMD.

  python -m rocm_enable.ops.attention_isa gfx1151 [gfx1100 ...] [--json]
``rocm_enable.isa.attention_isa_report(arch)`` is the entry point other tools use.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

KERNEL_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "attention_kernels.py")

# Shapes of the target models (per GPU, TP=1): Qwen3-Next-80B-A3B / Qwen3.6-35B-A3B: 16 query
# heads, 2 KV heads (QPKV 8); Qwen3.6-27B: 24 / 4 (QPKV 6). head_dim 64/128 use QPKV 8 as well.
MODEL_GQA = {"qpkv8": (16, 2), "qpkv6": (24, 4)}
BLOCK_SIZE = 544  # vLLM's hybrid-model page for Qwen3-Next at bf16 (audit §4.2); not a power of 2
DTYPES = ("bf16", "fp16")
HEAD_DIMS = (128, 256)  # the proof's scope (64 is selectable too: pass head_dims=(64,))


def _load_kernels():
    from rocm_enable.ops.aot import load_compilable_kernels

    return load_compilable_kernels(KERNEL_FILE, "_rocm_enable_isa_attention_kernels")


def _cases(target, head_dims, dtypes):
    import triton.language as tl

    from rocm_enable.ops.aot import fake_tensor as _t
    from rocm_enable.ops import attention_rdna as A

    for kernel, hd, cfg in A.selectable_configs(target):
        if hd not in head_dims:
            continue
        gqas = MODEL_GQA.items() if hd == 256 else [("qpkv8", MODEL_GQA["qpkv8"])]
        for gname, (H, KVH) in gqas:
            qpkv = H // KVH
            groups = A.num_groups(qpkv)
            for dt in dtypes:
                ty = tl.bfloat16 if dt == "bf16" else tl.float16
                fp8 = bool(cfg.get("KV_FP8"))
                # an e4m3 cache is passed as int32 words: 4 bytes per element, strides in words
                kv_ty, unit = (tl.int32, 4) if fp8 else (ty, 1)
                opts = {k: cfg[k] for k in ("num_warps", "num_stages") if k in cfg}
                big = 1 << 30
                slot = KVH * 2 * hd // unit  # elements (16-bit) or words (fp8) per slot
                strides = dict(stride_qt=H * hd, stride_qh=hd,
                               stride_kb=BLOCK_SIZE * slot, stride_ks=slot, stride_kh=2 * hd // unit,
                               stride_vb=BLOCK_SIZE * slot, stride_vs=slot, stride_vh=2 * hd // unit,
                               stride_ot=H * hd, stride_oh=hd, stride_bt=256, block_size=BLOCK_SIZE)
                ptrs = dict(q_ptr=_t(ty), k_ptr=_t(kv_ty, big), v_ptr=_t(kv_ty, big), out_ptr=_t(ty),
                            block_table_ptr=_t(tl.int32), seq_lens_ptr=_t(tl.int32),
                            cu_seqlens_q_ptr=_t(tl.int32))
                scales = dict(k_scale_ptr=_t(tl.float32), v_scale_ptr=_t(tl.float32))
                kv = "fp8" if fp8 else dt
                if kernel in ("decode_split", "decode_direct"):
                    split = kernel == "decode_split"
                    args = dict(**ptrs, part_acc_ptr=_t(tl.float32), part_ml_ptr=_t(tl.float32),
                                **scales, qk_scale=0.09, **strides, num_splits=40 if split else 1,
                                QPKV=qpkv, NUM_GROUPS=groups, ROWS=cfg["ROWS"], HEAD_DIM=hd,
                                BLOCK_N=cfg["BLOCK_N"], DC=cfg["DC"], SPLIT=split, KV_FP8=fp8)
                    tile = f"ROWS{cfg['ROWS']} N{cfg['BLOCK_N']}"
                elif kernel == "combine":
                    if dt != dtypes[0]:
                        continue  # reads fp32 partials only; the output dtype does not change it
                    kv = "-"
                    args = dict(out_ptr=_t(ty), part_acc_ptr=_t(tl.float32), part_ml_ptr=_t(tl.float32),
                                cu_seqlens_q_ptr=_t(tl.int32), stride_ot=H * hd, stride_oh=hd,
                                num_splits=40, QPKV=qpkv, NUM_GROUPS=groups, ROWS=A.DECODE_ROWS,
                                HEAD_DIM=hd, MAX_SPLITS=cfg["MAX_SPLITS"], SPLIT_CHUNK=cfg["SPLIT_CHUNK"])
                    tile = f"S{cfg['MAX_SPLITS']}/{cfg['SPLIT_CHUNK']}"
                else:
                    args = dict(**ptrs, **scales, qk_scale=0.09, **strides, num_seqs=7, QPKV=qpkv,
                                HEAD_DIM=hd, BLOCK_M=cfg["BLOCK_M"], BLOCK_Q=cfg["BLOCK_M"] // qpkv,
                                BLOCK_N=cfg["BLOCK_N"], DC=cfg["DC"], KV_FP8=fp8)
                    tile = f"M{cfg['BLOCK_M']} N{cfg['BLOCK_N']}"
                yield kernel, hd, gname, dt, kv, tile, args, opts


def _spill_count(asm: str, kind: str) -> int:
    m = re.search(rf"^\s+\.{kind}_spill_count:\s+(\d+)", asm, re.M)
    return int(m.group(1)) if m else 0


def _fp8_conversions(asm: str) -> int:
    """Instructions that convert fp8/bf8 (gfx12 v_cvt_*_fp8 / _bf8): the cache decode must be
    integer bit operations instead."""
    return len(re.findall(r"^\s+v_cvt\w*_(?:fp8|bf8)\w*", asm, re.M))


def _compile_report(arch: str, head_dims=HEAD_DIMS, dtypes=DTYPES) -> list[dict]:
    from rocm_enable.gates.capabilities import capabilities_for
    from rocm_enable.ops.aot import asm_metrics, compile_for_arch
    from rocm_enable.ops import attention_rdna as A

    caps = capabilities_for(arch)
    target = A.target_from_caps(caps)
    mod = _load_kernels()
    fns = {"decode_split": mod.paged_decode_kernel, "decode_direct": mod.paged_decode_kernel,
           "combine": mod.split_combine_kernel, "prefill": mod.paged_prefill_kernel}
    rows = []
    for kernel, hd, gname, dt, kv, tile, args, opts in _cases(target, head_dims, dtypes):
        k = compile_for_arch(fns[kernel], args, opts, arch)
        asm = k.asm["amdgcn"]
        m = asm_metrics(asm, k.metadata, arch)
        rows.append(dict(arch=arch, kernel=kernel, head_dim=hd, gqa=gname, dtype=dt, kv=kv, tile=tile,
                         vgpr_spills=_spill_count(asm, "vgpr"), sgpr_spills=_spill_count(asm, "sgpr"),
                         fp8_cvt=_fp8_conversions(asm),
                         num_warps=opts.get("num_warps"), num_stages=opts.get("num_stages"),
                         lds_limit=caps.lds_per_workgroup_kib * 1024,
                         waves_per_simd=m["occupancy_lds"], **m))
    return rows


def attention_isa_report(arch: str, head_dims=HEAD_DIMS, dtypes=DTYPES) -> list[dict]:
    """One dict per (kernel, head_dim, GQA shape, dtype) configuration the backend can choose on
    ``arch``. Runs the compile in a clean subprocess when this process has the Triton interpreter
    on (it patches triton.language in place)."""
    if os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes"):
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        p = subprocess.run([sys.executable, "-m", "rocm_enable.ops.attention_isa", "--json", arch,
                            "--head-dims", ",".join(map(str, head_dims)), "--dtypes", ",".join(dtypes)],
                           env=env, capture_output=True, text=True, check=False)
        if p.returncode:
            raise RuntimeError(f"AOT compile subprocess failed:\n{p.stderr[-4000:]}")
        return [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    return _compile_report(arch, tuple(head_dims), tuple(dtypes))


COLUMNS = ("arch", "kernel", "head_dim", "gqa", "dtype", "kv", "tile", "num_warps", "num_stages",
           "vgpr", "vgpr_spills", "sgpr_spills", "scratch", "lds", "lds_limit", "waves_per_simd", "wmma",
           "loop_cndmask", "fp8_cvt")


def to_markdown(rows: list[dict]) -> str:
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        out.append("| " + " | ".join("-" if r.get(c) is None else str(r.get(c)) for c in COLUMNS) + " |")
    return "\n".join(out)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archs", nargs="*", default=["gfx1151"])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--head-dims", default=",".join(map(str, HEAD_DIMS)))
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    a = ap.parse_args(argv)
    for arch in a.archs:
        rows = attention_isa_report(arch, tuple(int(x) for x in a.head_dims.split(",")),
                                    tuple(a.dtypes.split(",")))
        if a.json:
            for r in rows:
                print(json.dumps(r), flush=True)
        else:
            print(to_markdown(rows), flush=True)


if __name__ == "__main__":
    main()
