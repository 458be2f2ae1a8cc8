#!/usr/bin/env python3
"""Device side of the engine harness: run on the GPU machine from the repository root.

    python3 scripts/engine/device_run.py PLAN [--jobs NAME ...] [--serial] [--budget-s 570]

PLAN is one of PLANS below. It installs the carried wheels (.engine-carry/wheels, rocm-enable's
own wheel among them, so vLLM loads the plugin through its `vllm.general_plugins` entry point),
unpacks each carried vLLM, writes a `sitecustomize.py` that activates the simulated arch in every
Python process that has ROCM_ENABLE_SIM_ARCH set (engine core, vLLM's model-inspection subprocess,
`vllm serve`'s processes: nothing in vLLM or in the plugin is patched by the harness), generates
the tiny checkpoints, then runs the plan's configurations in parallel on the one GPU (each its
own process and its own small slice of GPU memory), compares them with the transformers
reference, and writes $OUT/summary.json, $OUT/reference.json and $OUT/logs.tar.xz.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CARRY = os.path.join(ROOT, ".engine-carry")
WORK = "/tmp/rocm-enable-engine"
OUT = os.environ.get("OUT", os.path.join(WORK, "out"))
CHECKPOINTS = [(f, q) for f in ("next", "qwen36") for q in ("fp8-block", "fp8-channel", "bf16")]
BUNDLED = os.path.join(ROOT, "rocm_enable", "models", "configs")

SITECUSTOMIZE = '''# written by scripts/engine/device_run.py: the simulated arch in every process that asks for it
import os
if os.environ.get("ROCM_ENABLE_SIM_ARCH"):
    from rocm_enable.sim.gpu import activate_on_gpu
    activate_on_gpu(os.environ["ROCM_ENABLE_SIM_ARCH"])
'''


def llm(name, model, mode, vllm="0.32.0", arch="gfx1151", extra=(), timeout=480):
    return {"name": name, "kind": "llm", "model": model, "mode": mode, "vllm": vllm, "arch": arch,
            "extra": list(extra), "timeout": timeout}


def serve(name, model, vllm="0.32.0", arch="gfx1151", extra=(), timeout=420):
    return {"name": name, "kind": "serve", "model": model, "vllm": vllm, "arch": arch,
            "extra": list(extra), "timeout": timeout}


def speed(name, config, min_gpu_gib, vllm="0.32.0", arch="gfx1151", extra=(), timeout=400, layers=None,
          env=None):
    """A full-size bundled config with dummy weights (engine_job.py --speed); skipped on a GPU with
    less than min_gpu_gib of memory (weights + the 4 GiB KV cache + runtime). `layers` keeps only
    the first N decoder layers (same widths, same layer pattern): an FP8-vs-BF16 pair that fits
    an 80 GB GPU, compared per layer."""
    model = f"dummy:{config}" + (f"@{layers}" if layers else "")
    job = {"name": name, "kind": "llm", "model": model, "mode": "default", "vllm": vllm,
           "arch": arch, "extra": ["--speed", *extra], "timeout": timeout, "min_gpu_gib": min_gpu_gib}
    if env:  # the job's own switches (an A/B of one record), kept in the summary
        job["env"] = dict(env)
    return job


CK = [f"{f}-{q}" for f, q in CHECKPOINTS]
PLANS = {
    # first look: eager and torch.compile (no CUDA graphs) on every checkpoint; graphs on one
    "faults": [llm(f"{c}.eager", c, "eager") for c in CK]
    + [llm(f"{c}.compile", c, "compile") for c in CK]
    + [llm("next-fp8-block.default", "next-fp8-block", "default"),
       llm("next-fp8-block.eager.v033", "next-fp8-block", "eager", vllm="0.33.0"),
       llm("next-fp8-block.eager.v034", "next-fp8-block", "eager", vllm="0.34.0"),
       serve("serve.next-fp8-block.eager", "next-fp8-block", extra=["--enforce-eager"])],
    # vLLM's defaults (torch.compile + FULL_AND_PIECEWISE CUDA graphs, default capture sizes)
    "matrix": [llm(f"{c}.default", c, "default") for c in CK]
    + [llm(f"{c}.eager", c, "eager") for c in ("next-fp8-block", "qwen36-fp8-block")]
    + [llm(f"{c}.default.{a}", c, "default", arch=a) for a in ("gfx1100", "gfx1201")
       for c in ("next-fp8-block", "qwen36-fp8-block")]
    + [llm(f"{c}.default.v033", c, "default", vllm="0.33.0") for c in ("next-fp8-block", "qwen36-fp8-block")]
    + [llm(f"{c}.default.v034", c, "default", vllm="0.34.0") for c in ("next-fp8-block", "qwen36-fp8-block")]
    + [serve("serve.next-fp8-block", "next-fp8-block")],
    # the smallest call that completes the CUDA-graph evidence after `faults` (~6 min of device time)
    "graphs": [llm(f"{c}.default", c, "default") for c in ("qwen36-fp8-block", "qwen36-fp8-channel", "next-fp8-channel")]
    + [llm("next-fp8-block.default.gfx1100", "next-fp8-block", "default", arch="gfx1100"),
       llm("qwen36-fp8-block.default.gfx1201", "qwen36-fp8-block", "default", arch="gfx1201"),
       llm("next-fp8-block.default.v034", "next-fp8-block", "default", vllm="0.34.0"),
       serve("serve.next-fp8-block", "next-fp8-block")],
    # what the last minutes of a session's device time buy: the BF16 MoE path under vLLM's
    # defaults (after moe-expert-ops-code-object), Qwen3.6 FP8 with graphs, the user's `vllm serve`
    "last": [llm("next-bf16.default", "next-bf16", "default"),
             llm("qwen36-fp8-block.default", "qwen36-fp8-block", "default"),
             serve("serve.next-fp8-block.eager", "next-fp8-block", extra=["--enforce-eager"])],
    # everything on the tiny checkpoints that `faults` left: vLLM's defaults (torch.compile +
    # FULL_AND_PIECEWISE graphs) on every checkpoint BF16 included, gfx1100 / gfx1201, 0.33 / 0.34,
    # and the unmodified `vllm serve` with its defaults (~9 min of device time)
    "defaults": [llm(f"{c}.default", c, "default") for c in CK]
    + [llm("next-fp8-block.default.gfx1100", "next-fp8-block", "default", arch="gfx1100"),
       llm("qwen36-fp8-block.default.gfx1201", "qwen36-fp8-block", "default", arch="gfx1201"),
       llm("next-fp8-block.default.v033", "next-fp8-block", "default", vllm="0.33.0"),
       llm("qwen36-fp8-block.default.v034", "qwen36-fp8-block", "default", vllm="0.34.0"),
       serve("serve.next-fp8-block", "next-fp8-block")],
    # the closing correctness call of a session: both families on gfx1151 with vLLM's defaults,
    # BF16, gfx1100, gfx1201 and 0.33 / 0.34 (7 engines in parallel, ~6 min with checkpoints)
    "closing": [llm(f"{c}.default", c, "default") for c in ("next-fp8-block", "qwen36-fp8-block", "next-bf16")]
    + [llm("next-fp8-block.default.gfx1100", "next-fp8-block", "default", arch="gfx1100"),
       llm("qwen36-fp8-block.default.gfx1201", "qwen36-fp8-block", "default", arch="gfx1201"),
       llm("next-fp8-block.default.v033", "next-fp8-block", "default", vllm="0.33.0"),
       llm("qwen36-fp8-block.default.v034", "qwen36-fp8-block", "default", vllm="0.34.0")],
    # issue 18: tensor parallel 2 (± expert parallel) through vLLM's multiprocess executor and NCCL;
    # needs a two-GPU kind (nvidia-h100-x2); TP=1 in the same call is the baseline
    "tp2": [llm(f"{c}.tp{tp}{'.ep' if ep else ''}", c, "default",
                extra=["--tensor-parallel-size", str(tp)] + (["--enable-expert-parallel"] if ep else []))
            for c in ("next-fp8-block", "qwen36-fp8-block") for tp, ep in ((1, False), (2, False), (2, True))],
    # issue 14 point 4: engine-level decode speed and per-step kernel profile on full-size configs
    # with dummy weights, by importance; run with --serial (timings) and --budget-s. min_gpu_gib:
    # `rocm-enable plan`'s text weights (33.3 / 64.6 / 74.9 GiB) + 4 GiB KV + 4 GiB runtime
    "speed": [speed("speed.qwen36-35b-fp8", "Qwen3.6-35B-A3B-FP8.json", 42),
              speed("speed.qwen36-35b-bf16", "Qwen3.6-35B-A3B.json", 73),
              speed("speed.coder-next-80b-fp8", "Qwen3-Coder-Next-FP8.json", 83)],
    # the same questions on an 80 GB H100 (the BF16 35B does not fit there): FP8 and BF16 at half
    # depth (20 of 40 layers, every width and the 3:1 GDN/attention pattern kept), then FP8 whole
    "speed-h100": [speed("speed.qwen36-35b-fp8.l20", "Qwen3.6-35B-A3B-FP8.json", 30, layers=20),
                   speed("speed.qwen36-35b-bf16.l20", "Qwen3.6-35B-A3B.json", 45, layers=20),
                   speed("speed.qwen36-35b-fp8", "Qwen3.6-35B-A3B-FP8.json", 42),
                   # the same FP8 half-depth model with record fused-shared-expert off: its A/B in one call
                   speed("speed.qwen36-35b-fp8.l20.separate", "Qwen3.6-35B-A3B-FP8.json", 30, layers=20,
                         env={"ROCM_ENABLE_FUSED_SHARED_EXPERT": "0"}),
                   # and at full depth, where the step is longest (run 12's A/B at 20 layers: the
                   # fused block -21 % GPU kernel time but -0.75 % step, docs/engine.md)
                   speed("speed.qwen36-35b-fp8.separate", "Qwen3.6-35B-A3B-FP8.json", 42,
                         env={"ROCM_ENABLE_FUSED_SHARED_EXPERT": "0"}),
                   # Qwen3-Coder-Next's own MoE (512 experts, top-10) where no H200 comes: 24 of its
                   # 48 layers (~38 GiB), so its projection need not borrow Qwen3.6's profile
                   speed("speed.coder-next-80b-fp8.l24", "Qwen3-Coder-Next-FP8.json", 46, layers=24)],
}
# --budget-s: what a job needs at least to be worth starting, and what the summary needs at the end
MIN_JOB_S = 120
SUMMARY_RESERVE_S = 25


def sh(cmd, **kw):
    print("+", " ".join(cmd) if isinstance(cmd, list) else cmd, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def setup(versions) -> dict:
    site = os.path.join(WORK, "site")
    os.makedirs(WORK, exist_ok=True)
    sh([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
        "--no-cache-dir", "--upgrade", "--target", site, *glob.glob(os.path.join(CARRY, "wheels", "*.whl"))])
    simsite = os.path.join(WORK, "simsite")
    os.makedirs(simsite, exist_ok=True)
    with open(os.path.join(simsite, "sitecustomize.py"), "w") as f:
        f.write(SITECUSTOMIZE)
    paths = {}
    for v in versions:
        dest = os.path.join(WORK, f"vllm-{v}")
        if not os.path.isdir(os.path.join(dest, "vllm")):
            with tarfile.open(os.path.join(CARRY, f"vllm-{v}.tar.xz")) as tar:
                tar.extractall(dest)
        paths[v] = dest
    return {"site": site, "simsite": simsite, "vllm": paths}


def env_for(env_paths, job) -> dict:
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join([env_paths["simsite"], env_paths["vllm"][job["vllm"]], env_paths["site"]]),
        "ROCM_ENABLE_SIM_ARCH": job["arch"], "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false", "TORCHINDUCTOR_COMPILE_THREADS": "1",
        "VLLM_CACHE_ROOT": os.path.join(WORK, "cache", job["name"]),
        # the lent multi-GPU machines require NVLink multicast off
        "NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1",
    })
    if job["kind"] == "llm" and "--tensor-parallel-size" not in job["extra"]:
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # in-process engine: introspection and profiles
    env.update(job.get("env", {}))
    return env


def make_checkpoints(env_paths, wanted) -> dict:
    models = {}
    procs = {}
    env = dict(os.environ, PYTHONPATH=env_paths["site"])
    for family, quant in CHECKPOINTS:
        if f"{family}-{quant}" not in wanted:
            continue
        d = os.path.join(WORK, "models", f"{family}-{quant}")
        models[f"{family}-{quant}"] = d
        if not os.path.exists(os.path.join(d, "model.safetensors")):
            procs[f"{family}-{quant}"] = subprocess.Popen(
                [sys.executable, "-m", "rocm_enable.models.tiny", d, "--family", family, "--quant", quant], env=env)
    for key, p in procs.items():
        if p.wait() != 0:
            print(f"tiny checkpoint {key} could not be written: its jobs are skipped", flush=True)
            models.pop(key)
    return models


# The linears released Qwen FP8 block checkpoints keep in BF16 (the tiny checkpoints' list, which
# run 1 proved through vLLM's loader): GDN in_proj_ba (Qwen3-Next) / in_proj_a, in_proj_b
# (Qwen3.5/3.6), the router, the shared-expert gate, lm_head. The bundled configs do not carry
# modules_to_not_convert; without it vLLM would build in_proj_ba as a block-FP8 linear of 64 rows.
KEPT_BF16 = {"qwen3_next": ("linear_attn.in_proj_ba", "mlp.gate", "mlp.shared_expert_gate"),
             "qwen3_5_moe": ("linear_attn.in_proj_a", "linear_attn.in_proj_b", "mlp.gate",
                             "mlp.shared_expert_gate")}
LAYER_PREFIX = {"qwen3_next": "model.layers", "qwen3_5_moe": "model.language_model.layers"}
# Fields the bundled Qwen3.6 config leaves out (not verified there) that vLLM's M-RoPE path reads:
# the tiny qwen36 checkpoints' values (run 1). They change no byte a decode step reads.
QWEN36_ROPE = {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25,
               "mrope_section": [11, 11, 10], "mrope_interleaved": True}


def dummy_config(cfg: dict, layers: int | None = None) -> dict:
    """A bundled config as the dummy-weight engine gets it: without the bundle's own notes, with
    the released checkpoints' modules_to_not_convert and Qwen3.6's rope parameters (and only the
    first `layers` decoder layers when given)."""
    cfg = json.loads(json.dumps({k: v for k, v in cfg.items() if not k.startswith("_")}))
    model_type = cfg["model_type"]
    text = cfg.get("text_config", cfg)
    if layers:
        if not 0 < layers <= text["num_hidden_layers"]:
            raise ValueError(f"layers={layers}: the config has {text['num_hidden_layers']}")
        text["num_hidden_layers"] = layers
        if "layer_types" in text:
            text["layer_types"] = text["layer_types"][:layers]
    if model_type == "qwen3_5_moe":
        text.setdefault("rope_parameters", dict(QWEN36_ROPE))
    q = cfg.get("quantization_config")
    if q and q.get("quant_method") == "fp8" and "modules_to_not_convert" not in q:
        kept = [f"{LAYER_PREFIX[model_type]}.{i}.{m}" for i in range(text["num_hidden_layers"])
                for m in KEPT_BF16[model_type]
                if not m.startswith("linear_attn") or text["layer_types"][i] == "linear_attention"]
        q["modules_to_not_convert"] = ["lm_head"] + kept
    return cfg


def dummy_model(spec: str) -> str:
    """A folder holding a bundled full-size config.json (load_format=dummy needs no weights);
    spec is FILE or FILE@LAYERS."""
    config_file, _, layers = spec.partition("@")
    with open(os.path.join(BUNDLED, config_file)) as f:
        cfg = dummy_config(json.load(f), int(layers) if layers else None)
    d = os.path.join(WORK, "dummy", config_file[:-5] + (f".l{layers}" if layers else ""))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(d, "generation_config.json"), "w") as f:  # as the tiny checkpoints have one
        json.dump({"do_sample": False}, f)
    return d


def gpu_memory_gib() -> float | None:
    """Total memory of GPU 0 from nvidia-smi (None when it cannot be read)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
        return int(out.split()[0]) / 1024
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def run_llm(job, env_paths, model_dir, results, logs):
    out = os.path.join(results, job["name"] + ".json")
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "engine", "engine_job.py"), "--model", model_dir,
           "--mode", job["mode"], "--out", out, *job["extra"]]
    with open(os.path.join(logs, job["name"] + ".log"), "w") as log:
        p = subprocess.Popen(cmd, env=env_for(env_paths, job), stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            rc = p.wait(timeout=job["timeout"])
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = "timeout"
    job["rc"] = rc


def _post(url, body, timeout=60):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def run_serve(job, env_paths, model_dir, results, logs, port):
    """The unmodified `vllm serve` (the console script's entry point) and one OpenAI-style request."""
    cmd = [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", model_dir, "--port", str(port),
           "--max-model-len", "1024", "--gpu-memory-utilization", "0.04",
           "--kv-cache-memory-bytes", str(256 << 20), *job["extra"]]
    res = {"cmd": ["vllm", *cmd[3:]], "ok": False}
    t0 = time.time()
    with open(os.path.join(logs, job["name"] + ".log"), "w") as log:
        p = subprocess.Popen(cmd, env=env_for(env_paths, job), stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            while time.time() - t0 < job["timeout"] - 30 and p.poll() is None:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                    break
                except Exception:
                    time.sleep(3)
            res["server_up_s"] = round(time.time() - t0, 1)
            if p.poll() is None:
                body = {"model": model_dir, "prompt": "t5 t17 t99 t3 t250 t777", "max_tokens": 8,
                        "temperature": 0}
                res["request"] = body
                res["response"] = _post(f"http://127.0.0.1:{port}/v1/completions", body)
                res["ok"] = bool(res["response"].get("choices"))
            else:
                res["error"] = f"server exited rc={p.returncode}"
        except Exception as exc:
            res["error"] = repr(exc)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    res["wall_s"] = round(time.time() - t0, 1)
    job["rc"] = 0 if res["ok"] else 1
    with open(os.path.join(results, job["name"] + ".serve.json"), "w") as f:
        json.dump(res, f)


def summarize(jobs, results) -> dict:
    summary = {}
    for job in jobs:
        name = job["name"]
        entry = {"kind": job["kind"], "model": job["model"], "vllm": job["vllm"], "arch": job["arch"],
                 "rc": job.get("rc"), "timeout": job["timeout"]}
        if job.get("env"):
            entry["env"] = job["env"]
        path = os.path.join(results, name + (".serve.json" if job["kind"] == "serve" else ".json"))
        if os.path.exists(path):
            with open(path) as f:
                r = json.load(f)
            if job["kind"] == "serve":
                entry.update({k: r.get(k) for k in ("ok", "server_up_s", "error", "cmd")})
                entry["response"] = r.get("response")
            else:
                entry.update({k: r.get(k) for k in ("ok", "engine_up_s", "wall_s", "error", "versions",
                                                     "config", "modules", "speed", "llm_kwargs")})
                if r.get("traceback"):
                    entry["traceback_tail"] = r["traceback"][-2500:]
                if r.get("fixes"):
                    entry["fixes_applied"] = [n for n, s, _ in r["fixes"] if s == "applied"]
                    entry["fixes_other"] = [[n, s, why[:120]] for n, s, why in r["fixes"] if s != "applied"]
                if r.get("run"):
                    entry["generate_s"] = r["run"].get("generate_s")
                    entry["prefix_cache_metrics"] = r["run"].get("prefix_cache_metrics")
        else:
            log = os.path.join(os.path.dirname(results), "logs", name + ".log")
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    entry["log_tail"] = f.read()[-2500:]
        summary[name] = entry
    return summary


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("plan", choices=sorted(PLANS))
    ap.add_argument("--jobs", nargs="*", help="only these job names of the plan")
    ap.add_argument("--serial", action="store_true", help="one job at a time (timings)")
    ap.add_argument("--job-timeout-s", type=int,
                    help="cap every job's timeout (so the summary is written inside a short call)")
    ap.add_argument("--budget-s", type=int,
                    help=f"wall seconds for the whole call: each job's timeout is capped to what is left "
                         f"less {SUMMARY_RESERVE_S} s for the summary, and a job with under {MIN_JOB_S} s "
                         "left is skipped")
    args = ap.parse_args(argv)
    t0 = time.time()
    jobs = [dict(j) for j in PLANS[args.plan] if not args.jobs or j["name"] in args.jobs]
    for job in jobs:
        if args.job_timeout_s:
            job["timeout"] = min(job["timeout"], args.job_timeout_s)
    gpu_gib = gpu_memory_gib() if any(j.get("min_gpu_gib") for j in jobs) else None
    env_paths = setup(sorted({j["vllm"] for j in jobs}))
    print(f"setup {time.time() - t0:.0f}s", flush=True)
    wanted = {j["model"] for j in jobs if not j["model"].startswith("dummy:")}
    models = make_checkpoints(env_paths, wanted) if wanted else {}
    print(f"checkpoints {time.time() - t0:.0f}s", flush=True)
    results, logs = os.path.join(WORK, "results"), os.path.join(WORK, "logs")
    os.makedirs(results, exist_ok=True)
    os.makedirs(logs, exist_ok=True)
    threads = []
    for i, job in enumerate(jobs):
        model_dir = dummy_model(job["model"][6:]) if job["model"].startswith("dummy:") else models.get(job["model"])
        if model_dir is None:
            job["rc"] = "no checkpoint"
            continue
        if gpu_gib is not None and job.get("min_gpu_gib", 0) > gpu_gib:
            job["rc"] = f"skipped: needs {job['min_gpu_gib']} GiB, the GPU has {gpu_gib:.0f} GiB"
            continue
        if args.budget_s:
            left = args.budget_s - (time.time() - t0) - SUMMARY_RESERVE_S
            if left < MIN_JOB_S:
                job["rc"] = f"skipped: {left:.0f} s of the budget left"
                continue
            job["timeout"] = int(min(job["timeout"], left))
        if job["kind"] == "serve":
            t = threading.Thread(target=run_serve, args=(job, env_paths, model_dir, results, logs, 8100 + i))
        else:
            t = threading.Thread(target=run_llm, args=(job, env_paths, model_dir, results, logs))
        t.start()
        threads.append(t)
        if args.serial:
            t.join()
        else:
            time.sleep(1.0)
    for t in threads:
        t.join()
    print(f"engines done {time.time() - t0:.0f}s", flush=True)
    ref_path = os.path.join(WORK, "reference.json")
    if models:
        ref_env = dict(os.environ, PYTHONPATH=env_paths["site"])
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "engine", "reference.py"), results,
                        "--out", ref_path], env=ref_env)
    summary = summarize(jobs, results)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump({"plan": args.plan, "wall_s": round(time.time() - t0, 1), "gpu_gib": gpu_gib, "jobs": summary},
                  f, indent=1)
    if os.path.exists(ref_path):
        os.replace(ref_path, os.path.join(OUT, "reference.json"))
    with tarfile.open(os.path.join(OUT, "logs.tar.xz"), "w:xz") as tar:
        tar.add(logs, arcname="logs")
        tar.add(results, arcname="results")
    for name, e in summary.items():
        status = "OK " if e.get("ok") else "ERR"
        print(f"{status} {name:40s} rc={e.get('rc')} up={e.get('engine_up_s') or e.get('server_up_s')} "
              f"{(e.get('error') or '')[:200]}", flush=True)
    print(f"all done {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
