"""Ahead-of-time compilation of a Triton kernel for an AMD target on any machine (no GPU), and
the static metrics of its AMDGCN. Shared by every ISA report (rocm_enable.isa for the W8A16
kernels, ops/attention_isa, ops/vllm_moe_isa, the GDN report) and the ISA tests; it imports none
of them.

compile_for_arch goes through Triton's own JIT binder, so the specialisation (constexpr 1s,
divisibility-16, buffer-op pointer ranges) is what a real launch gets.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re

import triton

from rocm_enable.gates.capabilities import capabilities_for, is_wave32_rdna

FP_FUSION_ENV = "TRITON_DEFAULT_FP_FUSION"


def warp_size(arch: str) -> int:
    return capabilities_for(arch).wave_size


def lds_per_occupancy_unit(arch: str) -> int:
    """LDS shared by the SIMDs that LLVM's occupancy counts: a WGP (two workgroup-sized halves,
    4 SIMD32) on wave32 RDNA, a CU (one workgroup-sized pool, 4 SIMDs) on CDNA."""
    caps = capabilities_for(arch)
    return caps.lds_per_workgroup_kib * 1024 * (2 if is_wave32_rdna(caps) else 1)


def load_compilable_kernels(path: str, module_name: str):
    """Import a kernel module afresh with the interpreter off, so its @triton.jit objects
    are JITFunctions even inside a test session that set TRITON_INTERPRET=1."""
    old = os.environ.pop("TRITON_INTERPRET", None)
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        if old is not None:
            os.environ["TRITON_INTERPRET"] = old
    return mod


class _FakeTensor:
    """What Triton's binder reads from a tensor: dtype, data_ptr (0: 16-byte aligned) and,
    for the HIP backend, ptr_range (< 2 GiB enables buffer loads)."""

    def __init__(self, dtype, nbytes):
        self.dtype, self.nbytes = dtype, nbytes
        self.data_ptr = lambda: 0
        self.ptr_range = lambda: nbytes


def fake_tensor(dtype, nbytes=1 << 20):
    return _FakeTensor(dtype, nbytes)


def compile_for_arch(fn, args: dict, options: dict, arch: str):
    """Compile JITFunction ``fn`` for ``arch`` with launch-style ``args``; returns the
    CompiledKernel (``.asm['amdgcn']``, ``.metadata``)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    target = GPUTarget("hip", arch, warp_size(arch))
    backend = make_backend(target)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, specialization, _ = binder(**args)
    sig = [s[0] for s in specialization]
    names = [p.name for p in fn.params]
    constexprs = {(i,): bound[n] for i, n in enumerate(names) if sig[i] == "constexpr"}
    attrs = {(i,): backend.parse_attr(s[1]) for i, s in enumerate(specialization)
             if s[0] != "constexpr" and isinstance(s[1], str)}
    src = ASTSource(fn, dict(zip(names, sig)), constexprs, attrs)
    with _fp_fusion_spelled_out():
        return triton.compile(src, target=target, options=dict(options))


@contextlib.contextmanager
def _fp_fusion_spelled_out():
    """Compile with TRITON_DEFAULT_FP_FUSION set (to "1", Triton 3.9's default, unless the caller
    chose). Triton's disk cache keys a compile on that variable's presence, not its effect: a
    process that left it unset missed every kernel one that set it had compiled (the GDN report
    compiled twice per test run). Restored afterwards, so the process environment (which
    simulated-vLLM processes inherit) is not changed."""
    if FP_FUSION_ENV in os.environ:
        yield
        return
    os.environ[FP_FUSION_ENV] = "1"
    try:
        yield
    finally:
        os.environ.pop(FP_FUSION_ENV, None)


_MATRIX = ("v_wmma", "v_mfma", "v_swmmac", "v_smfmac")


def asm_metrics(asm: str, metadata, arch: str) -> dict:
    """Static metrics of one kernel's AMDGCN (see docs/kernels.md for definitions)."""
    def grab(pattern):
        m = re.search(pattern, asm, re.M)
        return int(m.group(1)) if m else None

    md = lambda key: grab(rf"^\s+(?:- )?\.{key}:\s+(\d+)")  # noqa: E731 kernel metadata
    cm = lambda key: grab(rf"^; {key}\s*[:=]\s*(\d+)")  # noqa: E731 LLVM comments
    mnems, labels, loop = [], {}, (0, 0)
    for line in asm.split(".Lfunc_end0:")[0].splitlines():
        if re.match(r"^\.LBB\w+:", line):
            labels[line.split(":")[0]] = len(mnems)
        elif m := re.match(r"^\s+([a-z][a-z0-9_]*)\b(.*)", line):
            mnems.append(m.group(1))
            t = re.search(r"(\.LBB\w+)", m.group(2))
            # backward branch (incl. long-branch s_add_u32 .LBB-.Lpost_getpc) closes a loop
            if t and t.group(1) in labels and m.group(1).startswith(("s_cbranch", "s_branch", "s_add_u32")):
                loop = max(loop, (labels[t.group(1)], len(mnems)), key=lambda r: r[1] - r[0])
    body = mnems[loop[0]:loop[1]]  # the largest backward-branch range: the K loop
    lds = max(getattr(metadata, "shared", 0) or 0, md("group_segment_fixed_size") or 0)
    r = {
        "vgpr": md("vgpr_count"), "sgpr": md("sgpr_count"),
        "spills": (md("vgpr_spill_count") or 0) + (md("sgpr_spill_count") or 0),
        "scratch": (md("private_segment_fixed_size") or 0)
        + sum(1 for x in mnems if x.startswith(("scratch_", "buffer_store_dword off"))),
        "scratch_insts": sum(1 for x in mnems if x.startswith("scratch_")),
        "cndmask": sum(1 for x in mnems if x.startswith("v_cndmask")),
        "loop_cndmask": sum(1 for x in body if x.startswith("v_cndmask")),
        "wmma": sum(1 for x in mnems if x.startswith(_MATRIX)),
        "loop_mma": sum(1 for x in body if x.startswith(_MATRIX)),
        "insts": len(mnems), "loop_insts": len(body),
        "lds": lds, "occupancy": cm("Occupancy"),
    }
    r["loop_insts_per_wmma"] = round(r["loop_insts"] / r["loop_mma"], 1) if r["loop_mma"] else None
    # LDS cap on waves/SIMD: gfx11/12 WGP = 128 KiB for 4 SIMD32; gfx9 CU = 64 KiB for 4 SIMDs
    total = lds_per_occupancy_unit(arch)
    if lds and r["occupancy"]:
        r["occupancy_lds"] = min(r["occupancy"], total // lds * metadata.num_warps // 4)
    else:
        r["occupancy_lds"] = r["occupancy"]
    return r
