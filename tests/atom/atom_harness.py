"""Test-side plumbing for the ATOM tests: the stand-in ATOM "installation" for a child process.

ATOM is not installable here. A child process gets tests/atom/standin (stand-in `atom` and
`aiter` packages, see standin/README.md) on PYTHONPATH plus a generated `atom-*.dist-info`, so
the ATOM stack's version probe (distribution metadata) finds a ROCm ATOM at the version setuptools_scm
gives the pinned commit, optionally with ATOM's vLLM entry points (platform + general plugin)."""
from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "standin"
# what setuptools_scm calls ATOM at the pinned commit (git describe v0.1.6-rc0-323-gffdf3bb5d)
STANDIN_VERSION = "0.1.6rc1.dev323+gffdf3bb5d"

ENTRY_POINTS = """\
[vllm.platform_plugins]
atom = atom.plugin.vllm.register:register_platform

[vllm.general_plugins]
atom_model_registry = atom.plugin.vllm.register:register_model
"""


def make_distinfo(root: Path, *, version: str = STANDIN_VERSION, rocm: bool = True,
                  vllm_entry_points: bool = False) -> Path:
    info = root / f"atom-{version}.dist-info"
    info.mkdir(parents=True)
    url = "https://github.com/ROCm/ATOM" if rocm else "https://github.com/nucleic/atom"
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: atom\nVersion: {version}\n"
        f"Project-URL: Repository, {url}\n")
    if vllm_entry_points:
        (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


def atom_env(tmp_path: Path, **distinfo) -> dict[str, str]:
    """Environment for run_python: stand-ins + dist-info + this directory (standin_records)."""
    meta = make_distinfo(tmp_path / "site", **distinfo)
    paths = [str(STANDIN), str(meta), str(HERE), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}
