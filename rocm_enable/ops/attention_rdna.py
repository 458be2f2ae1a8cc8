"""Paged attention for wave32 RDNA GPUs: launch planning and launchers.

Launch parameters are derived from an ``AttnTarget`` (wave size, LDS per workgroup, compute-unit
count), which comes from the capability table (``target_from_caps``) or, at run time, from the
device's own properties; no architecture names are consulted.

Why these tiles (docs/attention.md has the ISA evidence):
  * decode: ROWS = 16 query rows (the WMMA M), all QPKV query heads of one KV head share each K/V
    tile; BLOCK_N keys per tile is the largest power of two whose K+V tiles fit half of LDS.
    vLLM 0.32's decode launches (seqs x kv_heads) programs -- 2 on a 40-CU GPU at batch 1 for
    Qwen3-Next -- so the KV range is split (flash-decoding) into as many parts as keep the
    programs within PROGRAMS_PER_CU per CU (no split once seqs x kv heads exceed half of that).
  * prefill: BLOCK_M query rows (tokens x heads of one KV head) per program, with num_warps chosen
    so the fp32 accumulator (BLOCK_M x head_dim) needs at most 64 VGPRs per lane: at head_dim 256
    on wave32 that is 8 warps for BLOCK_M = 64 (vLLM's prefix_prefill uses BLOCK_M = 128 with 4
    warps: 256 accumulator VGPRs per lane, and spills 5,746 VGPRs on gfx1151).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton

from rocm_enable.ops import attention_kernels as K

SUPPORTED_HEAD_DIMS = (64, 128, 256)
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
# e4m3fn bytes (vLLM's fp8 / fp8_e4m3 KV cache on gfx11/gfx12); uint8 is how vLLM allocates it
FP8_KV_DTYPES = (torch.float8_e4m3fn, torch.uint8)
DECODE_ROWS = 16          # WMMA/MMA M: query rows per decode program
MAX_SPLITS = 64           # flash-decoding splits per (seq, kv head)
COMBINE_SPLIT_CHUNK = 16  # partial rows the combine kernel sums per step
PROGRAMS_PER_CU = 4       # most decode programs per CU the split count makes (H100 sweep: docs/attention.md)
ACC_VGPRS_PER_LANE = 32   # budget for the prefill fp32 accumulator per lane (see ISA sweep)


@dataclass(frozen=True)
class AttnTarget:
    wave_size: int
    lds_bytes: int
    num_cus: int


def target_from_caps(caps, num_cus: int | None = None) -> AttnTarget:
    """From a capabilities record; ``num_cus`` from the device when known, else the smallest
    board of the arch (fewer CUs -> more splits, which is safe on a bigger board)."""
    cus = num_cus or min(b.compute_units for b in caps.boards)
    return AttnTarget(caps.wave_size, caps.lds_per_workgroup_kib * 1024, cus)


def target_from_device(device=None) -> AttnTarget:
    """The running GPU's own numbers (used by the benchmark on non-AMD devices too)."""
    props = torch.cuda.get_device_properties(device)
    wave = getattr(props, "warp_size", 32) or 32
    lds = getattr(props, "shared_memory_per_block_optin", 0) or getattr(props, "shared_memory_per_block", 65536)
    return AttnTarget(int(wave), int(lds), int(props.multi_processor_count))


def _pow2_floor(x: int) -> int:
    return 1 << (max(1, int(x)).bit_length() - 1)


def _fit_block(block_n: int, block_size: int | None) -> int:
    """Largest power of two <= block_n dividing the KV block size, so that a key tile never
    straddles two physical blocks (vLLM block sizes are multiples of 16)."""
    if block_size:
        while block_n > 16 and block_size % block_n:
            block_n //= 2
        if block_size % block_n:
            raise ValueError(f"KV block size {block_size} is not a multiple of 16")
    return block_n


def _tile_budget_n(head_dim: int, target: AttnTarget, cap: int) -> int:
    """Keys per K/V tile: the K and V tiles (16-bit) together within half of the LDS,
    capped at ``cap``."""
    return max(16, min(cap, _pow2_floor(target.lds_bytes // 2 // (2 * head_dim * 2))))


def decode_config(head_dim: int, target: AttnTarget, block_size: int | None = None,
                  kv_fp8: bool = False, split: bool = True) -> dict:
    """ROWS = 16 (the matrix-unit M); num_warps = 4; BLOCK_N keys per tile from the LDS budget,
    32 at most at head_dim >= 256 and 64 below (64 keys at head_dim 256 need ~250 VGPRs on
    gfx1151); DC = 64-wide head_dim chunks for Q K^T; one stage (paged gathers are not pipelined).

    Why 4 warps: decode streams K/V bytes, and smaller programs let more of them be resident per
    CU (H100 stand-in, same run: 4 warps 80-91% of the copy rate at batch 8-32 / 32K-128K where 8
    warps reached 57-72%). With 4 waves the 16 x 256 fp32 accumulator takes 32 VGPRs per lane;
    the kernel loads V after the scores so that a 32-key tile stays spill-free (240 / 254 VGPRs
    bf16 / fp8 cache on gfx1151; V issued before Q K^T spilled 2-40). The one exception: the
    no-split kernel with an e4m3 cache at head_dim 256 spills 1 VGPR with 32 keys on gfx1100, so it
    takes 16 (it only runs once seqs x kv_heads > PROGRAMS_PER_CU x CUs / 2)."""
    cap = 32 if head_dim >= 256 else 64
    if kv_fp8 and not split and head_dim >= 256:
        cap = 16
    block_n = _fit_block(_tile_budget_n(head_dim, target, cap), block_size)
    return dict(ROWS=DECODE_ROWS, BLOCK_N=block_n, DC=min(head_dim, 64), KV_FP8=kv_fp8,
                num_warps=4, num_stages=1)


def prefill_config(head_dim: int, target: AttnTarget, block_size: int | None = None,
                   kv_fp8: bool = False) -> dict:
    """BLOCK_M = 64 rows unless the fp32 accumulator (BLOCK_M x head_dim) would need more than
    ACC_VGPRS_PER_LANE registers per lane with 8 waves, then 32; num_warps the fewest (>= 4) that
    keep it within budget; BLOCK_N as for decode but 32 at most from head_dim 128 up, and 16 at
    head_dim 256 with an e4m3 cache (its decoded K/V tiles and fp16 Q copies cost the last ~10
    VGPRs: M32 N32 spills 34 on gfx1151, M32 N16 none)."""
    block_m = 64
    while block_m > 32 and block_m * head_dim // (8 * target.wave_size) > ACC_VGPRS_PER_LANE:
        block_m //= 2
    warps = min(8, max(4, block_m * head_dim // (ACC_VGPRS_PER_LANE * target.wave_size)))
    cap = (16 if kv_fp8 and head_dim >= 256 else 32) if head_dim >= 128 else 64
    block_n = _fit_block(_tile_budget_n(head_dim, target, cap), block_size)
    return dict(BLOCK_M=block_m, BLOCK_N=block_n, DC=min(head_dim, 64), KV_FP8=kv_fp8,
                num_warps=warps, num_stages=1)


def num_groups(qpkv: int) -> int:
    return triton.cdiv(qpkv, DECODE_ROWS)


def decode_num_splits(num_seqs: int, num_kv_heads: int, qpkv: int, target: AttnTarget,
                      programs_per_cu: int = PROGRAMS_PER_CU) -> int:
    """Split each seq's KV range so that at most ``programs_per_cu`` decode programs exist per CU
    (the most splits that stay within it); no split once seqs x kv heads x head groups exceed half
    of that. Depends only on the batch shape (not on context lengths), so it is fixed per CUDA graph.

    At most, not at least: the GPU runs the programs in rounds of (resident programs per CU) x CUs,
    and a count just above programs_per_cu x CUs adds a nearly empty last round in which most CUs
    idle. On the H100 stand-in (same run, 32K / 128K context) batch 32 ran 17 splits = 1,088
    programs (the rule rounded up, 8 per CU) at 0.81x / 0.76x vLLM and 16 splits (rounded down) at
    0.92x / 0.92x. 4 per CU: in that run 4 per CU (batch 8: 33 splits, batch 32: 8) was faster
    than 8 per CU at 11 of the 12 batch-8/32 points (bf16 and fp8, 4K-128K; by up to 15% at 4K)
    and 0.6% slower at the 12th (docs/attention.md)."""
    programs = max(1, num_seqs * num_kv_heads * num_groups(qpkv))
    want = programs_per_cu * target.num_cus // programs
    return max(1, min(MAX_SPLITS, want))


def scratch_rows(target: AttnTarget, num_kv_heads: int, qpkv: int) -> int:
    """Upper bound on partial rows any split decode launch writes: splits > 1 only while
    programs < PROGRAMS_PER_CU * CUs, and splits <= that / programs (+ 1: a margin)."""
    cap = PROGRAMS_PER_CU * target.num_cus
    return (2 * cap + num_kv_heads * num_groups(qpkv)) * DECODE_ROWS


def selectable_configs(target: AttnTarget):
    """(kernel, head_dim, config) for every launch configuration the backend can choose: each
    head_dim, each BLOCK_N the block-size fit can fall back to (down to 16), with a 16-bit and
    an e4m3 KV cache."""
    seen = set()
    for hd in SUPPORTED_HEAD_DIMS:
        for bs in (None, 32, 16):  # None: the table's tile; 32 / 16: block-size fallbacks
            for fp8 in (False, True):
                for kind, cfg in (("decode_split", decode_config(hd, target, bs, fp8, split=True)),
                                  ("decode_direct", decode_config(hd, target, bs, fp8, split=False)),
                                  ("prefill", prefill_config(hd, target, bs, fp8))):
                    key = (kind, hd, tuple(sorted(cfg.items())))
                    if key not in seen:
                        seen.add(key)
                        yield kind, hd, cfg
        yield "combine", hd, dict(MAX_SPLITS=MAX_SPLITS, SPLIT_CHUNK=COMBINE_SPLIT_CHUNK,
                                  num_warps=4, num_stages=1)


def alloc_scratch(target: AttnTarget, num_kv_heads: int, qpkv: int, head_dim: int, device):
    rows = scratch_rows(target, num_kv_heads, qpkv)
    return (torch.empty(rows, head_dim, dtype=torch.float32, device=device),
            torch.empty(rows, 2, dtype=torch.float32, device=device))


def _kv_operands(key_cache, value_cache, k_scale, v_scale, q):
    """(k, v, k_scale, v_scale, kv_fp8) as the kernels take them: a 16-bit cache as is (the
    scale pointers unused), an e4m3 cache as int32 word views (4 bytes of a key row per word)
    with its per-tensor fp32 scales."""
    if key_cache.dtype not in FP8_KV_DTYPES:
        if key_cache.dtype != q.dtype or value_cache.dtype != q.dtype:
            raise ValueError(f"KV cache dtype {key_cache.dtype} / {value_cache.dtype} does not match "
                             f"the query's {q.dtype}; a 16-bit cache must have the model's dtype")
        return key_cache, value_cache, q, q, False  # the scale pointers are not read: any tensor
    if k_scale is None or v_scale is None:
        raise ValueError("an fp8 (e4m3) KV cache needs its per-tensor k_scale and v_scale tensors")
    if value_cache.dtype not in FP8_KV_DTYPES:
        raise ValueError(f"key cache is fp8 but value cache is {value_cache.dtype}")
    words = [c.view(torch.uint8).view(torch.int32) for c in (key_cache, value_cache)]
    return words[0], words[1], k_scale, v_scale, True


def paged_attention(q, key_cache, value_cache, out, block_table, seq_lens, cu_seqlens_q,
                    max_query_len: int, scale: float, target: AttnTarget, scratch=None,
                    num_splits: int | None = None, k_scale=None, v_scale=None):
    """Causal paged attention over vLLM's cache layout.

    q, out: [tokens, heads, head_dim]; key_cache/value_cache: [blocks, block_size, kv_heads,
    head_dim] (last stride 1), 16-bit of q's dtype or e4m3fn / uint8 bytes with ``k_scale`` /
    ``v_scale`` (per-tensor fp32, on the device; vLLM's layer._k_scale / _v_scale);
    block_table [seqs, max_blocks] int32; seq_lens [seqs]; cu_seqlens_q [seqs + 1].
    ``max_query_len == 1`` takes the decode path."""
    num_seqs = seq_lens.shape[0]
    _, num_heads, head_dim = q.shape
    num_kv_heads = key_cache.shape[2]
    qpkv = num_heads // num_kv_heads
    block_size = key_cache.shape[1]
    qk_scale = float(scale) * K.LOG2E
    k, v, k_scale, v_scale, kv_fp8 = _kv_operands(key_cache, value_cache, k_scale, v_scale, q)
    common = (q.stride(0), q.stride(1), k.stride(0), k.stride(1), k.stride(2),
              v.stride(0), v.stride(1), v.stride(2),
              out.stride(0), out.stride(1), block_table.stride(0), block_size)
    if max_query_len == 1:
        groups = num_groups(qpkv)
        splits = num_splits or decode_num_splits(num_seqs, num_kv_heads, qpkv, target)
        split = splits > 1
        cfg = decode_config(head_dim, target, block_size, kv_fp8, split)
        if split:
            if scratch is None:
                scratch = alloc_scratch(target, num_kv_heads, qpkv, head_dim, q.device)
            part_acc, part_ml = scratch
            need = num_seqs * num_kv_heads * groups * splits * DECODE_ROWS
            assert part_acc.shape[0] >= need and part_acc.shape[1] == head_dim, "scratch too small"
        else:
            part_acc = part_ml = out  # unused
        K.paged_decode_kernel[(num_seqs, num_kv_heads * groups, splits)](
            q, k, v, out, block_table, seq_lens, cu_seqlens_q,
            part_acc, part_ml, k_scale, v_scale, qk_scale, *common, splits,
            QPKV=qpkv, NUM_GROUPS=groups, ROWS=cfg["ROWS"], HEAD_DIM=head_dim,
            BLOCK_N=cfg["BLOCK_N"], DC=cfg["DC"], SPLIT=split, KV_FP8=kv_fp8,
            num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
        if split:
            K.split_combine_kernel[(num_seqs, num_heads)](
                out, part_acc, part_ml, cu_seqlens_q, out.stride(0), out.stride(1), splits,
                QPKV=qpkv, NUM_GROUPS=groups, ROWS=DECODE_ROWS, HEAD_DIM=head_dim,
                MAX_SPLITS=MAX_SPLITS, SPLIT_CHUNK=COMBINE_SPLIT_CHUNK, num_warps=4, num_stages=1)
        return out
    cfg = prefill_config(head_dim, target, block_size, kv_fp8)
    block_q = cfg["BLOCK_M"] // qpkv
    assert block_q >= 1, "QPKV larger than BLOCK_M"
    grid = (triton.cdiv(q.shape[0], block_q) + num_seqs, num_kv_heads)
    K.paged_prefill_kernel[grid](
        q, k, v, out, block_table, seq_lens, cu_seqlens_q, k_scale, v_scale, qk_scale,
        *common, num_seqs,
        QPKV=qpkv, HEAD_DIM=head_dim, BLOCK_M=cfg["BLOCK_M"], BLOCK_Q=block_q,
        BLOCK_N=cfg["BLOCK_N"], DC=cfg["DC"], KV_FP8=kv_fp8,
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return out
