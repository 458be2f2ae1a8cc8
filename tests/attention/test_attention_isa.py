"""AOT AMDGCN proof for the RDNA attention backend: every launch configuration it can choose on
gfx1151 / gfx1100 / gfx1201 for head_dim 128 and 256 (bf16 and fp16, GQA 8 and 6, 16-bit and e4m3
KV cache) compiles with zero VGPR and SGPR spills, no scratch, within the arch's LDS, with at
least one wave per SIMD; the e4m3 cache is decoded without fp8 conversions or select ladders."""
import pytest

from rocm_enable.gates.capabilities import capabilities_for
from rocm_enable.isa import attention_isa_report
from rocm_enable.ops import attention_rdna as A


@pytest.fixture(scope="module", params=["gfx1151", "gfx1100", "gfx1201"])
def report(request):
    return request.param, attention_isa_report(request.param)


def test_every_selectable_config_is_compiled(report):
    arch, rows = report
    target = A.target_from_caps(capabilities_for(arch))
    want = {(k, hd) for k, hd, _ in A.selectable_configs(target) if hd in (128, 256)}
    assert {(r["kernel"], r["head_dim"]) for r in rows} == want
    tiles = {(r["kernel"], r["head_dim"], r["tile"], r["kv"] == "fp8") for r in rows}
    for k, hd, cfg in A.selectable_configs(target):
        if hd in (128, 256) and k != "combine":
            tile = f"ROWS{cfg['ROWS']} N{cfg['BLOCK_N']}" if "ROWS" in cfg else f"M{cfg['BLOCK_M']} N{cfg['BLOCK_N']}"
            assert (k, hd, tile, cfg["KV_FP8"]) in tiles
    assert {r["dtype"] for r in rows} == {"bf16", "fp16"}
    assert {r["kv"] for r in rows} == {"bf16", "fp16", "fp8", "-"}


def test_zero_vgpr_spills_within_lds(report):
    arch, rows = report
    lds_limit = capabilities_for(arch).lds_per_workgroup_kib * 1024
    bad = [r for r in rows if r["vgpr_spills"] or r["sgpr_spills"] or r["scratch"]
           or r["lds"] > lds_limit or not r["waves_per_simd"]]
    assert not bad, [(r["kernel"], r["head_dim"], r["tile"], r["dtype"], r["kv"], r["vgpr_spills"],
                      r["sgpr_spills"], r["lds"]) for r in bad]
    assert all(r["vgpr"] <= 256 for r in rows)
    # the matrix units are used for both products
    assert all(r["wmma"] > 0 for r in rows if r["kernel"] != "combine")


def test_fp8_cache_decoded_by_integer_bit_operations(report):
    """An fp8 cast would show as v_cvt_*_fp8 (gfx12) or as a per-byte compare/select ladder
    (gfx11: ~9 v_cndmask per byte, hundreds per tile); the e4m3 rows have no conversion
    instruction and no more selects in the key loop (up to codegen noise) than the same kernel on
    a 16-bit cache."""
    _, rows = report
    plain = {(r["kernel"], r["head_dim"], r["gqa"], r["dtype"], r["tile"]): r for r in rows if r["kv"] != "fp8"}
    fp8 = [r for r in rows if r["kv"] == "fp8"]
    assert fp8
    for r in fp8:
        assert r["fp8_cvt"] == 0, r
        same = plain.get((r["kernel"], r["head_dim"], r["gqa"], r["dtype"], r["tile"]))
        if same is not None:
            # codegen noise of a few selects either way; a ladder adds ~9 per cache byte a lane holds
            assert r["loop_cndmask"] <= same["loop_cndmask"] + 4, (r, same)
        # a ladder over one 16-key tile at head_dim 256 alone: 2 x 16 x 256 bytes over 256 lanes,
        # ~9 selects per byte = ~290 per lane
        assert r["loop_cndmask"] < 64, r
