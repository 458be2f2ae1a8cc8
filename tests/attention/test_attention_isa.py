"""AOT AMDGCN proof for the RDNA attention backend: every launch configuration it can choose on
gfx1151 / gfx1100 / gfx1201 for head_dim 128 and 256 (bf16 and fp16, GQA 8 and 6) compiles with
zero VGPR spills, no scratch, within the arch's LDS, with at least one wave per SIMD."""
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
    tiles = {(r["kernel"], r["head_dim"], r["tile"]) for r in rows}
    for k, hd, cfg in A.selectable_configs(target):
        if hd in (128, 256) and k != "combine":
            tile = f"ROWS{cfg['ROWS']} N{cfg['BLOCK_N']}" if "ROWS" in cfg else f"M{cfg['BLOCK_M']} N{cfg['BLOCK_N']}"
            assert (k, hd, tile) in tiles
    assert {r["dtype"] for r in rows} == {"bf16", "fp16"}


def test_zero_vgpr_spills_within_lds(report):
    arch, rows = report
    lds_limit = capabilities_for(arch).lds_per_workgroup_kib * 1024
    bad = [r for r in rows if r["vgpr_spills"] or r["scratch"] or r["lds"] > lds_limit
           or not r["waves_per_simd"]]
    assert not bad, [(r["kernel"], r["head_dim"], r["tile"], r["dtype"], r["vgpr_spills"], r["lds"]) for r in bad]
    assert all(r["vgpr"] <= 256 for r in rows)
    # the matrix units are used for both products
    assert all(r["wmma"] > 0 for r in rows if r["kernel"] != "combine")
