"""tests/zygote.py: a forked child starts like `python -c CODE` (what the simulated-vLLM tests
rely on): nothing of vLLM or rocm_enable imported yet, exactly the requested environment and
module search path, its own streams and exit status."""
import json
import os
import tempfile

import zygote

CODE = """
import json, os, sys
import zygote_probe_mod
print(json.dumps({
    "name": __name__, "argv": sys.argv, "path": sys.path, "probe": zygote_probe_mod.__file__,
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
        return child, rc, out.read(), err.read()


def _base_env(tmp_path):
    (tmp_path / "zygote_probe_mod.py").write_text("")
    # Without the variables the zygote sets while it imports (INDUCTOR_IMPORT_ENV): a test that
    # imported vLLM earlier in this pytest worker leaves them in os.environ, and the check below is
    # that the zygote's own setting does not reach the child.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ROCM_ENABLE", "VLLM_")) and k not in zygote.INDUCTOR_IMPORT_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp_path), env.get("PYTHONPATH")) if p)
    return env


def test_forked_child_starts_like_a_cold_one(tmp_path, monkeypatch):
    env = {**_base_env(tmp_path), "VLLM_TEST_X": "a", "ROCM_ENABLE_TEST_X": "b"}
    outputs = []
    for start in ("cold", "forked"):
        with monkeypatch.context() as m:
            if start == "cold":
                m.setenv(zygote.FRESH_ENV, "1")
            child, rc, out, err = _spawn(env)
        assert rc == 3 and err.strip().endswith("to stderr"), (start, rc, err[-2000:])
        assert (child._popen is not None) == (start == "cold") or os.environ.get(zygote.FRESH_ENV) == "1"
        outputs.append(json.loads(out))
    cold, forked = outputs
    assert forked == cold  # the same sys.path (PYTHONPATH entries where python puts them), ...
    assert cold["probe"] == str(tmp_path / "zygote_probe_mod.py")
    assert cold["early"] == [] and cold["name"] == "__main__" and cold["argv"] == ["-c"]
    assert cold["env"] == {"VLLM_TEST_X": "a", "ROCM_ENABLE_TEST_X": "b",
                           "TORCHINDUCTOR_COMPILE_THREADS": None} and cold["stdin"] == "given"
    assert zygote._zygotes or os.environ.get(zygote.FRESH_ENV) == "1"
    # the zygote serves the next child, whose environment is its own (a variable only the
    # snippet reads does not ask for another zygote)
    zygotes = dict(zygote._zygotes)
    _, rc, out, _ = _spawn({**env, "VLLM_TEST_X": "c", "SNIPPET_ONLY_TEST_X": "d"})
    assert rc == 3 and json.loads(out)["env"]["VLLM_TEST_X"] == "c"
    assert zygote._zygotes == zygotes


def test_a_zygote_serves_the_next_tests(tmp_path):
    """pytest sets PYTEST_CURRENT_TEST anew for every test: it must not ask for a zygote each."""
    env = _base_env(tmp_path)
    for test in ("first", "second"):
        child, rc, _, err = _spawn({**env, "PYTEST_CURRENT_TEST": f"tests/x.py::{test} (call)"})
        assert rc == 3, err[-2000:]
    assert child._popen is None or os.environ.get(zygote.FRESH_ENV) == "1"  # forked


def test_pythonpath_that_shadows_a_preloaded_package_starts_cold(tmp_path):
    env = _base_env(tmp_path)
    _spawn(env), _spawn(env)  # the zygote of this environment is up
    (tmp_path / "numpy").mkdir()  # what the zygote imported, from elsewhere
    child, rc, _, err = _spawn(env)
    assert rc == 3, err[-2000:]
    assert child._popen is not None or not zygote._zygotes  # a cold `python -c`


def test_killed_child_reports_no_status():
    # Without the variables the zygote sets while it imports (INDUCTOR_IMPORT_ENV): a test that
    # imported vLLM earlier in this pytest worker leaves them in os.environ, and the check below is
    # that the zygote's own setting does not reach the child.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ROCM_ENABLE", "VLLM_")) and k not in zygote.INDUCTOR_IMPORT_ENV}
    with open(os.devnull) as nothing, tempfile.TemporaryFile() as out:
        child = zygote.spawn("import time; time.sleep(600)", env, stdin=nothing.fileno(),
                             stdout=out.fileno(), stderr=out.fileno())
        assert child.wait(0.5) is None  # still running
        child.kill()
        assert child.returncode == -9


def test_run_is_subprocess_run_for_python_c(tmp_path):
    """zygote.run stands in for subprocess.run where product code starts `python -c` (explain):
    same exit status, output and input; other commands go to subprocess.run."""
    import subprocess
    import sys

    env = {**_base_env(tmp_path), "VLLM_TEST_X": "a"}
    code = ("import os, sys; print(sys.stdin.read() + os.environ['VLLM_TEST_X']); "
            "print('err', file=sys.stderr); sys.exit(5)")
    runs = [zygote.run([sys.executable, "-c", code], input="in-", env=env, capture_output=True,
                       text=True, timeout=120) for _ in range(2)]  # the first may start the zygote
    expected = subprocess.run([sys.executable, "-c", code], input="in-", env=env,
                              capture_output=True, text=True, timeout=120)
    for got in runs:
        assert (got.returncode, got.stdout, got.stderr) == (5, "in-a\n", "err\n")
        assert (got.returncode, got.stdout, got.stderr) == (
            expected.returncode, expected.stdout, expected.stderr)
    other = zygote.run(["sh", "-c", "echo $VLLM_TEST_X"], env=env, capture_output=True, text=True)
    assert other.stdout == "a\n"


def test_run_module_and_run_script_are_python_m_and_python_script(tmp_path):
    """zygote.run_module / run_script stand in for `python -m MODULE` / `python SCRIPT` (the CLI
    tests): same sys.argv, __name__, sys.path[0], working folder, exit status and output."""
    import subprocess
    import sys

    env = {**_base_env(tmp_path), "PYTHONPATH": str(tmp_path)}
    show = ("import json, os, sys\n"
            "print(json.dumps([sys.argv, __name__, sys.path[0] or os.getcwd(), os.getcwd()]))\n"
            "sys.exit(4)\n")
    (tmp_path / "shown_module.py").write_text(show)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "shown_script.py").write_text(show)
    kw = dict(env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path / "bin")
    for _ in range(2):  # the first may start the zygote
        for got, expected in (
                (zygote.run_module("shown_module", ["a", "--b"], **kw),
                 subprocess.run([sys.executable, "-m", "shown_module", "a", "--b"], **kw)),
                (zygote.run_script(tmp_path / "bin" / "shown_script.py", ["c"], **kw),
                 subprocess.run([sys.executable, str(tmp_path / "bin" / "shown_script.py"), "c"],
                                **kw))):
            assert got.returncode == expected.returncode == 4, got.stderr[-2000:]
            assert json.loads(got.stdout) == json.loads(expected.stdout)
