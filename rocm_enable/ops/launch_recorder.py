"""Triton launches recorded where they happen: which kernel, on which grid, with which arguments.

Every Triton kernel object (JITFunction, the interpreter's InterpretedFunction, Autotuner,
Heuristics) launches as ``kernel[grid](*args, **kwargs)`` through KernelInterface.__getitem__, so
one patch there sees the launches of host code that looks its kernels up anywhere, without
knowing their modules. config_grid records the W8A16 layer's launches on meta tensors this way
(nothing runs); the tests record launch counts, grids and launch arguments with it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Launch:
    kernel: str    # the name of the @triton.jit function
    grid: object   # as the launcher passed it (a tuple or a callable)
    args: tuple
    kwargs: dict   # constexprs and compile options (num_warps, ...) included


def kernel_name(kernel) -> str:
    """The @triton.jit function's name, also through an Autotuner or Heuristics around it."""
    return getattr(kernel, "__name__", None) or getattr(getattr(kernel, "fn", None), "__name__", "?")


@contextlib.contextmanager
def recorded_launches(into: list | None = None, run: bool = False) -> Iterator[list]:
    """Within the block, each Triton launch appends a Launch to ``into`` (a new list unless given;
    yielded) and runs the kernel only when ``run``: not run, the launch returns None and writes
    nothing, so host code runs on meta or fake tensors. The patch is undone on exit."""
    from triton.runtime.jit import KernelInterface

    launches = [] if into is None else into
    original = KernelInterface.__getitem__

    def getitem(kernel, grid):
        def launch(*args, **kwargs):
            launches.append(Launch(kernel_name(kernel), grid, args, kwargs))
            return original(kernel, grid)(*args, **kwargs) if run else None
        return launch

    KernelInterface.__getitem__ = getitem
    try:
        yield launches
    finally:
        KernelInterface.__getitem__ = original
