"""gdn-prefill-rdna's narrowing of vLLM's FLA autotune lists to one candidate per kernel, on the lists
vLLM's installed FLA source builds per GPU (rocm_enable.ops.gdn_isa.load_fla evaluates them with the
module constants of an RDNA GPU or of an H100: chunk_o.py's NUM_WARPS is [2, 4] on Hopper, so its
8-warp RDNA candidate is not there): on an AMD GPU the proven spill-free candidate, on the NVIDIA
stand-in (simulated RDNA) the nearest one with an info line instead of a warning, on a drifted AMD
list the whole list with a warning."""
import logging

import pytest
import triton

from rocm_enable.ops import gdn, gdn_isa


def key(c):
    return c.kwargs, c.num_warps, c.num_stages


@pytest.fixture(scope="module")
def lists():
    return {"rdna": gdn_isa.load_fla()[1], "hopper": gdn_isa.load_fla(hopper=True)[1]}


@pytest.mark.parametrize("kernel", sorted(gdn.VLLM_NO_SPILL_CANDIDATE))
def test_amd_list_keeps_the_proven_candidate(kernel, lists, caplog):
    with caplog.at_level(logging.INFO, logger=gdn.log.name):
        kept = gdn.no_spill_configs(kernel, lists["rdna"][kernel], nvidia=False)
    assert [key(c) for c in kept] == [gdn.VLLM_NO_SPILL_CANDIDATE[kernel]]
    assert not caplog.records


@pytest.mark.parametrize("kernel", sorted(gdn.VLLM_NO_SPILL_CANDIDATE))
def test_hopper_list_keeps_one_candidate_without_warning(kernel, lists, caplog):
    with caplog.at_level(logging.INFO, logger=gdn.log.name):
        kept = gdn.no_spill_configs(kernel, lists["hopper"][kernel], nvidia=True)
    assert len(kept) == 1  # one compile at engine start, as on RDNA
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    if kernel == "chunk_fwd_kernel_o":  # the list FLA builds for Hopper has no 8 warps
        assert [key(c) for c in kept] == [({"BK": 64, "BV": 64}, 4, 2)]
        assert "NVIDIA" in caplog.text
    else:  # the RDNA candidate is in Hopper's list too: kept as is, nothing logged
        assert [key(c) for c in kept] == [gdn.VLLM_NO_SPILL_CANDIDATE[kernel]]
        assert not caplog.records


def test_drifted_amd_list_is_kept_whole_with_a_warning(caplog):
    configs = [triton.Config({"BK": bk, "BV": bv}, num_warps=w, num_stages=s)
               for bk in (32, 64) for bv in (32, 64) for w in (2, 4) for s in (2, 3, 4)]  # no 8 warps
    with caplog.at_level(logging.INFO, logger=gdn.log.name):
        kept = gdn.no_spill_configs("chunk_fwd_kernel_o", configs, nvidia=False)
    assert [key(c) for c in kept] == [key(c) for c in configs]
    assert [r.levelno for r in caplog.records] == [logging.WARNING] and "no longer has" in caplog.text


def test_narrowing_reads_flas_vendor_flag(monkeypatch):
    import importlib

    utils = importlib.import_module(f"{gdn.FLA}.utils")
    monkeypatch.setattr(utils, "is_nvidia", True)
    assert gdn.fla_lists_built_for_nvidia()
    monkeypatch.setattr(utils, "is_nvidia", False)
    assert not gdn.fla_lists_built_for_nvidia()
