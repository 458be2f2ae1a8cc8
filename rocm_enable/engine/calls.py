"""The arguments of a wrapped vLLM call, by parameter name, as the call binds them."""
from __future__ import annotations

import functools
import inspect


@functools.cache
def _signature(fn) -> inspect.Signature:
    return inspect.signature(fn)


def bound_arguments(fn, args, kwargs) -> dict:
    """``fn``'s parameters by name for this call, defaults applied; TypeError where ``fn`` itself
    would reject the call. The signature is read once per function: wrappers on the decode path
    (routing every MoE layer, GDN decode every step in eager mode) bind on every call."""
    bound = _signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.arguments
