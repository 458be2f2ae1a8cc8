"""Launch configurations without start-up autotuning.

One JSON file per arch family in ``rocm_enable/ops/configs/`` ("rdna3", "rdna4", "cdna",
"nvidia"); the caller passes the family string (from the capability model), so no arch
names are scattered through the code. Each file holds M buckets (first bucket whose
``max_m`` >= M wins; ``null`` = no upper bound). How the numbers were chosen is recorded
in each file's ``_why`` and in docs/kernels.md.

MoE buckets are M points of ONE reference shape (``moe_reference``: the experts and top-k they
were chosen or measured on). Any other MoE shape is served by the same table through
``moe_bucket_m``: the call's M is mapped to the reference M with the same work per program
(naive routing: the same number of routed pairs, one per block; sorted routing: the same routed
rows per expert, which sets how full a BLOCK_M tile is and how often an expert's weights are
re-read). Hidden and intermediate sizes only change loop trip counts, not the tile choice.

A file written by ``rocm-enable tune`` (measured on the user's own GPU) in
``$ROCM_ENABLE_CACHE_DIR/w8a16/<family>.json`` (default ``~/.cache/rocm-enable``; mount it as a
volume so it survives container restarts) replaces the shipped file of that family.
A measured file that does not validate is ignored with a warning naming it: a stale cache must
not stop `vllm serve`.
"""
from __future__ import annotations

import functools
import json
import logging
import os
from typing import Optional

ARCH_FAMILIES = ("rdna3", "rdna4", "cdna", "nvidia")
_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
CACHE_ENV = "ROCM_ENABLE_CACHE_DIR"
CACHE_DEFAULT = os.path.join("~", ".cache", "rocm-enable")
LOGGER = "vllm.rocm_enable"
RETUNE_HINT = "delete it or re-run `rocm-enable tune`"

# compile options a bucket may carry (everything else is a kernel meta-parameter)
COMPILE_OPTIONS = ("num_warps", "num_stages", "waves_per_eu")
KERNELS = ("tile", "gemv")


class ConfigError(ValueError):
    """A launch-config file that does not have the shape the launchers read."""


def cache_dir() -> str:
    """The folder holding measured configs (w8a16/<family>.json): $CACHE_ENV, else CACHE_DEFAULT."""
    return os.path.expanduser(os.environ.get(CACHE_ENV) or CACHE_DEFAULT)


def tuned_path(arch_family: str) -> str:
    return os.path.join(cache_dir(), "w8a16", f"{arch_family}.json")


def _check_gemm(cfg, where: str, bucket_m: bool) -> None:
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: expected an object, got {type(cfg).__name__}")
    kernel = cfg.get("kernel", "tile")
    if kernel not in KERNELS:
        raise ConfigError(f"{where}: kernel {kernel!r} is not one of {KERNELS}")
    need = ("BLOCK_N", "BLOCK_K", "num_warps") + (("BLOCK_M",) if bucket_m else ())
    for key in need:
        v = cfg.get(key)
        if not isinstance(v, int) or v <= 0 or v & (v - 1):
            raise ConfigError(f"{where}: {key} must be a positive power of two, got {v!r}")


def validate_family(d: dict, where: str = "config") -> dict:
    """Raise ConfigError naming the first problem; return ``d`` when it is usable."""
    ref = d.get("moe_reference")
    if ref is not None and not (isinstance(ref, dict) and all(
            isinstance(ref.get(k), int) and ref[k] > 0 for k in ("experts", "top_k"))):
        raise ConfigError(f"{where}: moe_reference must be {{\"experts\": int > 0, \"top_k\": int > 0}}, "
                          f"got {ref!r}")
    for kind in ("moe", "dense"):
        buckets = d.get(kind)
        if not isinstance(buckets, list) or not buckets:
            raise ConfigError(f"{where}: '{kind}' must be a non-empty list of buckets")
        last = 0
        for i, b in enumerate(buckets):
            at = f"{where}: {kind}[{i}]"
            m = b.get("max_m", "missing")
            if i == len(buckets) - 1:
                if m is not None:
                    raise ConfigError(f"{at}: the last bucket needs max_m null (no upper bound)")
            elif not isinstance(m, int) or m <= last:
                raise ConfigError(f"{at}: max_m must be an integer above the previous bucket's, got {m!r}")
            else:
                last = m
            if kind == "moe":
                if not isinstance(b.get("fuse_silu"), bool):
                    raise ConfigError(f"{at}: fuse_silu must be true or false")
                if not isinstance(b.get("single_launch", False), bool):
                    raise ConfigError(f"{at}: single_launch must be true or false")
                _check_gemm({"BLOCK_N": 16, "BLOCK_K": 16, "num_warps": 1, "BLOCK_M": b.get("BLOCK_M")},
                            at, True)
                for gemm in ("w13", "w2"):
                    _check_gemm(b.get(gemm), f"{at}.{gemm}", False)
            else:
                _check_gemm(b, at, True)
    return d


def _load_tuned(arch_family: str):
    path = tuned_path(arch_family)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            d = validate_family(json.load(f), path)
    except (OSError, ValueError) as e:
        logging.getLogger(LOGGER).warning("ignoring the measured W8A16 config %s (%s); using the shipped "
                                          "%s configs: %s", path, e, arch_family, RETUNE_HINT)
        return None
    logging.getLogger(LOGGER).info("W8A16 launch configs from %s", path)
    return d


@functools.lru_cache(maxsize=None)
def load_family(arch_family: str) -> dict:
    """The tuned file of this family if one validates, else the shipped one."""
    if arch_family not in ARCH_FAMILIES:
        raise ValueError(f"unknown arch family {arch_family!r}; expected one of {ARCH_FAMILIES}")
    return _load_tuned(arch_family) or load_shipped(arch_family)


@functools.lru_cache(maxsize=None)
def load_shipped(arch_family: str) -> dict:
    if arch_family not in ARCH_FAMILIES:
        raise ValueError(f"unknown arch family {arch_family!r}; expected one of {ARCH_FAMILIES}")
    with open(os.path.join(_DIR, f"{arch_family}.json")) as f:
        return json.load(f)


# the shape the shipped MoE buckets were chosen on (Qwen3-Next: E=512, top-10), when a file has none
MOE_REFERENCE_DEFAULT = {"experts": 512, "top_k": 10}


def moe_reference(d: dict) -> dict:
    return d.get("moe_reference") or MOE_REFERENCE_DEFAULT


def moe_bucket_m(d: dict, m: int, experts: int, top_k: int) -> int:
    """The reference-shape M whose bucket serves ``m`` tokens of a layer with ``experts`` (global)
    experts and ``top_k``; decided from shapes only (graph-safe). Naive routing (one (token, slot)
    pair per block, while m * top_k * naive_sparsity <= experts) maps to the same pair count;
    sorted routing to the same mean rows per expert (m * top_k / experts). Either way the result
    stays on the same side of the reference's naive threshold, so a GEMV bucket (naive only) is
    never picked for sorted routing."""
    ref = moe_reference(d)
    pairs = m * top_k
    if pairs * int(d.get("naive_sparsity", 4)) <= experts:
        return max(1, -(-pairs // ref["top_k"]))
    return max(1, -(-pairs * ref["experts"] // (experts * ref["top_k"])))


def _bucket(buckets: list, m: int) -> dict:
    for b in buckets:
        if b["max_m"] is None or m <= b["max_m"]:
            return b
    return buckets[-1]


def get_moe_config(arch_family: str, m: int, experts: Optional[int] = None,
                   top_k: Optional[int] = None) -> dict:
    """Bucket for a MoE layer call with ``m`` tokens: keys BLOCK_M, fuse_silu, w13, w2
    (each {BLOCK_N, BLOCK_K, num_warps, num_stages, ...}). With the layer's ``experts`` (global)
    and ``top_k`` the bucket is the one moe_bucket_m maps ``m`` to; without them ``m`` is taken
    as a reference-shape M."""
    d = load_family(arch_family)
    if (experts is None) != (top_k is None):
        raise ValueError("pass both experts and top_k, or neither")
    if experts is not None:
        m = moe_bucket_m(d, m, experts, top_k)
    return _bucket(d["moe"], m)


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
        d = load_shipped(fam)
        for kind in ("moe", "dense"):
            for i, b in enumerate(d[kind]):
                yield fam, kind, i, b
