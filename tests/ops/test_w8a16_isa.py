"""Every shipped kernel+config compiled ahead of time for the AMD consumer targets
(GPUTarget("hip", arch, 32)); the assembly must meet the issue's budgets.

Budgets (docs/kernels.md): zero VGPR/SGPR spills and no scratch; at most 4 v_cndmask in the K
loop (vLLM's FP8 kernel has 3,466 there). Tile kernel: WMMA present in the K loop; K-loop
instructions per WMMA <= 100 for decode tiles and <= 32 for BLOCK_M >= 64 (vLLM's FP8 kernel:
768 on gfx11, bf16 reference 19.4). Decode GEMV (no matrix instruction): K-loop instructions
per 256 weights consumed, per wave, <= 100 (the same decode budget: a 16x16x16 WMMA consumes
256 weights)."""
import functools
import os

import pytest

from rocm_enable import isa
from rocm_enable.ops import config as cfgmod
from rocm_enable.ops import config_grid

ARCHS = ["gfx1151", "gfx1100", "gfx1201"]
LOOP_CNDMASK_MAX = 4


@functools.lru_cache(maxsize=None)
def _report(arch):
    return tuple(isa.isa_report(arch))


@functools.lru_cache(maxsize=None)
def _split_report(arch):
    return tuple(isa.isa_report(arch, split_k=True))


def _violations(rows):
    bad = []
    for r in rows:
        checks = {
            "spills": r["spills"] == 0,
            "scratch": r["scratch"] == 0 and r["scratch_insts"] == 0,
            f"loop v_cndmask <= {LOOP_CNDMASK_MAX}": r["loop_cndmask"] <= LOOP_CNDMASK_MAX,
        }
        if r["function"] == isa.GEMV:  # no matrix unit: the decode budget per 256 weights
            checks["loop insts/256 weights <= 100"] = (r["loop_insts_per_256_weights"] is not None
                                                       and 0 < r["loop_insts_per_256_weights"] <= 100)
        else:
            budget = 32 if r["tile"]["BLOCK_M"] >= 64 else 100
            checks["wmma present in K loop"] = r["loop_mma"] > 0 and r["wmma"] > 0
            checks[f"loop insts/WMMA <= {budget}"] = (r["loop_insts_per_wmma"] is not None
                                                      and r["loop_insts_per_wmma"] <= budget)
        bad += [f"{r['case']} {r['specialisation']}: {k} ({r})" for k, ok in checks.items() if not ok]
    return bad


@pytest.mark.parametrize("arch", ARCHS)
def test_every_shipped_config_meets_isa_budget(arch):
    rows = _report(arch)
    fam = isa.family_for_arch(arch)
    n_buckets = len(cfgmod.load_shipped(fam)["moe"]) + len(cfgmod.load_shipped(fam)["dense"])
    assert len({(r["kind"], r["bucket"]) for r in rows}) == n_buckets  # nothing skipped
    # the GEMV buckets really compile the GEMV kernel (a shipped "kernel": "gemv" is not ignored)
    gemv_cfgs = sum(1 for family, kind, _i, b in cfgmod.all_shipped_configs() if family == fam
                    for g in ((b["w13"], b["w2"]) if kind == "moe" else (b,)) if g.get("kernel") == "gemv")
    assert sum(1 for r in rows if r["function"] == isa.GEMV) >= gemv_cfgs > 0
    bad = _violations(rows)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("arch", ARCHS)
def test_split_k_builds_meet_isa_budget(arch):
    """SPLIT_K=4 builds of the decode buckets (dense down_proj K=17408, naive MoE w13 with
    fused SiLU, w2): the workspace/ticket epilogue stays out of the K loop, so the same
    budgets hold."""
    rows = _split_report(arch)
    assert len(rows) == 3 and all("split_k=4" in r["specialisation"] for r in rows)
    bad = _violations(rows)
    assert not bad, "\n".join(bad)


def test_metrics_parser_sees_a_ladder():
    """Negative control: an fp8 -> fp16 cast (what the kernels avoid) compiled for gfx1151
    must show the compare/select ladder, so the cndmask metric can fail."""
    r = isa.fp8_cast_control("gfx1151")
    assert r["cndmask"] >= 8 * 7  # >= 7 selects per byte, 8 bytes per lane


def test_family_mapping_is_explicit():
    assert [isa.family_for_arch(a) for a in ("gfx1151", "gfx1100", "gfx1201", "gfx942")] == \
        ["rdna3", "rdna3", "rdna4", "cdna"]
    with pytest.raises(ValueError):
        isa.family_for_arch("sm_90")


@pytest.mark.parametrize("arch", ARCHS)
def test_every_grid_launch_meets_isa_budget(arch):
    """Every distinct GEMM/GEMV launch the MoE layer makes on issue 13's shape grid (listed in
    configs/isa_checked.json; tests/ops/test_moe_config_grid.py keeps the list equal to the grid's
    launches), compiled once for ``arch``: 0 spills, no scratch, no select ladder, WMMA in the tile
    kernel's K loop; and each recorded launch still specialises to its listed key."""
    family = isa.family_for_arch(arch)
    listed = config_grid.load_manifest()[family]
    assert listed and all(arch in entry["isa"] for entry in listed.values())
    keys = config_grid.LaunchKeys()
    bad = []
    for key, entry in listed.items():
        recompiled, metrics = config_grid.compile_key(keys, family, entry, arch)
        assert recompiled == key, f"the launch at {entry['point']} no longer specialises as listed"
        bad += [f"{entry['point']} {key}: {v}" for v in config_grid.budget_violations(key, metrics)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("arch", ARCHS)
def test_single_launch_decode_meets_isa_budget(arch):
    """The whole-layer decode kernel (a bucket's single_launch; no shipped bucket sets it yet) with
    the family's GEMV decode tiles, at Qwen3-Next's shape and at hidden 7168 / intermediate 384:
    0 spills, no scratch, no select ladder in any innermost (K) loop."""
    import json

    family = isa.family_for_arch(arch)
    d = json.loads(json.dumps(cfgmod.load_shipped(family)))
    d["moe"][0]["single_launch"] = True
    real = cfgmod.load_family
    keys = config_grid.LaunchKeys()
    try:
        cfgmod.load_family = lambda fam: d
        bad = []
        for point in ((512, 10, 2048, 512, 1), (64, 4, 7168, 384, 1)):
            names = [n for n, _, _ in config_grid.point_launches(family, point)]
            assert names == ["w8a16_moe_decode_kernel"], names
            key, metrics = config_grid.compile_key(keys, family, {"point": list(point), "launch": 0}, arch)
            bad += [f"{point}: {v}" for v in config_grid.budget_violations(key, metrics)]
    finally:
        cfgmod.load_family = real
    assert not bad, "\n".join(bad)


def test_compile_cache_is_shared_whether_or_not_fp_fusion_is_spelled_out(tmp_path, monkeypatch):
    """Every report compiles through ops.aot, some in processes that set TRITON_DEFAULT_FP_FUSION=1
    and some that leave it unset (the same default). Triton keys its disk cache on the variable's
    presence, so the second kind recompiled what the first had compiled; compile_for_arch now
    spells it out, and the environment is left as it was."""
    import triton.language as tl
    from triton import knobs

    from rocm_enable.ops import aot

    src = tmp_path / "cast_kernel.py"
    src.write_text("import triton\nimport triton.language as tl\n\n\n@triton.jit\n"
                   "def cast_kernel(x_ptr, y_ptr, N: tl.constexpr):\n"
                   "    o = tl.arange(0, N)\n"
                   "    tl.store(y_ptr + o, tl.load(x_ptr + o).to(tl.float32))\n")
    kernel = aot.load_compilable_kernels(str(src), "_rocm_enable_test_cast_kernel").cast_kernel
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(aot.FP_FUSION_ENV, raising=False)
    hits = []
    monkeypatch.setattr(knobs.compilation, "listener",
                        lambda src, metadata, metadata_group, times, cache_hit: hits.append(cache_hit))
    args = dict(x_ptr=aot.fake_tensor(tl.float16), y_ptr=aot.fake_tensor(tl.float32), N=64)
    aot.compile_for_arch(kernel, args, {"num_warps": 1}, "gfx1151")
    assert aot.FP_FUSION_ENV not in os.environ
    monkeypatch.setenv(aot.FP_FUSION_ENV, "1")
    aot.compile_for_arch(kernel, args, {"num_warps": 1}, "gfx1151")
    assert hits == [False, True]
