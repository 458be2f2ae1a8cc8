"""Fingerprint a function in a source file WITHOUT importing it.

Real ATOM cannot be imported here (it needs aiter and a ROCm torch), so the anchors of the ATOM
records are computed from the pinned commit's files with the same procedure the engine applies to
a live function (rocm_enable.engine.anchors.fingerprint): inspect's block of source starting at
the function's first line (its first decorator, as co_firstlineno), dedented, blank lines and
trailing spaces dropped. test_atom_records.py checks that both agree on the stand-ins.

The files come from tests/atom/pinned/ (ATOM's files that the records target or patch, at both
pinned commits, MIT-licensed; pinned/MANIFEST holds each file's git blob id, checked on every read,
so a carried file is provably the commit's file). ROCM_ENABLE_ATOM_MIRROR=<git dir of a ROCm/ATOM
clone> reads any file of any commit from that clone instead: what re-pinning to a new commit needs.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import os
import subprocess
import textwrap
from pathlib import Path

PINNED = Path(__file__).resolve().parent / "pinned"
ATOM_MIRROR = os.environ.get("ROCM_ENABLE_ATOM_MIRROR")


def carried_files() -> dict[tuple[str, str], str]:
    """(commit, path) -> git blob id, from pinned/MANIFEST."""
    rows = (line.split() for line in (PINNED / "MANIFEST").read_text().splitlines() if line.strip())
    return {(commit, path): blob for commit, path, blob in rows}


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _find(tree: ast.AST, qualname: str) -> ast.AST:
    node = tree
    for part in qualname.split("."):
        for child in getattr(node, "body", []):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    and child.name == part:
                node = child
                break
        else:
            raise LookupError(f"{qualname}: no {part}")
    return node


def source_fingerprint(text: str, qualname: str) -> str:
    node = _find(ast.parse(text), qualname)
    first = min([d.lineno for d in node.decorator_list] + [node.lineno])
    lines = text.splitlines(keepends=True)
    block = "".join(inspect.getblock(lines[first - 1:]))
    source = textwrap.dedent(block)
    kept = [line.rstrip() for line in source.splitlines() if line.strip()]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()[:16]


def atom_file_at(commit: str, path: str) -> str:
    """The file's text at `commit`: from the ATOM clone named by ROCM_ENABLE_ATOM_MIRROR when set,
    else from the files this repository carries (verified against their git blob ids)."""
    if ATOM_MIRROR:
        proc = subprocess.run(["git", "--git-dir", ATOM_MIRROR, "show", f"{commit}:{path}"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise LookupError(f"{commit}:{path} not in ROCM_ENABLE_ATOM_MIRROR={ATOM_MIRROR}: "
                              f"{proc.stderr.strip()}")
        return proc.stdout
    blob = carried_files().get((commit, path))
    if blob is None:
        raise LookupError(f"{commit}:{path} is not carried in tests/atom/pinned/: copy it there "
                          "(and its blob id into pinned/MANIFEST), or set ROCM_ENABLE_ATOM_MIRROR "
                          "to the git dir of a ROCm/ATOM clone")
    data = (PINNED / commit[:9] / path).read_bytes()
    if git_blob_id(data) != blob:
        raise AssertionError(f"tests/atom/pinned/{commit[:9]}/{path} is not ATOM's file at {commit} "
                             f"(git blob {git_blob_id(data)}, expected {blob})")
    return data.decode()


def target_fingerprint_at(commit: str, target: str) -> str:
    module, _, qualname = target.partition(":")
    return source_fingerprint(atom_file_at(commit, module.replace(".", "/") + ".py"), qualname)
