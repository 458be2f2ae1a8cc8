"""scripts/engine: every plan names a checkpoint the harness writes, and each mode gives vLLM the
engine arguments docs/engine.md says it does (the GPU run itself is not a CI test)."""
from __future__ import annotations

import os
import sys
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts", "engine"))

import device_run  # noqa: E402
import engine_job  # noqa: E402


def test_plans_name_known_checkpoints_and_configs():
    known = {f"{f}-{q}" for f, q in device_run.CHECKPOINTS}
    for plan, jobs in device_run.PLANS.items():
        names = [j["name"] for j in jobs]
        assert len(names) == len(set(names)), plan
        for job in jobs:
            if job["model"].startswith("dummy:"):
                assert os.path.exists(os.path.join(device_run.BUNDLED, job["model"][6:].partition("@")[0])), job
            else:
                assert job["model"] in known, job


def _args(tmp_path, mode, **kw):
    (tmp_path / "config.json").write_text('{"architectures": ["Qwen3NextForCausalLM"]}')
    base = dict(model=str(tmp_path), gpu_util=0.05, kv_bytes=1 << 20, tensor_parallel_size=1,
                enable_expert_parallel=False, speed=False, mode=mode, extra="{}")
    base.update(kw)
    return SimpleNamespace(**base)


def test_default_mode_leaves_vllm_defaults(tmp_path):
    kw = engine_job.engine_kwargs(_args(tmp_path, "default"))
    assert "compilation_config" not in kw and "enforce_eager" not in kw
    assert kw["enable_prefix_caching"] and kw["enable_chunked_prefill"]
    assert kw["max_num_batched_tokens"] == engine_job.BATCH_TOKENS


def test_modes_and_parallelism(tmp_path):
    assert engine_job.engine_kwargs(_args(tmp_path, "eager"))["enforce_eager"] is True
    assert engine_job.engine_kwargs(_args(tmp_path, "compile"))["compilation_config"] == {"cudagraph_mode": "NONE"}
    kw = engine_job.engine_kwargs(_args(tmp_path, "default", tensor_parallel_size=2, enable_expert_parallel=True))
    assert kw["tensor_parallel_size"] == 2 and kw["enable_expert_parallel"] is True


def test_prompts_cover_prefix_sharing_and_chunked_prefill():
    ps = engine_job.prompts(4096)
    assert len(ps) == 8 and len({len(p) for p in ps}) == 8
    assert ps[2][:64] == ps[3][:64]
    assert max(len(p) for p in ps) > engine_job.BATCH_TOKENS
    assert all(4 <= t < 4096 - 8 for p in ps for t in p)
