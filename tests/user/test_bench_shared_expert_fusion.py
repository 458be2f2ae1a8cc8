"""benchmarks/bench_shared_expert_fusion.py's CPU smoke path (TRITON_INTERPRET=1, in a subprocess:
the interpreter must be on before Triton's kernels are defined): the separate and the fused
shared-expert block agree and the fused one launches fewer Triton kernels; with the fused path's
shared-expert slot corrupted the script's agreement check fails."""
import json
import os
from pathlib import Path

from zygote import run_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_shared_expert_fusion.py"


def smoke(*extra, out=None):
    env = dict(os.environ, TRITON_INTERPRET="1")
    args = ["--cpu-smoke", *extra] + (["--out", str(out)] if out else [])
    return run_script(SCRIPT, args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cpu_smoke_paths_agree_and_fused_launches_fewer_kernels(tmp_path):
    run = smoke(out=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "agreement check passed in every row" in run.stdout
    rows = json.loads((tmp_path / "bench_shared_expert_fusion.json").read_text())["rows"]
    assert [r["M"] for r in rows] == [1, 2]
    for r in rows:
        check = r["check"]
        assert check["ok"] and check["rows_compared"] == check["rows"] == r["M"], check
        assert 0 < check["rel_err"] < 1e-2
        # fused: routing + the two expert GEMVs; separate adds the shared expert's two dense GEMMs
        assert r["triton_fused"] == ["moe_topk_routing_kernel", "w8a16_gemv_kernel", "w8a16_gemv_kernel"]
        assert len(r["triton_separate"]) == 5 and r["triton_separate"][0] == "moe_topk_routing_kernel"


def test_cpu_smoke_fails_when_the_shared_expert_slot_is_corrupted():
    run = smoke("--corrupt-shared-slot", "--ms", "1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "AGREEMENT CHECK FAILED in 1 row(s)" in run.stdout
    assert "max |fused - separate| / max |separate|" in run.stdout
