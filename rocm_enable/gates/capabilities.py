"""The capability model: one record per AMD architecture, loaded from capabilities.yaml.

Every gate in rocm_enable asks a question of an `ArchCapabilities` (through the predicates at the
bottom of this module); nothing compares architecture names.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import yaml

FP8_COMPUTE_KINDS = ("none", "fnuz", "ocp")
KERNEL_FAMILIES = ("rdna3", "rdna4", "cdna")


class UnknownArchError(ValueError):
    """An architecture name that the capability table does not describe."""


@dataclass(frozen=True)
class Board:
    name: str
    pci_device_id: str
    compute_units: int
    memory_gib: int
    bandwidth_gbs: int
    unified_memory: bool
    config_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArchCapabilities:
    arch: str
    family: str
    kernel_family: str
    wave_size: int
    fp8_compute: str
    matrix_unit: str
    matrix_dtypes: tuple[str, ...]
    int8_dot: bool
    lds_per_workgroup_kib: int
    aiter_hip_kernels: bool
    aiter_triton_kernels: bool
    boards: tuple[Board, ...]
    generic_targets: tuple[str, ...] = ()

    @property
    def fp8_storage(self) -> bool:
        # One-byte weights decoded by integer ops need nothing beyond byte loads: every arch.
        return True

    def as_dict(self) -> dict:
        return {
            "arch": self.arch,
            "family": self.family,
            "kernel_family": self.kernel_family,
            "wave_size": self.wave_size,
            "fp8_compute": supports_fp8_compute(self),
            "fp8_compute_format": self.fp8_compute,
            "fp8_storage": self.fp8_storage,
            "matrix_unit": self.matrix_unit,
            "matrix_dtypes": list(self.matrix_dtypes),
            "int8_dot": self.int8_dot,
            "lds_per_workgroup_kib": self.lds_per_workgroup_kib,
            "aiter_hip_kernels": aiter_hip_kernels_supported(self),
            "aiter_triton_kernels": aiter_triton_kernels_supported(self),
            "wave32_rdna": is_wave32_rdna(self),
            "generic_targets": list(self.generic_targets),
            "boards": [{**b.__dict__, "config_names": list(b.config_names)} for b in self.boards],
        }


def _parse(arch: str, row: dict) -> ArchCapabilities:
    if row["fp8_compute"] not in FP8_COMPUTE_KINDS:
        raise ValueError(f"capabilities.yaml: {arch}.fp8_compute must be one of {FP8_COMPUTE_KINDS}")
    if row["kernel_family"] not in KERNEL_FAMILIES:
        raise ValueError(f"capabilities.yaml: {arch}.kernel_family must be one of {KERNEL_FAMILIES}")
    return ArchCapabilities(
        arch=arch,
        family=row["family"],
        kernel_family=row["kernel_family"],
        wave_size=int(row["wave_size"]),
        fp8_compute=row["fp8_compute"],
        matrix_unit=row["matrix_unit"],
        matrix_dtypes=tuple(row["matrix_dtypes"]),
        int8_dot=bool(row["int8_dot"]),
        lds_per_workgroup_kib=int(row["lds_per_workgroup_kib"]),
        aiter_hip_kernels=bool(row["aiter_hip_kernels"]),
        aiter_triton_kernels=bool(row["aiter_triton_kernels"]),
        boards=tuple(Board(**{**b, "config_names": tuple(b.get("config_names", ()))})
                     for b in row["boards"]),
        generic_targets=tuple(row.get("generic_targets", ())),
    )


@functools.cache
def capability_table() -> dict[str, ArchCapabilities]:
    text = resources.files("rocm_enable.gates").joinpath("capabilities.yaml").read_text()
    return {arch: _parse(arch, row) for arch, row in yaml.safe_load(text).items()}


def known_archs() -> list[str]:
    return sorted(capability_table())


def normalize_arch(name: str) -> str:
    """'gfx1151:sramecc+:xnack-' -> 'gfx1151' (the feature suffixes HIP appends)."""
    return name.strip().split(":")[0].lower()


def capabilities_for(arch: str) -> ArchCapabilities:
    table = capability_table()
    key = normalize_arch(arch)
    if key not in table:
        raise UnknownArchError(
            f"unknown AMD architecture {arch!r}; rocm-enable knows {', '.join(known_archs())}. "
            "Pass one of these (e.g. --arch gfx1151 or ROCM_ENABLE_ARCH=gfx1151), or add the arch "
            "to rocm_enable/gates/capabilities.yaml."
        )
    return table[key]


# ---- predicates: the only questions gates may ask ---------------------------------------

def supports_fp8_compute(caps: ArchCapabilities) -> bool:
    """The matrix units multiply FP8 operands natively (CDNA3 fnuz, CDNA4/RDNA4 OCP)."""
    return caps.fp8_compute != "none"


def lacks_fp8_compute(caps: ArchCapabilities) -> bool:
    """FP8 checkpoints must be served by decoding weights to 16-bit in the kernel (W8A16)."""
    return not supports_fp8_compute(caps)


def aiter_hip_kernels_supported(caps: ArchCapabilities) -> bool:
    """aiter's HIP/CK/asm kernels (gfx9-only instructions) can run on this arch."""
    return caps.aiter_hip_kernels


def aiter_hip_kernels_unsupported(caps: ArchCapabilities) -> bool:
    """not aiter_hip_kernels_supported(): vLLM must not dispatch to aiter's HIP/CK kernels here."""
    return not caps.aiter_hip_kernels


def aiter_triton_kernels_supported(caps: ArchCapabilities) -> bool:
    """aiter's portable Triton kernels compile for this arch."""
    return caps.aiter_triton_kernels


def is_wave32_rdna(caps: ArchCapabilities) -> bool:
    """RDNA3/3.5/4: wave32 with WMMA matrix units (kernel launch shapes differ from CDNA)."""
    return caps.matrix_unit == "wmma" and caps.wave_size == 32


def runs_rdna3_wmma_kernels(caps: ArchCapabilities) -> bool:
    """RDNA3/3.5 (gfx11): the wave32 WMMA v1 ISA that vLLM's RDNA3 HIP kernels (gptq_gemm_rdna3,
    moe_gptq_gemm_rdna3) are written for; whether a given build carries the code object is a
    separate, per-extension question (gates.code_objects)."""
    return caps.kernel_family == "rdna3" and is_wave32_rdna(caps)


def aiter_triton_only(caps: ArchCapabilities) -> bool:
    """Wave32 RDNA with aiter: only aiter's Triton kernels can run (no HIP/CK/asm code objects)."""
    return is_wave32_rdna(caps) and caps.aiter_triton_kernels and not caps.aiter_hip_kernels


def lds_bytes(caps: ArchCapabilities) -> int:
    """LDS one workgroup may allocate, in bytes (a Triton candidate needing more cannot launch)."""
    return caps.lds_per_workgroup_kib * 1024


def code_object_runs_here(caps: ArchCapabilities, target: str) -> bool:
    """A code object built for LLVM target `target` runs on this arch (exact or generic target)."""
    return target == caps.arch or target in caps.generic_targets
