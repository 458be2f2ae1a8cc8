"""GDN (FLA) prefill autotune spaces on wave32 RDNA: compile only candidates that fit in LDS
(audit §4.3, H6).

vLLM's FLA kernels autotune over num_stages; on a 64 KiB-LDS GPU some candidates need more LDS than
a workgroup may allocate. Triton compiles each of them at start-up (the first prefill of every new
shape key), then fails to load it (OutOfResources) and skips it: pure compile time.

LDS per candidate, from Triton 3.9 AOT compiles for gfx1151 at the Qwen3-Next/3.5/3.6 GDN shape
(K = V = 128, chunk BT = 64; tests/gates/test_gdn_autotune.py recompiles and checks these):
  chunk_gated_delta_rule_fwd_kernel_h_blockdim64: (stages-1) * 4*K*BT + 2*BT*BV bytes
      (k and w tiles per pipeline stage + the v tile): stages 2 -> 36-40 KiB, stages 3 -> 68-72 KiB.
  chunk_fwd_kernel_o, num_warps >= 4: 2*(stages-1) * (2*BT*BK + BK*BV) bytes
      (BK64/BV64/stages 4 -> 72 KiB). With 2 warps Triton uses less, so those are never dropped.
Candidates still spill VGPRs on gfx11 (every chunk_delta_h candidate does, 57-1,525 on gfx1151,
docs/gdn.md); spilling ones launch and work, so they stay and the autotuner times them. On wave32
RDNA the fix gdn-prefill-rdna (gdn_prefill.py) moves chunk_delta_h to a spill-free kernel for
K <= 128 and narrows chunk_fwd_kernel_o to one candidate that fits, so this pruning matters on calls
that keep vLLM's pipeline.

vLLM 0.34.0 changed chunk_gated_delta_rule_fwd_h's source (return annotation; the kernel now casts
its offsets to int64 before multiplying) but neither autotune list nor what the LDS model counts
(per-stage k/w tiles and the v tile), hence its own anchor. chunk_fwd_o is unchanged in 0.34.0.
"""
from __future__ import annotations

from rocm_enable.engine.calls import bound_arguments
from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import is_wave32_rdna, lds_bytes

FLA = "vllm.third_party.flash_linear_attention.ops"
MEASURED_K, MEASURED_BT = 128, 64  # the shape the LDS formulas were validated at


def chunk_delta_h_lds(cfg, K: int, BT: int) -> int | None:
    return (cfg.num_stages - 1) * 4 * K * BT + 2 * BT * cfg.kwargs["BV"]


def chunk_o_lds(cfg, K: int, BT: int) -> int | None:
    if cfg.num_warps < 4:
        return None  # not modelled: keep
    bk, bv = cfg.kwargs["BK"], cfg.kwargs["BV"]
    return 2 * (cfg.num_stages - 1) * (2 * BT * bk + bk * bv)


def viable_configs(configs, lds_model, K: int, BT: int, limit: int):
    """The candidates whose modelled LDS fits `limit`; unmodelled shapes/candidates are kept."""
    if K != MEASURED_K or BT != MEASURED_BT:
        return list(configs)
    kept = []
    for cfg in configs:
        need = lds_model(cfg, K, BT)
        if need is None or need <= limit:
            kept.append(cfg)
    return kept or list(configs)


def _autotuner(kernel):
    while kernel is not None and not hasattr(kernel, "configs"):
        kernel = getattr(kernel, "fn", None)
    return kernel


def _pruning(kernel_attr, module, lds_model, shape_of):
    def wrapper(wrapped, instance, args, kwargs):
        import importlib

        from rocm_enable.runtime import active_caps

        tuner = _autotuner(getattr(importlib.import_module(module), kernel_attr, None))
        if tuner is None:
            return wrapped(*args, **kwargs)
        K, BT = shape_of(bound_arguments(wrapped, args, kwargs))
        original = tuner.configs
        kept = viable_configs(original, lds_model, K, BT, lds_bytes(active_caps()))
        if len(kept) == len(original):
            return wrapped(*args, **kwargs)
        tuner.configs = kept
        try:
            return wrapped(*args, **kwargs)
        finally:
            tuner.configs = original

    return wrapper


def _delta_h_shape(a):
    return a["k"].shape[-1], a["chunk_size"]


def _chunk_o_shape(a):
    return a["q"].shape[-1], a["chunk_size"]


GDN_AUTOTUNE_LDS = Fix(
    name="gdn-autotune-lds",
    title="GDN prefill autotune: skip candidates that exceed the workgroup LDS on RDNA",
    stack="vllm",
    patches=(
        Patch(f"{FLA}.chunk:chunk_gated_delta_rule_fwd_h",
              _pruning("chunk_gated_delta_rule_fwd_kernel_h_blockdim64", f"{FLA}.chunk_delta_h",
                       chunk_delta_h_lds, _delta_h_shape),
              {"0.32.0": "bcfb8c8a075cc5db", "0.33.0": "bcfb8c8a075cc5db", "0.34.0": "b6aab37fbe472f8c"}),
        Patch(f"{FLA}.chunk:chunk_fwd_o",
              _pruning("chunk_fwd_kernel_o", f"{FLA}.chunk_o", chunk_o_lds, _chunk_o_shape),
              {"0.32.0": "c5d08c31237b1b45", "0.33.0": "c5d08c31237b1b45", "0.34.0": "c5d08c31237b1b45"}),
    ),
    condition=is_wave32_rdna,
    versions=">=0.32.0,<0.35",
    why=(
        "On ROCm, chunk_gated_delta_rule_fwd_kernel_h_blockdim64 autotunes over 8 candidates "
        "(BV 32/64 x warps 2/4 x stages 2/3); all 4 stages=3 ones need 68-72 KiB LDS, and "
        "chunk_fwd_kernel_o's BK64/BV64/stages=4 candidates (warps 4, 8) need 72 KiB. gfx11/gfx12 "
        "allow 64 KiB per workgroup, so Triton compiles these 6 kernels at start-up only to "
        "reject them with OutOfResources (audit §4.3, H6)."
    ),
    how=(
        "Wrap the two launchers as chunk.py calls them (chunk_gated_delta_rule_fwd_h, "
        "chunk_fwd_o): for the validated GDN shape (K=128, BT=64) the kernel's autotune list "
        "holds, for that call, only candidates whose LDS (modelled from AOT compiles, see module "
        "docstring) fits lds_per_workgroup_kib from the capability table. Saves 4 of 8 compiles "
        "for chunk_delta_h and 2 of 36 for chunk_o per shape key."
    ),
    upstream="audit §4.3 / H6 (vLLM already drops num_stages=4 for chunk_delta_h on HIP)",
    removal="when vLLM's FLA autotune spaces prune by the device's shared-memory limit (or Triton skips them before compiling)",
    gates=("H6",),
)

FIXES = (GDN_AUTOTUNE_LDS,)
