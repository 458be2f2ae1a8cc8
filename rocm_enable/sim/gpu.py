"""The simulated arch on a machine that has a real (non-AMD) GPU: vLLM decides as on the simulated
arch, and every kernel it selects runs on the GPU that is there.

`rocm_enable.sim.activate` stubs vLLM's compiled extensions as empty modules, which is enough for
selection code on a CPU. Running the engine needs the stubs to look like what they stand for, a
ROCm build of vLLM made *without* the simulated arch (the realistic case rocm-enable exists for):

  - host-side op schemas: a ROCm build registers every op's schema on the host whatever archs it
    was compiled for; only the device code is missing. Modules that take `torch.ops._C.<op>` at
    import time (torch.compile's fusion passes, SiluAndMul.__init__) need the schema. Calling one
    raises NotImplementedError, the stand-in for HIP's "invalid device function";
  - the two host-only helpers with no device code at all (`weak_ref_tensor`, which CUDA-graph
    capture uses, and `get_cuda_view_from_cpu_tensor`, used by the V2 model runner) get working
    implementations: they are not kernels, so running them here hides nothing;
  - each stub gets a `__file__`: an ELF whose `.hip_fatbin` holds code objects for CDNA archs only,
    so rocm-enable's code-object gates (rocm_enable.gates.code_objects) see "built without this
    arch" and route around the HIP ops, as on a real board;
  - torchvision/torchaudio are not blocked: they are only broken beside the CPU torch build, and
    vLLM's kernel warm-up imports torchvision.

These live in the sim, not in the engine harness, because they describe the simulated vLLM build
(what exists on the host side of a ROCm wheel), just as the empty stubs do; the harness only
chooses the arch. Import this module only where torch has a GPU.
"""
from __future__ import annotations

import os
import struct
import sys
import tempfile

import torch

from rocm_enable import sim

HOST_TRIPLE = "host-x86_64-unknown-linux-gnu-"
DEFAULT_EXTENSION_TARGETS = ("gfx90a", "gfx942")  # a CDNA-only build: no code object for RDNA

HOST_OP_SCHEMAS = {
    "_C": [
        "rotary_embedding(Tensor positions, Tensor(a!) query, Tensor(b!)? key, int head_size, Tensor cos_sin_cache, bool is_neox, int rope_dim_offset=0, bool inverse=False) -> ()",
        "rms_norm(Tensor(a!) out, Tensor input, Tensor? weight, float epsilon) -> ()",
        "fused_add_rms_norm(Tensor(a!) input, Tensor(b!) residual, Tensor? weight, float epsilon) -> ()",
        "silu_and_mul(Tensor(a!) out, Tensor input) -> ()",
        "mul_and_silu(Tensor(a!) out, Tensor input) -> ()",
        "gelu_and_mul(Tensor(a!) out, Tensor input) -> ()",
        "gelu_tanh_and_mul(Tensor(a!) out, Tensor input) -> ()",
        "static_scaled_fp8_quant(Tensor(a!) result, Tensor input, Tensor scale, int[]? group_shape=None) -> ()",
        "dynamic_scaled_fp8_quant(Tensor(a!) result, Tensor input, Tensor(b!) scale) -> ()",
        "dynamic_per_token_scaled_fp8_quant(Tensor(a!) result, Tensor input, Tensor(b!) scale, Tensor? scale_ub) -> ()",
        "per_token_group_fp8_quant(Tensor input, Tensor(a!) output_q, Tensor(b!) output_s, int group_size, float eps, float fp8_min, float fp8_max, bool scale_ue8m0, bool dummy_is_scale_transposed, bool dummy_is_tma_aligned) -> ()",
        "silu_and_mul_quant(Tensor(a!) result, Tensor input, Tensor scale) -> ()",
        "silu_and_mul_per_block_quant(Tensor(a!) out, Tensor input, Tensor(b!) scales, int group_size, Tensor? scale_ub=None, bool is_scale_transposed=False) -> ()",
        "rms_norm_static_fp8_quant(Tensor(a!) result, Tensor input, Tensor weight, Tensor scale, float epsilon) -> ()",
        "fused_add_rms_norm_static_fp8_quant(Tensor(a!) result, Tensor input, Tensor(b!) residual, Tensor weight, Tensor scale, float epsilon) -> ()",
        "rms_norm_dynamic_per_token_quant(Tensor(a!) result, Tensor input, Tensor weight, Tensor(b!) scale, float epsilon, Tensor? scale_ub, Tensor(c!)? residual) -> ()",
        "rms_norm_per_block_quant(Tensor(a!) result, Tensor input, Tensor weight, Tensor(b!) scale, float epsilon, Tensor? scale_ub, Tensor(c!)? residual, int group_size, bool is_scale_transposed) -> ()",
        "fused_qk_norm_rope(Tensor(a!) qkv, int num_heads_q, int num_heads_k, int num_heads_v, int head_dim, float eps, Tensor q_weight, Tensor k_weight, Tensor cos_sin_cache, bool is_neox, Tensor position_ids) -> ()",
        "weak_ref_tensor(Tensor(a) input) -> Tensor(a)",
        "get_cuda_view_from_cpu_tensor(Tensor cpu_tensor) -> Tensor",
    ],
}
_libraries: list = []  # torch.library.Library objects must outlive the registration


def offload_bundle(targets) -> bytes:
    """A Clang offload bundle (uncompressed) with a host entry and one code object per target."""
    triples = [HOST_TRIPLE] + [f"hipv4-amdgcn-amd-amdhsa--{t}" for t in targets]
    magic = b"__CLANG_OFFLOAD_BUNDLE__"
    offset = len(magic) + 8 + sum(24 + len(t) for t in triples)
    header, blobs = bytearray(magic + struct.pack("<Q", len(triples))), b""
    for t in triples:
        blob = b"\x7fELF-code-object-" + t.encode()
        header += struct.pack("<QQQ", offset, len(blob), len(t)) + t.encode()
        blobs += blob
        offset += len(blob)
    return bytes(header) + blobs


def elf_with_fatbin(fatbin: bytes) -> bytes:
    """A minimal 64-bit ELF whose only content section is `.hip_fatbin`."""
    names = b"\0.hip_fatbin\0.shstrtab\0"
    data_off = 64
    str_off = data_off + len(fatbin)
    sh_off = (str_off + len(names) + 7) & ~7
    hdr = bytearray(64)
    hdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", hdr, 0x28, sh_off)
    struct.pack_into("<HHH", hdr, 0x3A, 64, 3, 2)

    def section(name, off, size, typ=1):
        return struct.pack("<IIQQQQIIQQ", name, typ, 0, 0, off, size, 0, 0, 1, 0)

    body = bytes(hdr) + fatbin + names
    body += b"\0" * (sh_off - len(body))
    return body + section(0, 0, 0, 0) + section(1, data_off, len(fatbin)) + section(12, str_off, len(names), 3)


def write_extension_image(targets, directory: str | None = None) -> str:
    """Write the ELF standing in for the extensions' shared objects; returns its path."""
    path = os.path.join(directory or tempfile.gettempdir(),
                        f"rocm_enable_sim_ext_{'_'.join(targets) or 'none'}.so")
    data = elf_with_fatbin(offload_bundle(targets))
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # several vLLM processes start at once
    return path


class _CudaArrayView:
    def __init__(self, cpu_tensor):
        storage = cpu_tensor.untyped_storage()
        self.keep = cpu_tensor
        self.__cuda_array_interface__ = {"shape": (max(storage.nbytes(), 1),), "typestr": "|u1",
                                         "data": (storage.data_ptr(), False), "version": 3}


def _cuda_view_from_cpu_tensor(cpu_tensor):
    # cudaHostGetDevicePointer in the real build: under UVA a pinned host pointer is valid on the device
    if not cpu_tensor.is_pinned():
        raise ValueError("get_cuda_view_from_cpu_tensor needs a pinned CPU tensor")
    flat = torch.as_tensor(_CudaArrayView(cpu_tensor), device="cuda")
    return flat.view(cpu_tensor.dtype).as_strided(cpu_tensor.shape, cpu_tensor.stride(),
                                                  cpu_tensor.storage_offset())


def install_host_ops() -> list[str]:
    """Define the host-side schemas a ROCm build registers; returns the ops defined now."""
    defined = []
    for namespace, schemas in HOST_OP_SCHEMAS.items():
        lib = torch.library.Library(namespace, "FRAGMENT")
        _libraries.append(lib)
        for schema in schemas:
            name = schema.split("(", 1)[0]
            if hasattr(getattr(torch.ops, namespace), name):
                continue
            lib.define(schema)
            defined.append(f"{namespace}::{name}")
            if name == "weak_ref_tensor":  # a strong reference stands in for the weak one
                for key in ("CPU", "CUDA", "Meta"):
                    lib.impl(name, lambda t: t.view(t.shape), key)
            elif name == "get_cuda_view_from_cpu_tensor":
                lib.impl(name, _cuda_view_from_cpu_tensor, "CPU")
    return defined


def activate_on_gpu(arch: str, extension_targets=DEFAULT_EXTENSION_TARGETS) -> None:
    """`sim.activate(arch)` plus what running vLLM's engine on a real GPU needs (module docstring).
    Idempotent in one process."""
    if not torch.cuda.is_available():
        raise RuntimeError("rocm_enable.sim.gpu needs a GPU torch; on a CPU use rocm_enable.sim.activate")
    sim.activate(arch)
    for name in sim.BROKEN_ON_CPU_TORCH:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]
    image = write_extension_image(tuple(extension_targets)) if extension_targets else None
    for name in sim.COMPILED_EXTENSIONS:
        module = sys.modules.get(name)
        if image and module is not None and not getattr(module, "__file__", None):
            module.__file__ = image
    install_host_ops()
