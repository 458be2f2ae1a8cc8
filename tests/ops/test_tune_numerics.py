"""`rocm-enable tune` mechanics on CPU (Triton interpreter): candidates are run and checked against
the shipped config's output, the fastest valid one per GEMM and bucket wins, broken candidates are
dropped, and the written cache file is what the launchers then use. The GPU timer is replaced by a
deterministic cost model (there is no GPU here); the H100 run is in docs/benchmarks.md."""
import json
import logging
import os

# The kernels run in Triton's CPU interpreter; it must be on before they are decorated.
os.environ.setdefault("TRITON_INTERPRET", "1")
import pytest
import torch

from rocm_enable.ops import config as cfgmod
from rocm_enable.ops import tune
from rocm_enable.ops.fp8_dequant import fold_fp8_scale_for_fp16_bits
from rocm_enable.ops.moe_w8a16 import fused_experts_w8a16
from w8a16_testutil import REL_TOL, moe_reference, rand_fp8, rand_scale, rel_err

SHAPE = tune.MoeShape(experts=8, top_k=2, hidden=256, intermediate=128)
BROKEN = {"BLOCK_N": 32, "BLOCK_K": 96, "num_warps": 4, "num_stages": 2}  # 96 does not divide 128


def cost(label):
    """Fake timer: GEMV BN16 cheapest when offered, else tile BN64; BLOCK_M 32 buckets cheaper;
    the broken candidate would be cheapest of all if it were (wrongly) kept."""
    cfg = label["cfg"]
    if cfg == BROKEN:
        return 0.1
    us = 10.0 - (5 if cfg.get("kernel") == "gemv" and cfg["BLOCK_N"] == 16 else 0)
    us -= 2 if cfg.get("kernel") != "gemv" and cfg["BLOCK_N"] == 64 else 0
    return us - (1 if label.get("BLOCK_M") == 32 else 0)


def fake_timer(calls):
    def timer(run, label):
        run(len(calls))  # really launch it (the interpreter computes the result)
        calls.append(label)
        return cost(label)
    return timer


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cfgmod.CACHE_ENV, str(tmp_path))
    cfgmod.load_family.cache_clear()
    yield tmp_path
    cfgmod.load_family.cache_clear()


@pytest.fixture
def with_broken(monkeypatch):
    real = tune.gemm_candidates
    monkeypatch.setattr(tune, "gemm_candidates", lambda *a: real(*a) + [BROKEN])


def test_tune_picks_fastest_valid_and_launchers_use_it(cache, with_broken):
    calls = []
    data, report = tune.tune_family("rdna3", SHAPE, None, [1, 3], timer=fake_timer(calls), device="cpu",
                                    quick=True, source="test")
    m1, m3 = data["moe"]
    # M=1: 1*2*4 <= 8 pairs -> naive routing: the GEMV is offered and (cheapest) chosen
    assert m1["max_m"] == 1 and m1["w13"] == tune._gemm(16, 512, 4, 2, "gemv") == m1["w2"]
    # M=3: sorted routing -> tile kernel only; BLOCK_M 32 buckets win, tile BN64 wins
    assert m3["max_m"] is None and m3["BLOCK_M"] == 32 and not m3["fuse_silu"]
    assert m3["w13"]["BLOCK_N"] == 64 and m3["w13"].get("kernel", "tile") == "tile"
    # the broken candidate was tried, dropped with its error, never timed
    dropped = [r for r in report if r["cfg"] == BROKEN]
    assert dropped and all(r["error"] and "BLOCK_K=96" in r["error"] for r in dropped)
    assert BROKEN not in [c["cfg"] for c in calls]
    assert data["dense"] == cfgmod.load_shipped("rdna3")["dense"]  # not asked to tune dense
    path = tune.write_tuned("rdna3", data)
    assert path == os.path.join(str(cache), "w8a16", "rdna3.json")
    assert cfgmod.get_moe_config("rdna3", 1)["w13"] == m1["w13"]
    assert cfgmod.get_moe_config("rdna3", 40)["BLOCK_M"] == 32
    # and the MoE computes the right thing with the tuned configs (M=1 GEMV, M=5 tile BLOCK_M 32)
    for M in (1, 5):
        g = torch.Generator().manual_seed(M)
        E, K, N = SHAPE.experts, SHAPE.hidden, SHAPE.intermediate
        x = torch.randn(M, K, generator=g).half()
        w13, w2 = rand_fp8(E, 2 * N, K, gen=g), rand_fp8(E, K, N, gen=g)
        s13, s2 = rand_scale("block", E, 2 * N, K, gen=g), rand_scale("block", E, K, N, gen=g)
        ids = torch.stack([torch.randperm(E, generator=g)[:SHAPE.top_k] for _ in range(M)])
        tw = torch.rand(M, SHAPE.top_k, generator=g) + 0.1
        out = torch.full((M, K), float("nan"), dtype=torch.float16)
        fused_experts_w8a16(x, w13, w2, fold_fp8_scale_for_fp16_bits(s13), fold_fp8_scale_for_fp16_bits(s2), tw,
                            ids, block_shape=[128, 128], output=out, arch_family="rdna3")
        ref = moe_reference(x, w13, w2, s13, s2, tw, ids, [128, 128], torch.float16)
        assert rel_err(out, ref) < REL_TOL[torch.float16]


def test_tune_dense_buckets_keep_an_earlier_moe_tune(cache):
    calls = []
    data, _ = tune.tune_family("rdna4", None, (192, 640), [1, 20], timer=fake_timer(calls), device="cpu",
                               quick=True)
    d1, d20 = data["dense"]
    assert d1["kernel"] == "gemv" and d1["BLOCK_N"] == 16  # rows <= 4: GEMV offered, cheapest
    assert d20.get("kernel", "tile") == "tile" and d20["BLOCK_N"] == 64 and d20["max_m"] is None
    assert data["moe"] == cfgmod.load_shipped("rdna4")["moe"]
    tune.write_tuned("rdna4", data)
    # a later MoE tune keeps these dense buckets and records both runs
    data2, _ = tune.tune_family("rdna4", SHAPE, None, [1], timer=fake_timer(calls), device="cpu", quick=True,
                                source="moe")
    assert data2["dense"] == data["dense"] and data2["moe"] != cfgmod.load_shipped("rdna4")["moe"]
    assert [r["kind"] for r in data2["_tuned"]["runs"]] == ["dense", "moe"]


def test_invalid_tuned_file_is_ignored_with_a_warning(cache, caplog):
    path = cache / "w8a16" / "cdna.json"
    path.parent.mkdir(parents=True)
    bad = json.loads(json.dumps(cfgmod.load_shipped("cdna")))
    bad["moe"][0]["w13"]["BLOCK_N"] = 48
    path.write_text(json.dumps(bad))
    with caplog.at_level(logging.WARNING, logger="vllm.rocm_enable"):
        assert cfgmod.load_family("cdna") is cfgmod.load_shipped("cdna")
    assert str(path) in caplog.text and "BLOCK_N must be a positive power of two" in caplog.text
    assert "rocm-enable tune" in caplog.text


def test_shipped_configs_validate():
    for fam in cfgmod.ARCH_FAMILIES:
        cfgmod.validate_family(cfgmod.load_shipped(fam), fam)
    with pytest.raises(cfgmod.ConfigError, match="last bucket needs max_m null"):
        d = json.loads(json.dumps(cfgmod.load_shipped("rdna3")))
        d["dense"][-1]["max_m"] = 4096
        cfgmod.validate_family(d)
