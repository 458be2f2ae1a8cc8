"""Fused-MoE expert GEMMs with FP8 e4m3fn weights and bf16/fp16 activations (W8A16).

Semantics follow vLLM's modular kernel (TritonExperts): w13 GEMM on routed tokens,
SiLU-and-mul, w2 GEMM with the top-k weight multiplied in (or on the input when
``apply_router_weight_on_input``), then the sum over top-k. No activation quantisation.
Scales passed here must already be folded by ``fold_fp8_scale_for_fp16_bits``.
"""
from __future__ import annotations

from typing import Optional

import torch

from rocm_enable.ops import config as cfgmod
from rocm_enable.ops.fp8_dequant import SCALE_BLOCK, classify_scale
from rocm_enable.ops.moe_align import MoeRouting, cdiv, moe_align, next_power_of_2
from rocm_enable.ops.w8a16_kernel import (silu_and_mul_kernel, w8a16_gemm_kernel, w8a16_gemv_kernel,
                                          w8a16_moe_decode_kernel)

ROUTING_DENSE, ROUTING_NAIVE, ROUTING_SORTED = 0, 1, 2


def words_need_copy(w: torch.Tensor) -> bool:
    """Whether [..., N, K] e4m3 bytes cannot be read as int32 words in place (K axis not
    contiguous, or rows / start not 4-byte aligned). Weight processing fixes the layout once
    (make_word_aligned), so the per-call path never copies a weight."""
    return w.stride(-1) != 1 or any(s % 4 for s in w.stride()[:-1]) or w.storage_offset() % 4


def _weight_words(w: torch.Tensor) -> torch.Tensor:
    """[..., N, K] e4m3fn bytes -> int32 words [..., N, K/4] (a view; copies only if
    words_need_copy, which weight processing rules out for vLLM's layers)."""
    if w.dtype not in (torch.float8_e4m3fn, torch.uint8):
        raise TypeError(f"expected float8_e4m3fn weight, got {w.dtype}")
    if w.shape[-1] % 4:
        raise ValueError(f"K={w.shape[-1]} must be a multiple of 4 for the packed dequantisation")
    b = w.view(torch.uint8)
    if words_need_copy(b):
        b = b.contiguous()
    return b.view(torch.int32)


def _pick_block_k(block_k: int, K: int, mode: int, group_k: int) -> int:
    bk = min(block_k, max(32, next_power_of_2(K)))
    if mode == SCALE_BLOCK:
        bk = min(bk, group_k)
        if group_k % bk:
            raise ValueError(f"BLOCK_K={bk} must divide the scale group {group_k}")
    return bk


_COUNTERS: dict = {}
_OUTGROWN: list = []  # replaced ticket buffers stay allocated: a captured graph may still use one


def _split_counters(device, n: int) -> torch.Tensor:
    """Zeroed int32 tickets for split-K tiles and the GEMV's top-k sum, cached per device. The
    kernel's last arriving program of each tile resets its ticket to 0, so the buffer stays zero
    between launches (also across CUDA-graph replays). Assumes these launches on one device are
    stream-ordered (two concurrent ones on different streams would share tickets)."""
    key = str(device)
    buf = _COUNTERS.get(key)
    if buf is None or buf.numel() < n:
        if buf is not None:
            _OUTGROWN.append(buf)
        buf = torch.zeros(max(n, 16384), dtype=torch.int32, device=device)
        _COUNTERS[key] = buf
    return buf


def pick_split_k(programs: int, k_steps: int, cfg: dict, split_k: Optional[int] = None):
    """(SPLIT_K, k_iters): a fixed ``split_k`` / cfg["SPLIT_K"], else enough K splits to bring
    the grid to cfg["split_k_programs"] programs (0/absent: no split), at least
    cfg.get("split_k_min_steps", 2) BLOCK_K steps per split. Empty splits are never made."""
    s = split_k if split_k is not None else cfg.get("SPLIT_K")
    if s is None:
        target = cfg.get("split_k_programs", 0)
        s = -(-target // programs) if target and programs < target else 1
        s = min(s, max(1, k_steps // cfg.get("split_k_min_steps", 2)))
    s = max(1, min(int(s), k_steps))
    iters = -(-k_steps // s)
    return -(-k_steps // iters), iters


def launch_w8a16_gemm(a: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, c: torch.Tensor, *,
                      routing: Optional[MoeRouting], top_k: int, block_shape, gemm_cfg: dict,
                      block_m: int, topk_weights=None, fuse_silu=False, bias=None,
                      split_k: Optional[int] = None, sum_k: int = 0,
                      sum_ws: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Shared launcher. a [rows, K]; w [E, N, K] (dense: [1, N, K]) e4m3fn; c [pairs, N_out].
    Split-K (``split_k`` or the config's SPLIT_K / split_k_programs) applies to dense and
    naive routing only (sorted routing's grid is an upper bound, not the real tile count).
    sum_k > 0 (w2 where sums_topk_in_gemv holds): rows are pairs of sum_k slots per token, c is
    the summed output [pairs / sum_k, N_out] and sum_ws an fp32 buffer of one BLOCK_N row per
    (pair, N tile)."""
    E, N_w, K = w.shape
    if a.shape[-1] != K:
        raise ValueError(f"activation K={a.shape[-1]} != weight K={K}")
    if a.dtype not in (torch.bfloat16, torch.float16):
        raise TypeError(f"activations must be bf16/fp16, got {a.dtype}")
    mode, s3, bs = classify_scale(scale, E, N_w, K, block_shape)
    n_out = N_w // 2 if fuse_silu else N_w
    if c.shape[-1] != n_out:
        raise ValueError(f"output last dim {c.shape[-1]} != {n_out}")
    c2 = c.view(-1, n_out)
    words = _weight_words(w)
    if _uses_gemv(gemm_cfg, routing, mode, bs, fuse_silu, N_w):
        _launch_gemv(a, words, s3, c2, routing, top_k, mode, bs, gemm_cfg, n_out,
                     topk_weights, fuse_silu, bias, N_w, sum_k, sum_ws)
        return c
    if sum_k:
        raise ValueError("the top-k sum runs in the GEMV only: check sums_topk_in_gemv first")
    meta, opts = cfgmod.split_options(gemm_cfg)
    a_split = bool(meta.get("a_split"))
    if a_split:
        a = split_activation_fp16(a)
    meta = {k: v for k, v in meta.items() if k in ("BLOCK_N", "BLOCK_K", "GROUP_M")}
    group_n, group_k = (bs if bs else (128, 128))
    bk = _pick_block_k(meta["BLOCK_K"], K, mode, group_k)
    dummy = s3  # any tensor for unused pointer args
    if routing is None:
        num_valid, grid_m, routing_kind = a.shape[0], cdiv(a.shape[0], block_m), ROUTING_DENSE
        em, sorted_ids, expert_ids, ntpp = a.shape[0], None, dummy, dummy
    else:
        num_valid, grid_m = routing.num_pairs, routing.num_blocks
        routing_kind = ROUTING_NAIVE if routing.naive else ROUTING_SORTED
        em, sorted_ids = routing.em, routing.sorted_token_ids
        expert_ids = routing.expert_ids
        ntpp = dummy if routing.num_tokens_post_padded is None else routing.num_tokens_post_padded
    grid_n = cdiv(n_out, meta["BLOCK_N"])
    k_steps = cdiv(K, bk)
    if routing is None or routing.naive:
        nsplit, k_iters = pick_split_k(grid_n * grid_m, k_steps, gemm_cfg, split_k)
    else:
        nsplit, k_iters = 1, k_steps
    group_m = int(meta.get("GROUP_M", 1)) if routing is None else 1
    ws, cnt = dummy, dummy
    if nsplit > 1:
        tiles = grid_n * grid_m
        ws = torch.empty(tiles * nsplit * (2 if fuse_silu else 1) * meta["BLOCK_N"] * block_m,
                         dtype=torch.float32, device=a.device)
        cnt = _split_counters(a.device, tiles)
    grid = (grid_n * grid_m,) if group_m > 1 else (grid_n, grid_m, nsplit)
    if group_m > 1 and nsplit > 1:
        raise ValueError("GROUP_M and split-K are exclusive")
    w8a16_gemm_kernel[grid](
        a, words, c2, s3, bias if bias is not None else dummy,
        topk_weights if topk_weights is not None else dummy,
        sorted_ids, expert_ids, ntpp, ws, cnt,
        n_out, K, em, num_valid, N_w // 2 if fuse_silu else 0, k_iters,
        a.stride(0), a.stride(1), words.stride(0), words.stride(1), c2.stride(0), c2.stride(1),
        s3.stride(0), s3.stride(1), s3.stride(2),
        top_k=top_k, ROUTING=routing_kind, SCALE_MODE=mode, GROUP_N=group_n, GROUP_K=group_k,
        MUL_ROUTED_WEIGHT=topk_weights is not None, FUSE_SILU=fuse_silu, HAS_BIAS=bias is not None,
        BLOCK_M=block_m, BLOCK_N=meta["BLOCK_N"], BLOCK_K=bk, EVEN_K=K % bk == 0,
        SPLIT_K=nsplit, GROUP_M=group_m, A_SPLIT=a_split, **opts)
    return c


def split_activation_fp16(a: torch.Tensor) -> torch.Tensor:
    """[rows, K] bf16/fp16 -> fp16 [rows, K] holding each row's even K positions, then its odd
    ones: the operand order of the packed dequantisation, for A_SPLIT launches (one pass over A
    instead of a convert + split + transpose in registers at every K step of every N tile)."""
    rows, K = a.shape
    out = torch.empty(rows, K, dtype=torch.float16, device=a.device)
    out[:, :K // 2] = a[:, 0::2]
    out[:, K // 2:] = a[:, 1::2]
    return out


def _uses_gemv(gemm_cfg: dict, routing: Optional[MoeRouting], mode: int, bs, fuse_silu: bool,
               N_w: int) -> bool:
    return (gemm_cfg.get("kernel") == "gemv" and (routing is None or routing.naive)
            and _gemv_fits(mode, bs, gemm_cfg["BLOCK_N"], N_w // 2 if fuse_silu else 0))


def sums_topk_in_gemv(w2: torch.Tensor, w2_scale: torch.Tensor, block_shape, gemm_cfg: dict,
                      routing: MoeRouting) -> bool:
    """Whether the w2 launch runs the GEMV and can take the top-k sum in its epilogue (naive
    routing and a GEMV config that fits the scales): decided from shapes only."""
    E, N_w, K = w2.shape
    mode, _, bs = classify_scale(w2_scale, E, N_w, K, block_shape)
    return _uses_gemv(gemm_cfg, routing, mode, bs, False, N_w) and _PARTIAL_ROW % gemm_cfg["BLOCK_N"] == 0


def _w13_uses_gemv(w13, w13_scale, block_shape, gemm_cfg: dict, routing: MoeRouting) -> bool:
    E, N_w, K = w13.shape
    mode, _, bs = classify_scale(w13_scale, E, N_w, K, block_shape)
    return _uses_gemv(gemm_cfg, routing, mode, bs, True, N_w)


def _gemv_fits(mode: int, block_shape, block_n: int, up_offset: int) -> bool:
    """The GEMV kernel puts block scales on the activation, so every row of a program must
    share one scale row: BLOCK_N divides the scale group and the up half starts on a group."""
    if mode != SCALE_BLOCK:
        return True
    group_n = block_shape[0] if block_shape else 128
    return group_n % block_n == 0 and up_offset % group_n == 0


def gemv_block_k(block_k: int, K: int) -> int:
    """The GEMV's BLOCK_K: the config's, capped at K's power of two and halved (down to 64) until it
    divides K, so block-128 checkpoints (K a multiple of 128) never run the masked K loop, whose
    masked loads compile to a select ladder on gfx11/gfx12 (config_grid's ISA check found it at
    intermediate sizes like 384 with BLOCK_K 256)."""
    bk = min(block_k, max(16, next_power_of_2(K)))
    while K % bk and bk > 64:
        bk //= 2
    return bk


def _launch_gemv(a, words, s3, c2, routing, top_k, mode, bs, gemm_cfg, n_out, topk_weights,
                 fuse_silu, bias, N_w, sum_k=0, sum_ws=None):
    meta, opts = cfgmod.split_options(gemm_cfg)
    K = a.shape[-1]
    group_n, group_k = (bs if bs else (128, 128))
    bk = gemv_block_k(meta["BLOCK_K"], K)
    rows = a.shape[0] if routing is None else routing.num_pairs
    dummy = s3
    grid_n = cdiv(n_out, meta["BLOCK_N"])
    extra = {}
    if sum_k:
        if sum_ws is None or sum_ws.dtype != torch.float32 or sum_ws.numel() < rows * grid_n * meta["BLOCK_N"]:
            raise ValueError("sum_ws must be an fp32 buffer of one BLOCK_N row per (pair, N tile)")
        extra = dict(ws_ptr=sum_ws, cnt_ptr=_split_counters(a.device, rows // sum_k * grid_n),
                     sum_k=sum_k, SUM_TOPK=True)
    w8a16_gemv_kernel[(grid_n, rows)](
        a, words, c2, s3, bias if bias is not None else dummy,
        topk_weights if topk_weights is not None else dummy,
        routing.expert_ids if routing is not None else dummy,
        n_out, K, rows, N_w // 2 if fuse_silu else 0,
        a.stride(0), a.stride(1), words.stride(0), words.stride(1), c2.stride(0), c2.stride(1),
        s3.stride(0), s3.stride(1), s3.stride(2),
        top_k=top_k, ROUTED=routing is not None, SCALE_MODE=mode, GROUP_N=group_n, GROUP_K=group_k,
        MUL_ROUTED_WEIGHT=topk_weights is not None, FUSE_SILU=fuse_silu, HAS_BIAS=bias is not None,
        BLOCK_N=meta["BLOCK_N"], BLOCK_K=bk, EVEN_K=K % bk == 0, **extra, **opts)


def moe_gemm_w8a16(a: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor, c: torch.Tensor,
                   routing: MoeRouting, *, top_k: int, gemm: str = "w13", block_shape=None,
                   topk_weights: Optional[torch.Tensor] = None, fuse_silu: bool = False,
                   arch_family: str = "rdna3", num_tokens: Optional[int] = None,
                   split_k: Optional[int] = None, experts: Optional[int] = None,
                   routing_top_k: Optional[int] = None) -> torch.Tensor:
    """One expert GEMM, written into the caller's ``c``.

    a: [M, K] (w13: top_k = routing top-k, row of pair p is p // top_k) or [M*topk, K]
       (w2: top_k=1). bf16/fp16, K contiguous.
    w: [E, N, K] float8_e4m3fn (checkpoint layout, K contiguous); w_scale folded, block
       [E, N/bn, K/bk] / channel [E, N] or [E, N, 1] / tensor [E].
    c: [M*topk, N_out] or [M, topk, N_out] (contiguous last dim); N_out = N, or N/2 with
       ``fuse_silu`` (then c = silu(x @ W[:N/2].T) * (x @ W[N/2:].T)).
    topk_weights: [M, topk] float; if given, multiplied into each pair's row.
    routing: from ``moe_align`` with block_m = the config's BLOCK_M for this M.
    gemm: "w13" or "w2", selects the config's per-GEMM tile; num_tokens picks the M bucket
       (default: a.shape[0] for w13, a.shape[0] // top-k pairs otherwise), mapped through the
       layer's (global) ``experts`` and ``routing_top_k`` when given (config.moe_bucket_m).
    split_k: force K splits (naive routing only; default: the config's choice).
    """
    m = num_tokens if num_tokens is not None else (a.shape[0] if gemm == "w13" else
                                                   max(1, routing.num_pairs))
    bucket = cfgmod.get_moe_config(arch_family, m, experts, routing_top_k)
    if bucket["BLOCK_M"] != routing.block_m:
        raise ValueError(f"routing block_m {routing.block_m} != config BLOCK_M {bucket['BLOCK_M']}")
    tw = topk_weights.reshape(-1) if topk_weights is not None else None
    return launch_w8a16_gemm(a, w, w_scale, c, routing=routing, top_k=top_k, block_shape=block_shape,
                             gemm_cfg=bucket[gemm], block_m=routing.block_m, topk_weights=tw,
                             fuse_silu=fuse_silu, split_k=split_k)


def silu_and_mul(x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """out[..., :] = silu(x[..., :N]) * x[..., N:], x [..., 2N] (fp32 math)."""
    n = x.shape[-1] // 2
    x2 = x.reshape(-1, 2 * n)
    if out is None:
        out = torch.empty(*x.shape[:-1], n, dtype=x.dtype, device=x.device)
    o2 = out.view(-1, n)
    block = min(1024, next_power_of_2(n))
    silu_and_mul_kernel[(x2.shape[0], cdiv(n, block))](x2, o2, n, x2.stride(0), o2.stride(0),
                                                             BLOCK=block)
    return out


def moe_routing_for(topk_ids: torch.Tensor, num_experts: int, arch_family: str,
                    expert_map: Optional[torch.Tensor] = None,
                    num_local_experts: Optional[int] = None) -> MoeRouting:
    """Routing with the block size and naive/sorted choice the configs ask for (both decided
    from shapes only, so a captured graph never changes path)."""
    m, top_k = topk_ids.shape
    bucket = cfgmod.get_moe_config(arch_family, m, num_experts, top_k)
    naive = topk_ids.numel() * cfgmod.naive_sparsity(arch_family) <= num_experts
    return moe_align(topk_ids, bucket["BLOCK_M"], num_experts, expert_map, naive=naive,
                     num_local_experts=num_local_experts)


# the most (token, slot) pairs a naive-routing call has (pairs * naive_sparsity <= experts): up
# to here workspace2 also has room for the top-k-summing GEMV's layout
SUM_IN_GEMV_MAX_PAIRS = 512
_ALIGN = 8  # elements: the fp32 partials start 16-byte aligned
_PARTIAL_ROW = 128  # partial rows are padded to this; the summing GEMV's BLOCK_N must divide it


def _summed_w2_layout(pairs: int, n_inter: int, hidden: int) -> tuple[int, int]:
    """(element offset, fp32 count) of the partial sums in workspace2 when the w2 GEMV sums the
    top-k: after the activation [pairs, N], which lives in workspace2 then (the output may
    alias workspace13 and is written while other programs still read the activation)."""
    offset = -(-pairs * n_inter // _ALIGN) * _ALIGN
    return offset, pairs * (-(-hidden // _PARTIAL_ROW) * _PARTIAL_ROW)


def _launch_decode_layer(x, w13, s13, act, w2, s2, output, weights, routing, top_k, block_shape, bucket,
                         partials, weight_on_input):
    """The bucket's ``single_launch`` decode: w8a16_moe_decode_kernel (w13 GEMV + SiLU, w2 GEMV,
    top-k sum in one launch; the w13 config's compile options). Its per-pair counters follow the
    top-k tickets in the per-device ticket buffer (both zero between launches)."""
    E, N2, H = w13.shape
    I = N2 // 2
    mode13, s13_3, bs = classify_scale(s13, E, N2, H, block_shape)
    mode2, s2_3, _ = classify_scale(s2, E, H, I, block_shape)
    if mode13 != mode2:
        raise ValueError(f"w13 and w2 scales differ in layout ({mode13} vs {mode2})")
    group_n, group_k = bs if bs else (128, 128)
    c13, c2 = bucket["w13"], bucket["w2"]
    bk13, bk2 = gemv_block_k(c13["BLOCK_K"], H), gemv_block_k(c2["BLOCK_K"], I)
    tiles13, tiles2 = cdiv(I, c13["BLOCK_N"]), cdiv(H, c2["BLOCK_N"])
    pairs = routing.num_pairs
    sum_tiles = pairs // top_k * tiles2
    counters = _split_counters(x.device, sum_tiles + 2 * pairs)
    w13w, w2w = _weight_words(w13), _weight_words(w2)
    _, opts = cfgmod.split_options(c13)
    w8a16_moe_decode_kernel[(tiles13 * pairs + tiles2 * pairs,)](
        x, w13w, s13_3, act, w2w, s2_3, output, weights, routing.expert_ids,
        partials, counters, sum_tiles,
        H, I, pairs, top_k, tiles13, tiles2,
        x.stride(0), w13w.stride(0), w13w.stride(1), s13_3.stride(0), s13_3.stride(1), s13_3.stride(2),
        act.stride(0), w2w.stride(0), w2w.stride(1), s2_3.stride(0), s2_3.stride(1), s2_3.stride(2),
        output.stride(0),
        SCALE_MODE=mode13, GROUP_N=group_n, GROUP_K=group_k,
        W13_ROUTED_WEIGHT=weight_on_input, W2_ROUTED_WEIGHT=not weight_on_input,
        BLOCK_N13=c13["BLOCK_N"], BLOCK_K13=bk13, EVEN_K13=H % bk13 == 0,
        BLOCK_N2=c2["BLOCK_N"], BLOCK_K2=bk2, EVEN_K2=I % bk2 == 0, **opts)


def workspace_sizes(num_tokens: int, top_k: int, n_inter: int, hidden: int) -> tuple[int, int]:
    """Elements of (workspace13, workspace2) that fused_experts_w8a16 uses, laid out as vLLM's
    TritonExperts does (vLLM may alias the output onto workspace13): workspace13 holds the
    activation [pairs, N], dead before the top-k sum writes the output; workspace2 holds the
    w13 output [pairs, 2N] (unfused SiLU only) and later the w2 output [pairs, K]. Small calls
    (<= SUM_IN_GEMV_MAX_PAIRS pairs) also get room for the decode layout where the w2 GEMV sums
    the top-k: activation then fp32 partials [pairs, K], both in workspace2."""
    pairs = num_tokens * top_k
    ws2 = pairs * max(2 * n_inter, hidden)
    if pairs <= SUM_IN_GEMV_MAX_PAIRS:
        offset, partials = _summed_w2_layout(pairs, n_inter, hidden)
        ws2 = max(ws2, offset + 2 * partials)  # an fp32 is two 16-bit elements
    return pairs * n_inter, ws2


def _buffer(workspace: Optional[torch.Tensor], shape, dtype, device) -> torch.Tensor:
    """A view of the caller's workspace (vLLM's workspace_shapes contract), else a new tensor."""
    numel = 1
    for d in shape:
        numel *= d
    if workspace is None:
        return torch.empty(shape, dtype=dtype, device=device)
    if workspace.dtype != dtype or workspace.numel() < numel or not workspace.is_contiguous():
        raise ValueError(f"workspace {tuple(workspace.shape)} {workspace.dtype} cannot hold "
                         f"{tuple(shape)} {dtype}; size it with workspace_sizes()")
    return workspace.reshape(-1)[:numel].view(shape)


def fused_experts_w8a16(hidden_states: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor,
                        w13_scale: torch.Tensor, w2_scale: torch.Tensor,
                        topk_weights: torch.Tensor, topk_ids: torch.Tensor, *,
                        block_shape=None, activation: str = "silu",
                        apply_router_weight_on_input: bool = False,
                        global_num_experts: int = -1, expert_map: Optional[torch.Tensor] = None,
                        output: Optional[torch.Tensor] = None,
                        arch_family: str = "rdna3", workspace13: Optional[torch.Tensor] = None,
                        workspace2: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Full MoE expert computation: returns [M, K] in hidden_states.dtype.

    hidden_states [M, K] bf16/fp16; w13 [E, 2N, K], w2 [E, K, N] float8_e4m3fn;
    scales folded (fold_fp8_scale_for_fp16_bits), layout inferred from shape (block_shape
    [bn, bk] or None -> 128x128 when the scale is 3-D blockwise); topk_ids [M, top_k] global
    expert ids; expert_map [global_num_experts] -> local id or -1; topk_weights any float dtype
    (the kernels read it as is). workspace13 / workspace2: flat buffers of at least
    workspace_sizes() elements in hidden_states.dtype (vLLM's workspaces), else allocated.
    Launches: align (not for naive routing without an expert map), w13 (+ SiLU launch when the
    bucket does not fuse it), w2, top-k sum (none where the w2 GEMV sums it: naive routing with
    a GEMV w2 config, i.e. decode).
    """
    if activation != "silu":
        raise NotImplementedError(f"activation {activation!r}: only 'silu' is implemented")
    M, K = hidden_states.shape
    top_k = topk_ids.shape[1]
    E, N2, Kw = w13.shape
    if Kw != K or w2.shape[1] != K or w2.shape[2] * 2 != N2:
        raise ValueError(f"shape mismatch: x {tuple(hidden_states.shape)} w13 {tuple(w13.shape)} "
                         f"w2 {tuple(w2.shape)}")
    if apply_router_weight_on_input and top_k != 1:
        raise ValueError("apply_router_weight_on_input requires top_k == 1 (as in vLLM)")
    num_experts = global_num_experts if global_num_experts > 0 else E
    bucket = cfgmod.get_moe_config(arch_family, M, num_experts, top_k)
    routing = moe_routing_for(topk_ids, num_experts, arch_family, expert_map, num_local_experts=E)
    dev, dt = hidden_states.device, hidden_states.dtype
    weights = topk_weights.reshape(-1)
    w13_weights = weights if apply_router_weight_on_input else None
    w2_weights = None if apply_router_weight_on_input else weights
    n_inter = N2 // 2
    pairs = M * top_k
    offset, n_partials = _summed_w2_layout(pairs, n_inter, K)
    sum_in_gemv = (sums_topk_in_gemv(w2, w2_scale, block_shape, bucket["w2"], routing)
                   and bucket["fuse_silu"]
                   and (workspace2 is None or workspace2.numel() >= offset + 2 * n_partials))
    if sum_in_gemv:
        act = _buffer(workspace2, (pairs, n_inter), dt, dev)
        partials = (torch.empty(n_partials, dtype=torch.float32, device=dev) if workspace2 is None
                    else workspace2.reshape(-1)[offset:offset + 2 * n_partials].view(torch.float32))
        if output is None:
            output = torch.empty(M, K, dtype=dt, device=dev)
        if bucket.get("single_launch") and _w13_uses_gemv(w13, w13_scale, block_shape, bucket["w13"], routing):
            _launch_decode_layer(hidden_states, w13, w13_scale, act, w2, w2_scale, output, weights, routing,
                                 top_k, block_shape, bucket, partials, apply_router_weight_on_input)
            return output
        launch_w8a16_gemm(hidden_states, w13, w13_scale, act, routing=routing, top_k=top_k,
                          block_shape=block_shape, gemm_cfg=bucket["w13"], block_m=routing.block_m,
                          topk_weights=w13_weights, fuse_silu=True)
        launch_w8a16_gemm(act, w2, w2_scale, output, routing=routing, top_k=1, block_shape=block_shape,
                          gemm_cfg=bucket["w2"], block_m=routing.block_m, topk_weights=w2_weights,
                          sum_k=top_k, sum_ws=partials)
        return output
    act = _buffer(workspace13, (pairs, n_inter), dt, dev)
    if bucket["fuse_silu"]:
        launch_w8a16_gemm(hidden_states, w13, w13_scale, act, routing=routing, top_k=top_k,
                          block_shape=block_shape, gemm_cfg=bucket["w13"], block_m=routing.block_m,
                          topk_weights=w13_weights, fuse_silu=True)
    else:
        gu = _buffer(workspace2, (M * top_k, N2), dt, dev)
        launch_w8a16_gemm(hidden_states, w13, w13_scale, gu, routing=routing, top_k=top_k,
                          block_shape=block_shape, gemm_cfg=bucket["w13"], block_m=routing.block_m,
                          topk_weights=w13_weights)
        silu_and_mul(gu, act)
    out3 = _buffer(workspace2, (M, top_k, K), dt, dev)
    launch_w8a16_gemm(act, w2, w2_scale, out3, routing=routing, top_k=1, block_shape=block_shape,
                      gemm_cfg=bucket["w2"], block_m=routing.block_m, topk_weights=w2_weights)
    if output is None:
        output = torch.empty(M, K, dtype=dt, device=dev)
    # top-k sum: torch reduces in fp32 internally and rounds once
    torch.sum(out3, dim=1, out=output)
    return output
