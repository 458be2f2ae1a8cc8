"""The repository stands on its own: no committed file names a path of the machine it was written
on (a workspace, a home directory, a named scratch folder) — such a path works for its author only.
System paths a user's machine also has (/usr/bin/env, /usr/local, /opt in a Dockerfile) are fine,
and so is the project's own scratch folder (/tmp/rocm-enable-*, /tmp/rocm_enable_*), which its
scripts create wherever they run (e.g. the engine harness on the GPU machine, in its run records)."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A path rooted at a machine's workspace or home, or at a named folder in its scratch space.
# Not preceded by a path character, '~' or '$VAR}' (relative paths, ~/x and ${HOME}/x are fine),
# nor by a word character (URLs: github.com/home/...). The words are split so this file does not
# name them itself.
_ROOTS = "|".join(["wo" + "rk", "work" + "space", "ro" + "ot", "ho" + "me/[A-Za-z0-9_.-]+",
                   "Us" + "ers/[A-Za-z0-9_.-]+", "m" + "nt", "med" + "ia",
                   "t" + "mp/(?!rocm[-_]enable)[A-Za-z0-9_][A-Za-z0-9_.+-]*"])
MACHINE_PATH = re.compile(r"(?<![\w.~}/$-])/(?:" + _ROOTS + r")/[^\s'\"`)\]>,;]*")
WINDOWS_HOME = re.compile(r"\b[A-Za-z]:\\\\?Us" + r"ers\\\\?[^\s'\"`]+")


def machine_paths(text: str) -> list[str]:
    return [m.group(0) for pattern in (MACHINE_PATH, WINDOWS_HOME) for m in pattern.finditer(text)]


@pytest.mark.parametrize("text, found", [
    ("see /" + "work/main/.venv/bin/python", ["/" + "work/main/.venv/bin/python"]),
    ("cd /" + "root/x && ls", ["/" + "root/x"]),
    ("open('/" + "home/alice/models/q.json')", ["/" + "home/alice/models/q.json"]),
    ("scratch in /" + "tmp/research033/a.txt", ["/" + "tmp/research033/a.txt"]),
    ("jobs: /" + "tmp/bash_jobs.0/1/stdout", ["/" + "tmp/bash_jobs.0/1/stdout"]),
    ("C:\\" + "Users\\bob\\x.py", ["C:\\" + "Users\\bob\\x.py"]),
    ("#!/usr/bin/env bash", []),
    ("COPY . /opt/rocm-enable", []),
    ("python benchmarks/bench_moe_w8a16.py --out $OUT", []),
    ("relative docs/work/notes.md and tests/home/x", []),
    ("https://github.com/home/repo and ~/work/x and ${HOME}/work", []),
    ("tmp_path / 'x' and mktemp -d", []),
    ('"serve", "/' + 'tmp/rocm-enable-engine/models/next"', []),
    ("/" + "tmp/rocm_enable_isa_x/k.s", []),
    ("/" + "tmp/rocmenable/x", ["/" + "tmp/rocmenable/x"]),
])
def test_detector(text, found):
    assert machine_paths(text) == found


def test_no_committed_file_names_a_machine_path():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
                           ).stdout.decode().split("\0")
    offenders = []
    for name in filter(None, files):
        path = ROOT / name
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary
            continue
        for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            offenders += [f"{name}:{lineno}: {p}" for p in machine_paths(line)]
    assert not offenders, ("absolute paths of a development machine in committed files (use paths "
                           "relative to the repository, or an environment variable):\n"
                           + "\n".join(offenders))
