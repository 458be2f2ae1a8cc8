"""`rocm-enable isa`: the AOT report the issue asks for, per shipped kernel and config."""
import json

import pytest

from zygote import run_module

KEYS = {"module", "function", "specialisation", "vgpr", "spills", "scratch", "cndmask", "wmma",
        "loop_insts_per_wmma", "lds"}


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100", "gfx1201"])
def test_isa_json_reports_every_shipped_kernel(arch):
    proc = run_module("rocm_enable.cli", ["isa", "--arch", arch, "--json"],
                      capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert data["arch"] == arch and data["kernels"]
    for row in data["kernels"]:
        assert KEYS <= set(row), row
        assert row["spills"] == 0 and row["scratch"] == 0, row
    assert {r["kind"] for r in data["kernels"]} == {"moe", "dense"}
    assert {r["function"] for r in data["kernels"]} == {"w8a16_gemm_kernel", "w8a16_gemv_kernel"}
    assert all(r["loop_insts_per_256_weights"] for r in data["kernels"] if r["function"] == "w8a16_gemv_kernel")
    assert data["attention"], "the RDNA attention backend's kernels are part of the report"
    assert data["gdn"] and all(r["spills"] == 0 and r["scratch"] == 0 for r in data["gdn"]), data["gdn"]


def test_isa_unknown_arch():
    proc = run_module("rocm_enable.cli", ["isa", "--arch", "gfx803"],
                      capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown AMD architecture" in proc.stderr
