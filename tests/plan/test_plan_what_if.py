"""scripts/plan_what_if.py: removing kernels from an engine profile moves plan's (b) the right way."""
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import plan_what_if as wi  # noqa: E402

# run 8: the last profile measured before record fused-shared-expert (what these tests remove)
SUMMARY = os.path.join(ROOT, "docs", "engine-runs", "run8-speed-routing", "summary.json")
JOB = "speed.qwen36-35b-fp8.l20"


@pytest.fixture(scope="module")
def inputs():
    with open(SUMMARY) as fh:
        summary = json.load(fh)
    return wi.profile_of(summary, JOB), wi._graph_pass(summary, JOB)


def test_removed_kernels_leave_their_family(inputs):
    profile, graph = inputs
    prof, rows = wi.what_if(profile, graph, ["moe:sigmoid_kernel_cuda"], ["dense:w8a16_gemv_kernel:40"])
    before, after = profile["step_time"]["families"], prof["step_time"]["families"]
    sig_us = graph["names"][rows[0][1]][1]
    assert after["moe"]["launches"] == before["moe"]["launches"] - 20
    assert after["moe"]["fixed_us"] == pytest.approx(before["moe"]["fixed_us"] - sig_us)
    per_launch = before["dense"]["fixed_us"] / before["dense"]["launches"]
    assert after["dense"]["fixed_us"] == pytest.approx(before["dense"]["fixed_us"] - 40 * per_launch)
    assert after["dense"]["bytes"] == before["dense"]["bytes"]  # only the fixed time goes
    assert prof["kernels_per_step"]["value"] == profile["kernels_per_step"]["value"] - 60
    assert profile["step_time"]["families"]["moe"]["launches"] == before["moe"]["launches"]  # input untouched


def test_fewer_launches_project_faster(inputs, capsys):
    wi.main(["--model", "Qwen/Qwen3.6-35B-A3B-FP8", "--summary", SUMMARY, "--job", JOB,
             "--remove", "router:dot_kernel"])
    out = capsys.readouterr().out
    assert "WHAT-IF PROJECTION" in out
    row = [ln for ln in out.splitlines() if ln.startswith("Qwen/Qwen3.6-35B-A3B-FP8") and " bf16 " in ln][0]
    launches = [int(x) for x in row.split()[2:5:2]]
    assert launches[1] == launches[0] - 40  # 20 per 20 profiled layers -> 40 in 40 layers


@pytest.mark.parametrize("args, message", [
    (["--remove", "nosuchfamily:x"], "not in the profile"),
    (["--remove", "moe:no_such_kernel"], "contains"),
    (["--remove-launches", "dense:w8a16_gemv_kernel:1000"], "only"),
])
def test_bad_input_names_the_fix(args, message):
    with pytest.raises(SystemExit, match=message):
        wi.main(["--model", "Qwen/Qwen3.6-35B-A3B-FP8", "--summary", SUMMARY,
                 "--job", JOB, *args])


def _note(model, arch, profile):
    from rocm_enable.gates.capabilities import capabilities_for
    from rocm_enable.models import load_model
    from rocm_enable.plan import fused_shared_expert_note

    return fused_shared_expert_note(load_model(model), capabilities_for(arch), profile)


@pytest.mark.parametrize("model, arch, noted", [
    ("Qwen/Qwen3.6-35B-A3B-FP8", "gfx1151", True),   # FP8 block-128 MoE on gfx11: fused by default
    ("Qwen/Qwen3-Coder-Next-FP8", "gfx1100", True),
    ("Qwen/Qwen3.6-35B-A3B-FP8", "gfx1201", False),  # FP8 compute: vLLM's W8A8 experts, not fused
    ("Qwen/Qwen3.6-35B-A3B", "gfx1151", False),      # BF16 keeps the separate shared expert
    ("Qwen/Qwen3.6-27B-FP8", "gfx1151", False),      # dense
])
def test_plan_says_when_its_profile_lacks_the_fused_shared_expert(inputs, model, arch, noted):
    profile, _ = inputs
    assert "fused-shared-expert" not in profile.get("fixes_applied", [])  # run 8 predates the record
    note = _note(model, arch, profile)
    assert bool(note) == noted, note
    if noted:
        assert "7 launches fewer per MoE layer" in note[0] and "what-if" in note[0]
    # a profile measured with the record applied needs no note
    assert _note(model, arch, dict(profile, fixes_applied=["fused-shared-expert"])) == []
