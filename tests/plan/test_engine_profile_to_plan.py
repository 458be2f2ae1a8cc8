"""scripts/engine_profile_to_plan.py: a speed run's summary.json becomes per-model engine profiles
(bytes / measured read bandwidth over kernel time less one-element-kernel time, launches per step,
the step split), the kernel check against explain's rows, and `rocm-enable plan`'s PROJECTION from
them. Synthetic device numbers: the arithmetic is recomputed here, not read back."""
import copy
import importlib.util
import json
import os

import pytest

from rocm_enable import decode_model
from rocm_enable.models import load_model
from rocm_enable.plan import components, gdn_state_bytes_per_seq, kv_bytes_per_token, plan, render, step_bytes

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "engine_profile_to_plan.py")
MODEL = "Qwen/Qwen3.6-35B-A3B-FP8"
READ_GBS, FIXED_US = 3000.0, 1.5


def _script():
    spec = importlib.util.spec_from_file_location("engine_profile_to_plan", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fams(scale=1.0):
    """Per profile family: its GPU time and kernel names with launches per step (598 in all)."""
    f = {"moe": (700.0, {"w8a16_gemv_kernel": 80, "moe_align_kernel": 40}),
         "dense": (900.0, {"w8a16_gemv_kernel": 160, "nvjet_tst_64x8_64x16_4x1_v_bz_TNT": 40}),
         "router": (80.0, {"nvjet_tst_64x8_64x16_4x1_v_bz_TNT": 41}),
         "lm_head": (420.0, {"gemv2T_kernel_val": 1}),
         "attention": (60.0, {"paged_decode_kernel": 10, "split_combine_kernel": 5, "reshape_and_cache_kernel_flash": 5}),
         "gdn": (150.0, {"fused_recurrent_gated_delta_rule_packed_decode_kernel": 60}),
         "conv": (48.0, {"_causal_conv1d_update_kernel": 30}),
         "norm": (190.0, {"triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_0": 110, "layer_norm_gated_fwd_kernel": 10}),
         "copy": (8.0, {"Memcpy HtoD (Pinned -> Device)": 3, "Memcpy DtoH (Device -> Pinned)": 3})}
    return {k: {"kernels": sum(names.values()), "us": us * scale, "names": dict(names)} for k, (us, names) in f.items()}


def _pass(scale, gpu_us):
    """One profile pass: its families and, as speed_profile.py writes it, [launches, us] per kernel name
    (a name's time split over families by their launches)."""
    fams = _fams(scale)
    names = {}
    for fam in fams.values():
        for name, n in fam["names"].items():
            c, us = names.get(name, (0, 0.0))
            names[name] = [c + n, us + fam["us"] * n / fam["kernels"]]
    return {"kernels_per_step": 592, "copies_per_step": 6, "gpu_us_per_step": gpu_us, "families": fams,
            "names": names}


def _summary(visible=1.0):
    graph, eager = _pass(1.0, 2556.0), _pass(1.1, 2811.6)
    job = {"kind": "llm", "model": "dummy:Qwen3.6-35B-A3B-FP8.json", "ok": True, "rc": 0,
           "versions": {"gpu": "NVIDIA H200", "vllm": "0.32.0"},
           "speed": {"copy": {"copy_gbs": 2600.0, "read_gbs": READ_GBS}, "graph_node": {"us_per_node": 2.1},
                     "batch1": {"decode_step_ms": 4.0, "decode_tok_s": 250.0, "input_len": 512, "batch": 1},
                     "batch8": {"decode_step_ms": 8.0, "decode_tok_s": 1000.0, "input_len": 512, "batch": 8},
                     "profile": {"graph_node_kernel_us": FIXED_US,
                                 "batch1": {"graph_steps": 8, "graph_kernels_visible": visible,
                                            "graph": graph, "eager": eager}}}}
    failed = {"kind": "llm", "model": "dummy:Qwen3.6-35B-A3B.json", "ok": False, "rc": 1, "error": "boom",
              "speed": {}}
    return {"plan": "speed", "jobs": {"speed.qwen36-35b-fp8": job, "speed.qwen36-35b-bf16": failed}}


def _explain(attention_kernel="rocm_enable paged_decode_kernel + split_combine_kernel (Triton, split-KV)"):
    rows = [("MoE expert GEMMs", "RocmW8A16Fp8Experts"),
            ("shared expert and dense projections", "RocmW8A16Fp8BlockLinearKernel"),
            ("attention decode", attention_kernel),
            ("GDN decode", "FLA fused_recurrent_gated_delta_rule packed decode (Triton)"),
            ("causal conv1d", "causal_conv1d_fn (prefill) / causal_conv1d_update (decode), Triton"),
            ("norms (RMSNorm / GemmaRMSNorm)", "native implementation (torch, fused by inductor)"),
            ("norms (GDN gated RMSNorm)", "FLA layer_norm_fwd_kernel (Triton)"),
            ("router", "decode (1 token): torch.nn.functional.linear (hipBLASLt/rocBLAS); prefill (512 tokens): "
                       "torch.nn.functional.linear (hipBLASLt/rocBLAS); top-k: _moe_C.topk_softmax (HIP)"),
            ("lm_head", "decode (1 token): torch.nn.functional.linear (hipBLASLt/rocBLAS)"),
            ("MoE launch config", "rocm_enable/ops/configs/rdna3.json")]
    return {"model": MODEL, "rows": [{"family": f, "with_plugin": {"kernel": k, "error": None}, "fixes": []}
                                     for f, k in rows]}


def _run(tmp_path, capsys, summary, *extra):
    spath, epath = tmp_path / "summary.json", tmp_path / "explain.json"
    spath.write_text(json.dumps(summary))
    epath.write_text(json.dumps(extra[0] if extra else _explain()))
    rc = _script().main([str(spath), "--explain-json", str(epath), "--command", "device_run.py speed",
                         "--date", "2026-12-06"])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if rc == 0 else None), out.err


def _step(context=512 + 8 // 2 + 1):
    spec = load_model(MODEL)
    return step_bytes(spec, components(spec), context, 1, kv_bytes_per_token(spec), gdn_state_bytes_per_seq(spec))


def test_efficiencies_launches_and_step_split(tmp_path, capsys):
    rc, doc, err = _run(tmp_path, capsys, _summary())
    assert rc == 0 and "skipped: Qwen/Qwen3.6-35B-A3B: no batch-1 timing" in err
    prof = doc["profiles"][MODEL]
    eff = prof["bandwidth_efficiency"]
    b = _step().by_family
    # (bytes / 3000 GB/s) / (family us - kernels x 1.5 us), bytes from plan's accounting at context 517
    assert eff["moe"]["value"] == pytest.approx(b["moe"] / 3000e3 / (700 - 120 * 1.5), abs=1e-3)
    assert eff["dense"]["value"] == pytest.approx(b["dense"] / 3000e3 / (900 - 200 * 1.5), abs=1e-3)
    assert eff["lm_head_bf16"]["value"] == pytest.approx(b["lm_head_bf16"] / 3000e3 / (420 - 1.5), abs=1e-3)
    assert eff["router_bf16"]["value"] == pytest.approx(b["router_bf16"] / 3000e3 / (80 - 41 * 1.5), abs=1e-3)
    assert eff["gdn"]["value"] == pytest.approx(b["gdn"] / 3000e3 / (150 + 48 - 90 * 1.5), abs=1e-3)
    assert eff["norms"]["value"] is None and eff["norms"]["status"].startswith("not measured: launch-bound")
    assert prof["kernels_per_step"]["value"] == 598 and prof["measured"]["pass"] == "graph"
    split = prof["measured"]["step_split"]
    assert split["bytes_ms"] == pytest.approx(sum(b.values()) / 3000e6, abs=1e-4)
    assert split["rest_ms"] == pytest.approx(4.0 - sum(b.values()) / 3000e6, abs=1e-4)
    assert split["host_and_gaps_ms"] == pytest.approx(4.0 - 2.556, abs=1e-4)
    assert prof["device"] == "NVIDIA H200" and prof["fp8"] is True and doc["status"] == "measured"


def test_eager_pass_is_used_when_graph_kernels_were_not_reported(tmp_path, capsys):
    rc, doc, _ = _run(tmp_path, capsys, _summary(visible=0.05))
    prof = doc["profiles"][MODEL]
    assert prof["measured"]["pass"].startswith("eager")
    b = _step().by_family
    assert prof["bandwidth_efficiency"]["moe"]["value"] == pytest.approx(b["moe"] / 3000e3 / (770 - 180), abs=1e-3)


def test_kernel_check_passes_the_explained_kernels_and_shows_a_fallback(tmp_path, capsys):
    rc, doc, _ = _run(tmp_path, capsys, _summary())
    verdicts = {c["explain_row"]: c["verdict"] for c in doc["profiles"][MODEL]["kernel_check"]}
    assert set(verdicts.values()) == {"as explained"}, verdicts
    assert "MoE launch config" not in verdicts
    # the attention backend fell back to vLLM's Triton kernel inside forward
    s = _summary()
    graph = s["jobs"]["speed.qwen36-35b-fp8"]["speed"]["profile"]["batch1"]["graph"]
    names = graph["families"]["attention"]["names"]
    names["kernel_unified_attention_3d"] = names.pop("paged_decode_kernel")
    graph["names"]["kernel_unified_attention_3d"] = graph["names"].pop("paged_decode_kernel")
    rc, doc, _ = _run(tmp_path, capsys, s)
    check = {c["explain_row"]: c for c in doc["profiles"][MODEL]["kernel_check"]}
    assert check["attention decode"]["verdict"].startswith("MISMATCH: explain names")
    # both ran: the explained kernel and vLLM's
    names["paged_decode_kernel"] = 1.0
    graph["names"]["paged_decode_kernel"] = [1.0, 3.0]
    rc, doc, _ = _run(tmp_path, capsys, s)
    check = {c["explain_row"]: c for c in doc["profiles"][MODEL]["kernel_check"]}
    assert check["attention decode"]["unexpected"] == ["kernel_unified_attention_3d"]


def test_a_summary_without_a_usable_speed_job_is_refused(tmp_path, capsys):
    s = _summary()
    del s["jobs"]["speed.qwen36-35b-fp8"]
    rc, doc, err = _run(tmp_path, capsys, s)
    assert rc == 2 and "no speed job gave a profile" in err and "re-run its speed job" in err


def test_plan_projects_from_the_written_profile(tmp_path, capsys, monkeypatch):
    rc, doc, _ = _run(tmp_path, capsys, _summary())
    monkeypatch.setattr(decode_model, "load_engine_profile", lambda: copy.deepcopy(doc))
    spec = load_model(MODEL)
    p = plan(MODEL, "gfx1151", context=4096)["projection"]
    prof = doc["profiles"][MODEL]
    bw = 212e9
    t = [p["launch_cost_us"] * 1e-6 * round(prof["kernels_per_step"]["value"])] * 2
    for fam, b in p["bytes_by_family"].items():
        v = prof["bandwidth_efficiency"].get(fam, {}).get("value")
        t[0] += b / ((v or decode_model.UNMEASURED_EFFICIENCY[0]) * bw)
        t[1] += b / ((v or decode_model.UNMEASURED_EFFICIENCY[1]) * bw)
    assert p["expected_tok_s"] == [round(1 / t[0], 1), round(1 / t[1], 1)]
    assert p["kernels_status"] == "measured on NVIDIA H200"
    assert p["efficiency"]["moe"]["status"] == "measured on NVIDIA H200"
    text = render(plan(MODEL, "gfx1151", context=4096))
    assert "engine profile: this model's profile, measured on NVIDIA H200" in text
    assert "measured there (NVIDIA, not AMD" in text and "PROJECTION" in text
    # another FP8 model borrows it, labelled; a BF16 model does not
    other, how = decode_model.select_profile(doc, load_model("Qwen/Qwen3-Coder-Next-FP8"))
    assert other["model"] == MODEL and "applying it to this model is an assumption" in how
    only_fp8 = dict(doc, profiles={MODEL: prof})  # the shipped file may hold a BF16 profile too
    assert decode_model.select_profile(only_fp8, load_model("Qwen/Qwen3.6-35B-A3B")) == ({}, "not yet measured")
    assert spec.name == MODEL


def test_expected_kernels_of_explain_rows():
    mod = _script()
    assert mod.expected_kernels("RocmW8A16Fp8Experts") == ("w8a16_",)
    assert mod.expected_kernels("decode (1 token): torch.nn.functional.linear (hipBLASLt/rocBLAS); prefill "
                                "(512 tokens): wvSplitK skinny GEMM (HIP, _rocm_C)") == mod.BLAS
    # a row naming a kernel this script has no entry for: its *_kernel names
    assert mod.expected_kernels("rocm_enable gdn_packed_decode_kernel (Triton, 8 state rows per wave)") == \
        ("gdn_packed_decode_kernel",)
    assert mod.expected_kernels("rocm_enable/ops/configs/rdna3.json") == ()
    # one token per '; ' clause: inductor's fused norms and the fused q/k norm kernel beside them
    assert mod.expected_kernels("native implementation (torch, fused by inductor); full-attention q/k norms: "
                                "_fused_qk_rmsnorm_rope_gate_kernel (Triton, with RoPE and the gate split)") == \
        ("triton_", "_fused_qk_rmsnorm_rope_gate_kernel")


def test_norm_rows_are_checked_against_what_runs_per_mode(tmp_path, capsys):
    """explain's norm rows under torch.compile: inductor-fused native norms plus the fused q/k norm
    kernel; the gated norm's FLA kernel running where explain says native is a mismatch, and so is
    the fused q/k kernel where explain does not name it."""
    ex = _explain()
    rows = {r["family"]: r for r in ex["rows"]}
    rows["norms (RMSNorm / GemmaRMSNorm)"]["with_plugin"]["kernel"] = (
        "native implementation (torch, fused by inductor); full-attention q/k norms: "
        "_fused_qk_rmsnorm_rope_gate_kernel (Triton, with RoPE and the gate split)")
    rows["norms (GDN gated RMSNorm)"]["with_plugin"]["kernel"] = "native implementation (torch, fused by inductor)"
    s = _summary()
    graph = s["jobs"]["speed.qwen36-35b-fp8"]["speed"]["profile"]["batch1"]["graph"]
    norm = graph["families"]["norm"]["names"]
    norm["_fused_qk_rmsnorm_rope_gate_kernel"] = norm.pop("layer_norm_gated_fwd_kernel")
    graph["names"]["_fused_qk_rmsnorm_rope_gate_kernel"] = graph["names"].pop("layer_norm_gated_fwd_kernel")
    rc, doc, _ = _run(tmp_path, capsys, s, ex)
    check = {c["explain_row"]: c["verdict"] for c in doc["profiles"][MODEL]["kernel_check"]}
    assert check["norms (RMSNorm / GemmaRMSNorm)"] == "as explained"
    assert check["norms (GDN gated RMSNorm)"] == "as explained"
    # FLA's gated-norm kernel ran although explain says native (the eager dispatch under torch.compile)
    norm["layer_norm_gated_fwd_kernel"] = 10
    graph["names"]["layer_norm_gated_fwd_kernel"] = [10, 20.0]
    rc, doc, _ = _run(tmp_path, capsys, s, ex)
    check = {c["explain_row"]: c["verdict"] for c in doc["profiles"][MODEL]["kernel_check"]}
    assert check["norms (GDN gated RMSNorm)"].startswith("MISMATCH: besides the explained kernel")
    # explain without the fused q/k kernel (plugin off): the kernel in the profile shows
    rows["norms (RMSNorm / GemmaRMSNorm)"]["with_plugin"]["kernel"] = "native implementation (torch, fused by inductor)"
    rc, doc, _ = _run(tmp_path, capsys, s, ex)
    check = {c["explain_row"]: c["verdict"] for c in doc["profiles"][MODEL]["kernel_check"]}
    assert check["norms (RMSNorm / GemmaRMSNorm)"].startswith("MISMATCH: besides the explained kernel")


def test_name_only_attribution_leaves_moe_and_dense_unmeasured(tmp_path, capsys):
    s = _summary()
    b1 = s["jobs"]["speed.qwen36-35b-fp8"]["speed"]["profile"]["batch1"]
    del b1["eager"]
    b1["attribution"] = "kernel names only"
    rc, doc, _ = _run(tmp_path, capsys, s)
    eff = doc["profiles"][MODEL]["bandwidth_efficiency"]
    assert eff["moe"]["value"] is None and "one name" in eff["moe"]["status"] and eff["dense"]["value"] is None
    assert eff["lm_head_bf16"]["status"] == "measured"


def test_markdown_tables_give_the_fp8_over_bf16_ratio(tmp_path, capsys):
    rc, doc, _ = _run(tmp_path, capsys, _summary())
    bf16 = copy.deepcopy(doc["profiles"][MODEL])
    bf16.update(model="Qwen/Qwen3.6-35B-A3B", fp8=False)
    bf16["measured"]["decode"]["batch1"]["tok_s"] = 160.0
    doc["profiles"]["Qwen/Qwen3.6-35B-A3B"] = bf16
    text = _script().markdown(doc)
    assert "1.56x (issue 14 target >= 1.3x)" in text  # 250 / 160
    assert "| Qwen/Qwen3.6-35B-A3B-FP8 | NVIDIA H200 | 250.0 | 1000.0 | 4.000 |" in text


def test_a_hip_gemm_explain_names_is_checked_against_its_code_object_stand_in(tmp_path, capsys):
    """explain says vLLM picks the skinny HIP GEMM for the decode router / lm_head; the simulated build
    has no gfx1151 code object, so skinny-gemm-code-object runs torch linear: cuBLAS is expected."""
    ex = _explain()
    for row in ex["rows"]:
        if row["family"] == "lm_head":
            row["with_plugin"]["kernel"] = ("decode (1 token): wvSplitK skinny GEMM (HIP, _rocm_C); prefill "
                                            "(512 tokens): torch.nn.functional.linear (hipBLASLt/rocBLAS)")
            row["fixes"] = ["skinny-gemm-code-object (applied)"]
    rc, doc, _ = _run(tmp_path, capsys, _summary(), ex)
    check = {c["explain_row"]: c for c in doc["profiles"][MODEL]["kernel_check"]}
    assert check["lm_head"]["verdict"] == ("as explained (a build without gfx1151 code objects: "
                                           "skinny-gemm-code-object runs torch linear)")
    # without the record, a HIP kernel explain names must show in the profile
    for row in ex["rows"]:
        if row["family"] == "lm_head":
            row["fixes"] = []
    rc, doc, _ = _run(tmp_path, capsys, _summary(), ex)
    check = {c["explain_row"]: c for c in doc["profiles"][MODEL]["kernel_check"]}
    assert check["lm_head"]["verdict"].startswith("MISMATCH: explain names")


def test_a_half_depth_job_counts_its_own_layers(tmp_path, capsys):
    """speed-h100 runs the first 20 of 40 layers: its bytes are those 20 layers' (half the routed
    experts' and dense bytes, the same lm_head), its profile is '<id>@20', and the whole model
    uses its efficiencies but not its launch count."""
    s = _summary()
    job = s["jobs"].pop("speed.qwen36-35b-fp8")
    job["model"] = "dummy:Qwen3.6-35B-A3B-FP8.json@20"
    s["jobs"]["speed.qwen36-35b-fp8.l20"] = job
    rc, doc, _ = _run(tmp_path, capsys, s)
    prof = doc["profiles"][MODEL + "@20"]
    b40 = _step().by_family
    assert prof["layers"] == 20 and prof["base_model"] == MODEL
    assert prof["bandwidth_efficiency"]["moe"]["value"] == pytest.approx(b40["moe"] / 2 / 3000e3 / (700 - 180), abs=1e-3)
    assert prof["bandwidth_efficiency"]["lm_head_bf16"]["value"] == pytest.approx(
        b40["lm_head_bf16"] / 3000e3 / (420 - 1.5), abs=1e-3)
    # the bundled file may hold the whole model's own profile, which select_profile prefers
    assert decode_model.select_profile(
        {"profiles": {MODEL: {**prof, "model": MODEL, "layers": None}, MODEL + "@20": prof}},
        load_model(MODEL))[1].startswith("this model's profile")
    doc = _only(doc, MODEL + "@20")
    chosen, how = decode_model.select_profile(doc, load_model(MODEL))
    assert chosen is prof and how.startswith("measured on NVIDIA H200 for the first 20 layers of this model")
    # 598 launches in 20 layers: gemv2T (1), HtoD (3), DtoH (3) launched < 5 times (5 full-attention
    # layers in 20) are per step, the other 591 per layer: 591 x 40/20 + 7
    n, status = decode_model.kernels_per_step(load_model(MODEL), chosen, 0)
    assert n == 591 * 2 + 7 and status.startswith("derived from the NVIDIA H200 profile") and "+ 7 per step" in status


def _half_depth_doc(tmp_path, capsys):
    s = _summary()
    job = s["jobs"].pop("speed.qwen36-35b-fp8")
    job["model"] = "dummy:Qwen3.6-35B-A3B-FP8.json@20"
    s["jobs"]["speed.qwen36-35b-fp8.l20"] = job
    rc, doc, _ = _run(tmp_path, capsys, s)
    assert rc == 0
    return _only(doc, MODEL + "@20")


def _only(doc, key):
    """The script adds to the bundled engine_profile.json, which may hold this model's own profile
    (select_profile prefers it): keep only what this test's summary wrote."""
    return dict(doc, profiles={key: doc["profiles"][key]})


def test_step_time_splits_each_family_into_bytes_fixed_per_layer_and_per_step(tmp_path, capsys):
    doc = _half_depth_doc(tmp_path, capsys)
    st = doc["profiles"][MODEL + "@20"]["step_time"]
    b20 = {k: v / 2 for k, v in _step().by_family.items()}  # layer families: half the 40 layers' bytes
    fams = st["families"]
    assert st["layers"] == {"all": 20, "full_attention": 5, "linear_attention": 15}
    assert fams["moe"]["fixed_us"] == pytest.approx(700 - b20["moe"] / 3000e3, abs=0.01)
    assert fams["gdn"]["us"] == 198.0 and fams["gdn"]["launches"] == 90 and fams["gdn"]["layers"] == "linear_attention"
    assert fams["lm_head_bf16"]["fixed_us"] == pytest.approx(420 - _step().by_family["lm_head_bf16"] / 3000e3, abs=0.01)
    assert fams["lm_head_bf16"]["per_step_launches"] == 1 and fams["lm_head_bf16"]["per_step_us"] == 420
    assert fams["copy"] == {"us": 8.0, "launches": 6, "bytes": 0, "fixed_us": 8.0, "per_step_launches": 6,
                            "per_step_us": 8.0, "layers": "all"}
    assert fams["moe"]["per_step_launches"] == 0 and fams["attention"]["layers"] == "full_attention"
    assert sum(f["us"] for f in fams.values()) == pytest.approx(2556.0)


def _fixed_time_by_hand(spec, prof, step_total):
    """(b) recomputed from the profile's step time: bytes / 165 and / 197 GB/s + non-bytes time
    scaled per layer kind + launches x (3.865 - one-element kernel us)."""
    st = prof["step_time"]
    mine = {"all": spec.num_layers, "full_attention": spec.full_attention_layers,
            "linear_attention": spec.linear_attention_layers}
    fixed_us = launches = 0.0
    for f in st["families"].values():
        r = mine[f["layers"]] / st["layers"][f["layers"]]
        if not f["us"]:  # a family the profile did not see (no time, no launches)
            continue
        fixed_us += f["fixed_us"] * ((f["us"] - f["per_step_us"]) * r + f["per_step_us"]) / f["us"]
        launches += (f["launches"] - f["per_step_launches"]) * r + f["per_step_launches"]
    extra = launches * (3.865 - FIXED_US)
    return [step_total / gbs + (fixed_us + extra) * 1e-6 for gbs in (165e9, 197e9)], launches, fixed_us


def test_plan_prints_the_bytes_plus_fixed_time_projection(tmp_path, capsys, monkeypatch):
    doc = _half_depth_doc(tmp_path, capsys)
    monkeypatch.setattr(decode_model, "load_engine_profile", lambda: copy.deepcopy(doc))
    prof = doc["profiles"][MODEL + "@20"]
    for model, target in ((MODEL, 50), ("Qwen/Qwen3-Coder-Next-FP8", 45)):
        spec = load_model(model)
        d = plan(model, "gfx1151", context=4096)
        p = d["projection"]
        for head in (p, p["fp8_lm_head"]):
            t, launches, fixed_us = _fixed_time_by_hand(spec, prof, sum(head["bytes_by_family"].values()))
            b = head["fixed_time"]
            assert b["tok_s"] == [round(1 / t[0], 1), round(1 / t[1], 1)], model
            assert b["launches"] == round(launches) == head["kernels_per_step"]
            assert b["fixed_ms_total"] == pytest.approx(fixed_us / 1e3)
            # host outside the GPU: 4.0 - 2.556 ms less 598 graph-node gaps of (2.1 - 1.5) us
            host = 4.0 - 2.556 - 598 * (2.1 - FIXED_US) / 1e3
            assert b["tok_s_with_host"] == [round(1 / (t[0] + host / 1e3), 1), round(1 / (t[1] + host / 1e3), 1)]
        # (a): the H100 efficiencies at 212 GB/s with the derived launch count
        a = sum(byts / ((prof["bandwidth_efficiency"][f]["value"] or decode_model.UNMEASURED_EFFICIENCY[0]) * 212e9)
                for f, byts in p["bytes_by_family"].items())
        assert p["expected_tok_s"][0] == round(1 / (a + p["kernels_per_step"] * 3.865e-6), 1)
        text = render(d)
        for needle in ("(a) NVIDIA H200 efficiency carried over, a pessimistic floor", "(b) bytes + fixed time",
                       f"issue 14 target >= {target} tok/s", "strix-halo-sglang", "PROJECTION",
                       f"{p['fixed_time']['tok_s'][0]}-{p['fixed_time']['tok_s'][1]} tok/s"):
            assert needle in text, (model, needle)
    # the FP8 head only removes bytes in (b): same fixed time and launches
    assert p["fp8_lm_head"]["fixed_time"]["fixed_ms_total"] == p["fixed_time"]["fixed_ms_total"]
    assert p["fp8_lm_head"]["fixed_time"]["tok_s"][1] > p["fixed_time"]["tok_s"][1]
    # batch 8 or tensor parallel: (b) is not projected, and says why
    assert "batch 1, not 8" in plan(MODEL, "gfx1151", context=4096, batch=8)["projection"]["fixed_time"]["unavailable"]



def test_every_profile_family_lands_in_the_step_and_an_unknown_one_is_refused(tmp_path, capsys):
    """speed_profile's families without weight bytes (activation, rope, ...) keep their time in the step;
    a family the script does not know would drop out of it silently, so the summary is refused."""
    s = _summary()
    graph = s["jobs"]["speed.qwen36-35b-fp8"]["speed"]["profile"]["batch1"]["graph"]
    graph["families"]["activation"] = {"kernels": 20, "us": 30.0, "names": {"triton_poi_fused_mul_silu_0": 20}}
    graph["names"]["triton_poi_fused_mul_silu_0"] = [20, 30.0]
    graph["gpu_us_per_step"] += 30.0
    rc, doc, _ = _run(tmp_path, capsys, s)
    fams = doc["profiles"][MODEL]["step_time"]["families"]
    assert fams["activation"]["us"] == 30.0 and fams["activation"]["bytes"] == 0
    assert "rope" not in fams  # a family the pass did not see adds no entry
    assert sum(f["us"] for f in fams.values()) == pytest.approx(2586.0)
    graph["families"]["speculative"] = {"kernels": 1, "us": 2.0, "names": {}}
    rc, doc, err = _run(tmp_path, capsys, s)
    assert rc == 2 and "['speculative'] are neither plan families nor NO_BYTES" in err


def test_host_time_is_zero_when_the_profiled_gpu_time_exceeds_the_step(tmp_path, capsys, monkeypatch):
    """With vLLM's async scheduling the host overlaps the GPU: GPU busy under the profiler can exceed the
    unprofiled step (run 8). The host then adds nothing to (b), and plan says so instead of a negative time."""
    s = _summary()
    job = s["jobs"].pop("speed.qwen36-35b-fp8")
    job["model"] = "dummy:Qwen3.6-35B-A3B-FP8.json@20"
    job["speed"]["batch1"]["decode_step_ms"] = 2.4  # GPU busy 2.556 ms
    s["jobs"]["speed.qwen36-35b-fp8.l20"] = job
    rc, doc, _ = _run(tmp_path, capsys, s)
    doc = _only(doc, MODEL + "@20")
    monkeypatch.setattr(decode_model, "load_engine_profile", lambda: copy.deepcopy(doc))
    d = plan(MODEL, "gfx1151", context=4096)
    b = d["projection"]["fixed_time"]
    assert b["host_measured_ms"] == pytest.approx(2.4 - 2.556 - 598 * (2.1 - FIXED_US) / 1e3)
    assert b["host_ms"] == 0.0 and b["tok_s_with_host"] == b["tok_s"]
    text = render(d)
    assert f"exceed the unprofiled step by {-b['host_measured_ms']:.2f} ms" in text
    assert "measured there (NVIDIA, not AMD; vLLM's engine, CUDA graphs, dummy weights, its first 20 layers" in text


def test_an_ab_variant_job_is_used_only_when_named():
    """device_run's `.separate` job (fused-shared-expert off, a job env) has the default job's model
    key: by default it must not overwrite the product-default profile; named, it is used."""
    summary = {"jobs": {"speed.qwen36-35b-fp8.l20": {"model": "dummy:Qwen3.6-35B-A3B-FP8.json@20"},
                        "speed.qwen36-35b-fp8.l20.separate": {"model": "dummy:Qwen3.6-35B-A3B-FP8.json@20",
                                                              "env": {"ROCM_ENABLE_FUSED_SHARED_EXPERT": "0"}}}}
    etp = _script()
    assert list(etp._jobs(summary, None)) == ["speed.qwen36-35b-fp8.l20"]
    assert list(etp._jobs(summary, ["speed.qwen36-35b-fp8.l20.separate"])) == ["speed.qwen36-35b-fp8.l20.separate"]
