"""One attribute of vLLM answered differently for the duration of one vLLM check.

Several fixes let vLLM's own check run with one arch predicate (on_rdna4(), on_gfx1100(), the aiter
umbrella) answering for the running arch, so every other condition the check reads stays vLLM's.
vLLM reads these predicates from their module at call time; the checks run during model
construction and backend selection, which are single-threaded.
"""
from __future__ import annotations

import contextlib
from typing import Any


@contextlib.contextmanager
def answered(owner: Any, name: str, value: Any):
    """`owner.name` is `value` inside the block and what it was after it, also on error. The
    original is read from `owner`'s own namespace, so a classmethod is restored as a classmethod."""
    original = vars(owner)[name]
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)
