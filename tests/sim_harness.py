"""Run a snippet in a fresh Python process in which vLLM's own RocmPlatform believes it runs on a
given arch (rocm_enable.sim), against a chosen vLLM version. Each arch needs its own process:
vLLM resolves the arch once, at import of vllm.platforms.rocm. The process is forked from a warm
interpreter that has imported torch, transformers & co. but nothing of vLLM or rocm_enable
(tests/zygote.py), which saves most of its start."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass

import zygote

MARK = "@@ROCM_ENABLE_RESULT@@"
ENV_VERSIONS = "ROCM_ENABLE_TEST_VLLM"
# Set by tests/conftest.py: a folder for this test run, shared by its xdist workers.
ENV_VLLM_CACHE = "ROCM_ENABLE_TEST_VLLM_CACHE"


@dataclass(frozen=True)
class VllmUnderTest:
    version: str
    pythonpath: str  # "" for the venv's own vLLM


def vllm_versions_under_test() -> list[VllmUnderTest]:
    spec = os.environ.get(ENV_VERSIONS)
    if not spec:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            return []
        out = subprocess.run([sys.executable, "-c", "import vllm; print(vllm.__version__)"],
                             capture_output=True, text=True)
        return [VllmUnderTest(out.stdout.strip().splitlines()[-1], "")]
    found = []
    for item in spec.split(";"):
        version, _, path = item.partition("=")
        found.append(VllmUnderTest(version.strip(), path.strip()))
    return found


def vllm_cache_root(vllm: VllmUnderTest | None) -> str:
    """VLLM_CACHE_ROOT for a simulated process of `vllm`: one per version, for this test run.

    vLLM caches a model class's inspection (ModelConfig asks whether the architecture generates
    text, ...) in <root>/modelinfos/<class>.json, keyed by a hash of the model's source file;
    without the cache it imports the model in a cold `python -m` subprocess (~9 CPU-s). One file
    name serves every version, so processes of versions whose model source differs (0.34.0's
    qwen3_next.py) overwrote each other's entry and nearly every process paid that subprocess.
    A vLLM tree on PYTHONPATH (an overlay, a patched copy) gets its own folder too."""
    name = vllm.version if vllm else "venv"
    tree = next((p for p in (vllm.pythonpath if vllm else "").split(os.pathsep)
                 if p and os.path.isdir(os.path.join(p, "vllm"))), "")
    if tree:
        name += "-" + hashlib.sha1(os.path.abspath(tree).encode()).hexdigest()[:10]
    return os.path.join(os.environ[ENV_VLLM_CACHE], name)


PRELUDE = """
import json, os, sys, logging
from rocm_enable import sim
if os.environ.get("ROCM_ENABLE_TEST_SIM_ARCH"):
    sim.activate(os.environ["ROCM_ENABLE_TEST_SIM_ARCH"])
result = None
# vLLM configures its "vllm" logger only inside its engine processes; show ours here.
_rocm_enable_log = logging.getLogger("vllm.rocm_enable")
_rocm_enable_log.setLevel(logging.INFO)
_rocm_enable_log.addHandler(logging.StreamHandler(sys.stderr))
"""


def child_environment(arch: str | None, vllm: VllmUnderTest | None,
                      env: dict[str, str] | None) -> dict[str, str]:
    """The environment of a simulated process (run_python's, tests/gates/shared_sim.py's): this
    process's without its rocm-enable switches and VLLM_ROCM_USE_AITER, the simulated arch, the
    vLLM under test first on PYTHONPATH with its own cache root, then the caller's `env`."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("ROCM_ENABLE")}
    child_env.pop("VLLM_ROCM_USE_AITER", None)
    if arch:
        child_env["ROCM_ENABLE_TEST_SIM_ARCH"] = arch
    if os.environ.get(ENV_VLLM_CACHE):
        child_env["VLLM_CACHE_ROOT"] = vllm_cache_root(vllm)
    if vllm and vllm.pythonpath:
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (vllm.pythonpath, child_env.get("PYTHONPATH", "")) if p)
    child_env.update(env or {})
    return child_env


def run_python(body: str, *, arch: str | None, vllm: VllmUnderTest | None = None,
               env: dict[str, str] | None = None, timeout: int = 300) -> dict:
    """Run `body` (which assigns `result`, a JSON-able value) and return {'result', 'log'}.

    arch=None runs without simulation (vLLM picks its own platform, CPU here)."""
    child_env = child_environment(arch, vllm, env)
    code = (PRELUDE + textwrap.dedent(body) + "\nimport vllm as _vllm\n"
            f"print({MARK!r} + json.dumps({{'result': result, 'vllm': _vllm.__version__}}))\n")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            open(os.devnull) as nothing:
        child = zygote.spawn(code, child_env, stdin=nothing.fileno(), stdout=out.fileno(),
                             stderr=err.fileno())
        returncode = child.wait(timeout)
        if returncode is None:
            child.kill()
            raise subprocess.TimeoutExpired(["python", "-c", "<simulated case>"], timeout)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = [ln for ln in stdout.splitlines() if ln.startswith(MARK)]
    if returncode != 0 or not lines:
        raise AssertionError(
            f"simulated process failed (rc={returncode})\n--- stdout\n{stdout[-4000:]}"
            f"\n--- stderr\n{stderr[-6000:]}")
    payload = json.loads(lines[-1][len(MARK):])
    if vllm:
        assert payload["vllm"] == vllm.version, (
            f"expected vLLM {vllm.version}, the process imported {payload['vllm']}")
    return {"result": payload["result"], "log": stderr + stdout}
