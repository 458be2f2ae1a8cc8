"""Per-decode-step kernel profile of one engine (engine_job.py --speed): pure functions, no GPU.

One torch.profiler session covers every profiled window; each window is a `record_function`
marker (MARK + label) around one generate call that ends in a device synchronize, so a device
event belongs to the window its start time falls in. A decode step is measured by difference:
a generate of 1 + N tokens minus the same generate of 1 token (same cached prompts, same
prefill), divided by N.

Two passes per batch size:
  graph  vLLM's defaults: decode steps replay the FULL CUDA graph. CUPTI reports the kernels
         inside graph replays by name (no CPU op launches them, so no op attribution).
  eager  the same compiled model with CUDA-graph dispatch switched off for the window (what vLLM
         does for any batch above its capture sizes): every kernel is launched by a CPU op, and
         the op chain says which layer family launched it (rocm_enable::w8a16_fused_experts ->
         moe, rocm_enable::w8a16_linear -> dense, vllm::rocm_unquantized_gemm by the weight's
         output features -> lm_head / router / dense, vllm::unified_attention_with_output ->
         attention, vllm::qwen_gdn_attention_core -> gdn / conv, ...). The W8A16 kernels serve
         both the experts and the dense linears under one name, so only the op chain separates them.
The graph pass's time per kernel name is split over families in the proportions the eager pass
measured for that name; a name the eager pass did not see is classified by its name alone.

Kernel records are plain tuples so the functions below run on CPU in tests:
  device:  (name, start_us, duration_us)
  linked:  (cpu_start_us, chain, kernel_name, duration_us), chain = ((op_name, input_shapes), ...)
           innermost op first
"""
from __future__ import annotations

import re
from collections import defaultdict

MARK = "rocm-enable-speed:"
FAMILIES = ("moe", "dense", "router", "lm_head", "attention", "gdn", "conv", "norm", "rope",
            "activation", "sampling", "runner", "copy", "other")

# Family of a kernel by its name alone, first matching rule wins (lower-case substrings or
# regexes). Used for kernels no family op launched (inductor-fused elementwise and norm code,
# vLLM's runner and sampler kernels) and for graph-pass names the eager pass did not see.
NAME_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("copy", (r"^memcpy", r"^memset")),
    ("runner", ("_prepare_", "slot_mapping", "post_update", "gather_block_tables", "combine_sampled",
                "expand_idx_mapping", "_cache_inputs", "input_buffers", "_apply_write")),
    ("sampling", ("gumbel", "sample", "logprob", "log_softmax", "logsumexp", "argmax", "penalt",
                  "temperature", "min_p", "softmax")),
    ("moe", ("fused_moe", "moe_", "topk_softmax", "fused_topk", "expert", "sbtopk", "gathertopk")),
    ("gdn", ("delta_rule", "gdn", "chunk_scaled_dot_kkt", "solve_tril", "recompute_w_u",
             "chunk_fwd_kernel_o", "chunk_local_cumsum", "l2norm", "fused_post_conv", "merge_16x16")),
    ("conv", ("conv1d",)),
    ("attention", ("paged_decode", "paged_prefill", "split_combine", "unified_attention",
                   "reshape_and_cache", "flash_attn", "fmha", "attention", "attn")),
    ("norm", ("layer_norm", "rms_norm", "rmsnorm", r"^triton_\w*rsqrt")),
    ("rope", ("rotary", r"(^|_)rope(_|$)")),
    ("activation", ("silu", "gelu")),
    ("dense", ("w8a16_gemm", "w8a16_gemv", "gemm", "gemv", "nvjet", "cutlass", "xmma", "cublas",
               "splitkreduce", "wvsplitk", "matmul")),
)
_COMPILED = [(fam, [re.compile(p) for p in pats]) for fam, pats in NAME_RULES]

# Ops whose kernels belong to one family (innermost matching op wins). "gemm" ops are decided by
# the weight's output features (gemm_family).
OP_FAMILIES: tuple[tuple[str, str], ...] = (
    ("rocm_enable::w8a16_fused_experts", "moe"),
    ("rocm_enable::w8a16_linear", "gemm"),
    ("vllm::rocm_unquantized_gemm", "gemm"),
    ("vllm::rocm_bf16x3_router_gemm_dispatch", "router"),
    ("vllm::fp32_router_gemm_dispatch", "router"),
    ("aten::mm", "gemm"), ("aten::addmm", "gemm"), ("aten::linear", "gemm"),
    ("vllm::fused_experts", "moe"),
    ("vllm::unified_attention_with_output", "attention"),
    ("vllm::unified_kv_cache_update", "attention"),
    ("vllm::qwen_gdn_attention_core", "gdn"),
    ("vllm::qwen_gdn_attention_core_fused_norm_packed", "gdn"),
    ("vllm::rocm_aiter_triton_rotary_embedding", "rope"),
    ("vllm::moe_forward", "moe"), ("vllm::moe_forward_shared", "moe"),
)
_OP_FAMILY = dict(OP_FAMILIES)


def name_family(name: str) -> str:
    n = name.lower()
    for fam, pats in _COMPILED:
        if any(p.search(n) for p in pats):
            return fam
    return "other"


def gemm_out_features(op: str, shapes) -> int | None:
    """Output features of a GEMM op from its recorded input shapes (record_shapes=True)."""
    try:
        if op in ("aten::mm",):
            return int(shapes[1][-1])              # a [M, K] x b [K, N]
        if op == "aten::addmm":
            return int(shapes[2][-1])              # bias, a [M, K], b [K, N]
        return int(shapes[1][0])                   # (x, weight [N, K], ...): linear and the custom ops
    except (IndexError, TypeError, ValueError):
        return None


def gemm_family(n: int | None, vocab: int, num_experts: int) -> str:
    """A BF16 or W8A16 GEMM's family by its output features: the vocabulary -> lm_head, the
    expert count or 1 (MoE router, shared-expert gate) or the expert count + 1 (fused-shared-
    expert's one GEMM of both gates) -> router, anything else -> dense."""
    if n is None:
        return "dense"
    if n >= vocab:  # ParallelLMHead pads the vocabulary up
        return "lm_head"
    if num_experts and n in (num_experts, num_experts + 1, 1):
        return "router"
    return "dense"


def chain_family(chain, kernel: str, vocab: int, num_experts: int) -> tuple[str, str]:
    """(family, the op that decided it) for a kernel launched under `chain` (innermost first)."""
    for op, shapes in chain:
        fam = _OP_FAMILY.get(op)
        if fam is None:
            continue
        if fam == "gemm":
            fam = gemm_family(gemm_out_features(op, shapes), vocab, num_experts)
        elif fam == "gdn" and name_family(kernel) == "conv":
            fam = "conv"
        return fam, op
    return name_family(kernel), "kernel name"


def window_label(mode: str, batch: int, part: str) -> str:
    """The marker label (after MARK) of one profiled generate: mode graph/eager, part short/long."""
    return f"{mode}:b{batch}:{part}"


def in_window(start: float, window: tuple[float, float]) -> bool:
    return window[0] <= start <= window[1]


def by_name(device, window) -> dict:
    """{kernel name: [count, total us]} of the device records that start inside `window`."""
    out: dict = defaultdict(lambda: [0, 0.0])
    for name, start, dur in device:
        if in_window(start, window):
            out[name][0] += 1
            out[name][1] += dur
    return dict(out)


def per_step(long: dict, short: dict, steps: int) -> dict:
    """{name: [launches per step, us per step]}: the long generate minus the short one, over steps."""
    out = {}
    for name, (cnt, us) in long.items():
        c0, u0 = short.get(name, (0, 0.0))
        if cnt - c0 > 0:
            out[name] = [(cnt - c0) / steps, max(0.0, us - u0) / steps]
    return out


def family_split(linked, long_w, short_w, steps, vocab, num_experts) -> dict:
    """{kernel name: {family: [launches per step, us per step, deciding op]}} from the eager pass's
    op-linked kernels (long window minus short window)."""
    acc: dict = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0, ""]))
    for cpu_start, chain, kernel, dur in linked:
        sign = 1 if in_window(cpu_start, long_w) else -1 if in_window(cpu_start, short_w) else 0
        if not sign:
            continue
        fam, op = chain_family(chain, kernel, vocab, num_experts)
        cell = acc[kernel][fam]
        cell[0] += sign / steps
        cell[1] += sign * dur / steps
        cell[2] = op
    return {k: {f: v for f, v in fams.items() if v[0] > 1e-9} for k, fams in acc.items()}


def families(steps_by_name: dict, split: dict) -> dict:
    """Per-family launches, us and kernel names per step: each name's count and time go to the
    families the eager split measured for it (in its proportions), else to its name's family."""
    fams: dict = {}
    for name, (cnt, us) in steps_by_name.items():
        parts = split.get(name) or {}
        n_total = sum(v[0] for v in parts.values())
        us_total = sum(max(v[1], 0.0) for v in parts.values())
        if n_total <= 0:
            parts, n_total, us_total = {name_family(name): [1.0, 1.0, "kernel name"]}, 1.0, 1.0
        for fam, (n, u, op) in parts.items():
            f = fams.setdefault(fam, {"kernels": 0.0, "us": 0.0, "names": {}, "decided_by": set()})
            share_n = n / n_total
            share_us = max(u, 0.0) / us_total if us_total > 0 else share_n
            f["kernels"] += cnt * share_n
            f["us"] += us * share_us
            f["names"][name] = f["names"].get(name, 0.0) + cnt * share_n
            f["decided_by"].add(op)
    total = sum(f["us"] for f in fams.values()) or 1.0
    for f in fams.values():
        f["share"] = round(f["us"] / total, 4)
        f["kernels"] = round(f["kernels"], 2)
        f["us"] = round(f["us"], 2)
        f["names"] = {k: round(v, 2) for k, v in sorted(f["names"].items(), key=lambda kv: -kv[1])[:20]}
        f["decided_by"] = sorted(f["decided_by"])
    return fams


def summarize_pass(steps_by_name: dict, split: dict) -> dict:
    kernels = {n: v for n, v in steps_by_name.items() if name_family(n) != "copy"}
    copies = {n: v for n, v in steps_by_name.items() if name_family(n) == "copy"}
    top = sorted(steps_by_name.items(), key=lambda kv: -kv[1][1])[:80]
    return {
        "kernels_per_step": round(sum(v[0] for v in kernels.values()), 2),
        "copies_per_step": round(sum(v[0] for v in copies.values()), 2),
        "gpu_us_per_step": round(sum(v[1] for v in steps_by_name.values()), 2),
        "families": families(steps_by_name, split),
        "names": {n: [round(c, 2), round(u, 2)] for n, (c, u) in top},
    }


def compare_passes(graph: dict, eager: dict) -> dict:
    """Kernel names per step that differ between the graph and the eager pass (launch counts)."""
    diff = {}
    for name in set(graph) | set(eager):
        g, e = graph.get(name, (0, 0))[0], eager.get(name, (0, 0))[0]
        if abs(g - e) > 0.01:
            diff[name] = [round(g, 2), round(e, 2)]
    return dict(sorted(diff.items(), key=lambda kv: -abs(kv[1][0] - kv[1][1]))[:40])


def profile_batch(device, linked, marks: dict, batch: int, graph_steps: int, eager_steps: int,
                  vocab: int, num_experts: int) -> dict:
    """The profile of one batch size from one session's records (labels as engine_job makes them)."""
    def win(mode: str, part: str):
        return marks.get(window_label(mode, batch, part))

    out: dict = {"graph_steps": graph_steps, "eager_steps": eager_steps, "attribution": "kernel names only"}
    split = {}
    if win("eager", "long") and win("eager", "short"):
        eager = per_step(by_name(device, win("eager", "long")), by_name(device, win("eager", "short")), eager_steps)
        split = family_split(linked, win("eager", "long"), win("eager", "short"), eager_steps, vocab, num_experts)
        out["eager"] = summarize_pass(eager, split)
        out["attribution"] = "op chains of the graph-dispatch-off pass"
    if win("graph", "long") and win("graph", "short"):
        graph = per_step(by_name(device, win("graph", "long")), by_name(device, win("graph", "short")), graph_steps)
        out["graph"] = summarize_pass(graph, split)
        if "eager" in out:
            out["graph_vs_eager_launch_diff"] = compare_passes(graph, eager)
            ek = out["eager"]["kernels_per_step"]
            # CUPTI must report kernels inside graph replays for the graph pass to mean anything
            out["graph_kernels_visible"] = round(out["graph"]["kernels_per_step"] / ek, 3) if ek else None
    return out
