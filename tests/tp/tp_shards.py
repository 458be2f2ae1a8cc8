"""Shards as vLLM cuts them for tensor parallel 2 and expert parallel 2, random FP8 block-128
weights for the touched experts only, and float64 references (no kernel code here)."""
from __future__ import annotations

import torch

from rocm_enable.ops.fp8_dequant import dequant_fp8_reference

BLOCK = [128, 128]


def rand_fp8(*shape, gen):
    """Random e4m3fn bytes over the finite codes, never NaN, never 0."""
    b = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    b[(b & 0x7F) == 0x7F] -= 1
    b[(b & 0x7F) == 0] += 0x38
    return b.view(torch.float8_e4m3fn)


def rand_block_scale(*lead, n, k, gen):
    return torch.rand(*lead, -(-n // 128), -(-k // 128), generator=gen) * 4e-3 + 5e-4


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    assert not torch.isnan(out).any(), "NaN in output (unwritten element)"
    return ((out.double() - ref).norm() / ref.norm()).item()


class Experts:
    """The unsharded experts a batch touches: e -> (w13 [2I, H], s13, w2 [H, I], s2).

    Full-size expert tensors are [E, 2I, H] (E=512, H=2048: 0.5 GB of FP8); the kernels only read
    the experts they are routed to, so the shard tensors are allocated with torch.empty (pages never
    written cost no memory) and only the touched experts are written. An expert the kernel reads by
    mistake then holds zero bytes, which the float64 reference does not use."""

    def __init__(self, touched, hidden: int, inter: int, gen):
        self.hidden, self.inter = hidden, inter
        self.w = {}
        for e in sorted(set(int(t) for t in touched if t >= 0)):
            self.w[e] = (rand_fp8(2 * inter, hidden, gen=gen), rand_block_scale(n=2 * inter, k=hidden, gen=gen),
                         rand_fp8(hidden, inter, gen=gen), rand_block_scale(n=hidden, k=inter, gen=gen))

    def shard(self, num_local: int, local_of, inter_slice: slice):
        """Stacked [num_local, ...] tensors for one rank: experts mapped by local_of(e) (None: not
        held), intermediate rows/columns inter_slice of the gate and the up halves (TP)."""
        H, I = self.hidden, self.inter
        lo, hi = inter_slice.start, inter_slice.stop
        n = hi - lo
        if lo % 128 or n % 128:
            raise ValueError("vLLM requires TP shards of block-128 FP8 weights on 128 boundaries")
        w13 = torch.empty(num_local, 2 * n, H, dtype=torch.float8_e4m3fn)
        w2 = torch.empty(num_local, H, n, dtype=torch.float8_e4m3fn)
        s13 = torch.ones(num_local, 2 * n // 128, -(-H // 128))
        s2 = torch.ones(num_local, -(-H // 128), n // 128)
        for e, (a, sa, b, sb) in self.w.items():
            loc = local_of(e)
            if loc is None:
                continue
            w13[loc, :n] = a[lo:hi]
            w13[loc, n:] = a[I + lo:I + hi]
            s13[loc, :n // 128] = sa[lo // 128:hi // 128]
            s13[loc, n // 128:] = sa[(I + lo) // 128:(I + hi) // 128]
            w2[loc] = b[:, lo:hi]
            s2[loc] = sb[:, lo // 128:hi // 128]
        return w13, s13, w2, s2

    def reference(self, x, topk_weights, topk_ids, act_dtype) -> torch.Tensor:
        """Unsharded float64 MoE: sum_j w_j * W2_e (silu(g) * u), the product rounded to act_dtype
        like the kernel's intermediate buffer. Routes marked -1 contribute nothing."""
        M, H = x.shape
        I = self.inter
        out = torch.zeros(M, H, dtype=torch.float64)
        for m in range(M):
            for j in range(topk_ids.shape[1]):
                e = int(topk_ids[m, j])
                if e < 0:
                    continue
                a, sa, b, sb = self.w[e]
                h = dequant_fp8_reference(a, sa, BLOCK) @ x[m].double()
                act = (torch.nn.functional.silu(h[:I]) * h[I:]).to(act_dtype).double()
                out[m] += float(topk_weights[m, j]) * (dequant_fp8_reference(b, sb, BLOCK) @ act)
        return out


# Launch tiles for the interpreter: the shipped decode tiles (BLOCK_N 8-32) cost one interpreted
# program per 8-32 output rows, minutes per full-size call on 2 cores. These run the same GEMV
# (M=1) and tile (M>1) kernels with 128-row programs; every shipped tile is exercised on its own
# in tests/ops/test_moe_numerics.py::test_every_shipped_moe_config. Loaded through
# ROCM_ENABLE_CACHE_DIR, the path a user's `rocm-enable tune` result takes.
INTERPRETER_TILES = {
    "naive_sparsity": 4,
    "moe": [
        {"max_m": 1, "BLOCK_M": 16, "fuse_silu": True,
         "w13": {"kernel": "gemv", "BLOCK_N": 128, "BLOCK_K": 2048, "num_warps": 4},
         "w2": {"kernel": "gemv", "BLOCK_N": 128, "BLOCK_K": 512, "num_warps": 4}},
        {"max_m": None, "BLOCK_M": 16, "fuse_silu": True,
         "w13": {"BLOCK_N": 128, "BLOCK_K": 256, "num_warps": 4},
         "w2": {"BLOCK_N": 128, "BLOCK_K": 256, "num_warps": 4}},
    ],
    "dense": [
        {"max_m": 1, "BLOCK_M": 16, "kernel": "gemv", "BLOCK_N": 128, "BLOCK_K": 2048, "num_warps": 4},
        {"max_m": None, "BLOCK_M": 16, "BLOCK_N": 128, "BLOCK_K": 256, "num_warps": 4},
    ],
}


def route(M: int, E: int, top_k: int, gen, padded_rows: int = 0):
    """Distinct experts per token, positive weights; the last padded_rows tokens marked -1 as
    vLLM's routers mark padding."""
    ids = torch.stack([torch.randperm(E, generator=gen)[:top_k] for _ in range(M)]).to(torch.int32)
    if padded_rows:
        ids[M - padded_rows:] = -1
    return ids, torch.rand(M, top_k, generator=gen) + 0.1
