"""vLLM's own fused-MoE Triton kernel, run beside ours in the same benchmark process.

The GPU machine has no vLLM (and vLLM's CUDA extensions would not import there anyway), so
`extract()` runs where vLLM is installed: it writes the ``@triton.jit`` functions of vLLM's
``fused_moe.py`` (verbatim) into a git-ignored folder that is carried to the GPU machine. The rest of this module mirrors, in plain torch, what vLLM does around the
kernel: its CUDA default config, its expert assignment (moe_align_block_size or the naive
low-latency path) and ``invoke_fused_moe_triton_kernel``'s grid and arguments. The mirror is of
vLLM 0.32.0; tests/user/test_bench_harness.py checks it against the installed vLLM's functions."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys

EXTRACTED = "vllm_fused_moe_jit.py"


def extract(dest: str, vllm_dir: str | None = None) -> str:
    """Write vLLM's fused-MoE jit functions (rocm_enable.ops.vllm_moe_isa.extract_jit_source, the
    extraction the ISA report uses) into dest/; returns the written path. `vllm_dir` is a vLLM
    package folder (e.g. .vllm-overlay/0.33.0/vllm); default: the installed vLLM."""
    from rocm_enable.ops.vllm_moe_isa import FUSED_MOE_REL, extract_jit_source, vllm_package_dir

    try:
        path = os.path.join(vllm_dir or vllm_package_dir(), FUSED_MOE_REL)
    except ImportError:
        raise SystemExit("no vLLM here: run scripts/setup.sh, or pass --vllm-src DIR (a vLLM "
                         "package folder, e.g. .vllm-overlay/0.33.0/vllm)") from None
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    os.makedirs(dest, exist_ok=True)
    out = os.path.join(dest, EXTRACTED)
    with open(out, "w") as f:
        f.write(extract_jit_source(path) + f"\n# extracted from vllm/{FUSED_MOE_REL} (sha256 {digest})\n")
    return out


def load_extracted(dest: str):
    """The extracted module (import it on the GPU machine; needs triton only)."""
    path = os.path.join(dest, EXTRACTED)
    if not os.path.isfile(path):
        raise SystemExit(f"{path} is missing: run `python benchmarks/bench_moe_w8a16.py --extract` "
                         "where vLLM is installed and carry the folder to the GPU machine")
    spec = importlib.util.spec_from_file_location("vllm_fused_moe_jit", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def default_config(M: int, E: int, fp8_block: bool) -> dict[str, int]:
    """vLLM's get_default_config on CUDA (not batch-invariant): bf16 when fp8_block is False,
    fp8_w8a8 with 128x128 weight blocks otherwise."""
    if fp8_block:
        block_n, stages = (64, 4 if M <= 4 else 3) if M <= 8 else (128, 3)
        return {"BLOCK_SIZE_M": 16 if M <= 64 else 64, "BLOCK_SIZE_N": block_n, "BLOCK_SIZE_K": 128,
                "GROUP_SIZE_M": 1 if M <= 16 else 32, "SPLIT_K": 1, "num_warps": 4,
                "num_stages": stages}
    block_m = 16 if M <= 32 else 32 if M <= 96 else 64 if M <= 512 else 128
    return {"BLOCK_SIZE_M": block_m, "BLOCK_SIZE_N": 64 if M <= 64 else 128,
            "BLOCK_SIZE_K": 128 if M <= 64 else 64,
            "GROUP_SIZE_M": 16 if M // max(E, 1) > 128 else 1, "SPLIT_K": 1,
            "num_warps": 4 if M <= 128 else 8, "num_stages": 4 if M <= 32 else 3}


def swap_ab(config: dict[str, int], capability: tuple[int, int]) -> bool:
    """vLLM's enable_swap_ab: Hopper, small M tile, wide N tile (FP8 only)."""
    return capability == (9, 0) and config["BLOCK_SIZE_M"] < 64 and config["BLOCK_SIZE_N"] >= 64


def align_block_size(topk_ids, block_m: int, num_experts: int):
    """moe_align_block_size in torch (vLLM's sizes): sorted_token_ids [max_padded] (padding =
    numel), expert_ids [cdiv(max_padded, block_m)], num_tokens_post_padded [1]. Host syncs are
    fine here: it runs once per routing set, before capture."""
    import torch

    flat = topk_ids.flatten().long()
    numel = flat.numel()
    max_padded = numel + num_experts * (block_m - 1)
    if numel < num_experts:
        max_padded = min(numel * block_m, max_padded)
    counts = torch.bincount(flat, minlength=num_experts)
    padded = (counts + block_m - 1) // block_m * block_m
    padded_start = torch.cumsum(padded, 0) - padded
    count_start = torch.cumsum(counts, 0) - counts
    order = torch.argsort(flat, stable=True)
    expert_of = flat[order]
    slot = padded_start[expert_of] + torch.arange(numel, device=flat.device) - count_start[expert_of]
    sorted_ids = torch.full((max_padded,), numel, dtype=torch.int32, device=flat.device)
    sorted_ids[slot] = order.to(torch.int32)
    total = int(padded.sum())
    expert_ids = torch.zeros(-(-max_padded // block_m), dtype=torch.int32, device=flat.device)
    blocks = torch.arange(total // block_m, device=flat.device) * block_m
    expert_ids[:total // block_m] = torch.searchsorted(torch.cumsum(padded, 0), blocks,
                                                       right=True).to(torch.int32)
    return sorted_ids, expert_ids, torch.tensor([total], dtype=torch.int32, device=flat.device)


def assignment(topk_ids, block_m: int, num_experts: int):
    """vLLM's _prepare_expert_assignment without an expert map: the naive path (one block per
    (token, expert) pair, sorted_token_ids None) when few experts are touched, else aligned."""
    import torch

    M, top_k = topk_ids.shape
    if M * top_k * 4 <= num_experts:
        return None, topk_ids.view(-1), torch.tensor(
            [topk_ids.numel() * block_m], dtype=torch.int32, device=topk_ids.device)
    return align_block_size(topk_ids, block_m, num_experts)


def launch(kernel, A, B, C, A_scale, B_scale, topk_weights, sorted_ids, expert_ids,
           num_tokens_post_padded, mul_routed_weight: bool, top_k: int, config: dict,
           compute_type, use_fp8_w8a8: bool, block_shape, swap: bool):
    """invoke_fused_moe_triton_kernel's launch (pointer path, USE_TD off, no bias)."""
    import triton

    block_m = config["BLOCK_SIZE_M"]
    if sorted_ids is None:
        em = A.size(0) * top_k * block_m
    else:
        em = sorted_ids.size(0)
        if A.size(0) < block_m:
            em = min(em, A.size(0) * top_k * block_m)
    grid = (triton.cdiv(em, block_m) * triton.cdiv(B.size(1), config["BLOCK_SIZE_N"]),)
    meta = {**config, "SPLIT_K": 1}
    block_k = meta.pop("BLOCK_SIZE_K")
    if block_shape is not None:
        block_k = min(block_k, *block_shape)

    def stride(t, dim, ndim_ok):
        return t.stride(dim) if t is not None and ndim_ok(t.ndim) else 0

    return kernel[grid](
        A, B, C, None, A_scale, B_scale, topk_weights, sorted_ids, expert_ids,
        num_tokens_post_padded, B.size(1), B.size(2), em, A.size(0) * top_k,
        A.stride(0), A.stride(1), B.stride(0), B.stride(2), B.stride(1), C.stride(1), C.stride(2),
        stride(A_scale, 0, lambda n: n == 2), stride(A_scale, 1, lambda n: n == 2),
        stride(B_scale, 0, lambda n: n >= 2), stride(B_scale, 2, lambda n: n == 3),
        stride(B_scale, 1, lambda n: n >= 2), 0, 0,
        0 if block_shape is None else block_shape[0], 0 if block_shape is None else block_shape[1],
        MUL_ROUTED_WEIGHT=mul_routed_weight, top_k=top_k, compute_type=compute_type,
        use_fp8_w8a8=use_fp8_w8a8, use_int8_w8a8=False, use_int8_w8a16=False,
        per_channel_quant=False, naive_block_assignment=sorted_ids is None, HAS_BIAS=False,
        BLOCK_SIZE_K=block_k, SWAP_AB=swap, USE_TD=False, **meta)
