"""Host-side graph-safety guard for the W8A16 layers, on CPU.

A CUDA/HIP graph replays device work only: host code that reads device data (``.item()``,
``bool(t)``, ``.tolist()``), ops whose output shape depends on data (``bincount``, ``nonzero``,
boolean-mask indexing, ``unique``...), or allocations sized by data cannot be captured.
``run_guarded`` runs a layer's host code with FakeTensorMode (tensors carry shapes, no data, so
any read of data or allocation sized by it raises) under ``RefuseHostSync`` (names the op: every
aten op tagged data_dependent_output / dynamic_output_shape, boolean-mask indexing), with
Triton launches recorded instead of run (rocm_enable.ops.launch_recorder). The same interception
counts launches per layer.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from rocm_enable.ops.launch_recorder import recorded_launches

REFUSED_TAGS = (torch.Tag.data_dependent_output, torch.Tag.dynamic_output_shape)
# integer advanced indexing is a gather / scatter on the device; only a boolean mask syncs
INDEX_OPS = {torch.ops.aten.index.Tensor, torch.ops.aten.index_put.default,
             torch.ops.aten.index_put_.default}
# ops that launch nothing (allocation, metadata) when counting launches
NO_LAUNCH = {torch.ops.aten.empty.memory_format, torch.ops.aten.empty_strided.default,
             torch.ops.aten.new_empty.default, torch.ops.aten.detach.default,
             torch.ops.aten.lift_fresh.default}


class HostSyncError(RuntimeError):
    """Host code did something a captured graph cannot replay."""


def _bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ())


class RefuseHostSync(TorchDispatchMode):
    """Raise HostSyncError on ops with data-dependent output or shape; record the others."""

    def __init__(self):
        super().__init__()
        self.ops: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if any(t in func.tags for t in REFUSED_TAGS) and not (func in INDEX_OPS and not _bool_index(args)):
            raise HostSyncError(f"{func} reads device data or has a data-dependent shape: it syncs "
                                "with the host and cannot be captured in a CUDA/HIP graph")
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


@dataclass
class Launches:
    recorded: list = field(default_factory=list)  # launch_recorder.Launch of each Triton launch
    torch_ops: list = field(default_factory=list)  # aten ops that launch device work

    @property
    def triton(self) -> list:
        """(kernel name, grid) of each Triton launch, in launch order."""
        return [(launch.kernel, launch.grid) for launch in self.recorded]

    @property
    def total(self) -> int:
        return len(self.recorded) + len(self.torch_ops)


@contextlib.contextmanager
def record_triton_launches(launches: Launches, run: bool):
    """Intercept ``kernel[grid](...)``: record the launch, and run it only when ``run``."""
    with recorded_launches(launches.recorded, run=run):
        yield


def run_guarded(make_inputs, fn) -> Launches:
    """Build inputs with ``make_inputs()`` and call ``fn(*inputs)`` on fake tensors under
    RefuseHostSync, Triton launches recorded and not run. Returns the launches (torch ops that
    launch device work, and Triton kernels). Raises HostSyncError or FakeTensorMode's
    data-dependent errors when the host code would break graph capture."""
    from rocm_enable.ops import moe_w8a16

    launches = Launches()
    counters = dict(moe_w8a16._COUNTERS)  # split-K tickets made here would be fake tensors
    try:
        with FakeTensorMode(allow_non_fake_inputs=False):
            inputs = make_inputs()
            guard = RefuseHostSync()
            with record_triton_launches(launches, run=False), guard:
                fn(*inputs)
    finally:
        moe_w8a16._COUNTERS.clear()
        moe_w8a16._COUNTERS.update(counters)
    launches.torch_ops = [op for op in guard.ops if op not in NO_LAUNCH and not op.is_view
                          and op.namespace != "prim" and not op.__name__.startswith("sym_")]
    return launches
