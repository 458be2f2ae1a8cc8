"""`rocm-enable plan`: weight bytes, KV-cache and GDN state, what fits, the `vllm serve` flags, and a
decode-speed PROJECTION from bytes per token and the board's bandwidth.

All sizes are computed from the model config (bundled or a user's config.json) with the layer
shapes vLLM builds for Qwen3NextForCausalLM / Qwen3_5*: nothing here loads weights or vLLM.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rocm_enable.gates.capabilities import ArchCapabilities, capabilities_for
from rocm_enable.models import ModelSpec, load_model

GIB = 2 ** 30
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "fp8": 1, "float8_e4m3fn": 1}
# vLLM process memory outside weights and KV cache: activations of a prefill chunk, the sampler,
# CUDA/HIP graphs and the allocator's slack. Measured values vary by a few GiB; this is the
# assumption the plan states.
RUNTIME_OVERHEAD_GIB = 4.0
# What the OS, the desktop and the vLLM host process (Python, torch, tokenizer, page cache while
# safetensors are read) need from a unified pool the GPU shares.
APU_OS_RESERVE_GIB = 12.0
# Share of peak bandwidth measured for the best engines at batch 1 on these boards (anchors.md
# §1.5: llama.cpp reaches 52-57% of the 8-bit ceiling on gfx1151).
EFFICIENCY_RANGE = (0.5, 0.6)


class PlanError(ValueError):
    """Input the plan cannot honour (memory that cannot hold the weights, bad sizes)."""


def parse_memory(text: str) -> float:
    """'128GiB', '128G', '96GB' (10^9), '131072MiB', '128' (GiB) -> GiB."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(gib|gb|g|mib|mb|m|tib|tb|t)?\s*", str(text).lower())
    if not m:
        raise PlanError(f"--memory {text!r}: expected a size such as 128GiB, 96GB or 24G")
    value, unit = float(m.group(1)), m.group(2) or "gib"
    factor = {"gib": 1, "g": 1, "gb": 1e9 / GIB, "mib": 1 / 1024, "m": 1 / 1024, "mb": 1e6 / GIB,
              "tib": 1024, "t": 1024, "tb": 1e12 / GIB}[unit]
    gib = value * factor
    if gib <= 0:
        raise PlanError(f"--memory {text!r} must be positive")
    return gib


@dataclass
class Component:
    name: str
    params: int
    bytes: int
    active_bytes: float     # bytes read per decoded token at batch 1
    dtype: str


def _lin(i: int, o: int) -> int:
    return i * o


def components(spec: ModelSpec) -> list[Component]:
    """Weight bytes by component. FP8 block-128 linears: 1 byte per weight plus one fp32 scale per
    128x128 block; per-channel: one fp32 scale per output row."""
    fp8 = spec.quant is not None
    act_b = DTYPE_BYTES.get(spec.dtype, 2)

    def qbytes(i: int, o: int, quantized: bool = True) -> int:
        n = i * o
        if not (fp8 and quantized):
            return n * act_b
        if spec.quant.scheme == "block128":
            return n + 4 * math.ceil(i / 128) * math.ceil(o / 128)
        if spec.quant.scheme == "channel":
            return n + 4 * o
        return n + 4

    h = spec.hidden_size
    full, lin = spec.full_attention_layers, spec.linear_attention_layers
    nq, nkv, hd = spec.num_attention_heads, spec.num_kv_heads, spec.head_dim
    q_out = nq * hd * (2 if spec.attn_output_gate else 1)
    attn_shapes = [(h, q_out), (h, nkv * hd), (h, nkv * hd), (nq * hd, h)]
    attn_p = sum(_lin(*s) for s in attn_shapes) + 2 * hd
    attn_b = sum(qbytes(*s) for s in attn_shapes) + 2 * hd * act_b
    hk, hv, dk, dv = (spec.linear_num_key_heads, spec.linear_num_value_heads,
                      spec.linear_key_head_dim, spec.linear_value_head_dim)
    qkvz, conv_dim = 2 * hk * dk + 2 * hv * dv, 2 * hk * dk + hv * dv
    gdn_q = [(h, qkvz), (hv * dv, h)]
    gdn_small = h * 2 * hv + conv_dim * spec.conv_kernel + 2 * hv + dv  # in_proj_ba, conv1d, A_log, dt_bias, norm
    gdn_p = sum(_lin(*s) for s in gdn_q) + gdn_small
    gdn_b = sum(qbytes(*s) for s in gdn_q) + gdn_small * act_b
    out = [
        Component("embedding", spec.vocab_size * h, spec.vocab_size * h * act_b, h * act_b, spec.dtype),
        Component(f"full attention ({full} layers)", full * attn_p, full * attn_b, full * attn_b,
                  "fp8" if fp8 else spec.dtype),
        Component(f"Gated DeltaNet ({lin} layers)", lin * gdn_p, lin * gdn_b, lin * gdn_b,
                  "fp8" if fp8 else spec.dtype),
    ]
    layers = spec.num_layers
    if spec.is_moe:
        n, e, k = spec.moe_intermediate_size, spec.num_experts, spec.top_k
        one_expert = sum(qbytes(*s) for s in ((h, 2 * n), (n, h)))
        out.append(Component(f"routed experts ({layers} x {e})", layers * e * 3 * h * n,
                             layers * e * one_expert, layers * k * one_expert, "fp8" if fp8 else spec.dtype))
        s = spec.shared_expert_intermediate_size
        if s:
            sb = sum(qbytes(*x) for x in ((h, 2 * s), (s, h)))
            out.append(Component(f"shared experts ({layers})", layers * 3 * h * s, layers * sb, layers * sb,
                                 "fp8" if fp8 else spec.dtype))
        rp = layers * (h * e + h)  # router gate + shared_expert_gate, built without quant_config
        out.append(Component("routers", rp, rp * act_b, rp * act_b, spec.dtype))
    else:
        i = spec.intermediate_size
        mb = sum(qbytes(*x) for x in ((h, 2 * i), (i, h)))
        out.append(Component(f"dense MLP ({layers} layers)", layers * 3 * h * i, layers * mb, layers * mb,
                             "fp8" if fp8 else spec.dtype))
    norms = (2 * layers + 1) * h
    out.append(Component("norms", norms, norms * act_b, norms * act_b, spec.dtype))
    if not spec.tie_word_embeddings:
        out.append(Component("lm_head", spec.vocab_size * h, spec.vocab_size * h * act_b,
                             spec.vocab_size * h * act_b, spec.dtype))
    if spec.vision:
        v = spec.vision
        m2 = v.spatial_merge_size ** 2
        block = 4 * v.hidden_size ** 2 + 2 * v.hidden_size * v.intermediate_size + 9 * v.hidden_size
        vp = (v.depth * block + v.in_channels * v.temporal_patch_size * v.patch_size ** 2 * v.hidden_size
              + (v.hidden_size * m2) ** 2 + v.hidden_size * m2 * v.out_hidden_size)
        out.append(Component(f"vision tower ({v.depth} blocks, approx.)", vp, vp * act_b, 0, spec.dtype))
    return out


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str = "auto") -> int:
    b = 1 if kv_dtype.startswith("fp8") else DTYPE_BYTES.get(spec.dtype, 2)
    return spec.full_attention_layers * 2 * spec.num_kv_heads * spec.head_dim * b


def gdn_state_bytes_per_seq(spec: ModelSpec) -> dict:
    sb = DTYPE_BYTES.get(spec.mamba_ssm_dtype, 2)
    cb = DTYPE_BYTES.get(spec.dtype, 2)
    conv_dim = 2 * spec.linear_num_key_heads * spec.linear_key_head_dim + \
        spec.linear_num_value_heads * spec.linear_value_head_dim
    recurrent = spec.linear_num_value_heads * spec.linear_key_head_dim * spec.linear_value_head_dim * sb
    conv = (spec.conv_kernel - 1) * conv_dim * cb
    n = spec.linear_attention_layers
    return {"recurrent": n * recurrent, "conv": n * conv, "total": n * (recurrent + conv),
            "recurrent_dtype": spec.mamba_ssm_dtype}


def _board(caps: ArchCapabilities, memory_gib: float | None):
    return caps.boards[0]


def plan(model: str, arch: str, memory: str | None = None, context: int | None = None,
         batch: int = 1, kv_cache_dtype: str = "auto") -> dict:
    spec = load_model(model)
    caps = capabilities_for(arch)
    board = _board(caps, None)
    if batch < 1:
        raise PlanError("--batch must be at least 1")
    if context is not None and context < 1:
        raise PlanError("--context must be at least 1")
    mem_gib = parse_memory(memory) if memory else float(board.memory_gib)
    context = min(context or min(spec.max_position_embeddings, 32768), spec.max_position_embeddings)
    comps = components(spec)
    weights = sum(c.bytes for c in comps)
    unified = board.unified_memory
    reserve = APU_OS_RESERVE_GIB if unified else 0.0
    util = round(min(0.95, (mem_gib - reserve) / mem_gib), 2) if unified else 0.92
    budget = mem_gib * util * GIB
    kv_tok = kv_bytes_per_token(spec, kv_cache_dtype)
    state = gdn_state_bytes_per_seq(spec)
    fixed = weights + RUNTIME_OVERHEAD_GIB * GIB + batch * state["total"]
    if util <= 0 or fixed > budget:
        need = (weights + RUNTIME_OVERHEAD_GIB * GIB + batch * state["total"]) / GIB / (util if util > 0 else 1)
        raise PlanError(
            f"{spec.name} does not fit in {mem_gib:.0f} GiB on {caps.arch}: its weights alone are "
            f"{weights / GIB:.1f} GiB, and with {RUNTIME_OVERHEAD_GIB:.0f} GiB of runtime overhead"
            + (f", a {reserve:.0f} GiB reserve for the OS sharing the unified pool" if unified else "")
            + f" and the GDN state of {batch} sequence(s) it needs about {need + reserve:.0f} GiB. "
            "Pick a smaller or more quantized checkpoint (FP8 halves BF16) or a board with more memory.")
    kv_budget = budget - fixed
    kv_tokens = int(kv_budget // kv_tok)
    max_len = min(context, kv_tokens)
    seqs_at_len = kv_tokens // max(1, context)
    fits = kv_tokens >= context * batch
    warnings = []
    if not fits:
        warnings.append(
            f"{batch} sequence(s) of {context} tokens need {context * batch * kv_tok / GIB:.1f} GiB of KV "
            f"cache; {kv_budget / GIB:.1f} GiB is left: {seqs_at_len} full-length sequence(s) fit at once "
            f"(vLLM queues the rest), or lower --max-model-len.")
    if unified:
        warnings.append(
            "Unified memory (APU): keep the BIOS UMA carve-out small (e.g. 512 MiB) and let the GPU "
            "allocate from GTT, raising the GTT/TTM limit with kernel parameters (amdgpu.gttsize, "
            "ttm.pages_limit) if needed. A large carve-out (e.g. 96 GiB) is taken from the OS for good, "
            "leaves too little for the page cache while safetensors load, and some tools (amdsmi) then "
            "report only the carve-out as VRAM. With GTT the pool is shared: --gpu-memory-utilization is a "
            f"fraction of memory the OS and the vLLM process also use, so this plan leaves {reserve:.0f} GiB "
            f"to them ({util} of {mem_gib:.0f} GiB). Check what the GPU really sees with "
            "`python -c 'import torch; print(torch.cuda.mem_get_info())'` and pass that as --memory.")
    flags = ["--max-model-len", str(max_len), "--gpu-memory-utilization", str(util),
             "--max-num-seqs", str(batch)]
    if kv_cache_dtype != "auto":
        flags += ["--kv-cache-dtype", kv_cache_dtype]
    proj = projection(spec, comps, board, context, batch, kv_tok, state)
    return {
        "model": spec.name, "architecture": spec.architecture,
        "quantization": spec.quant.scheme if spec.quant else None,
        "arch": caps.arch, "board": board.name, "bandwidth_gbs": board.bandwidth_gbs,
        "unified_memory": unified, "memory_gib": mem_gib,
        "components": [{"name": c.name, "params": c.params, "bytes": c.bytes, "dtype": c.dtype}
                       for c in comps],
        "weights_bytes": weights,
        "kv_bytes_per_token": kv_tok, "kv_layers": spec.full_attention_layers,
        "gdn_state_per_seq": state,
        "budget_bytes": int(budget), "runtime_overhead_gib": RUNTIME_OVERHEAD_GIB,
        "os_reserve_gib": reserve, "kv_budget_bytes": int(kv_budget), "kv_tokens": kv_tokens,
        "context": context, "batch": batch, "fits": fits,
        "vllm_serve": ["vllm", "serve", spec.name] + flags,
        "flags": {"max_model_len": max_len, "gpu_memory_utilization": util, "max_num_seqs": batch},
        "warnings": warnings, "projection": proj,
    }


def projection(spec, comps, board, context, batch, kv_tok, state) -> dict:
    """Decode tokens/s = batch / (bytes read per step / bandwidth). A PROJECTION, not a measurement."""
    dense = sum(c.active_bytes for c in comps if not c.name.startswith("routed experts"))
    experts = [c for c in comps if c.name.startswith("routed experts")]
    per_step = dense
    if experts:
        c = experts[0]
        e, k = spec.num_experts, spec.top_k
        per_expert = c.bytes / e
        touched = e * (1 - (1 - k / e) ** batch)  # distinct experts a batch touches (uniform routing)
        per_step += touched * per_expert
    kv_read = batch * context * kv_tok
    state_rw = batch * 2 * state["total"]
    step = per_step + kv_read + state_rw
    bw = board.bandwidth_gbs * 1e9
    ceiling = batch * bw / step
    return {
        "label": "PROJECTION (not a measurement)",
        "bytes_per_step": int(step), "weight_bytes_per_step": int(per_step),
        "kv_bytes_per_step": int(kv_read), "state_bytes_per_step": int(state_rw),
        "ceiling_tok_s": round(ceiling, 1),
        "expected_tok_s": [round(ceiling * f, 1) for f in EFFICIENCY_RANGE],
        "assumptions": [
            f"decode is memory-bound: every weight byte of a step is read once at {board.bandwidth_gbs} GB/s "
            f"({board.name}, capability table)",
            f"batch {batch}, each sequence at {context} tokens of context (full-attention KV read every step); "
            "GDN state read and written once per token",
            "MoE: top-k routed experts per token plus the shared expert and router; for batch > 1 the distinct "
            "experts touched assume uniform routing",
            "FP8 weights read at 1 byte (rocm-enable's W8A16 kernels keep them at one byte; vLLM without the "
            "plugin either refuses FP8 MoE or quantizes activations too)" if spec.quant else
            "BF16 weights read at 2 bytes",
            "ceiling = 100% of bandwidth; the expected range applies the 50-60% of peak that the best engines "
            "reach at batch 1 on these boards (anchors.md §1.5); kernel launch and host overheads are not modelled",
        ],
    }


def _gib(b: float) -> str:
    return f"{b / GIB:,.2f} GiB"


def render(d: dict) -> str:
    out = [f"model      {d['model']} ({d['architecture']}, {'FP8 ' + d['quantization'] if d['quantization'] else 'BF16'})",
           f"arch       {d['arch']}: {d['board']}, {d['memory_gib']:.0f} GiB "
           f"{'unified (APU)' if d['unified_memory'] else 'VRAM'}, {d['bandwidth_gbs']} GB/s", "",
           "weights by component"]
    for c in d["components"]:
        out.append(f"  {c['name']:<34} {c['params'] / 1e9:8.2f} B params  {_gib(c['bytes']):>12}  {c['dtype']}")
    out.append(f"  {'total':<34} {sum(c['params'] for c in d['components']) / 1e9:8.2f} B params  "
               f"{_gib(d['weights_bytes']):>12}")
    s = d["gdn_state_per_seq"]
    out += ["",
            f"KV cache   {d['kv_bytes_per_token'] / 1024:.1f} KiB per token ({d['kv_layers']} full-attention "
            "layers only; GDN layers keep no KV cache)",
            f"GDN state  {s['total'] / 2**20:.1f} MiB per sequence (recurrent {s['recurrent'] / 2**20:.1f} MiB "
            f"in {s['recurrent_dtype']}, conv {s['conv'] / 2**20:.2f} MiB)",
            f"budget     {_gib(d['budget_bytes'])} for vLLM = weights {_gib(d['weights_bytes'])} + runtime "
            f"~{d['runtime_overhead_gib']:.0f} GiB + GDN state + KV {_gib(d['kv_budget_bytes'])} "
            f"({d['kv_tokens']:,} tokens)",
            f"fits       {'yes' if d['fits'] else 'partly'}: {d['batch']} sequence(s) x {d['context']:,} tokens", "",
            "vllm serve " + " ".join(d["vllm_serve"][2:]), ""]
    for w in d["warnings"]:
        out.append(f"WARNING    {w}")
    p = d["projection"]
    out += ["", f"decode speed: {p['label']}",
            f"  {p['bytes_per_step'] / 1e9:.2f} GB read per step (weights {p['weight_bytes_per_step'] / 1e9:.2f}, "
            f"KV {p['kv_bytes_per_step'] / 1e9:.2f}, GDN state {p['state_bytes_per_step'] / 1e9:.3f})",
            f"  ceiling {p['ceiling_tok_s']} tok/s; expected {p['expected_tok_s'][0]}-{p['expected_tok_s'][1]} tok/s",
            "  assumptions:"]
    out += [f"   - {a}" for a in p["assumptions"]]
    return "\n".join(out) + "\n"
