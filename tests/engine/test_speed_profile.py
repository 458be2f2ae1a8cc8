"""scripts/engine speed mode on CPU: kernel-name and op-chain family attribution on names vLLM 0.32.0,
rocm-enable's Triton kernels, inductor and cuBLAS produce, per-step arithmetic of the profile
windows, the graph switch, and the dummy-weight configs the speed plan writes."""
from __future__ import annotations

import math
import os
import sys
from types import SimpleNamespace

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts", "engine"))

import device_run  # noqa: E402
import engine_job  # noqa: E402
import speed_profile as sp  # noqa: E402

CUBLAS_GEMV = ("void gemv2T_kernel_val<int, int, __nv_bfloat16, __nv_bfloat16, float, 128, 16, 4, 4, false, false, "
               "cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<__nv_bfloat16 const>, float> >(float, float)")
ARGMAX = ("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::ArgMaxOps<float>, "
          "unsigned int, long, 4, 4> >(at::native::ReduceOp<float, at::native::ArgMaxOps<float>, unsigned int, long, 4, 4>)")


@pytest.mark.parametrize("name,family", [
    (CUBLAS_GEMV, "dense"),
    ("nvjet_tst_64x8_64x16_4x1_v_bz_TNT", "dense"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_"
     "kernel__5x_cublas", "dense"),
    ("w8a16_gemv_kernel", "dense"), ("w8a16_gemm_kernel", "dense"),
    ("triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_0", "norm"),
    ("layer_norm_gated_fwd_kernel", "norm"),
    ("triton_poi_fused_mul_silu_slice_1", "activation"),
    ("fused_recurrent_gated_delta_rule_packed_decode_kernel", "gdn"),
    ("fused_sigmoid_gating_delta_rule_update_kernel", "gdn"),
    ("chunk_gated_delta_rule_fwd_kernel_h_blockdim64", "gdn"),
    ("_causal_conv1d_update_kernel", "conv"),
    ("paged_decode_kernel", "attention"), ("split_combine_kernel", "attention"),
    ("reshape_and_cache_kernel_flash", "attention"), ("kernel_unified_attention_3d", "attention"),
    ("fused_moe_kernel", "moe"), ("moe_align_kernel", "moe"),
    ("Memcpy HtoD (Pinned -> Device)", "copy"), ("Memset (Device)", "copy"),
    ("_gumbel_sample_kernel", "sampling"), ("_topk_log_softmax_kernel", "sampling"), (ARGMAX, "sampling"),
    ("_prepare_decode_inputs_kernel", "runner"), ("_prepare_rope_positions_kernel", "runner"),
    ("_compute_slot_mappings_kernel", "runner"),
    ("triton_poi_fused_embedding_0", "other"),
])
def test_name_family(name, family):
    assert sp.name_family(name) == family


def test_every_rule_names_a_known_family():
    ops = {f for _, f in sp.OP_FAMILIES} - {"gemm"} | {"lm_head", "router", "dense", "conv"}
    assert {f for f, _ in sp.NAME_RULES} | ops | {"other"} <= set(sp.FAMILIES)


VOCAB, EXPERTS = 248320, 256


def _op(name, shapes=()):
    return (name, list(shapes))


@pytest.mark.parametrize("chain,kernel,family,op", [
    ([_op("rocm_enable::w8a16_fused_experts", [[1, 2048], [256, 1024, 512]]), _op("vllm::moe_forward_shared")],
     "w8a16_gemv_kernel", "moe", "rocm_enable::w8a16_fused_experts"),
    # the shared expert inside vLLM's MoE op runs the dense W8A16 linear
    ([_op("rocm_enable::w8a16_linear", [[1, 2048], [1024, 512], [8, 16]]), _op("vllm::moe_forward_shared")],
     "w8a16_gemv_kernel", "dense", "rocm_enable::w8a16_linear"),
    ([_op("rocm_enable::w8a16_linear", [[1, 2048], [VOCAB, 512], [1940, 16]])], "w8a16_gemv_kernel", "lm_head",
     "rocm_enable::w8a16_linear"),
    ([_op("aten::mm", [[1, 2048], [2048, VOCAB]]), _op("vllm::rocm_unquantized_gemm", [[1, 2048], [VOCAB, 2048], []])],
     CUBLAS_GEMV, "lm_head", "aten::mm"),
    ([_op("aten::mm", [[1, 2048], [2048, 256]]), _op("vllm::rocm_unquantized_gemm")], CUBLAS_GEMV, "router", "aten::mm"),
    ([_op("vllm::rocm_unquantized_gemm", [[1, 2048], [1, 2048], []]), _op("vllm::moe_forward_shared")],
     CUBLAS_GEMV, "router", "vllm::rocm_unquantized_gemm"),
    # fused-shared-expert: the router and the shared-expert gate as one [E + 1, H] GEMM
    ([_op("vllm::rocm_unquantized_gemm", [[1, 2048], [EXPERTS + 1, 2048], []]), _op("vllm::moe_forward")],
     CUBLAS_GEMV, "router", "vllm::rocm_unquantized_gemm"),
    ([_op("vllm::rocm_unquantized_gemm", [[1, 2048], [EXPERTS + 2, 2048], []])],
     CUBLAS_GEMV, "dense", "vllm::rocm_unquantized_gemm"),
    ([_op("aten::addmm", [[64], [1, 2048], [2048, 64]])], CUBLAS_GEMV, "dense", "aten::addmm"),
    ([_op("aten::fill_"), _op("vllm::unified_attention_with_output")], "paged_decode_kernel", "attention",
     "vllm::unified_attention_with_output"),
    # a silent fallback inside the attention op is still attention, and keeps its own name
    ([_op("vllm::unified_attention_with_output")], "kernel_unified_attention_3d", "attention",
     "vllm::unified_attention_with_output"),
    ([_op("vllm::qwen_gdn_attention_core")], "_causal_conv1d_update_kernel", "conv", "vllm::qwen_gdn_attention_core"),
    ([_op("vllm::qwen_gdn_attention_core")], "fused_recurrent_gated_delta_rule_packed_decode_kernel", "gdn",
     "vllm::qwen_gdn_attention_core"),
    ([_op("triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_0"), _op("## Call CompiledFxGraph fabc ##")],
     "triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_0", "norm", "kernel name"),
])
def test_chain_family(chain, kernel, family, op):
    assert sp.chain_family(chain, kernel, VOCAB, EXPERTS) == (family, op)


def _session():
    """Two windows of a synthetic session: short (prefill only) and long (prefill + 4 decode steps).
    Prefill: one 'w8a16_gemm_kernel' of 50 us. Each decode step: 'w8a16_gemv_kernel' 3 times
    (2 for the routed experts at 10 us, 1 dense at 4 us), one norm of 2 us and one H2D copy of 1 us."""
    marks = {"eager:b1:short": (0.0, 100.0), "eager:b1:long": (200.0, 400.0),
             "graph:b1:short": (500.0, 600.0), "graph:b1:long": (700.0, 900.0)}
    device, linked = [], []
    experts = ((_op("rocm_enable::w8a16_fused_experts"),), 10.0)
    dense = ((_op("rocm_enable::w8a16_linear", [[1, 2048], [4096, 512]]),), 4.0)
    norm = ((_op("triton_red_fused_add_mean_mul_pow_rsqrt_0"),), 2.0)
    for base, mode in ((0.0, "eager"), (500.0, "graph")):
        for t0, steps in ((base, 0), (base + 200.0, 4)):
            device.append(("w8a16_gemm_kernel", t0 + 1, 50.0))
            if mode == "eager":
                linked.append((t0 + 1, dense[0], "w8a16_gemm_kernel", 50.0))
            for s in range(steps):
                t = t0 + 60 + 30 * s
                for chain, dur in (experts, experts, dense):
                    device.append(("w8a16_gemv_kernel", t, dur))
                    if mode == "eager":
                        linked.append((t, chain, "w8a16_gemv_kernel", dur))
                device.append(("triton_red_fused_add_mean_mul_pow_rsqrt_0", t + 1, 2.0))
                device.append(("Memcpy HtoD (Pinned -> Device)", t + 2, 1.0))
                if mode == "eager":
                    linked.append((t + 1, norm[0], "triton_red_fused_add_mean_mul_pow_rsqrt_0", 2.0))
    return device, linked, marks


def test_profile_batch_splits_one_kernel_name_over_families_by_op():
    device, linked, marks = _session()
    out = sp.profile_batch(device, linked, marks, 1, graph_steps=4, eager_steps=4, vocab=VOCAB, num_experts=EXPERTS)
    for mode in ("graph", "eager"):
        p = out[mode]
        assert p["kernels_per_step"] == 4 and p["copies_per_step"] == 1
        assert p["gpu_us_per_step"] == pytest.approx(10 + 10 + 4 + 2 + 1)
        fams = p["families"]
        # the one kernel name 'w8a16_gemv_kernel' goes to moe (2 launches, 20 us) and dense (1, 4 us)
        assert fams["moe"]["kernels"] == 2 and fams["moe"]["us"] == pytest.approx(20)
        assert fams["dense"]["kernels"] == 1 and fams["dense"]["us"] == pytest.approx(4)
        assert fams["norm"]["us"] == pytest.approx(2) and fams["copy"]["kernels"] == 1
        assert fams["moe"]["share"] == pytest.approx(20 / 27, abs=1e-4)
        assert fams["moe"]["decided_by"] == ["rocm_enable::w8a16_fused_experts"]
        assert "w8a16_gemm_kernel" not in p["names"]  # prefill only: cancels out
    assert out["graph_kernels_visible"] == 1.0 and out["graph_vs_eager_launch_diff"] == {}


def test_graph_pass_without_kernels_inside_graphs_shows():
    device, linked, marks = _session()
    # CUPTI reporting nothing inside graph replays: the graph windows keep only the copies
    device = [d for d in device if not (d[1] >= 500 and not d[0].startswith("Memcpy"))]
    out = sp.profile_batch(device, linked, marks, 1, 4, 4, VOCAB, EXPERTS)
    assert out["graph_kernels_visible"] == 0
    assert out["graph_vs_eager_launch_diff"]["w8a16_gemv_kernel"] == [0, 3.0]


def test_graphs_off_switches_and_restores():
    v2 = SimpleNamespace(cudagraph_manager=SimpleNamespace(_graphs_captured=True))
    with engine_job.graphs_off(v2) as what:
        assert v2.cudagraph_manager._graphs_captured is False and what.endswith("._graphs_captured")
    assert v2.cudagraph_manager._graphs_captured is True
    v1 = SimpleNamespace(cudagraph_manager=None, cudagraph_dispatcher=SimpleNamespace(keys_initialized=True))
    with pytest.raises(KeyError):
        with engine_job.graphs_off(v1):
            assert v1.cudagraph_dispatcher.keys_initialized is False
            raise KeyError("restored even on error")
    assert v1.cudagraph_dispatcher.keys_initialized is True
    with pytest.raises(RuntimeError, match="no CUDA-graph dispatch switch"):
        with engine_job.graphs_off(SimpleNamespace()):
            pass


def test_speed_engine_arguments(tmp_path):
    (tmp_path / "config.json").write_text('{"architectures": ["Qwen3_5MoeForConditionalGeneration"], '
                                          '"vision_config": {}}')
    args = SimpleNamespace(model=str(tmp_path), gpu_util=0.05, kv_bytes=1 << 20, tensor_parallel_size=1,
                           enable_expert_parallel=False, speed=True, mode="default", extra="{}")
    kw = engine_job.engine_kwargs(args)
    assert kw["load_format"] == "dummy" and kw["language_model_only"] is True
    assert "compilation_config" not in kw and "enforce_eager" not in kw  # vLLM's graphs and compile
    assert kw["max_num_seqs"] == max(engine_job.SPEED_BATCHES)
    assert kw["max_model_len"] >= 512 + 256
    ps = engine_job.speed_prompts(8, 512, 248320)
    assert len(ps) == 8 and {len(p) for p in ps} == {512}
    assert max(max(p) for p in ps) < engine_job.SPEED_TOKEN_MAX


def _bundled(name):
    import json
    with open(os.path.join(device_run.BUNDLED, name)) as f:
        return json.load(f)


def test_dummy_config_keeps_the_released_bf16_linears():
    cfg = device_run.dummy_config(_bundled("Qwen3.6-35B-A3B-FP8.json"))
    assert not [k for k in cfg if k.startswith("_")]
    kept = cfg["quantization_config"]["modules_to_not_convert"]
    text = cfg["text_config"]
    assert "model.language_model.layers.0.linear_attn.in_proj_a" in kept
    assert "model.language_model.layers.3.linear_attn.in_proj_a" not in kept  # layer 3: full attention
    assert "model.language_model.layers.39.mlp.gate" in kept and "lm_head" in kept
    n_linear = text["layer_types"].count("linear_attention")
    assert len(kept) == 1 + 2 * n_linear + 2 * text["num_hidden_layers"]
    assert text["rope_parameters"]["mrope_section"] == [11, 11, 10]
    nxt = device_run.dummy_config(_bundled("Qwen3-Coder-Next-FP8.json"))
    assert "model.layers.0.linear_attn.in_proj_ba" in nxt["quantization_config"]["modules_to_not_convert"]
    assert "rope_parameters" not in nxt
    bf16 = device_run.dummy_config(_bundled("Qwen3.6-35B-A3B.json"))
    assert "quantization_config" not in bf16


def test_speed_jobs_skip_gpus_their_weights_do_not_fit():
    """min_gpu_gib = rocm-enable plan's text weights + the 4 GiB KV cache + 4 GiB runtime, rounded up."""
    from rocm_enable.models import load_model
    from rocm_enable.plan import components

    hf_id = {"Qwen3.6-35B-A3B-FP8.json": "Qwen/Qwen3.6-35B-A3B-FP8", "Qwen3.6-35B-A3B.json": "Qwen/Qwen3.6-35B-A3B",
             "Qwen3-Coder-Next-FP8.json": "Qwen/Qwen3-Coder-Next-FP8"}
    for job in device_run.PLANS["speed"]:
        comps = components(load_model(hf_id[job["model"][6:]]))
        text = sum(c.bytes for c in comps if not c.name.startswith("vision")) / 2**30
        assert job["min_gpu_gib"] == math.ceil(text + engine_job.SPEED_KV_BYTES / 2**30 + 4), job["name"]
        assert "--speed" in job["extra"]
    assert [j["name"] for j in device_run.PLANS["speed"]][0] == "speed.qwen36-35b-fp8"


def test_speed_plan_main_budget_and_memory_gating(tmp_path, monkeypatch):
    """device_run.main on CPU with the engine jobs stubbed: the 80B job is skipped on an 80 GB GPU,
    every started job's timeout fits the budget, and the summary is written."""
    import json

    started = []
    monkeypatch.setattr(device_run, "WORK", str(tmp_path))
    monkeypatch.setattr(device_run, "OUT", str(tmp_path / "out"))
    monkeypatch.setattr(device_run, "setup", lambda versions: {"site": "", "simsite": "", "vllm": {}})
    monkeypatch.setattr(device_run, "gpu_memory_gib", lambda: 79.6)

    def fake_run(job, env_paths, model_dir, results, logs):
        started.append((job["name"], job["timeout"]))
        assert json.load(open(os.path.join(model_dir, "config.json")))["model_type"]
        job["rc"] = 0
    monkeypatch.setattr(device_run, "run_llm", fake_run)
    device_run.main(["speed", "--serial", "--budget-s", "570"])
    summary = json.load(open(tmp_path / "out" / "summary.json"))
    assert [n for n, _ in started] == ["speed.qwen36-35b-fp8", "speed.qwen36-35b-bf16"]
    assert all(t <= 570 - device_run.SUMMARY_RESERVE_S for _, t in started)
    assert summary["jobs"]["speed.coder-next-80b-fp8"]["rc"].startswith("skipped: needs 83 GiB")
    assert summary["jobs"]["speed.qwen36-35b-fp8"]["model"] == "dummy:Qwen3.6-35B-A3B-FP8.json"
    started.clear()
    device_run.main(["speed", "--serial", "--budget-s", str(device_run.MIN_JOB_S + device_run.SUMMARY_RESERVE_S - 5)])
    summary = json.load(open(tmp_path / "out" / "summary.json"))
    assert not started and summary["jobs"]["speed.qwen36-35b-fp8"]["rc"].startswith("skipped: ")


def test_a_jobs_own_switch_reaches_its_engine_and_the_summary(tmp_path, monkeypatch):
    """speed-h100's fused-shared-expert A/B: the `.separate` job's engine process gets
    ROCM_ENABLE_FUSED_SHARED_EXPERT=0, the default job does not, and the summary says which ran how."""
    import json

    envs = {}
    monkeypatch.setattr(device_run, "WORK", str(tmp_path))
    monkeypatch.setattr(device_run, "OUT", str(tmp_path / "out"))
    monkeypatch.setattr(device_run, "setup", lambda versions: {"site": "", "simsite": "", "vllm": {"0.32.0": ""}})
    monkeypatch.setattr(device_run, "gpu_memory_gib", lambda: 79.6)
    monkeypatch.delenv("ROCM_ENABLE_FUSED_SHARED_EXPERT", raising=False)

    def fake_run(job, env_paths, model_dir, results, logs):
        envs[job["name"]] = device_run.env_for(env_paths, job)
        job["rc"] = 0
    monkeypatch.setattr(device_run, "run_llm", fake_run)
    device_run.main(["speed-h100", "--serial", "--budget-s", "570", "--jobs", "speed.qwen36-35b-fp8.l20",
                     "speed.qwen36-35b-fp8.l20.separate"])
    assert envs["speed.qwen36-35b-fp8.l20.separate"]["ROCM_ENABLE_FUSED_SHARED_EXPERT"] == "0"
    assert "ROCM_ENABLE_FUSED_SHARED_EXPERT" not in envs["speed.qwen36-35b-fp8.l20"]
    jobs = json.load(open(tmp_path / "out" / "summary.json"))["jobs"]
    assert jobs["speed.qwen36-35b-fp8.l20.separate"]["env"] == {"ROCM_ENABLE_FUSED_SHARED_EXPERT": "0"}
    assert "env" not in jobs["speed.qwen36-35b-fp8.l20"]
    assert jobs["speed.qwen36-35b-fp8.l20.separate"]["model"] == jobs["speed.qwen36-35b-fp8.l20"]["model"]


def test_speed_runs_end_to_end_on_a_stand_in_engine(monkeypatch):
    """engine_job.speed with a CPU stand-in for the in-process engine (generate runs a matmul per
    token): the timing, the one-session profile with its marked windows, the graph switch and the
    results' JSON all work; the CUDA-only device numbers fail soft and say why."""
    import json
    import time

    import torch

    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    runner = SimpleNamespace(cudagraph_manager=SimpleNamespace(_graphs_captured=True))
    seen_switch = []
    x = torch.randn(32, 32)

    def generate(prompts, sp, use_tqdm=False):
        seen_switch.append(runner.cudagraph_manager._graphs_captured)
        if len(prompts) == 8 and sp.max_tokens > 1 and not runner.cudagraph_manager._graphs_captured:
            raise RuntimeError("stand-in: the batch-8 pass without graphs fails")
        for _ in range(sp.max_tokens):
            torch.mm(x, x)
            time.sleep(0.001)  # a decode step of at least 1 ms: the timing's difference stays positive
        out = SimpleNamespace(token_ids=[5] * sp.max_tokens)
        return [SimpleNamespace(outputs=[out]) for _ in prompts]

    hf = SimpleNamespace(num_experts=256)
    mc = SimpleNamespace(get_vocab_size=lambda: 248320, hf_text_config=hf)
    vc = SimpleNamespace(model_config=mc, scheduler_config=SimpleNamespace(max_num_seqs=8, max_num_batched_tokens=8192),
                         compilation_config=SimpleNamespace(cudagraph_capture_sizes=[1, 2, 4, 8, 16],
                                                            cudagraph_mode="FULL_AND_PIECEWISE"),
                         cache_config=SimpleNamespace(kv_cache_memory_bytes=4 << 30, enable_prefix_caching=True))
    worker = SimpleNamespace(model_runner=runner)
    core = SimpleNamespace(model_executor=SimpleNamespace(driver_worker=SimpleNamespace(worker=worker)))
    llm = SimpleNamespace(generate=generate, llm_engine=SimpleNamespace(
        vllm_config=vc, engine_core=SimpleNamespace(engine_core=core)))
    into, saves = {}, []
    args = SimpleNamespace(input_len=16, output_len=6, no_profile=False)
    engine_job.speed(llm, args, into, lambda: saves.append(json.dumps(into)))
    assert "device_error" in into and into["engine"]["max_num_seqs"] == 8
    assert into["batch1"]["output_len"] == 6 and into["batch8"]["batch"] == 8
    assert into["batch8"]["decode_tok_s"] == pytest.approx(8 / (into["batch8"]["decode_step_ms"] / 1e3), rel=1e-3)
    prof = into["profile"]
    assert prof["graph_switch"] == "SimpleNamespace._graphs_captured"
    assert set(prof["batch1"]) >= {"graph", "eager"} and prof["graph_node_kernel_us"] is None
    assert False in seen_switch and runner.cudagraph_manager._graphs_captured is True
    assert len(saves) == 4 and json.loads(saves[-1])["profile"]["batch8"]["eager_steps"] == engine_job.EAGER_STEPS
    # a failed pass is reported and left out; the other passes stand
    assert "stand-in" in prof["errors"]["eager:b8"] and list(prof["errors"]) == ["eager:b8"]
    assert "eager" not in prof["batch8"] and "graph" in prof["batch8"]
