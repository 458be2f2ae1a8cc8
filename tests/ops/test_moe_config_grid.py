"""Issue 13 point 4 on CPU: the launch-config rule covers the whole MoE shape grid, and every
launch it leads to is one the ISA check compiled (configs/isa_checked.json; the AOT test in
test_w8a16_isa.py recompiles each listed launch for gfx1151/gfx1100/gfx1201).

The grid's launches are recorded from fused_experts_w8a16's own host code on meta tensors
(rocm_enable.ops.config_grid), so a new config, a changed rule or a launcher change that makes a
new kernel specialisation anywhere on the grid fails here until the manifest is regenerated
(which refuses to write while any launch spills or has a select ladder)."""
import functools

import pytest

from rocm_enable.ops import config as cfgmod
from rocm_enable.ops import config_grid


@functools.lru_cache(maxsize=None)
def _grid_launches(family):
    return config_grid.grid_launches(family)


@pytest.mark.parametrize("family", cfgmod.ARCH_FAMILIES)
def test_rule_covers_every_grid_point(family):
    """Every point gets a bucket of the family's table; a GEMV config only where routing is
    naive (the launcher would otherwise run the tile kernel with GEMV tiles); every bucket of the
    table serves some point."""
    d = cfgmod.load_shipped(family)
    sparsity = cfgmod.naive_sparsity(family)
    used = set()
    points = 0
    for E, top_k, H, I, M in config_grid.grid_points():
        bucket = cfgmod.get_moe_config(family, M, E, top_k)
        i = next(j for j, b in enumerate(d["moe"]) if b is bucket)
        used.add(i)
        naive = M * top_k * sparsity <= E
        for gemm in ("w13", "w2"):
            assert naive or bucket[gemm].get("kernel") != "gemv", (family, (E, top_k, H, I, M), gemm)
        points += 1
    assert points == 4 * 4 * 5 * 16 * 11
    assert used == set(range(len(d["moe"]))), f"{family}: buckets {set(range(len(d['moe']))) - used} serve no grid point"


@pytest.mark.parametrize("family", cfgmod.ARCH_FAMILIES)
def test_reference_shape_keeps_its_buckets(family):
    """The shape a table was chosen on maps onto itself: its measured buckets stay as chosen."""
    d = cfgmod.load_shipped(family)
    ref = cfgmod.moe_reference(d)
    for M in config_grid.GRID["tokens"] + (3, 13, 100, 1000, 4096):
        assert cfgmod.moe_bucket_m(d, M, ref["experts"], ref["top_k"]) == M


def test_rows_per_expert_picks_the_tile():
    """Sorted routing: the same mean rows per expert gets the same bucket (E=64 top-6 at M=512
    has 48 rows per expert: the reference's M=2458 bucket, not its M=512 one)."""
    d = cfgmod.load_shipped("nvidia")
    assert cfgmod.moe_bucket_m(d, 512, 64, 6) == 2458
    assert cfgmod.get_moe_config("nvidia", 512, 64, 6)["BLOCK_M"] == 64
    assert cfgmod.get_moe_config("nvidia", 512, 512, 10)["BLOCK_M"] == 16
    with pytest.raises(ValueError):
        cfgmod.get_moe_config("nvidia", 512, 64)


@pytest.mark.parametrize("family", sorted(config_grid.ISA_TARGETS))
def test_every_grid_launch_is_isa_checked(family):
    launches = _grid_launches(family)
    listed = config_grid.load_manifest()[family]
    missing = sorted(set(launches) - set(listed))
    stale = sorted(set(listed) - set(launches))
    hint = "run `python -m rocm_enable.ops.config_grid --write-manifest`"
    assert not missing, f"{len(missing)} grid launches were never ISA-checked ({hint}), e.g. " \
                        f"{launches[missing[0]]['point']}: {missing[0]}"
    assert not stale, f"{len(stale)} manifest launches no grid point makes any more ({hint})"
    for key, entry in listed.items():
        assert set(entry["isa"]) == set(config_grid.ISA_TARGETS[family])
        for arch, m in entry["isa"].items():
            assert m["spills"] == 0 and m["scratch"] == 0 and m["loop_cndmask"] <= config_grid.LOOP_CNDMASK_MAX, \
                (arch, key)


def test_grid_launches_are_recorded_not_run():
    """Negative control for the recorder: a point's launches are the two GEMVs at decode and the
    align + GEMMs (+ SiLU) at prefill, keyed differently (decode sums the top-k in the GEMV)."""
    decode = config_grid.point_launches("rdna3", (512, 10, 2048, 512, 1))
    prefill = config_grid.point_launches("rdna3", (512, 10, 2048, 512, 2048))
    assert [n for n, _, _ in decode] == ["w8a16_gemv_kernel"] * 2
    assert decode[1][2]["SUM_TOPK"] is True
    assert {n for n, _, _ in prefill} == {"w8a16_gemm_kernel"}
    keys = config_grid.LaunchKeys()
    assert len({keys.key(*launch) for launch in decode + prefill}) == 4
