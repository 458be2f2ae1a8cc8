"""Which GPU code objects a compiled HIP extension carries: a capability of (extension file, arch).

vLLM's compiled extensions (`_C`, `_rocm_C`, `_moe_C`) hold device code only for the archs listed in
PYTORCH_ROCM_ARCH when they were built. Python-side checks such as
`hasattr(torch.ops._rocm_C, "gptq_gemm_rdna3")` succeed regardless (the host-side op is registered
for every build), so a vLLM built without gfx1151 dies at the first launch with "invalid device
function". This module reads the extension's offload bundles instead:

  - ELF section `.hip_fatbin` (found through the section headers; a whole-file scan otherwise);
  - inside it, Clang offload bundles: magic `__CLANG_OFFLOAD_BUNDLE__`, u64 entry count, then per
    entry u64 offset, u64 size, u64 triple length and the triple, e.g.
    `hipv4-amdgcn-amd-amdhsa--gfx1151` or `hip-amdgcn-amd-amdhsa--gfx942:sramecc+:xnack-`;
  - compressed bundles (`CCOB`, `--offload-compress`): header versions 1-3, zlib or zstd payload.
    zlib is always available; zstd only with the `zstandard` module. A bundle we cannot decode makes
    the answer "unknown", never "absent".

A code object for an LLVM generic target (gfx11-generic, ...) runs on every arch whose capability
record lists that target (capabilities.yaml `generic_targets`).
"""
from __future__ import annotations

import functools
import mmap
import os
import struct
import sys
import zlib
from dataclasses import dataclass, field

BUNDLE_MAGIC = b"__CLANG_OFFLOAD_BUNDLE__"
COMPRESSED_MAGIC = b"CCOB"
FATBIN_SECTION = b".hip_fatbin"
PRESENT, ABSENT, UNKNOWN = "present", "absent", "unknown"
_ZLIB, _ZSTD = 1, 2


@dataclass(frozen=True)
class BundleScan:
    """What the offload bundles of one file contain."""

    targets: frozenset[str]          # device targets, feature suffixes removed: gfx1151, gfx11-generic
    triples: tuple[str, ...]         # raw entry triples, for reports
    bundles: int                     # bundles found
    undecodable: tuple[str, ...] = field(default=())  # why a bundle could not be read
    source: str = "none"             # "hip_fatbin" | "scan" | "none"


def target_of_triple(triple: str) -> str | None:
    """'hipv4-amdgcn-amd-amdhsa--gfx1151' -> 'gfx1151'; host entries -> None."""
    if "amdgcn-amd-amdhsa" not in triple or "--" not in triple:
        return None
    target = triple.rsplit("--", 1)[1].split(":")[0].strip().lower()
    return target or None


def parse_bundle(data: bytes | memoryview, start: int = 0) -> tuple[list[str], int]:
    """Entry triples of the uncompressed bundle at `start`, and the bundle's end offset."""
    view = memoryview(data)
    pos = start + len(BUNDLE_MAGIC)
    (count,) = struct.unpack_from("<Q", view, pos)
    if count > 4096:
        raise ValueError(f"implausible offload-bundle entry count {count}")
    pos += 8
    triples, end = [], pos
    for _ in range(count):
        offset, size, tlen = struct.unpack_from("<QQQ", view, pos)
        pos += 24
        if tlen > 1024:
            raise ValueError(f"implausible triple length {tlen}")
        triples.append(bytes(view[pos:pos + tlen]).decode("ascii", "replace"))
        pos += tlen
        end = max(end, start + offset + size)
    return triples, max(end, pos)


def decompress_bundle(data: bytes | memoryview, start: int = 0) -> bytes:
    """The uncompressed bundle inside a `CCOB` header (clang-offload-bundler formats v1-v3)."""
    view = memoryview(data)
    version, method = struct.unpack_from("<HH", view, start + 4)
    if version == 1:
        header, total = 4 + 4 + 4 + 8, None
    elif version == 2:
        header, (total,) = 4 + 4 + 4 + 4 + 8, struct.unpack_from("<I", view, start + 8)
    elif version == 3:
        header, (total,) = 4 + 4 + 8 + 8 + 8, struct.unpack_from("<Q", view, start + 8)
    else:
        raise ValueError(f"compressed offload bundle version {version} is not one we read")
    end = start + total if total else len(view)
    payload = bytes(view[start + header:end])
    if method == _ZLIB:
        return zlib.decompress(payload)
    if method == _ZSTD:
        try:
            import zstandard
        except ImportError:
            raise ValueError("zstd-compressed offload bundle and no `zstandard` module") from None
        return zstandard.ZstdDecompressor().decompress(payload, max_output_size=1 << 31)
    raise ValueError(f"compressed offload bundle method {method} is not one we read")


def _find_all(view: mmap.mmap | bytes, needle: bytes, lo: int, hi: int):
    pos = view.find(needle, lo, hi)
    while pos != -1:
        yield pos
        pos = view.find(needle, pos + 1, hi)


def _elf_section(data, name: bytes) -> tuple[int, int] | None:
    """(offset, size) of ELF64 little-endian section `name`, or None."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if not shoff or shentsize < 64 or shstrndx >= shnum or shoff + shnum * shentsize > len(data):
        return None

    def header(i):
        base = shoff + i * shentsize
        sh_name = struct.unpack_from("<I", data, base)[0]
        off, size = struct.unpack_from("<QQ", data, base + 24)
        return sh_name, off, size

    _, str_off, str_size = header(shstrndx)
    for i in range(shnum):
        sh_name, off, size = header(i)
        end = data.find(b"\0", str_off + sh_name, str_off + str_size)
        if data[str_off + sh_name:end] == name:
            return off, size
    return None


def scan_bytes(data) -> BundleScan:
    """Offload bundles in an extension image (bytes or mmap)."""
    section = _elf_section(data, FATBIN_SECTION)
    lo, hi, source = (section[0], section[0] + section[1], "hip_fatbin") if section else (0, len(data), "scan")
    triples, bundles, bad = [], 0, []
    for pos in _find_all(data, BUNDLE_MAGIC, lo, hi):
        try:
            found, _ = parse_bundle(data, pos)
        except (struct.error, ValueError) as exc:
            bad.append(f"bundle at {pos:#x}: {exc}")
            continue
        bundles += 1
        triples += found
    for pos in _find_all(data, COMPRESSED_MAGIC, lo, hi):
        try:
            inner = decompress_bundle(data, pos)
            if not inner.startswith(BUNDLE_MAGIC):
                raise ValueError("decompressed payload is not an offload bundle")
            found, _ = parse_bundle(inner, 0)
        except (struct.error, ValueError, zlib.error) as exc:
            if source == "hip_fatbin":  # outside the fatbin section "CCOB" may be ordinary bytes
                bad.append(f"compressed bundle at {pos:#x}: {exc}")
            continue
        bundles += 1
        triples += found
    targets = frozenset(t for t in map(target_of_triple, triples) if t)
    return BundleScan(targets, tuple(triples), bundles, tuple(bad), source if bundles or bad else "none")


@functools.lru_cache(maxsize=64)
def _scan_file_cached(path: str, size: int, mtime_ns: int) -> BundleScan:
    with open(path, "rb") as fh:
        if size == 0:
            return BundleScan(frozenset(), (), 0)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return scan_bytes(data)


def scan_file(path: str) -> BundleScan:
    st = os.stat(path)
    return _scan_file_cached(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class CodeObjectVerdict:
    status: str   # present | absent | unknown
    reason: str

    @property
    def absent(self) -> bool:
        return self.status == ABSENT

    @property
    def present(self) -> bool:
        return self.status == PRESENT


def code_object_status(path: str | None, arch: str) -> CodeObjectVerdict:
    """Does the extension at `path` carry a code object that runs on `arch`?

    "unknown" (file missing, no bundle found, a bundle we cannot decode) is never read as absent:
    callers keep vLLM's own decision then."""
    from rocm_enable.gates.capabilities import capabilities_for

    if not path:
        return CodeObjectVerdict(UNKNOWN, "extension file not found")
    try:
        scan = scan_file(path)
    except OSError as exc:
        return CodeObjectVerdict(UNKNOWN, f"cannot read {path}: {exc}")
    runs_here = {arch, *capabilities_for(arch).generic_targets}
    hit = sorted(runs_here & scan.targets)
    if hit:
        return CodeObjectVerdict(PRESENT, f"{os.path.basename(path)} carries {', '.join(hit)}")
    if scan.undecodable:
        return CodeObjectVerdict(UNKNOWN, f"{os.path.basename(path)}: {scan.undecodable[0]}")
    if not scan.bundles:
        return CodeObjectVerdict(UNKNOWN, f"{os.path.basename(path)} has no offload bundle")
    return CodeObjectVerdict(
        ABSENT, f"{os.path.basename(path)} was built for {', '.join(sorted(scan.targets)) or 'no GPU'}"
        f", not {arch} (PYTORCH_ROCM_ARCH at build time)")


def extension_file(module_name: str) -> str | None:
    """The shared object behind an imported (or importable) extension module."""
    mod = sys.modules.get(module_name)
    path = getattr(mod, "__file__", None) if mod is not None else None
    if path:
        return path
    if mod is not None:  # a stand-in module (simulation) or a namespace without a file
        return None
    try:
        import importlib.util

        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec and spec.origin and spec.has_location else None


def extensions_status(module_names: tuple[str, ...], arch: str) -> CodeObjectVerdict:
    """Combined verdict over the extensions that may hold an op (e.g. `_C` and its stable-ABI twin):
    present if one carries the arch, absent only if every one that exists was read and lacks it."""
    verdicts = [(m, code_object_status(extension_file(m), arch)) for m in module_names]
    for name, v in verdicts:
        if v.present:
            return v
    found = [(m, v) for m, v in verdicts if v.reason != "extension file not found"]
    if found and all(v.absent for _, v in found):
        return CodeObjectVerdict(ABSENT, "; ".join(v.reason for _, v in found))
    why = "; ".join(f"{m}: {v.reason}" for m, v in verdicts)
    return CodeObjectVerdict(UNKNOWN, why)
