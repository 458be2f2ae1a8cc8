"""AOT AMDGCN analysis of vLLM's OWN fused-MoE Triton kernels under tuned-config entries (no GPU).

The tuned fused-MoE config files that rocm-enable ships (rocm_enable/stacks/vllm/moe_configs,
found through the fix ``moe-config-board-names``) feed two kernels of vLLM's
``model_executor/layers/fused_moe/fused_moe.py``: ``fused_moe_kernel`` (bf16/fp16 checkpoints) and
``fused_moe_kernel_gptq_awq`` (int4 W4A16 GPTQ/AWQ, "dtype=int4_w4a16" files). Nothing of vLLM is
copied: at run time the ``@triton.jit`` functions are read out of the installed vLLM's source file
(vLLM's CPU build disables Triton at import, so its JITFunctions cannot be imported as objects)
and compiled for ``GPUTarget("hip", arch, 32)`` through Triton's own binder
(rocm_enable.ops.aot.compile_for_arch) with the arguments vLLM's launchers pass
(invoke_fused_moe_triton_kernel / invoke_fused_moe_wna16_triton_kernel), for the weight layouts
vLLM allocates (unquantized: w13 (E, 2I, H), w2 (E, H, I); moe_wna16: uint8 (E, N, K/2) with
(E, N, K/g) scales and (E, N/2, K/g) zero points).

Used by scripts/derive_vllm_moe_configs.py (which derives the shipped files) and by
tests/gates/test_moe_config_lookup.py (which checks every shipped entry compiles without spills).
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass

FUSED_MOE_REL = os.path.join("model_executor", "layers", "fused_moe", "fused_moe.py")
BF16_KERNEL, INT4_KERNEL = "fused_moe_kernel", "fused_moe_kernel_gptq_awq"
INT4_DTYPE = "int4_w4a16"  # vLLM's _get_config_dtype_str for use_int4_w4a16; bf16/fp16 -> None
# Group size of the published int4 GPTQ/AWQ checkpoints of the target models (moe_wna16 halves it
# only when a dimension is not divisible; 512 and 2048 are).
INT4_GROUP_SIZE = 128
# vLLM's naive (one token per M-block) assignment: fused_moe._prepare_expert_assignment uses it when
# num_tokens * top_k * SPARSITY <= E, with no expert map, and never for the wna16 kernels.
NAIVE_SPARSITY = 4
# The bundled model configs whose MoE shapes get shipped files, and the tensor-parallel sizes
# (two Strix Halo boxes, TP=2, is a common setup).
TARGET_MODELS = ("Qwen/Qwen3-Next-80B-A3B-Instruct", "Qwen/Qwen3.6-35B-A3B")
TENSOR_PARALLEL = (1, 2)
MATRIX_TILE = 16 * 16 * 16  # one v_wmma_f32_16x16x16_{bf16,f16} on gfx11


@dataclass(frozen=True)
class MoeShape:
    """One MoE layer as vLLM's fused kernels see it on one GPU: E experts, top_k, hidden size,
    intermediate size of the shard (vLLM's config-file N)."""
    E: int
    top_k: int
    hidden: int
    inter: int

    def gemm(self, name: str) -> dict:
        """N, K, top_k and MUL_ROUTED_WEIGHT of one of the two GEMMs, as fused_experts launches
        them (w13 fused gate/up: N=2I, K=H; w2 down: N=H, K=I, top_k=1, router weight applied)."""
        if name == "w13":
            return dict(N=2 * self.inter, K=self.hidden, top_k=self.top_k, mul_routed_weight=False)
        return dict(N=self.hidden, K=self.inter, top_k=1, mul_routed_weight=True)

    def naive(self, m: int) -> bool:
        """Whether vLLM takes the naive block assignment at batch m (bf16 kernel only)."""
        return m * self.top_k * NAIVE_SPARSITY <= self.E

    def file_name(self, device_name: str, dtype: str | None) -> str:
        """vLLM's get_config_file_name format (no block_shape: the int4 block is [0, group])."""
        dtype_field = f",dtype={dtype}" if dtype else ""
        return f"E={self.E},N={self.inter},device_name={device_name}{dtype_field}.json"


def target_shapes() -> list[tuple[str, int, MoeShape]]:
    """(model, tp, shape) for every target model and TP size, from the bundled model configs."""
    from rocm_enable.models import load_model

    out = []
    for model in TARGET_MODELS:
        spec = load_model(model)
        for tp in TENSOR_PARALLEL:
            out.append((model, tp, MoeShape(spec.num_experts, spec.top_k, spec.hidden_size,
                                            spec.moe_intermediate_size // tp)))
    return out


def shape_for_file(file_name: str) -> MoeShape:
    """The target shape a shipped file name (E=..,N=..) belongs to."""
    m = re.match(r"E=(\d+),N=(\d+),", file_name)
    for _model, _tp, s in target_shapes():
        if m and (s.E, s.inter) == (int(m.group(1)), int(m.group(2))):
            return s
    raise KeyError(f"{file_name}: not a target MoE shape")


def dtype_of_file(file_name: str) -> str | None:
    m = re.search(r",dtype=([^,]+?)(?:,|\.json$)", file_name)
    return m.group(1) if m else None


# --------------------------------------------------------------------------------------------
# vLLM's kernels, read from the installed package at run time


def vllm_package_dir() -> str:
    """The vLLM package directory on sys.path, without importing vLLM."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("vLLM is not installed")
    return list(spec.submodule_search_locations)[0]


def vllm_configs_dir(vllm_dir: str | None = None) -> str:
    return os.path.join(os.path.dirname(os.path.join(vllm_dir or vllm_package_dir(), FUSED_MOE_REL)), "configs")


def extract_jit_source(path: str) -> str:
    """A module made of the @triton.jit functions of ``path`` (verbatim, in order) under
    ``import triton`` / ``import triton.language as tl``, which is all they reference."""
    with open(path) as f:
        src = f.read()
    lines = src.splitlines()
    out = ["import triton", "import triton.language as tl", ""]
    for node in ast.parse(src).body:
        if isinstance(node, ast.FunctionDef) and any(
                ast.unparse(d).split("(")[0] in ("triton.jit", "jit") for d in node.decorator_list):
            start = min(d.lineno for d in node.decorator_list)
            out += lines[start - 1:node.end_lineno] + ["", ""]
    return "\n".join(out)


@functools.lru_cache(maxsize=None)
def load_vllm_moe_kernels(vllm_dir: str | None = None):
    """vLLM's fused-MoE JITFunctions (fused_moe_kernel, fused_moe_kernel_gptq_awq, ...)."""
    from rocm_enable.ops.aot import load_compilable_kernels

    path = os.path.join(vllm_dir or vllm_package_dir(), FUSED_MOE_REL)
    text = extract_jit_source(path)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), f"rocm_enable_vllm_moe_{digest}")
    os.makedirs(folder, exist_ok=True)
    module_path = os.path.join(folder, "vllm_fused_moe_kernels.py")
    if not os.path.exists(module_path):
        tmp = f"{module_path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, module_path)
    mod = load_compilable_kernels(module_path, f"_rocm_enable_vllm_moe_{digest}")
    for name in (BF16_KERNEL, INT4_KERNEL):
        if not hasattr(mod, name):
            raise ImportError(f"{path} has no @triton.jit {name}")
    return mod


# --------------------------------------------------------------------------------------------
# launch arguments, as vLLM passes them


def _options(cfg: dict) -> dict:
    opts = {"num_warps": int(cfg["num_warps"]), "num_stages": int(cfg["num_stages"])}
    if "waves_per_eu" in cfg:
        opts["waves_per_eu"] = int(cfg["waves_per_eu"])
    return opts


def _tiles(cfg: dict) -> dict:
    return {k: int(cfg[k]) for k in ("BLOCK_SIZE_M", "BLOCK_SIZE_N", "BLOCK_SIZE_K", "GROUP_SIZE_M")}


# Representative runtime scalars. Triton specialises an int argument only on ==1 and on
# divisibility by 16; the padded row count EM is a multiple of BLOCK_SIZE_M (>=16) and the
# number of (token, expert) pairs is in general not a multiple of 16.
_EM, _PAIRS_PER_TOP_K = 4096, 7


def bf16_launch(shape: MoeShape, gemm: str, cfg: dict, naive: bool):
    """(kernel name, args, options) of invoke_fused_moe_triton_kernel for a bf16 checkpoint."""
    import triton.language as tl

    from rocm_enable.ops.aot import fake_tensor as _t

    g = shape.gemm(gemm)
    N, K = g["N"], g["K"]
    act = tl.bfloat16
    args = dict(
        a_ptr=_t(act), b_ptr=_t(act, shape.E * N * K * 2), c_ptr=_t(act), b_bias_ptr=None,
        a_scale_ptr=None, b_scale_ptr=None, topk_weights_ptr=_t(tl.float32),
        sorted_token_ids_ptr=None if naive else _t(tl.int32), expert_ids_ptr=_t(tl.int32),
        num_tokens_post_padded_ptr=_t(tl.int32), N=N, K=K, EM=_EM,
        num_valid_tokens=_PAIRS_PER_TOP_K * shape.top_k,
        stride_am=K, stride_ak=1, stride_be=N * K, stride_bk=1, stride_bn=K, stride_cm=N, stride_cn=1,
        stride_asm=0, stride_ask=0, stride_bse=0, stride_bsk=0, stride_bsn=0, stride_bbe=0, stride_bbn=0,
        group_n=0, group_k=0, naive_block_assignment=naive, **_tiles(cfg), SPLIT_K=1,
        MUL_ROUTED_WEIGHT=g["mul_routed_weight"], top_k=g["top_k"], compute_type=act,
        use_fp8_w8a8=False, use_int8_w8a8=False, use_int8_w8a16=False, per_channel_quant=False,
        HAS_BIAS=False, SWAP_AB=False, USE_TD=False)
    return BF16_KERNEL, args, _options(cfg)


def int4_launch(shape: MoeShape, gemm: str, cfg: dict, has_zp: bool, group: int = INT4_GROUP_SIZE):
    """(kernel name, args, options) of invoke_fused_moe_wna16_triton_kernel (moe_wna16 layout)."""
    import triton.language as tl

    from rocm_enable.ops.aot import fake_tensor as _t

    g = shape.gemm(gemm)
    N, K = g["N"], g["K"]
    act = tl.bfloat16
    args = dict(
        a_ptr=_t(act), b_ptr=_t(tl.uint8, shape.E * N * K // 2), c_ptr=_t(act),
        b_scale_ptr=_t(act, shape.E * N * (K // group) * 2),
        b_zp_ptr=_t(tl.uint8, shape.E * (N // 2) * (K // group)) if has_zp else None,
        topk_weights_ptr=_t(tl.float32), sorted_token_ids_ptr=_t(tl.int32), expert_ids_ptr=_t(tl.int32),
        num_tokens_post_padded_ptr=_t(tl.int32), N=N, K=K, EM=_EM,
        num_valid_tokens=_PAIRS_PER_TOP_K * shape.top_k,
        stride_am=K, stride_ak=1, stride_be=N * K // 2, stride_bk=1, stride_bn=K // 2,
        stride_cm=N, stride_cn=1,
        stride_bse=N * (K // group), stride_bsk=1, stride_bsn=K // group,
        stride_bze=(N // 2) * (K // group) if has_zp else 0, stride_bzk=1 if has_zp else 0,
        stride_bzn=K // group if has_zp else 0,
        block_k_diviable=K % int(cfg["BLOCK_SIZE_K"]) == 0, group_size=group, **_tiles(cfg),
        SPLIT_K=int(cfg.get("SPLIT_K", 1)), MUL_ROUTED_WEIGHT=g["mul_routed_weight"], top_k=g["top_k"],
        compute_type=act, has_zp=has_zp, use_int4_w4a16=True, use_int8_w8a16=False)
    return INT4_KERNEL, args, _options(cfg)


@dataclass(frozen=True)
class Launch:
    """One kernel launch vLLM can make with a config entry (picklable: built into arguments only
    where it is compiled). ``variant``: the naive block assignment (bf16) / zero points (int4)."""
    dtype: str | None
    shape: MoeShape
    gemm: str
    cfg: tuple
    variant: bool

    @property
    def config(self) -> dict:
        return dict(self.cfg)

    @property
    def label(self) -> str:
        if self.dtype == INT4_DTYPE:
            return f"{self.gemm} {'awq-zp' if self.variant else 'gptq-sym'}"
        return f"{self.gemm} {'naive' if self.variant else 'sorted'}"

    def build(self):
        """(kernel name, args, options)."""
        if self.dtype == INT4_DTYPE:
            return int4_launch(self.shape, self.gemm, self.config, self.variant)
        return bf16_launch(self.shape, self.gemm, self.config, self.variant)


def config_key(cfg: dict) -> tuple:
    return tuple(sorted((k, int(v)) for k, v in cfg.items()))


def launches(shape: MoeShape, dtype: str | None, cfg: dict, m: int | None = None,
             variants: tuple | None = None) -> list[Launch]:
    """Every launch vLLM can make with ``cfg``: both GEMMs; bf16: the sorted path (always possible:
    expert parallelism, host-resident weights) and, when batch m takes it, the naive path; int4:
    with and without zero points (AWQ / symmetric GPTQ). ``variants`` restricts the variant flags."""
    if dtype not in (None, INT4_DTYPE):
        raise ValueError(f"no kernel analysis for dtype {dtype!r}")
    if variants is None:
        if dtype == INT4_DTYPE:
            variants = (False, True)
        else:
            variants = (False, True) if m is not None and shape.naive(m) else (False,)
    return [Launch(dtype, shape, gemm, config_key(cfg), v) for gemm in ("w13", "w2") for v in variants]


def launch_key(launch: Launch, arch: str) -> str:
    """What Triton compiles for this launch (its binder's specialisation, constexpr values and the
    options): equal keys compile to the same code object, so one compile serves them."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    from rocm_enable.ops.aot import warp_size

    kernel, args, options = launch.build()
    fn = getattr(load_vllm_moe_kernels(), kernel)
    backend = make_backend(GPUTarget("hip", arch, warp_size(arch)))
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, specialization, _ = binder(**args)
    names = [p.name for p in fn.params]
    spec = [(n, s[0], str(s[1]) if s[0] != "constexpr" else repr(bound[n]))
            for n, s in zip(names, specialization)]
    return json.dumps([kernel, arch, spec, sorted(options.items())])


def compile_launch(launch: Launch, arch: str) -> dict:
    """asm_metrics of one launch compiled for ``arch`` (see rocm_enable.ops.aot.asm_metrics)."""
    from rocm_enable.ops.aot import asm_metrics, compile_for_arch

    kernel, args, options = launch.build()
    k = compile_for_arch(getattr(load_vllm_moe_kernels(), kernel), args, options, arch)
    return asm_metrics(k.asm["amdgcn"], k.metadata, arch)


def violations(metrics: dict, arch: str) -> list[str]:
    """Why a compiled launch is unusable on ``arch``: VGPR/SGPR spills, scratch, LDS over the
    workgroup limit, or no matrix instruction at all."""
    from rocm_enable.gates.capabilities import capabilities_for, lds_bytes

    bad = []
    if metrics["spills"]:
        bad.append(f"{metrics['spills']} spills")
    if metrics["scratch"] or metrics["scratch_insts"]:
        bad.append(f"scratch {metrics['scratch']}")
    if metrics["lds"] > lds_bytes(capabilities_for(arch)):
        bad.append(f"LDS {metrics['lds']} B")
    if not metrics["wmma"]:
        bad.append("no matrix instruction")
    return bad


def wave_instructions(metrics: dict, cfg: dict, K: int) -> float:
    """Instructions one wave issues for its share of one program's tile: the static code outside
    the K loop once, plus the K loop as many times as the WMMAs still owed require (the pipeliner
    peels iterations out of the loop; a fully unrolled loop has loop_mma == 0)."""
    bm, bn, bk = (int(cfg[k]) for k in ("BLOCK_SIZE_M", "BLOCK_SIZE_N", "BLOCK_SIZE_K"))
    owed = math.ceil(K / bk) * bm * bn * bk / MATRIX_TILE / int(cfg["num_warps"])
    outside = metrics["insts"] - metrics["loop_insts"]
    if not metrics["loop_mma"]:
        return float(metrics["insts"])
    trips = max(0.0, (owed - (metrics["wmma"] - metrics["loop_mma"])) / metrics["loop_mma"])
    return outside + trips * metrics["loop_insts"]


def _compile_worker(item):
    launch, arch = item
    return compile_launch(launch, arch)


def compile_many(items, arch: str, jobs: int = 1, progress=None) -> dict:
    """{launch: asm_metrics} for every launch in ``items``, compiling each distinct code object
    (launch_key) once, on ``jobs`` worker processes."""
    import multiprocessing

    items = list(dict.fromkeys(items))
    keys = {launch: launch_key(launch, arch) for launch in items}
    unique = {}
    for launch, key in keys.items():
        unique.setdefault(key, launch)
    todo = list(unique.items())
    work = [(launch, arch) for _key, launch in todo]
    if jobs > 1 and len(work) > 1:
        with multiprocessing.get_context("fork").Pool(min(jobs, len(work))) as pool:
            results = []
            for i, r in enumerate(pool.imap(_compile_worker, work, chunksize=1)):
                results.append(r)
                if progress:
                    progress(i + 1, len(work))
    else:
        results = []
        for i, w in enumerate(work):
            results.append(_compile_worker(w))
            if progress:
                progress(i + 1, len(work))
    by_key = {key: r for (key, _launch), r in zip(todo, results)}
    return {launch: by_key[key] for launch, key in keys.items()}
