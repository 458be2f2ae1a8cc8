"""`rocm-enable plan`'s decode PROJECTION per op family (rocm_enable.decode_model): bytes per family,
the engine profile's efficiencies (or the stated assumption while unmeasured), launches, and the
opt-in FP8 lm_head."""
import copy
import json
from importlib import resources

import pytest

from rocm_enable import decode_model
from rocm_enable.models import load_model
from rocm_enable.plan import (components, gdn_state_bytes_per_seq, kv_bytes_per_token, lm_head_fp8_bytes, plan,
                              render, step_bytes)

QWEN36 = "Qwen/Qwen3.6-35B-A3B-FP8"


def test_family_bytes_add_up_to_every_byte_a_step_reads():
    spec = load_model("Qwen/Qwen3-Coder-Next-FP8")
    comps = components(spec)
    kv, state = kv_bytes_per_token(spec), gdn_state_bytes_per_seq(spec)
    step = step_bytes(spec, comps, 4096, 1, kv, state)
    routed = next(c for c in comps if c.name.startswith("routed experts"))
    weights = sum(c.active_bytes for c in comps)
    assert routed.active_bytes == routed.bytes / spec.num_experts * spec.top_k
    assert step.total == pytest.approx(weights + 4096 * kv + 2 * state["total"])
    assert step.by_family["moe"] == pytest.approx(routed.active_bytes)
    assert step.by_family["lm_head_bf16"] == spec.vocab_size * spec.hidden_size * 2


def test_fp8_lm_head_halves_the_head_and_raises_the_projection():
    spec = load_model(QWEN36)
    assert lm_head_fp8_bytes(spec) == 248320 * 2048 + 4 * 1940 * 16
    p = plan(QWEN36, "gfx1151", context=4096)["projection"]
    f8 = p["fp8_lm_head"]
    assert "lm_head_bf16" not in f8["bytes_by_family"]
    saved = p["bytes_by_family"]["lm_head_bf16"] - lm_head_fp8_bytes(spec)
    assert sum(p["bytes_by_family"].values()) - sum(f8["bytes_by_family"].values()) == pytest.approx(saved, abs=2)
    assert f8["ceiling_tok_s"] > p["ceiling_tok_s"] and f8["expected_tok_s"][0] >= p["expected_tok_s"][0]
    if "tok_s" in p["fixed_time"]:  # (b): the head's bytes go, its fixed time and launch stay
        assert f8["fixed_time"]["tok_s"][0] > p["fixed_time"]["tok_s"][0]
    # the head is ~28 % of the step's bytes at 4K context (issue 14: 29 % at the plan's default context)
    assert 0.25 < p["bytes_by_family"]["lm_head_bf16"] / sum(p["bytes_by_family"].values()) < 0.3


def test_shipped_profile_holds_no_number_without_its_measurement():
    """Every profile in engine_profile.json comes with the device, command and date it was measured
    with; while there is none, every family prints 'not yet measured'."""
    doc = decode_model.load_engine_profile()
    for name, prof in doc["profiles"].items():
        assert prof["model"] == name and prof["device"] and prof["command"] and prof["date"]
        assert prof["status"] == "measured" and doc["status"] == "measured"
        assert set(prof["bandwidth_efficiency"]) <= set(decode_model.FAMILIES)
    if not doc["profiles"]:
        assert doc["status"] == "not yet measured"
        text = render(plan(QWEN36, "gfx1151", context=4096))
        assert text.count("(not yet measured)") == len(plan(QWEN36, "gfx1151")["projection"]["bytes_by_family"])
        assert "engine profile: not yet measured" in text


def _profile(eff: float, kernels: int | None, model: str) -> dict:
    """One engine-profile entry as scripts/engine_profile_to_plan.py writes it."""
    return {"model": model, "fp8": True, "status": "measured", "device": "test device", "command": "test",
            "date": "2026-12-06", "bandwidth_efficiency": {fam: {"value": eff} for fam in decode_model.FAMILIES},
            "kernels_per_step": {"value": kernels, "model": model}}


def test_measured_efficiencies_and_kernel_count_drive_the_step_time():
    spec = load_model(QWEN36)
    comps = components(spec)
    step = step_bytes(spec, comps, 4096, 1, kv_bytes_per_token(spec), gdn_state_bytes_per_seq(spec))
    p = decode_model.project(spec, step, 212, 1, profile=_profile(0.8, 500, spec.name))
    t = step.total / (0.8 * 212e9) + 500 * decode_model.LAUNCH_COST_US * 1e-6
    assert p["expected_tok_s"] == [round(1 / t, 1)] * 2
    assert p["kernels_per_step"] == 500 and p["kernels_status"] == "measured on test device"
    assert all(e["status"] == "measured on test device" for e in p["efficiency"].values())
    # a count measured on another model is not used for this one
    other = decode_model.project(spec, step, 212, 1, profile=_profile(0.8, 500, "another/model"))
    assert other["kernels_status"].startswith("not yet measured")


def test_unmeasured_kernel_count_is_the_stated_layer_estimate():
    spec = load_model(QWEN36)
    e = decode_model.KERNELS_ESTIMATE
    n, status = decode_model.kernels_per_step(spec, decode_model.load_engine_profile(), 0)
    assert n == 30 * e["linear_attention_layer"] + 10 * e["full_attention_layer"] + 40 * e["moe_block"] + e["per_step"]
    assert status.startswith("not yet measured")


def test_an_efficiency_that_is_not_a_share_is_refused():
    spec = load_model(QWEN36)
    step = decode_model.StepBytes({"moe": 1e9})
    with pytest.raises(ValueError, match="bandwidth_efficiency.moe"):
        decode_model.project(spec, step, 212, 1, profile=_profile(55, None, spec.name))


def test_every_assumption_is_printed_with_its_source():
    text = render(plan(QWEN36, "gfx1151", context=4096))
    for needle in ("PROJECTION", "rocm-systems/issues/10834", str(decode_model.LAUNCH_COST_US), "anchors §1.5",
                   "ROCM_ENABLE_FP8_LM_HEAD=1", "lm_head FP8", "lm_head BF16"):
        assert needle in text, needle


def test_engine_profile_is_package_data():
    data = json.loads(resources.files("rocm_enable.models").joinpath("engine_profile.json").read_text())
    assert "profiles" in data and "bandwidth_efficiency" in data["_entry"]
