"""scripts/engine_profile_to_plan.py: an engine-harness profile becomes per-family efficiencies
(bytes / copy bandwidth over kernel time less the device's launch cost) with its provenance."""
import importlib.util
import json
import os

import pytest

from rocm_enable import decode_model
from rocm_enable.models import load_model
from rocm_enable.plan import components, gdn_state_bytes_per_seq, kv_bytes_per_token, step_bytes

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "engine_profile_to_plan.py")
MODEL = "Qwen/Qwen3.6-35B-A3B-FP8"


def _script():
    spec = importlib.util.spec_from_file_location("engine_profile_to_plan", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _result(tmp_path):
    fams = {"moe": {"kernels": 200, "us": 900.0}, "dense": {"kernels": 300, "us": 1500.0},
            "attention": {"kernels": 40, "us": 120.0}, "gdn": {"kernels": 90, "us": 200.0},
            "conv": {"kernels": 30, "us": 40.0}, "norm": {"kernels": 80, "us": 90.0}}
    res = {"ok": True, "args": {"input_len": 512}, "versions": {"gpu": "NVIDIA H100 80GB HBM3", "vllm": "0.32.0"},
           "speed": {"batch1": {"profile": {"kernels_per_step": 812.4, "families": fams}}}}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(res))
    return path, fams


def test_efficiency_is_bytes_time_over_kernel_time_without_launches(tmp_path, capsys):
    path, fams = _result(tmp_path)
    assert _script().main([str(path), "--model", MODEL, "--copy-gbs", "3000", "--launch-us", "1.0",
                           "--command", "cmd", "--date", "2026-12-06"]) == 0
    prof = json.loads(capsys.readouterr().out)
    spec = load_model(MODEL)
    step = step_bytes(spec, components(spec), 512 + 8, 1, kv_bytes_per_token(spec), gdn_state_bytes_per_seq(spec))
    moe = prof["bandwidth_efficiency"]["moe"]["value"]
    assert moe == pytest.approx(step.by_family["moe"] / 3000e3 / (900 - 200), abs=1e-3)
    dense_bytes = sum(step.by_family[f] for f in ("dense", "router_bf16", "lm_head_bf16"))
    for f in ("dense", "router_bf16", "lm_head_bf16"):
        assert prof["bandwidth_efficiency"][f]["value"] == pytest.approx(dense_bytes / 3000e3 / 1200, abs=1e-3)
    assert prof["bandwidth_efficiency"]["gdn"]["value"] == pytest.approx(step.by_family["gdn"] / 3000e3 / 120,
                                                                         abs=1e-3)
    assert prof["bandwidth_efficiency"]["norms"]["value"] is None  # moves no weight bytes: stays unmeasured
    assert prof["kernels_per_step"] == {**prof["kernels_per_step"], "value": 812, "model": MODEL}
    assert prof["device"] == "NVIDIA H100 80GB HBM3" and prof["command"] == "cmd"
    assert decode_model.efficiencies(prof)["moe"][2] == "measured on NVIDIA H100 80GB HBM3"


def test_a_failed_result_is_refused(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"ok": False}))
    assert _script().main([str(path), "--model", MODEL, "--copy-gbs", "3000", "--launch-us", "1",
                           "--command", "c", "--date", "d"]) == 2
    assert "not a successful --speed result" in capsys.readouterr().err
