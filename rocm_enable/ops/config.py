"""Launch configurations without start-up autotuning.

One JSON file per arch family in ``rocm_enable/ops/configs/`` ("rdna3", "rdna4", "cdna",
"nvidia"); the caller passes the family string (from the capability model), so no arch
names are scattered through the code. Each file holds M buckets (first bucket whose
``max_m`` >= M wins; ``null`` = no upper bound). How the numbers were chosen is recorded
in each file's ``_why`` and in docs/kernels.md.
"""
from __future__ import annotations

import functools
import json
import os

ARCH_FAMILIES = ("rdna3", "rdna4", "cdna", "nvidia")
_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

# compile options a bucket may carry (everything else is a kernel meta-parameter)
COMPILE_OPTIONS = ("num_warps", "num_stages", "waves_per_eu")


@functools.lru_cache(maxsize=None)
def load_family(arch_family: str) -> dict:
    if arch_family not in ARCH_FAMILIES:
        raise ValueError(f"unknown arch family {arch_family!r}; expected one of {ARCH_FAMILIES}")
    with open(os.path.join(_DIR, f"{arch_family}.json")) as f:
        return json.load(f)


def _bucket(buckets: list, m: int) -> dict:
    for b in buckets:
        if b["max_m"] is None or m <= b["max_m"]:
            return b
    return buckets[-1]


def get_moe_config(arch_family: str, m: int) -> dict:
    """Bucket for a MoE layer call with ``m`` tokens: keys BLOCK_M, fuse_silu, w13, w2
    (each {BLOCK_N, BLOCK_K, num_warps, num_stages, ...})."""
    return _bucket(load_family(arch_family)["moe"], m)


def get_dense_config(arch_family: str, m: int) -> dict:
    """Bucket for a dense linear with ``m`` rows: BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages."""
    return _bucket(load_family(arch_family)["dense"], m)


def naive_sparsity(arch_family: str) -> int:
    """Use the naive one-pair-per-block assignment while num_pairs * factor <= num_experts."""
    return int(load_family(arch_family).get("naive_sparsity", 4))


def split_options(cfg: dict):
    """(kernel meta-params, compile options) of one GEMM config."""
    meta = {k: v for k, v in cfg.items() if k not in COMPILE_OPTIONS and not k.startswith("_")}
    opts = {k: v for k, v in cfg.items() if k in COMPILE_OPTIONS}
    return meta, opts


def all_shipped_configs():
    """Yield (family, kind, bucket_index, bucket) for every shipped bucket (ISA tests use it)."""
    for fam in ARCH_FAMILIES:
        d = load_family(fam)
        for kind in ("moe", "dense"):
            for i, b in enumerate(d[kind]):
                yield fam, kind, i, b
