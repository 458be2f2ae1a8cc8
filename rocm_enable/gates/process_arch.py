"""Which arch this process runs as: the GPU's own, an override on a ROCm install, or a simulation.

Shared by the `rocm-enable` commands and the processes they start (explain's probes), so it lives
below both: importing it pulls in neither."""
from __future__ import annotations

import importlib.util
import os

from rocm_enable.gates.capabilities import capabilities_for
from rocm_enable.toggles import ARCH_ENV


def torch_is_rocm() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(getattr(torch.version, "hip", None))


def prepare_arch(arch: str | None) -> None:
    """Make `arch` the arch of this process: an override on a ROCm install, a simulation elsewhere."""
    if not arch:
        return
    caps = capabilities_for(arch)
    os.environ[ARCH_ENV] = caps.arch
    if importlib.util.find_spec("vllm") is not None and not torch_is_rocm():
        from rocm_enable import sim

        sim.activate(caps.arch)
