"""AOT AMDGCN proof for GDN on wave32 RDNA: every kernel and launch config that can run in vLLM's GDN
prefill and decode with rocm-enable's fixes (rocm_enable's state-recurrence, WY and packed-decode
kernels, vLLM's other prefill kernels under the one candidate gdn-prefill-rdna leaves them, vLLM's
spec-decode kernels under their fixed launches) compiles for gfx1151 / gfx1100 / gfx1201 at the Qwen3-Next / Qwen3.6
shape with zero VGPR/SGPR spills, no scratch, within the arch's LDS; the negative control (vLLM's
own state-recurrence kernel, its least-spilling candidate) spills with the same metrics."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from rocm_enable.gates.capabilities import capabilities_for
from rocm_enable.ops import gdn, gdn_isa

ARCHS = ("gfx1151", "gfx1100", "gfx1201")


@pytest.fixture(scope="module")
def reports():
    # one clean compile process per arch, two at a time (the CI runner's two cores)
    with ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(lambda a: gdn_isa.gdn_isa_report(a, "selected", subprocess_=True), ARCHS))
    return dict(zip(ARCHS, rows))


def test_every_selectable_config_is_compiled(reports):
    want = ({(k, "rocm_enable") for k, _ in gdn_isa.rocm_enable_selectable()}
            | {(k, "vllm") for k in gdn.VLLM_NO_SPILL_CANDIDATE}
            | {(k, "vllm") for k in gdn_isa.FIXED_LAUNCH if k not in gdn_isa.REPLACED})
    assert ("gdn_packed_decode_kernel", "rocm_enable") in want  # the decode path is proven too
    for arch, rows in reports.items():
        assert {(r["kernel"], r["source"]) for r in rows} == want, arch
        assert len(rows) == len(want), arch  # one config per kernel
        for r in rows:
            if r["source"] == "vllm" and r["kernel"] in gdn.VLLM_NO_SPILL_CANDIDATE:
                kwargs, warps, stages = gdn.VLLM_NO_SPILL_CANDIDATE[r["kernel"]]
                assert (r["num_warps"], r["num_stages"]) == (warps, stages)


def test_zero_spills_no_scratch_within_lds(reports):
    for arch, rows in reports.items():
        limit = capabilities_for(arch).lds_per_workgroup_kib * 1024
        bad = [r for r in rows if r["vgpr_spills"] or r["spills"] or r["scratch"] or r["lds"] > limit
               or not r["occupancy"] or r["vgpr"] > 256]
        assert not bad, [(arch, r["kernel"], r["config"], r["vgpr"], r["vgpr_spills"], r["scratch"]) for r in bad]


def test_our_prefill_kernels_use_the_matrix_units(reports):
    for arch, rows in reports.items():
        for r in rows:
            if r["source"] == "rocm_enable" and r["kernel"] != "gdn_packed_decode_kernel":  # decode: no dot
                assert r["wmma"] > 0, (arch, r["kernel"])


def test_negative_control_vllms_state_kernel_spills():
    """The metrics see spills where they exist: vLLM's chunk_delta_h at BV32, 4 waves, 2 stages (its
    least-spilling candidate on gfx1151, 57 VGPRs) compiled the same way."""
    rows = gdn_isa.gdn_isa_report("gfx1151", "vllm", kernels=("chunk_gated_delta_rule_fwd_kernel_h_blockdim64",),
                                  subprocess_=True, candidate=({"BV": 32}, 4, 2))
    assert len(rows) == 1 and rows[0]["vgpr_spills"] > 0 and rows[0]["scratch"] > 0
