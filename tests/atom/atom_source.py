"""Fingerprint a function in a source file WITHOUT importing it.

Real ATOM cannot be imported here (it needs aiter and a ROCm torch), so the anchors of the ATOM
records are computed from the pinned commit's files with the same procedure the engine applies to
a live function (rocm_enable.engine.anchors.fingerprint): inspect's block of source starting at
the function's first line (its first decorator, as co_firstlineno), dedented, blank lines and
trailing spaces dropped. tests/atom/test_anchors.py checks that both agree on the stand-ins.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import os
import subprocess
import textwrap

ATOM_MIRROR = os.environ.get("ROCM_ENABLE_ATOM_MIRROR", "/work/.mirror/ROCm+ATOM/repo")


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


def atom_file_at(commit: str, path: str) -> str | None:
    """The file's text at `commit` in the local ATOM mirror, or None when no mirror is here."""
    if not os.path.isdir(ATOM_MIRROR):
        return None
    proc = subprocess.run(["git", "--git-dir", ATOM_MIRROR, "show", f"{commit}:{path}"],
                          capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def target_fingerprint_at(commit: str, target: str) -> str | None:
    module, _, qualname = target.partition(":")
    text = atom_file_at(commit, module.replace(".", "/") + ".py")
    return None if text is None else source_fingerprint(text, qualname)
