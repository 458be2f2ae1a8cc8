"""Which AMD architecture this process runs on.

Order: ROCM_ENABLE_ARCH (simulation or override), then what vLLM's ROCm platform detected itself
(amdsmi, no device initialisation), then torch's gcnArchName. HSA_OVERRIDE_GFX_VERSION is
reported next to the real arch, never silently believed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from rocm_enable.gates.capabilities import capabilities_for, normalize_arch
from rocm_enable.toggles import ARCH_ENV

HSA_OVERRIDE_ENV = "HSA_OVERRIDE_GFX_VERSION"


@dataclass(frozen=True)
class ArchDetection:
    arch: str | None          # normalized arch whose capabilities apply, None when not ROCm
    source: str               # "ROCM_ENABLE_ARCH" | "vllm" | "torch" | "none"
    hsa_override: str | None  # raw HSA_OVERRIDE_GFX_VERSION
    spoofed_arch: str | None  # the arch that override makes HIP report

    @property
    def warning(self) -> str | None:
        if not self.hsa_override:
            return None
        return (
            f"{HSA_OVERRIDE_ENV}={self.hsa_override} makes HIP report {self.spoofed_arch} while the "
            f"GPU is {self.arch or 'unknown'}. Spoofing an arch to get past vLLM's gates is what "
            "rocm-enable makes unnecessary, and it loads kernels built for another chip: unset it."
        )


def arch_from_hsa_override(value: str) -> str:
    """'11.0.0' -> 'gfx1100', '9.4.2' -> 'gfx942', '9.0.10' -> 'gfx90a' (stepping is hex)."""
    try:
        major, minor, stepping = (int(p) for p in value.strip().split("."))
    except ValueError:
        raise ValueError(
            f"{HSA_OVERRIDE_ENV}={value!r} is not MAJOR.MINOR.STEPPING (e.g. 11.0.0)"
        ) from None
    return f"gfx{major}{minor}{stepping:x}"


def _arch_from_vllm() -> str | None:
    try:
        from vllm.platforms import current_platform

        if not current_platform.is_rocm():
            return None
        from vllm.platforms import rocm

        return getattr(rocm, "_GCN_ARCH", None) or None
    except Exception:  # vLLM absent or broken: fall through to torch
        return None


def _arch_from_torch() -> str | None:
    try:
        import torch

        if getattr(torch.version, "hip", None) and torch.cuda.is_available():
            return torch.cuda.get_device_properties(0).gcnArchName
    except Exception:
        return None
    return None


def detect_arch() -> ArchDetection:
    override = os.environ.get(HSA_OVERRIDE_ENV) or None
    spoofed = arch_from_hsa_override(override) if override else None
    requested = os.environ.get(ARCH_ENV)
    if requested:
        caps = capabilities_for(requested)  # raises UnknownArchError with the valid names
        return ArchDetection(caps.arch, ARCH_ENV, override, spoofed)
    for source, probe in (("vllm", _arch_from_vllm), ("torch", _arch_from_torch)):
        found = probe()
        if found:
            return ArchDetection(normalize_arch(found), source, override, spoofed)
    return ArchDetection(None, "none", override, spoofed)
