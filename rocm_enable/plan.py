"""`rocm-enable plan`: weight bytes, KV-cache and GDN state, what fits (per GPU, with tensor /
expert parallelism over one or more boxes), the `vllm serve` flags, and a decode-speed PROJECTION
per op family (rocm_enable.decode_model), with and without the opt-in FP8 lm_head.

All sizes are computed from the model config (bundled or a user's config.json) with the layer
shapes vLLM builds for Qwen3NextForCausalLM / Qwen3_5*: nothing here loads weights or vLLM.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rocm_enable import decode_model
from rocm_enable.gates.capabilities import ArchCapabilities, capabilities_for, lacks_fp8_compute
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
# The opt-in FP8 lm_head (rocm_enable.stacks.vllm.fp8_lm_head) quantizes with 128x128 blocks.
LM_HEAD_FP8_BLOCK = 128


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
    family: str = "norms"   # decode_model.FAMILIES key its bytes are projected with
    sharded: bool = True    # split across tensor-parallel ranks (else every rank holds it whole)


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
    wdt = "fp8" if fp8 else spec.dtype
    out = [
        Component("embedding", spec.vocab_size * h, spec.vocab_size * h * act_b, h * act_b, spec.dtype, "norms"),
        Component(f"full attention ({full} layers)", full * attn_p, full * attn_b, full * attn_b, wdt, "dense"),
        Component(f"Gated DeltaNet ({lin} layers)", lin * gdn_p, lin * gdn_b, lin * gdn_b, wdt, "dense"),
    ]
    layers = spec.num_layers
    if spec.is_moe:
        n, e, k = spec.moe_intermediate_size, spec.num_experts, spec.top_k
        one_expert = sum(qbytes(*s) for s in ((h, 2 * n), (n, h)))
        out.append(Component(f"routed experts ({layers} x {e})", layers * e * 3 * h * n,
                             layers * e * one_expert, layers * k * one_expert, wdt, "moe"))
        s = spec.shared_expert_intermediate_size
        if s:
            sb = sum(qbytes(*x) for x in ((h, 2 * s), (s, h)))
            out.append(Component(f"shared experts ({layers})", layers * 3 * h * s, layers * sb, layers * sb,
                                 wdt, "dense"))
        rp = layers * (h * e + h)  # router gate + shared_expert_gate, built without quant_config
        out.append(Component("routers", rp, rp * act_b, rp * act_b, spec.dtype, "router_bf16", sharded=False))
    else:
        i = spec.intermediate_size
        mb = sum(qbytes(*x) for x in ((h, 2 * i), (i, h)))
        out.append(Component(f"dense MLP ({layers} layers)", layers * 3 * h * i, layers * mb, layers * mb,
                             wdt, "dense"))
    norms = (2 * layers + 1) * h
    out.append(Component("norms", norms, norms * act_b, norms * act_b, spec.dtype, "norms", sharded=False))
    if not spec.tie_word_embeddings:
        out.append(Component("lm_head", spec.vocab_size * h, spec.vocab_size * h * act_b,
                             spec.vocab_size * h * act_b, spec.dtype, "lm_head_bf16"))
    if spec.vision:
        v = spec.vision
        m2 = v.spatial_merge_size ** 2
        block = 4 * v.hidden_size ** 2 + 2 * v.hidden_size * v.intermediate_size + 9 * v.hidden_size
        vp = (v.depth * block + v.in_channels * v.temporal_patch_size * v.patch_size ** 2 * v.hidden_size
              + (v.hidden_size * m2) ** 2 + v.hidden_size * m2 * v.out_hidden_size)
        # replicated here: the plan does not model how vLLM shards the vision tower
        out.append(Component(f"vision tower ({v.depth} blocks, approx.)", vp, vp * act_b, 0, spec.dtype,
                             "dense", sharded=False))
    return out


def lm_head_fp8_bytes(spec: ModelSpec) -> int:
    """lm_head as the opt-in FP8 lm_head stores it: e4m3 bytes + one fp32 scale per 128x128 block."""
    b = LM_HEAD_FP8_BLOCK
    return spec.vocab_size * spec.hidden_size + 4 * math.ceil(spec.vocab_size / b) * math.ceil(spec.hidden_size / b)


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str = "auto", tp: int = 1) -> int:
    """KV bytes per token on one GPU: vLLM splits the KV heads across TP ranks and replicates a
    head when there are more ranks than KV heads."""
    b = 1 if kv_dtype.startswith("fp8") else DTYPE_BYTES.get(spec.dtype, 2)
    heads = max(1, spec.num_kv_heads // tp)
    return spec.full_attention_layers * 2 * heads * spec.head_dim * b


def gdn_state_bytes_per_seq(spec: ModelSpec, tp: int = 1) -> dict:
    sb = DTYPE_BYTES.get(spec.mamba_ssm_dtype, 2)
    cb = DTYPE_BYTES.get(spec.dtype, 2)
    conv_dim = 2 * spec.linear_num_key_heads * spec.linear_key_head_dim + \
        spec.linear_num_value_heads * spec.linear_value_head_dim
    recurrent = spec.linear_num_value_heads * spec.linear_key_head_dim * spec.linear_value_head_dim * sb
    conv = (spec.conv_kernel - 1) * conv_dim * cb
    n = spec.linear_attention_layers
    return {"recurrent": n * recurrent // tp, "conv": n * conv // tp, "total": n * (recurrent + conv) // tp,
            "recurrent_dtype": spec.mamba_ssm_dtype}


def _board(caps: ArchCapabilities, memory_gib: float | None):
    return caps.boards[0]


def check_parallel(spec: ModelSpec, caps: ArchCapabilities, tp: int, nodes: int, expert_parallel: bool) -> None:
    """The shardings vLLM accepts for this model, and one GPU per box on an APU."""
    if tp < 1:
        raise PlanError("--tensor-parallel-size must be at least 1")
    if nodes < 1:
        raise PlanError("--nodes must be at least 1")
    if nodes > tp:
        raise PlanError(f"--nodes {nodes} > --tensor-parallel-size {tp}: every node needs at least one "
                        f"tensor-parallel rank; use --tensor-parallel-size {nodes} (or more) for {nodes} nodes")
    if tp % nodes:
        raise PlanError(f"--tensor-parallel-size {tp} does not split evenly over --nodes {nodes}: vLLM places "
                        "the same number of ranks on every node")
    if caps.boards[0].unified_memory and tp // nodes > 1:
        raise PlanError(f"{caps.arch} ({caps.boards[0].name}) is an APU with one GPU per box: "
                        f"--tensor-parallel-size {tp} needs --nodes {tp}")
    if expert_parallel and tp == 1:
        raise PlanError("--enable-expert-parallel needs --tensor-parallel-size 2 or more")
    if expert_parallel and not spec.is_moe:
        raise PlanError(f"--enable-expert-parallel: {spec.name} has no experts")
    checks = [("num_attention_heads", spec.num_attention_heads),
              ("linear_num_key_heads", spec.linear_num_key_heads),
              ("linear_num_value_heads", spec.linear_num_value_heads)]
    if spec.is_moe:
        checks.append(("num_experts", spec.num_experts) if expert_parallel
                      else ("moe_intermediate_size", spec.moe_intermediate_size))
    for name, value in checks:
        if value % tp:
            raise PlanError(f"{spec.name}: {name} = {value} is not divisible by --tensor-parallel-size {tp}; "
                            "vLLM refuses this sharding")
    if spec.num_kv_heads % tp and tp % spec.num_kv_heads:
        raise PlanError(f"{spec.name}: {spec.num_kv_heads} KV heads cannot be split or replicated over {tp} ranks")
    if spec.quant and spec.quant.block and spec.is_moe and not expert_parallel \
            and (spec.moe_intermediate_size // tp) % spec.quant.block[0]:
        raise PlanError(f"{spec.name}: moe_intermediate_size / {tp} = {spec.moe_intermediate_size // tp} is not a "
                        f"multiple of the FP8 block {spec.quant.block[0]} (vLLM refuses it); "
                        "add --enable-expert-parallel or lower --tensor-parallel-size")


def plan(model: str, arch: str, memory: str | None = None, context: int | None = None,
         batch: int = 1, kv_cache_dtype: str = "auto", tensor_parallel_size: int = 1, nodes: int = 1,
         expert_parallel: bool = False, engine_profiles: dict | None = None) -> dict:
    """`engine_profiles`: an engine_profile.json document to project from (default: the bundled
    one; scripts/plan_what_if.py passes a changed copy)."""
    spec = load_model(model)
    caps = capabilities_for(arch)
    board = _board(caps, None)
    tp = tensor_parallel_size
    if batch < 1:
        raise PlanError("--batch must be at least 1")
    if context is not None and context < 1:
        raise PlanError("--context must be at least 1")
    check_parallel(spec, caps, tp, nodes, expert_parallel)
    mem_gib = parse_memory(memory) if memory else float(board.memory_gib)
    context = min(context or min(spec.max_position_embeddings, 32768), spec.max_position_embeddings)
    comps = components(spec)
    total_weights = sum(c.bytes for c in comps)
    weights = sum(c.bytes / tp if c.sharded else c.bytes for c in comps)  # one GPU's share
    unified = board.unified_memory
    reserve = APU_OS_RESERVE_GIB if unified else 0.0
    util = round(min(0.95, (mem_gib - reserve) / mem_gib), 2) if unified else 0.92
    budget = mem_gib * util * GIB
    kv_tok = kv_bytes_per_token(spec, kv_cache_dtype, tp)
    state = gdn_state_bytes_per_seq(spec, tp)
    fixed = weights + RUNTIME_OVERHEAD_GIB * GIB + batch * state["total"]
    where = f"{mem_gib:.0f} GiB on {caps.arch}" + (f" per GPU at tensor parallel {tp}" if tp > 1 else "")
    if util <= 0 or fixed > budget:
        need = (weights + RUNTIME_OVERHEAD_GIB * GIB + batch * state["total"]) / GIB / (util if util > 0 else 1)
        raise PlanError(
            f"{spec.name} does not fit in {where}: its weights alone are "
            f"{weights / GIB:.1f} GiB{' per GPU' if tp > 1 else ''}, and with {RUNTIME_OVERHEAD_GIB:.0f} GiB of "
            "runtime overhead"
            + (f", a {reserve:.0f} GiB reserve for the OS sharing the unified pool" if unified else "")
            + f" and the GDN state of {batch} sequence(s) it needs about {need + reserve:.0f} GiB. "
            "Pick a smaller or more quantized checkpoint (FP8 halves BF16), a board with more memory"
            + (", or more boxes (--tensor-parallel-size N --nodes N)." if unified else
               ", or more GPUs (--tensor-parallel-size)."))
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
    if nodes > 1:
        warnings.append(
            f"{nodes} boxes: vLLM runs one rank per box through Ray (or `--nnodes`/`--node-rank` with the "
            "multiprocessing executor); every box needs the checkpoint and the same vLLM/rocm-enable. Two-box "
            "runs of rocm-enable are not yet verified (issue 18: no two-GPU machine was lent).")
    flags = ["--max-model-len", str(max_len), "--gpu-memory-utilization", str(util),
             "--max-num-seqs", str(batch)]
    if tp > 1:
        flags += ["--tensor-parallel-size", str(tp)]
    if expert_parallel:
        flags += ["--enable-expert-parallel"]
    if kv_cache_dtype != "auto":
        flags += ["--kv-cache-dtype", kv_cache_dtype]
    act_b = DTYPE_BYTES.get(spec.dtype, 2)
    projections = {}
    profile, how = decode_model.select_profile(
        decode_model.load_engine_profile() if engine_profiles is None else engine_profiles, spec)
    for head in ("bf16", "fp8"):
        step = step_bytes(spec, comps, context, batch, kv_tok, state, tp, expert_parallel, fp8_lm_head=head == "fp8")
        projections[head] = decode_model.project(spec, step, board.bandwidth_gbs, batch, tp, nodes, act_b, profile)
        projections[head]["engine_profile"]["applies"] = how
    proj = projections["bf16"]
    proj["fp8_lm_head"] = projections["fp8"]
    proj["assumptions"] = decode_model.assumptions(board, profile, how) + [
        "FP8 weights read at 1 byte (rocm-enable's W8A16 kernels keep them at one byte; vLLM without the "
        "plugin either refuses FP8 MoE or quantizes activations too)" if spec.quant else
        "BF16 weights read at 2 bytes",
        "lm_head: BF16 as the checkpoint stores it; the fp8_lm_head line is the opt-in "
        "ROCM_ENABLE_FP8_LM_HEAD=1 (e4m3 + fp32 scale per 128x128 block, W8A16 dense kernel)",
    ] + fused_shared_expert_note(spec, caps, profile) + ([f"tensor parallel {tp}" + (" with expert parallelism" if expert_parallel else "")
          + ": each rank reads its shard of every sharded weight, the KV heads and GDN heads it holds, and "
          "the replicated routers and norms whole; step time = one rank's time (ranks run in lock step)"
          + (", with expert parallelism the busier rank's expected share of a token's routed experts (exact "
             "for 2 ranks at batch 1, uniform routing; the mean share otherwise)" if expert_parallel else ""),
          f"collectives: {decode_model.LINK_SOURCE}; ring all-reduce 2(p-1) latencies + 2(p-1)/p x bytes per "
          "rank, added to the step (not overlapped)"] if tp > 1 else [])
    return {
        "model": spec.name, "architecture": spec.architecture,
        "quantization": spec.quant.scheme if spec.quant else None,
        "arch": caps.arch, "board": board.name, "bandwidth_gbs": board.bandwidth_gbs,
        "unified_memory": unified, "memory_gib": mem_gib,
        "tensor_parallel_size": tp, "nodes": nodes, "expert_parallel": expert_parallel,
        "components": [{"name": c.name, "params": c.params, "bytes": c.bytes, "dtype": c.dtype,
                        "per_gpu_bytes": int(c.bytes / tp if c.sharded else c.bytes)} for c in comps],
        "weights_bytes": int(weights), "total_weights_bytes": total_weights,
        "kv_bytes_per_token": kv_tok, "kv_layers": spec.full_attention_layers,
        "gdn_state_per_seq": state,
        "budget_bytes": int(budget), "runtime_overhead_gib": RUNTIME_OVERHEAD_GIB,
        "os_reserve_gib": reserve, "kv_budget_bytes": int(kv_budget), "kv_tokens": kv_tokens,
        "context": context, "batch": batch, "fits": fits,
        "vllm_serve": ["vllm", "serve", spec.name] + flags,
        "flags": {"max_model_len": max_len, "gpu_memory_utilization": util, "max_num_seqs": batch},
        "warnings": warnings, "projection": proj,
    }


def _expected_max_share(e: int, k: int, ranks: int) -> float:
    """Expected share of a token's k routed experts on the busiest of `ranks` expert-parallel ranks
    holding e/ranks experts each (uniform routing, exact for 2 ranks; the mean share otherwise)."""
    if ranks != 2:
        return 1 / ranks
    held = e // 2
    total = math.comb(e, k)
    return sum(max(x, k - x) * math.comb(held, x) * math.comb(e - held, k - x) for x in range(k + 1)) / total / k


def fused_shared_expert_note(spec: ModelSpec, caps: ArchCapabilities, profile: dict) -> list[str]:
    """Where record fused-shared-expert (on by default) fuses this model's shared expert but the
    engine profile was measured without it, say so: (b) then counts the separate shared expert's
    launches (docs/plan.md gives the what-if)."""
    fuses = (lacks_fp8_compute(caps) and spec.is_moe and spec.quant is not None
             and spec.quant.method == "fp8" and spec.quant.scheme == "block128"
             and spec.shared_expert_intermediate_size == spec.moe_intermediate_size > 0)
    if not fuses or not profile or "fused-shared-expert" in profile.get("fixes_applied", ()):
        return []
    return ["fused-shared-expert (on by default) runs this model's shared expert as expert "
            f"{spec.num_experts} of the W8A16 experts: 7 launches fewer per MoE layer at decode, but the engine "
            "profile was measured without it, so (b) still counts them; docs/plan.md's what-if "
            "(scripts/plan_what_if.py) gives the projection with it"]


def step_bytes(spec, comps, context, batch, kv_tok, state, tp=1, expert_parallel=False,
               fp8_lm_head=False) -> decode_model.StepBytes:
    """Bytes one GPU reads per decode step, by op family."""
    fam: dict[str, float] = {}
    for c in comps:
        if c.name.startswith("routed experts"):
            e, k = spec.num_experts, spec.top_k
            touched = e * (1 - (1 - k / e) ** batch)  # distinct experts a batch touches (uniform routing)
            share = _expected_max_share(e, k, tp) if expert_parallel and batch == 1 else 1 / tp
            b = touched * c.bytes / e * share
        elif c.name == "lm_head" and fp8_lm_head:
            fam["dense"] = fam.get("dense", 0) + lm_head_fp8_bytes(spec) / tp
            continue
        else:
            b = c.active_bytes / tp if c.sharded and c.family != "norms" else c.active_bytes
        fam[c.family] = fam.get(c.family, 0) + b
    fam["attention"] = batch * context * kv_tok
    fam["gdn"] = batch * 2 * state["total"]
    return decode_model.StepBytes(fam)


def _gib(b: float) -> str:
    return f"{b / GIB:,.2f} GiB"


def _range(v: list) -> str:
    return f"{v[0]}" if v[0] == v[1] else f"{v[0]}-{v[1]}"


def render(d: dict) -> str:
    tp = d["tensor_parallel_size"]
    per = " per GPU" if tp > 1 else ""
    out = [f"model      {d['model']} ({d['architecture']}, {'FP8 ' + d['quantization'] if d['quantization'] else 'BF16'})",
           f"arch       {d['arch']}: {d['board']}, {d['memory_gib']:.0f} GiB "
           f"{'unified (APU)' if d['unified_memory'] else 'VRAM'}, {d['bandwidth_gbs']} GB/s"]
    if tp > 1:
        out.append(f"parallel   tensor parallel {tp}{' + expert parallel' if d['expert_parallel'] else ''} over "
                   f"{d['nodes']} node(s); sizes below are per GPU unless marked total")
    out += ["", "weights by component" + (f" (total | per GPU)" if tp > 1 else "")]
    for c in d["components"]:
        extra = f" | {_gib(c['per_gpu_bytes']):>12}" if tp > 1 else ""
        out.append(f"  {c['name']:<34} {c['params'] / 1e9:8.2f} B params  {_gib(c['bytes']):>12}{extra}  {c['dtype']}")
    out.append(f"  {'total':<34} {sum(c['params'] for c in d['components']) / 1e9:8.2f} B params  "
               f"{_gib(d['total_weights_bytes']):>12}" + (f" | {_gib(d['weights_bytes']):>12}" if tp > 1 else ""))
    s = d["gdn_state_per_seq"]
    out += ["",
            f"KV cache   {d['kv_bytes_per_token'] / 1024:.1f} KiB per token{per} ({d['kv_layers']} full-attention "
            "layers only; GDN layers keep no KV cache)",
            f"GDN state  {s['total'] / 2**20:.1f} MiB per sequence{per} (recurrent {s['recurrent'] / 2**20:.1f} MiB "
            f"in {s['recurrent_dtype']}, conv {s['conv'] / 2**20:.2f} MiB)",
            f"budget     {_gib(d['budget_bytes'])}{per} for vLLM = weights {_gib(d['weights_bytes'])} + runtime "
            f"~{d['runtime_overhead_gib']:.0f} GiB + GDN state + KV {_gib(d['kv_budget_bytes'])} "
            f"({d['kv_tokens']:,} tokens)",
            f"fits       {'yes' if d['fits'] else 'partly'}: {d['batch']} sequence(s) x {d['context']:,} tokens", "",
            "vllm serve " + " ".join(d["vllm_serve"][2:]), ""]
    for w in d["warnings"]:
        out.append(f"WARNING    {w}")
    p = d["projection"]
    f8 = p["fp8_lm_head"]
    out += ["", f"decode speed: {p['label']}, batch {d['batch']}, context {d['context']:,}"
            + (", bytes read by one GPU" if tp > 1 else ""),
            f"  engine profile: {p['engine_profile']['applies']}"]
    ep = p["engine_profile"]
    m = ep.get("measured")
    if m and d["model"] in (ep["model"], ep.get("base_model")):
        split, dec = m["step_split"], m["decode"].get(f"batch{m['batch']}", {})
        depth = f", its first {ep['layers']} layers" if ep["model"] != d["model"] and ep.get("layers") else ""
        out.append(f"  measured there (NVIDIA, not AMD; vLLM's engine, CUDA graphs, dummy weights{depth}, "
                   f"batch {m['batch']}, context {m['context']}): {dec.get('tok_s')} tok/s, step {split['step_ms']:.3f} ms = bytes "
                   f"{split['bytes_ms']:.3f} ms at {m['reference_gbs']} GB/s + rest {split['rest_ms']:.3f} ms "
                   f"(GPU busy {split['gpu_busy_ms']:.3f} ms)")
    b = p["fixed_time"]
    fixed = b.get("fixed_ms", {})
    measured = any(e["status"].startswith("measured") for e in p["efficiency"].values())
    dev = p["engine_profile"]["device"] if measured else None
    out.append(f"  {'op family':<58} {'GB/step':>8} {'efficiency':>16}" + ("  (b) non-bytes ms" if fixed else ""))
    for fam, byts in p["bytes_by_family"].items():
        e = p["efficiency"][fam]
        eff = f"{e['low']:.2f}-{e['high']:.2f}" if e["low"] != e["high"] else f"{e['low']:.2f}"
        out.append(f"  {decode_model.FAMILIES[fam]:<58} {byts / 1e9:8.3f} {eff:>9} ({e['status']})"
                   + (f" {fixed[fam]:.3f}" if fam in fixed else ""))
    ms = p["step_ms"]
    out += [f"  {'total':<58} {sum(p['bytes_by_family'].values()) / 1e9:8.3f}"]
    if fixed:
        out.append("  no weight bytes, (b) non-bytes ms: " + ", ".join(
            f"{k} {v:.3f}" for k, v in fixed.items() if k not in p["bytes_by_family"]))
    out += [f"  kernels per step {p['kernels_per_step']} ({p['kernels_status']})",
            (f"  (a) {dev} efficiency carried over, a pessimistic floor: " if dev else
             "  (a) efficiency per family not yet measured: ")
            + f"family bytes / (its efficiency x {d['bandwidth_gbs']} GB/s) = "
            f"{_range([round(ms['bytes'][1], 2), round(ms['bytes'][0], 2)])} ms + {p['kernels_per_step']} x "
            f"{p['launch_cost_us']} us = {ms['launches']:.2f} ms (bytes at 100 %: {ms['bytes_at_peak']:.2f} ms)"
            + ("; the efficiencies hold that GPU's fixed per-kernel time, which does not shrink with bandwidth"
               if dev else ""),
            f"      lm_head BF16 (as shipped):        ceiling {p['ceiling_tok_s']} tok/s; projected "
            f"{_range(p['expected_tok_s'])} tok/s",
            f"      lm_head FP8 (ROCM_ENABLE_FP8_LM_HEAD=1): ceiling {f8['ceiling_tok_s']} tok/s; projected "
            f"{_range(f8['expected_tok_s'])} tok/s"]
    if "unavailable" in b:
        out.append(f"  (b) bytes + fixed time: not projected: {b['unavailable']}")
    else:
        b8 = f8["fixed_time"]
        lo, hi = b["achievable_gbs"]
        out += [f"  (b) bytes + fixed time: all bytes / {lo:.0f}-{hi:.0f} GB/s (achievable, assumption) = "
                f"{b['bytes_ms'][1]:.2f}-{b['bytes_ms'][0]:.2f} ms + the {dev}'s non-bytes time scaled to this model's "
                f"depth {b['fixed_ms_total']:.2f} ms + {b['launches']} launches x ({decode_model.LAUNCH_COST_US} - "
                f"{b['profiled_kernel_us']} us, that GPU's one-element kernel, already in its non-bytes time) = "
                f"{b['launch_ms']:.2f} ms",
                f"      lm_head BF16 (as shipped):        step {b['step_ms'][1]:.2f}-{b['step_ms'][0]:.2f} ms: "
                f"projected {_range(b['tok_s'])} tok/s ("
                + (f"{_range(b['tok_s_with_host'])} with the profiling host's {b['host_ms']:.2f} ms per step outside "
                   "the GPU)" if b["host_measured_ms"] >= 0 else
                   f"the profiling host added no time outside the GPU: its GPU busy time and graph-node gaps under the "
                   f"profiler exceed the unprofiled step by {-b['host_measured_ms']:.2f} ms)"),
                f"      lm_head FP8 (ROCM_ENABLE_FP8_LM_HEAD=1): step {b8['step_ms'][1]:.2f}-{b8['step_ms'][0]:.2f} ms: "
                f"projected {_range(b8['tok_s'])} tok/s ({_range(b8['tok_s_with_host'])} with host)"]
        target = decode_model.TARGETS_TOK_S.get(d["model"])
        if target and d["batch"] == 1:
            best = max(b["tok_s"][1], b8["tok_s"][1])
            out.append(f"  issue 14 target >= {target:g} tok/s (4K context, batch 1): "
                       + ("reached" if best >= target else "not reached")
                       + f" by (b) at its best ({best} tok/s, FP8 lm_head, {hi:.0f} GB/s); (a) reaches "
                       f"{max(p['expected_tok_s'][1], f8['expected_tok_s'][1])}")
        top = list(b8["gap_ms"].items())[:5]
        out.append(f"  (b) time above the bytes ceiling ({b8['peak_ms']:.2f} ms with the FP8 head, "
                   f"{1e3 / target:.1f} ms is the target step) goes to: " if target else
                   f"  (b) time above the bytes ceiling ({b8['peak_ms']:.2f} ms with the FP8 head) goes to: ")
        out[-1] += ", ".join(f"{k} {v:.2f} ms" for k, v in top) + (
            f" (MoE non-bytes {b['moe_fixed_us_per_layer']:.0f} us per layer)")
    c = p["collectives"]
    if c:
        out += ["", f"collectives per decode step (tensor parallel {tp}): {c['allreduces']} all-reduces of "
                f"{c['allreduce_bytes']:,} B (hidden x dtype bytes x batch) + one logits gather of "
                f"{c['logits_gather_bytes']:,} B; {c['bytes_sent_per_rank'] / 1e6:.2f} MB sent per rank"]
        if not c["table"]:
            out.append("  inside one node (PCIe / xGMI): transfer time not modelled")
        else:
            out.append(f"  {'transport':<16} {'latency':>8} {'link':>9} {'ms/step':>8}   expected tok/s "
                       "(BF16 lm_head | FP8 lm_head)")
            for row, row8 in zip(p["network"], f8["network"]):
                out.append(f"  {row['transport']:<16} {row['latency_us']:>6.2f}us {row['link_gbps']:>5} Gb/s "
                           f"{row['seconds_per_step'] * 1e3:8.2f}   {row['expected_tok_s'][0]}-{row['expected_tok_s'][1]}"
                           f" | {row8['expected_tok_s'][0]}-{row8['expected_tok_s'][1]}")
    out.append("  assumptions:")
    out += [f"   - {a}" for a in p["assumptions"]]
    return "\n".join(out) + "\n"
