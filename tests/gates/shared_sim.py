"""One simulated vLLM process per (vLLM version, arch, environment), shared by the gate tests.

A fresh process per case spends 20-50 s importing vLLM for a decision that takes milliseconds. A
shared process imports it once and then runs case after case (each snippet in its own namespace,
as sim_harness.run_python would); between cases it puts vLLM back as it found it:

  - every fix the case applied is reverted (engine.revert_all restores the original attributes),
  - vLLM's `plugins_loaded` flag is cleared, so the next case's `load_general_plugins()` really
    runs the plugin again, and its "before" is computed on vLLM's own code,
  - the toggles a case sets (ROCM_ENABLE_DISABLE / ROCM_ENABLE_ONLY, LOAD_PLUGIN) are per case.

Anything else in the environment (VLLM_* variables vLLM reads at import, PYTHONPATH) is part of
the process key. Cases whose proof needs a fresh interpreter stay on sim_harness.run_python:
import-time decisions (a module constant computed when it is first imported after the plugin),
one-time registrations (torch custom ops), `warning_once` log lines.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import tempfile
import time

import pytest

import zygote
from sim_harness import MARK, PRELUDE, VllmUnderTest, child_environment

# Mark for the tests that call run_shared: they run on one xdist worker (scripts/test.sh runs
# `-n 2 --dist loadgroup`). Otherwise xdist hands consecutive tests to alternate workers and each
# worker starts its own process for a key the other already has: norm_routing, capability_integers
# and the two fp8 selection modules took 215 test-seconds under -n 2, 112 in one process.
ON_ONE_WORKER = pytest.mark.xdist_group("gates-shared-sim")

PER_CASE_ENV = ("ROCM_ENABLE_DISABLE", "ROCM_ENABLE_ONLY", "LOAD_PLUGIN")

SERVER = PRELUDE + """
import io, traceback
import vllm, vllm.plugins
from rocm_enable.engine import apply as _engine
import wrapt
from rocm_enable.engine.anchors import TargetError, resolve
from rocm_enable.engine.hooks import all_fixes

def _still_wrapped():
    left = []
    for _fix in all_fixes():
        for _patch in _fix.patches:
            if _patch.module not in sys.modules:  # never imported: never wrapped (and importing
                continue                          # it here would change the next case's process)
            try:
                if isinstance(resolve(_patch.target)[2], wrapt.FunctionWrapper):
                    left.append(_patch.target)
            except TargetError:
                pass
    return left

_protocol = sys.stdout
sys.stdout = sys.stderr  # a case's prints must not reach the protocol stream
_protocol.write("%(mark)s" + json.dumps({"ready": vllm.__version__}) + "\\n"); _protocol.flush()
for _line in sys.stdin:
    _case = json.loads(_line)
    _env = _case["env"]
    os.environ.update(_env)
    _ns = {"__name__": "__case__", "json": json, "os": os, "sys": sys, "logging": logging, "result": None}
    try:
        exec(compile(_case["body"], "<shared case>", "exec"), _ns)
        _reply = {"result": _ns["result"], "vllm": vllm.__version__}
        json.dumps(_reply)
    except BaseException:
        _reply = {"error": traceback.format_exc()}
    finally:
        _engine.revert_all()
        _engine._warned.clear()
        vllm.plugins.plugins_loaded = False
        for _k in _env:
            os.environ.pop(_k, None)
    _left = _still_wrapped()
    if _left and "error" not in _reply:  # the next case would not start from vLLM's own code
        _reply = {"error": f"after revert, still wrapped: {_left}"}
    _protocol.write("%(mark)s" + json.dumps(_reply) + "\\n"); _protocol.flush()
""" % {"mark": MARK}


class SimServer:
    def __init__(self, arch: str | None, vllm: VllmUnderTest | None, env: dict[str, str]):
        child_env = child_environment(arch, vllm, env)
        self.vllm = vllm
        self.stderr = tempfile.TemporaryFile(mode="w+")
        case_r, case_w = os.pipe()
        reply_r, reply_w = os.pipe()
        self.proc = zygote.spawn(SERVER, child_env, stdin=case_r, stdout=reply_w,
                                 stderr=self.stderr.fileno())
        os.close(case_r), os.close(reply_w)
        self.cases_in = os.fdopen(case_w, "w", buffering=1)
        self.replies = os.fdopen(reply_r, "r")
        self.cases = 0

    def _reply(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.replies], [], [], left)[0]:
                tail = self._stderr_tail()
                self.close()
                raise AssertionError(f"shared simulated process timed out after {timeout} s\n"
                                     f"{tail}")
            line = self.replies.readline()
            if not line:
                raise AssertionError(f"shared simulated process died (rc={self.proc.wait()})\n"
                                     f"{self._stderr_tail()}")
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        return "--- stderr\n" + self.stderr.read()[-6000:]

    def start(self, timeout: float) -> None:
        ready = self._reply(timeout)["ready"]
        if self.vllm:
            assert ready == self.vllm.version, f"expected vLLM {self.vllm.version}, got {ready}"

    def run(self, body: str, env: dict[str, str], timeout: float) -> dict:
        import textwrap

        self.cases_in.write(json.dumps({"body": textwrap.dedent(body), "env": env}) + "\n")
        self.cases_in.flush()
        reply = self._reply(timeout)
        self.cases += 1
        if "error" in reply:
            raise AssertionError(f"case failed in the shared simulated process\n{reply['error']}")
        return reply

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self.cases_in.close()  # the server's loop ends at the end of its input
        if self.proc.wait(timeout=30) is None:
            self.proc.kill()
        self.replies.close()
        self.stderr.close()


# Each live server holds a whole vLLM import (hundreds of MB): keep the few most recently used.
# tests/gates/conftest.py orders the gate tests by (vLLM version, arch), so the cases of one
# process key run back to back and an evicted key does not come back.
MAX_LIVE = 3
_servers: dict[tuple, SimServer] = {}


def run_shared(body: str, *, arch: str | None, vllm: VllmUnderTest | None = None,
               env: dict[str, str] | None = None, timeout: int = 300) -> dict:
    """Like sim_harness.run_python (returns {'result'}), in the process shared by every case with
    the same vLLM, arch and environment (the per-case toggles aside)."""
    env = dict(env or {})
    per_case = {k: env.pop(k) for k in PER_CASE_ENV if k in env}
    key = (vllm.version if vllm else None, vllm.pythonpath if vllm else None, arch,
           tuple(sorted(env.items())))
    server = _servers.pop(key, None)
    if server is None or not server.alive:
        while len(_servers) >= MAX_LIVE:
            _servers.pop(next(iter(_servers))).close()  # least recently used
        server = SimServer(arch, vllm, env)
        server.start(timeout)
    _servers[key] = server  # most recently used last
    return {"result": server.run(body, per_case, timeout)["result"]}


@atexit.register
def close_all() -> None:
    for server in _servers.values():
        server.close()
    _servers.clear()
