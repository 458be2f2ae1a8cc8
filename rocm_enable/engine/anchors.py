"""Resolve a patch target and fingerprint its source, so a fix only touches code we studied."""
from __future__ import annotations

import hashlib
import importlib
import inspect
import textwrap


class TargetError(LookupError):
    """The target cannot be imported or no longer exists."""


def resolve(target: str):
    """Return (owner, attribute name, raw attribute) for "module:Qual.name".

    The raw attribute is taken from the owner's __dict__ so a staticmethod/classmethod keeps its
    descriptor (needed to restore it exactly on revert)."""
    module_name, _, qualname = target.partition(":")
    try:
        owner = importlib.import_module(module_name)
    except Exception as exc:  # any import failure means: not the code we verified
        raise TargetError(f"cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
    *path, attr = qualname.split(".")
    for part in path:
        if not hasattr(owner, part):
            raise TargetError(f"{module_name} has no {'.'.join(path)}")
        owner = getattr(owner, part)
    if attr not in vars(owner):
        raise TargetError(f"{target} does not exist")
    return owner, attr, vars(owner)[attr]


def underlying_function(raw):
    return getattr(raw, "__func__", raw)  # staticmethod/classmethod -> function


def source_text(func) -> str:
    """The dedented source a fingerprint is computed from (kept for `rocm-enable audit` diffs)."""
    return textwrap.dedent(inspect.getsource(func))


def text_fingerprint(source: str) -> str:
    """sha256 of a source without blank lines and trailing spaces (16 hex digits)."""
    lines = [line.rstrip() for line in source.splitlines() if line.strip()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def fingerprint(func) -> str:
    return text_fingerprint(source_text(func))


def target_fingerprint(target: str) -> str:
    _, _, raw = resolve(target)
    return fingerprint(underlying_function(raw))
