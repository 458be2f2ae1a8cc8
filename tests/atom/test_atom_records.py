"""ATOM records: complete, anchored to the pinned ATOM commit, version probe, series, ledger.

Anchor and series checks read ROCm/ATOM's real files at the pinned commits: the copies in
tests/atom/pinned/ (verified by git blob id), or a ROCm/ATOM clone named by ROCM_ENABLE_ATOM_MIRROR."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rocm_enable.stacks.atom as atom_stack
from atom_harness import HERE, STANDIN, STANDIN_VERSION, make_distinfo
from atom_source import atom_file_at, carried_files, git_blob_id, target_fingerprint_at
from rocm_enable.engine.hooks import plugin_manager, stacks
from rocm_enable.ledger import render_ledger
from rocm_enable.stacks.atom import pin

ROOT = Path(__file__).resolve().parents[2]
SERIES_DIR = ROOT / atom_stack.SERIES_DIR


def test_stack_is_registered_once_and_records_are_complete():
    names = [name for name, _ in plugin_manager().list_name_plugin()]
    assert names.count("atom") == 1 and names.count("vllm") == 1
    (atom,) = [s for s in stacks() if s.name == "atom"]
    assert atom.fixes == atom_stack.FIXES and atom.version_probe is pin.atom_version
    for fix in atom.fixes:
        assert fix.stack == "atom" and fix.name.startswith("atom-")
        assert fix.condition.__name__ == "aiter_hip_kernels_unsupported"
        assert "PR #1314" in fix.upstream and fix.removal
        for patch in fix.patches:
            assert set(patch.anchors) == {pin.PINNED, pin.PR_BASE}
            assert fix.supports_version(STANDIN_VERSION)


@pytest.mark.parametrize("commit", [pin.ATOM_COMMIT, pin.ATOM_PR_BASE])
def test_anchors_are_the_pinned_atom_source(commit):
    key = pin.PINNED if commit == pin.ATOM_COMMIT else pin.PR_BASE
    for fix in atom_stack.FIXES:
        for patch in fix.patches:
            assert target_fingerprint_at(commit, patch.target) == patch.anchors[key], patch.target


def test_source_fingerprint_agrees_with_the_engine_on_the_standins():
    """atom_source (source text, no import) == engine.anchors (live function), on every target."""
    code = (
        "import json, sys, inspect\n"
        "from atom_source import source_fingerprint\n"
        "from rocm_enable.engine.anchors import target_fingerprint\n"
        "import rocm_enable.stacks.atom as s\n"
        "out = []\n"
        "for f in s.FIXES:\n"
        "    for p in f.patches:\n"
        "        mod, _, qual = p.target.partition(':')\n"
        "        text = open(__import__(mod, fromlist=['x']).__file__).read()\n"
        "        out.append([p.target, target_fingerprint(p.target), source_fingerprint(text, qual)])\n"
        "print(json.dumps(out))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(STANDIN), str(HERE)])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import json

    rows = json.loads(proc.stdout.splitlines()[-1])
    assert len(rows) == 5 and all(live == text for _, live, text in rows)


def _probe_with(monkeypatch, tmp_path, **distinfo):
    pkg = tmp_path / "pkgs" / "atom"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    if distinfo is not None:
        make_distinfo(tmp_path / "pkgs", **distinfo)
    importlib.invalidate_caches()
    return pin.atom_version()


def test_version_probe_reads_rocm_atom_metadata(monkeypatch, tmp_path):
    assert _probe_with(monkeypatch, tmp_path) == STANDIN_VERSION


def test_version_probe_ignores_another_projects_atom(monkeypatch, tmp_path):
    assert _probe_with(monkeypatch, tmp_path, version="0.11.0", rocm=False) is None


def test_version_probe_without_atom(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert pin.atom_version() is None


def test_series_lists_every_patch_and_names_the_commit():
    series = (SERIES_DIR / "series").read_text().splitlines()
    listed = [line for line in series if line.strip() and not line.startswith("#")]
    assert tuple(listed) == atom_stack.SERIES
    assert sorted(p.name for p in SERIES_DIR.glob("*.patch")) == sorted(listed)
    assert pin.ATOM_COMMIT in "\n".join(series)
    for name in listed:
        text = (SERIES_DIR / name).read_text()
        for part in ("Why:", "How:", "Capability predicate:", "Upstream:", "Removal:", "#1314"):
            assert part in text, f"{name}: commit message lacks {part}"
        assert "--- a/atom/" in text or "--- /dev/null" in text


def _patched_paths() -> list[str]:
    paths = []
    for name in atom_stack.SERIES:
        for line in (SERIES_DIR / name).read_text().splitlines():
            if line.startswith("--- a/"):
                paths.append(line[len("--- a/"):])
    return sorted(set(paths))


def test_carried_atom_files_are_the_pinned_commits_files():
    """Every file a patch edits is carried at the pinned commit; each carried file hashes to
    ATOM's git blob id (a corrupted or hand-edited copy fails here, not as an anchor mismatch)."""
    carried = carried_files()
    assert {path for commit, path in carried if commit == pin.ATOM_COMMIT} >= set(_patched_paths())
    for commit, path in carried:
        data = atom_file_at(commit, path).encode()
        assert git_blob_id(data) == carried[commit, path], (commit, path)


def test_series_applies_to_the_pinned_commit(tmp_path):
    for path in _patched_paths():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(atom_file_at(pin.ATOM_COMMIT, path))
    for name in atom_stack.SERIES:
        proc = subprocess.run(["git", "apply", "--verbose", str(SERIES_DIR / name)],
                              cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
    patched = (tmp_path / "atom/model_ops/attentions/gdn_attn.py").read_text()
    assert "attn_metadata.block_tables = offsets.unsqueeze(1)" in patched


def test_checked_in_ledger_is_current():
    expected = render_ledger(atom_stack.FIXES, title=atom_stack.LEDGER_TITLE,
                             intro=atom_stack.LEDGER_INTRO, patch_files=atom_stack.PATCH_FILES)
    assert (SERIES_DIR / "README.md").read_text() == expected, (
        "patches/atom/README.md is stale: run "
        "`python -m rocm_enable.ledger rocm_enable.stacks.atom patches/atom/README.md`")
    for fix in atom_stack.FIXES:
        assert fix.name in expected and (SERIES_DIR / atom_stack.PATCH_FILES[fix.name]).is_file()
