"""The MoE shape grid of issue 13, the W8A16 launches the layer makes on it, and their AMD ISA.

GRID spans experts x top-k x hidden x intermediate (per tensor-parallel shard) x tokens. The
launch configs for every point come from one table per arch family (config.get_moe_config maps
the point onto the table's reference shape: config.moe_bucket_m). ``grid_launches`` runs
fused_experts_w8a16's real host code for each point on meta tensors (shapes only: nothing is
computed or allocated) with the Triton launches recorded instead of run (launch_recorder), and keys every
config-chosen launch (the GEMM and GEMV kernels) as Triton's HIP backend specialises it: the
constexprs, each argument's specialisation (int == 1 / divisible by 16, pointer alignment and
the < 2 GiB buffer-op range) and the compile options. Launches with one key compile to one
binary, so the ISA check compiles each distinct key once.

``configs/isa_checked.json`` lists, per family, every key ``write_manifest`` compiled for the
family's AMD targets and found within budget (0 VGPR/SGPR spills, no scratch, at most
LOOP_CNDMASK_MAX v_cndmask in the K loop: no select ladder); the CPU test checks the grid's keys
against it and the ISA test recompiles every listed key.

  python -m rocm_enable.ops.config_grid --write-manifest   # after changing a config or a rule
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Iterator

GRID = {
    "experts": (64, 128, 256, 512),
    "top_k": (4, 6, 8, 10),
    "hidden": (2048, 3072, 4096, 5120, 7168),
    "intermediate": tuple(range(128, 2049, 128)),  # per shard; block-128 FP8 needs a multiple of 128
    "tokens": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 2048),
}
# the families whose AMD targets the manifest covers, and the targets each is compiled for
ISA_TARGETS = {"rdna3": ("gfx1151", "gfx1100"), "rdna4": ("gfx1201",)}
CONFIG_KERNELS = ("w8a16_gemm_kernel", "w8a16_gemv_kernel", "w8a16_moe_decode_kernel")
LOOP_CNDMASK_MAX = 4
MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "isa_checked.json")


def grid_points() -> Iterator[tuple[int, int, int, int, int]]:
    """(experts, top_k, hidden, intermediate, tokens) for every grid point."""
    return itertools.product(*GRID.values())


def point_launches(family: str, point) -> list:
    """(kernel name, args, kwargs) of the config-chosen launches of one layer call at ``point``
    (bf16 activations, block-128 FP8 weights, vLLM's workspaces), recorded on meta tensors."""
    import torch

    from rocm_enable.ops import moe_w8a16
    from rocm_enable.ops.launch_recorder import recorded_launches
    from rocm_enable.ops.moe_w8a16 import fused_experts_w8a16, workspace_sizes

    E, top_k, H, I, M = point
    meta = dict(device="meta")
    ws13, ws2 = workspace_sizes(M, top_k, I, H)
    counters = dict(moe_w8a16._COUNTERS)
    try:
        with recorded_launches() as launches:
            fused_experts_w8a16(
                torch.empty(M, H, dtype=torch.bfloat16, **meta),
                torch.empty(E, 2 * I, H, dtype=torch.float8_e4m3fn, **meta),
                torch.empty(E, H, I, dtype=torch.float8_e4m3fn, **meta),
                torch.empty(E, 2 * I // 128, H // 128, **meta), torch.empty(E, H // 128, I // 128, **meta),
                torch.empty(M, top_k, **meta), torch.empty(M, top_k, dtype=torch.int32, **meta),
                block_shape=[128, 128], global_num_experts=E, arch_family=family,
                output=torch.empty(M, H, dtype=torch.bfloat16, **meta),
                workspace13=torch.empty(ws13, dtype=torch.bfloat16, **meta),
                workspace2=torch.empty(ws2, dtype=torch.bfloat16, **meta))
    finally:
        moe_w8a16._COUNTERS.clear()
        moe_w8a16._COUNTERS.update(counters)
    return [(launch.kernel, launch.args, launch.kwargs) for launch in launches
            if launch.kernel in CONFIG_KERNELS]


@contextlib.contextmanager
def _interpreter_off():
    old = os.environ.pop("TRITON_INTERPRET", None)
    try:
        yield
    finally:
        if old is not None:
            os.environ["TRITON_INTERPRET"] = old


class LaunchKeys:
    """Keys launches as Triton's HIP backend specialises them (the same for every RDNA target:
    the specialisation is the backend's, not the arch's)."""

    def __init__(self):
        from triton.backends.compiler import GPUTarget
        from triton.compiler.compiler import make_backend
        from triton.runtime.jit import create_function_from_signature

        from rocm_enable import isa

        self.kernels = isa.load_compilable_kernels()
        backend = make_backend(GPUTarget("hip", "gfx1151", 32))
        self._binders = {}
        with _interpreter_off():
            for name in CONFIG_KERNELS:
                fn = getattr(self.kernels, name)
                self._binders[name] = (fn, create_function_from_signature(fn.signature, fn.params, backend))

    def key(self, name: str, args: tuple, kwargs: dict) -> str:
        from rocm_enable.ops.config import COMPILE_OPTIONS

        fn, binder = self._binders[name]
        call = {k: v for k, v in kwargs.items() if k not in COMPILE_OPTIONS}
        bound, specialization, _ = binder(*args, **call)
        parts = []
        for param, (kind, attr) in zip(fn.params, specialization):
            value = bound[param.name]
            parts.append(f"{param.name}={value!r}" if kind == "constexpr" else f"{param.name}:{kind}{attr or ''}")
        options = ",".join(f"{k}={kwargs[k]}" for k in COMPILE_OPTIONS if k in kwargs)
        return f"{name}({';'.join(parts)})[{options}]"

    def args_dict(self, name: str, args: tuple, kwargs: dict) -> tuple[dict, dict]:
        """(launch-style args by parameter name, compile options) for aot.compile_for_arch."""
        from rocm_enable.ops.config import COMPILE_OPTIONS

        fn, _ = self._binders[name]
        named = dict(zip((p.name for p in fn.params), args))
        named.update({k: v for k, v in kwargs.items() if k not in COMPILE_OPTIONS})
        return named, {k: v for k, v in kwargs.items() if k in COMPILE_OPTIONS}


def grid_launches(family: str, keys: LaunchKeys | None = None) -> dict[str, dict]:
    """{launch key: {"point": the first grid point giving it, "launch": its index in the
    point's config-chosen launches, "points": how many grid points launch it}} over the grid."""
    keys = keys or LaunchKeys()
    found: dict[str, dict] = {}
    for point in grid_points():
        for i, launch in enumerate(point_launches(family, point)):
            k = keys.key(*launch)
            entry = found.setdefault(k, {"point": list(point), "launch": i, "points": 0})
            entry["points"] += 1
    return found


def compile_key(keys: LaunchKeys, family: str, entry: dict, arch: str) -> tuple[str, dict]:
    """(key, asm_metrics) of one manifest entry compiled for ``arch``: its grid point's launch
    is recorded again and compiled through Triton's binder (the specialisation of a real launch)."""
    from rocm_enable.ops.aot import asm_metrics, compile_for_arch

    name, args, kwargs = point_launches(family, tuple(entry["point"]))[entry["launch"]]
    named, options = keys.args_dict(name, args, kwargs)
    with _interpreter_off():
        k = compile_for_arch(getattr(keys.kernels, name), named, options, arch)
    metrics = asm_metrics(k.asm["amdgcn"], k.metadata, arch)
    if name == "w8a16_moe_decode_kernel":
        metrics["innermost_loop_cndmask"] = innermost_loop_cndmask(k.asm["amdgcn"])
    return keys.key(name, args, kwargs), metrics


def innermost_loop_cndmask(asm: str) -> int:
    """Most v_cndmask in any innermost loop (a backward-branch range holding no other one). For the
    single-launch decode kernel: LLVM lays its spin-wait out after the w2 GEMV, so the wait's exit
    is a backward branch around the whole GEMV and aot.asm_metrics' largest "loop" is that range
    (it counts the GEMV prologue's selects); the K loops are the innermost ranges."""
    import re

    mnems, labels, loops = [], {}, []
    for line in asm.split(".Lfunc_end0:")[0].splitlines():
        if re.match(r"^\.LBB\w+:", line):
            labels[line.split(":")[0]] = len(mnems)
        elif m := re.match(r"^\s+([a-z][a-z0-9_]*)\b(.*)", line):
            mnems.append(m.group(1))
            t = re.search(r"(\.LBB\w+)", m.group(2))
            if t and t.group(1) in labels and m.group(1).startswith(("s_cbranch", "s_branch")):
                loops.append((labels[t.group(1)], len(mnems)))
    inner = [(a, b) for a, b in loops if not any(a <= c and d <= b and (c, d) != (a, b) for c, d in loops)]
    return max((sum(1 for x in mnems[a:b] if x.startswith("v_cndmask")) for a, b in inner), default=0)


def budget_violations(key: str, metrics: dict) -> list[str]:
    """The budgets a grid launch must meet (empty list: met); the tile kernel's K loop must also
    use matrix instructions."""
    loop_cndmask = metrics.get("innermost_loop_cndmask", metrics["loop_cndmask"])
    checks = {"no VGPR/SGPR spills": metrics["spills"] == 0,
              "no scratch": metrics["scratch"] == 0 and metrics["scratch_insts"] == 0,
              f"K-loop v_cndmask <= {LOOP_CNDMASK_MAX} (no select ladder)": loop_cndmask <= LOOP_CNDMASK_MAX}
    if key.startswith("w8a16_gemm_kernel("):
        checks["WMMA in the K loop"] = metrics["loop_mma"] > 0
    return [name for name, ok in checks.items() if not ok]


def load_manifest() -> dict:
    with open(MANIFEST) as f:
        return json.load(f)


def write_manifest(path: str = MANIFEST, log=print) -> dict:
    """Compile every distinct grid launch of each ISA_TARGETS family for its targets; write the
    manifest only when all are within budget (else raise, naming each failure)."""
    keys = LaunchKeys()
    out, bad = {}, []
    for family, archs in ISA_TARGETS.items():
        launches = grid_launches(family, keys)
        log(f"{family}: {len(launches)} distinct launches over {sum(1 for _ in grid_points())} grid points")
        for key, entry in sorted(launches.items()):
            entry["isa"] = {}
            for arch in archs:
                recompiled, m = compile_key(keys, family, entry, arch)
                assert recompiled == key
                bad += [f"{family} {arch} {key}: {v}" for v in budget_violations(key, m)]
                entry["isa"][arch] = {k: m[k] for k in ("vgpr", "spills", "scratch", "loop_cndmask",
                                                        "loop_mma", "loop_insts", "occupancy")}
        out[family] = dict(sorted(launches.items()))
    if bad:
        raise RuntimeError("launches over the ISA budget:\n" + "\n".join(bad))
    with open(path, "w") as f:
        json.dump({"_why": "every distinct W8A16 GEMM/GEMV launch the MoE layer makes on the shape grid "
                           "(rocm_enable/ops/config_grid.py), compiled ahead of time for each target: 0 "
                           "spills, no scratch, no select ladder. Regenerate with `python -m "
                           "rocm_enable.ops.config_grid --write-manifest`; tests/ops/test_moe_config_grid.py "
                           "checks the grid against it and tests/ops/test_w8a16_isa.py recompiles it.",
                   **out}, f, indent=1)
        f.write("\n")
    return out


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write-manifest", action="store_true", help=f"compile and write {MANIFEST}")
    ap.add_argument("--family", default="rdna3", help="family whose distinct grid launches to list")
    a = ap.parse_args(argv)
    if a.write_manifest:
        write_manifest()
        return
    for key, entry in sorted(grid_launches(a.family).items()):
        print(entry["points"], entry["point"], key)


if __name__ == "__main__":
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    main()
