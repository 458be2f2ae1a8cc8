"""tests/zygote.py: a forked child starts like `python -c CODE` (what the simulated-vLLM tests
rely on): nothing of vLLM or rocm_enable imported yet, exactly the requested environment, its
own streams and exit status."""
import json
import os
import tempfile

import zygote

CODE = """
import json, os, sys
print(json.dumps({
    "name": __name__, "argv": sys.argv,
    "early": sorted(m for m in sys.modules if m.split(".")[0] in ("vllm", "rocm_enable", "amdsmi")),
    "env": {k: os.environ.get(k) for k in ("VLLM_TEST_X", "ROCM_ENABLE_TEST_X", "TORCHINDUCTOR_COMPILE_THREADS")},
    "stdin": sys.stdin.read(),
}))
print("to stderr", file=sys.stderr)
sys.exit(3)
"""


def _spawn(env):
    with tempfile.TemporaryFile("w+") as stdin, tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryFile("w+") as err:
        stdin.write("given"), stdin.flush(), stdin.seek(0)
        child = zygote.spawn(CODE, env, stdin=stdin.fileno(), stdout=out.fileno(),
                             stderr=err.fileno())
        rc = child.wait(120)
        out.seek(0), err.seek(0)
        return rc, out.read(), err.read()


def test_child_starts_like_python_c():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROCM_ENABLE", "VLLM_"))}
    rc, out, err = _spawn({**env, "VLLM_TEST_X": "a", "ROCM_ENABLE_TEST_X": "b"})
    assert rc == 3 and err.strip().endswith("to stderr"), (rc, err[-2000:])
    got = json.loads(out)
    assert got == {"name": "__main__", "argv": ["-c"], "early": [], "stdin": "given",
                   "env": {"VLLM_TEST_X": "a", "ROCM_ENABLE_TEST_X": "b",
                           "TORCHINDUCTOR_COMPILE_THREADS": None}}, got
    # the same zygote serves the next child, whose environment is its own (a variable only the
    # snippet reads does not ask for another zygote)
    zygotes = dict(zygote._zygotes)
    rc, out, _ = _spawn({**env, "VLLM_TEST_X": "c", "SNIPPET_ONLY_TEST_X": "d"})
    assert rc == 3 and json.loads(out)["env"]["VLLM_TEST_X"] == "c"
    assert json.loads(out)["env"]["ROCM_ENABLE_TEST_X"] is None
    assert zygote._zygotes == zygotes


def test_killed_child_reports_no_status():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROCM_ENABLE", "VLLM_"))}
    with open(os.devnull) as nothing, tempfile.TemporaryFile() as out:
        child = zygote.spawn("import time; time.sleep(600)", env, stdin=nothing.fileno(),
                             stdout=out.fileno(), stderr=out.fileno())
        assert child.wait(0.5) is None  # still running
        child.kill()
        assert child.returncode == -9
