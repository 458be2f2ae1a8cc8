"""Decode-step PROJECTION for `rocm-enable plan`: bytes per op family x that family's bandwidth
efficiency, plus kernels per step x a per-launch cost, plus (tensor parallel) the all-reduces.

    step time = sum_f bytes_f / (efficiency_f x bandwidth) + kernels x launch cost + collectives

Efficiencies and the kernel count come from the engine profile (models/engine_profile.json, filled
only from measurements in docs/engine.md). A family without a measured value is projected with the
stated UNMEASURED_EFFICIENCY range and printed as 'not yet measured'. Nothing here is a measurement
on AMD hardware.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

FAMILIES = {
    "moe": "MoE routed experts (W8A16 / BF16 expert GEMMs)",
    "dense": "dense linears: attention and GDN projections, shared expert",
    "router_bf16": "MoE routers (BF16, built without quant_config)",
    "attention": "full-attention KV cache read",
    "gdn": "Gated DeltaNet recurrent + conv state (read and written)",
    "lm_head_bf16": "lm_head (BF16)",
    "norms": "norms and embedding rows",
}
# A family the engine profile has not measured: the 50-60 % of peak that the best engines reach at
# batch 1 on these boards (shared research anchors §1.5: llama.cpp 52-57 % of the 8-bit ceiling on
# gfx1151), applied per family.
UNMEASURED_EFFICIENCY = (0.5, 0.6)
UNMEASURED_SOURCE = ("50-60 % of peak, what llama.cpp reaches at batch 1 on gfx1151 (research anchors §1.5); an "
                     "end-to-end figure that already contains llama.cpp's own launch costs, so adding launches "
                     "on top makes the unmeasured projection pessimistic")

# Per-kernel cost of a HIP-graph replay on RDNA: 3.865 us per node for 941 serialized tiny
# dispatches replayed from one hipGraph on gfx1100 (Radeon PRO W7900), ROCm/rocm-systems#10834
# ("[HIP] Graph replay has 10x higher dispatch overhead vs Vulkan command buffers", 2026-08-27),
# which measures gfx1151 at 3.04x Vulkan's per-node cost in the same benchmark. Applied to gfx1151
# as is: an assumption, and printed as one.
LAUNCH_COST_US = 3.865
LAUNCH_SOURCE = ("HIP graph replay, 941 serialized nodes on gfx1100 (W7900): 3.865 us/node, "
                 "github.com/ROCm/rocm-systems/issues/10834 (gfx1151 reported 3.04x Vulkan in the same run)")
# (b) the bytes + fixed-time model: the share of gfx1151's 212 GB/s read rate a streaming GEMV reaches
# inside a model, measured with rocprofv3 on gfx1151 (JeremiahM37/strix-halo-sglang; shared research
# anchors §5.1): a 2048x2048 GEMV 165 GB/s, GDN in_proj 182 GB/s, lm_head BF16 197 GB/s.
ACHIEVABLE_GBS = (165.0, 197.0)
ACHIEVABLE_SOURCE = ("in-model GEMV read rates on gfx1151 (rocprofv3, JeremiahM37/strix-halo-sglang; research "
                     "anchors §5.1): 2048x2048 165 GB/s, GDN in_proj 182, lm_head BF16 197 of the 212 GB/s read rate; "
                     "kernel-level rates that already contain each kernel's own fixed time, which (b) adds again "
                     "from the H100, so this term leans pessimistic")
# Issue 14's projected targets at 4K context, batch 1, no speculative decoding.
TARGETS_TOK_S = {"Qwen/Qwen3.6-35B-A3B-FP8": 50.0, "Qwen/Qwen3-Coder-Next-FP8": 45.0}
# Kernels one decode step launches when the profile has not counted them: read off vLLM's decode
# forward for these layers (norm, projections, conv/recurrent/gating kernels, KV write, attention,
# router, top-k, align, w13, w2, top-k sum, shared expert and its gate), not measured.
KERNELS_ESTIMATE = {"linear_attention_layer": 9, "full_attention_layer": 8, "moe_block": 13,
                    "dense_mlp_block": 4, "per_step": 8}

# Two Strix Halo boxes over RoCE v2 (Intel E810, direct DAC): 5.23 us one-way latency, 50.6 Gb/s
# through the boards' PCIe x4 slot; over TCP on the same NIC 68 us (kyuz0/amd-strix-halo-vllm-
# toolboxes, rdma_cluster/setup_guide.md, "Verify RDMA Connection").
LINK_LATENCY_US = {"RoCE v2 (RDMA)": 5.23, "TCP": 68.0}
LINK_SOURCE = ("two Strix Halo boxes, Intel E810 100GbE: RDMA 5.23 us, TCP 68 us, RDMA 50.6 Gb/s "
               "(PCIe x4 limit); github.com/kyuz0/amd-strix-halo-vllm-toolboxes rdma_cluster/setup_guide.md")
LINK_RATES_GBPS = (25, 50, 100, 200)


def load_engine_profile() -> dict:
    """models/engine_profile.json: {"profiles": {hf_id: profile}} (see select_profile)."""
    return json.loads(resources.files("rocm_enable.models").joinpath("engine_profile.json").read_text())


def select_profile(doc: dict, spec) -> tuple[dict, str]:
    """The engine profile that applies to `spec`: its own, else one measured on a model with the
    same weight format (FP8 W8A16 kernels or BF16 kernels: the kernels whose efficiency was measured),
    else none ({}). Returns (profile, how it applies)."""
    profiles = {k: v for k, v in (doc.get("profiles") or {}).items() if v.get("status") == "measured"}
    if spec.name in profiles:
        return profiles[spec.name], f"this model's profile, measured on {profiles[spec.name].get('device')}"
    for name, prof in sorted(profiles.items()):  # this model cut to its first N layers: the same kernels
        if prof.get("base_model") == spec.name:
            return prof, (f"measured on {prof.get('device')} for the first {prof.get('layers')} layers of this model "
                          "(same kernels and shapes; launches and fixed times scaled per layer to this model's depth)")
    fp8 = spec.quant is not None
    same_arch_first = sorted(profiles.items(), key=lambda kv: (kv[1].get("architecture") != spec.architecture, kv[0]))
    for name, prof in same_arch_first:
        if bool(prof.get("fp8")) == fp8:
            return prof, (f"measured on {prof.get('device')} for {name} (same {'FP8' if fp8 else 'BF16'} kernels; "
                          "applying it to this model is an assumption)")
    return {}, "not yet measured"


@dataclass(frozen=True)
class StepBytes:
    """Bytes one GPU reads (and for GDN state, writes) in one decode step, per family."""
    by_family: dict

    @property
    def total(self) -> float:
        return sum(self.by_family.values())


def efficiencies(profile: dict) -> dict:
    """family -> (low, high, 'measured on X' | 'not yet measured')."""
    out = {}
    measured_on = profile.get("device") or "?"
    for fam in FAMILIES:
        entry = profile.get("bandwidth_efficiency", {}).get(fam) or {}
        v = entry.get("value")
        if v is None:
            why = entry.get("status", "")
            out[fam] = (*UNMEASURED_EFFICIENCY, why if why.startswith("not measured") else "not yet measured")
        else:
            if not 0 < float(v) <= 1.5:  # a read-only stream may pass a read+write copy rate
                raise ValueError(f"engine_profile.json: bandwidth_efficiency.{fam} = {v} is not a share")
            out[fam] = (float(v), float(v), f"measured on {measured_on}")
    return out


def _layer_ratio(spec, profile: dict, kind: str) -> float:
    """This model's layers of `kind` over the profiled model's."""
    mine = {"all": spec.num_layers, "full_attention": spec.full_attention_layers,
            "linear_attention": spec.linear_attention_layers}[kind]
    profiled = profile["step_time"]["layers"][kind]
    return mine / profiled if profiled else 0.0


def scaled_step_time(spec, profile: dict) -> dict:
    """The profile's per-family launches and non-bytes time scaled to this model's depth: the per-layer
    part x (this model's layers of the family's kind / the profiled model's), the per-step part once.
    Time is split in the proportion the profile measured (per-step kernel time / family time)."""
    out = {}
    for key, f in profile["step_time"]["families"].items():
        ratio = _layer_ratio(spec, profile, f["layers"])
        layer_launches = f["launches"] - f["per_step_launches"]
        scale = ((f["us"] - f["per_step_us"]) * ratio + f["per_step_us"]) / f["us"] if f["us"] else 0.0
        out[key] = {"launches": layer_launches * ratio + f["per_step_launches"],
                    "per_layer_launches": layer_launches, "per_step_launches": f["per_step_launches"],
                    "fixed_us": f["fixed_us"] * scale}
    return out


def kernels_per_step(spec, profile: dict, allreduces: int) -> tuple[int, str]:
    """Launches one decode step makes: the profile's count (kernels and copies, CUDA-graph pass) when
    it measured this model, else derived from its per-layer and per-step launches when it has them,
    else the per-layer estimate."""
    k = profile.get("kernels_per_step") or {}
    if k.get("value") is not None and k.get("model") == spec.name:
        return round(k["value"]) + allreduces, f"measured on {profile.get('device')}"
    if profile.get("step_time"):
        fams = scaled_step_time(spec, profile).values()
        per_layer = sum(f["per_layer_launches"] for f in fams)
        per_step = sum(f["per_step_launches"] for f in fams)
        n = round(sum(f["launches"] for f in fams))
        return n + allreduces, (f"derived from the {profile.get('device')} profile of {profile.get('model')}: "
                                f"{per_layer:.0f} per-layer launches in {profile['step_time']['layers']['all']} "
                                f"layers scaled to this model's {spec.num_layers} (full-attention and GDN kernels by "
                                f"their own layer counts) + {per_step:.0f} per step")
    e = KERNELS_ESTIMATE
    mlp = e["moe_block"] if spec.is_moe else e["dense_mlp_block"]
    n = (spec.linear_attention_layers * e["linear_attention_layer"]
         + spec.full_attention_layers * e["full_attention_layer"] + spec.num_layers * mlp + e["per_step"])
    return n + allreduces, "not yet measured: estimated from vLLM's decode forward"


def allreduces_per_step(spec, tp: int) -> int:
    """vLLM's TP all-reduces in one decode step: each layer's attention/GDN out_proj (row parallel)
    and its MoE/MLP output (routed + shared experts reduced once), plus the vocab-parallel
    embedding. The logits are gathered once more (collectives() counts that separately)."""
    return 0 if tp == 1 else 2 * spec.num_layers + 1


def collectives(spec, tp: int, nodes: int, batch: int, act_bytes: int) -> dict | None:
    """Bytes and time of one decode step's collectives when the TP group spans `nodes` boxes.

    All-reduce of S bytes over p ranks (ring, as RCCL/NCCL's small-message path): 2(p-1) steps,
    each one link latency, and 2(p-1)/p x S bytes sent per rank. Logits: one gather of
    (p-1)/p x vocab x batch x act_bytes to rank 0, one latency."""
    if tp == 1:
        return None
    n = allreduces_per_step(spec, tp)
    size = spec.hidden_size * act_bytes * batch
    gather = spec.vocab_size * batch * act_bytes * (tp - 1) / tp
    sent = n * 2 * (tp - 1) / tp * size + gather
    out = {"allreduces": n, "allreduce_bytes": size, "logits_gather_bytes": int(gather),
           "bytes_sent_per_rank": int(sent), "nodes": nodes, "table": []}
    if nodes == 1:
        return out  # inside one box: PCIe / xGMI, not modelled here
    hops = n * 2 * (tp - 1) + 1
    for transport, lat in LINK_LATENCY_US.items():
        for gbps in LINK_RATES_GBPS:
            t = hops * lat * 1e-6 + sent * 8 / (gbps * 1e9)
            out["table"].append({"transport": transport, "latency_us": lat, "link_gbps": gbps,
                                 "seconds_per_step": t})
    return out


def project(spec, step: StepBytes, bandwidth_gbs: float, batch: int, tp: int = 1, nodes: int = 1,
            act_bytes: int = 2, profile: dict | None = None) -> dict:
    """`profile`: one engine profile (select_profile's choice from engine_profile.json by default)."""
    how = "given"
    if profile is None:
        profile, how = select_profile(load_engine_profile(), spec)
    eff = efficiencies(profile)
    bw = bandwidth_gbs * 1e9
    bytes_time = [sum(b / (eff[f][i] * bw) for f, b in step.by_family.items()) for i in (0, 1)]
    ceiling_time = step.total / bw
    nk, nk_status = kernels_per_step(spec, profile, allreduces_per_step(spec, tp))
    launch = nk * LAUNCH_COST_US * 1e-6
    coll = collectives(spec, tp, nodes, batch, act_bytes)
    out = {
        "label": "PROJECTION (not a measurement)",
        "engine_profile": {"applies": how, "model": profile.get("model"), "base_model": profile.get("base_model"),
                           "layers": profile.get("layers"), "device": profile.get("device"),
                           "command": profile.get("command"), "date": profile.get("date"),
                           "measured": profile.get("measured")},
        "bytes_by_family": {f: int(b) for f, b in step.by_family.items()},
        "efficiency": {f: {"low": eff[f][0], "high": eff[f][1], "status": eff[f][2]} for f in step.by_family},
        "kernels_per_step": nk, "kernels_status": nk_status, "launch_cost_us": LAUNCH_COST_US,
        "ceiling_tok_s": round(batch / ceiling_time, 1),
        # slow end: low efficiency; fast end: high efficiency; both pay the launches
        "expected_tok_s": [round(batch / (bytes_time[0] + launch), 1), round(batch / (bytes_time[1] + launch), 1)],
        "step_ms": {"bytes_at_peak": ceiling_time * 1e3, "bytes": [t * 1e3 for t in bytes_time],
                    "launches": launch * 1e3},
        "collectives": coll,
        # (b) for one GPU; tensor parallel keeps to (a) (the shards' fixed times were not profiled)
        "fixed_time": (project_fixed_time(spec, step, bandwidth_gbs, batch, profile) if tp == 1 else
                       {"unavailable": "modelled for one GPU only (the shards' kernels were not profiled)"}),
    }
    if coll and coll["table"]:
        out["network"] = [dict(row, expected_tok_s=[round(batch / (bytes_time[0] + launch + row["seconds_per_step"]), 1),
                                                    round(batch / (bytes_time[1] + launch + row["seconds_per_step"]), 1)])
                          for row in coll["table"]]
    return out


def project_fixed_time(spec, step: StepBytes, bandwidth_gbs: float, batch: int, profile: dict) -> dict:
    """(b) bytes + fixed time: per family, bytes / (an achievable share of the board's read rate)
    + the family's non-bytes time measured on the profiling GPU (its kernel time - its bytes at that
    GPU's read rate; each launch's own kernel duration included), scaled to this model's depth;
    + launches x (RDNA's HIP-graph cost per node - the profiling GPU's one-element-kernel time, which
    the non-bytes time already holds). Also: the profiling host's time outside the GPU per step.
    Returns {"unavailable": why} when the profile cannot support it."""
    if not profile:
        return {"unavailable": "no engine profile applies to this model (none measured with its weight format)"}
    if not profile.get("step_time"):
        return {"unavailable": "the engine profile has no per-family step time (needs a profile written by the "
                               "current scripts/engine_profile_to_plan.py)"}
    m = profile["measured"]
    if batch != m["batch"]:
        return {"unavailable": f"the engine profile's step time is for batch {m['batch']}, not {batch}"}
    fams = scaled_step_time(spec, profile)
    fixed_ms = {k: f["fixed_us"] / 1e3 for k, f in fams.items()}
    launches = sum(f["launches"] for f in fams.values())
    extra_us = LAUNCH_COST_US - m["kernel_fixed_us"]
    launch_ms = launches * extra_us / 1e3
    bytes_ms = [step.total / (gbs * 1e6) for gbs in ACHIEVABLE_GBS]  # [slow: 165 GB/s, fast: 197 GB/s]
    step_ms = [b + sum(fixed_ms.values()) + launch_ms for b in bytes_ms]
    split = m["step_split"]
    # the profiling host's time per step outside the GPU's kernels and graph-node gaps; below zero when
    # the GPU time under the profiler exceeds the unprofiled step (run 8: 2.142 vs 1.966 ms): the host
    # then added nothing measurable (vLLM's async scheduling overlaps it with the GPU), so 0 is used
    host_measured_ms = split["host_and_gaps_ms"] - (profile["kernels_per_step"]["value"]
                                                     * (m["graph_node_us"] - m["kernel_fixed_us"]) / 1e3)
    host_ms = max(0.0, host_measured_ms)
    peak_ms = step.total / (bandwidth_gbs * 1e6)
    gap = {f"bytes at {ACHIEVABLE_GBS[1]:g} not {bandwidth_gbs:g} GB/s": bytes_ms[1] - peak_ms,
           "HIP-graph launches": launch_ms, **{f"{k} non-bytes time": v for k, v in fixed_ms.items()}}
    moe = profile["step_time"]["families"]["moe"]
    return {"label": "PROJECTION (b): bytes + fixed time (not a measurement)",
            "achievable_gbs": list(ACHIEVABLE_GBS), "bytes_ms": bytes_ms, "fixed_ms": fixed_ms,
            "fixed_ms_total": sum(fixed_ms.values()), "launches": round(launches), "launch_extra_us": extra_us,
            "profiled_kernel_us": m["kernel_fixed_us"],
            "launch_ms": launch_ms, "step_ms": step_ms, "tok_s": [round(batch * 1e3 / t, 1) for t in step_ms],
            "host_ms": host_ms, "host_measured_ms": host_measured_ms,
            "tok_s_with_host": [round(batch * 1e3 / (t + host_ms), 1) for t in step_ms],
            "peak_ms": peak_ms, "gap_ms": dict(sorted(gap.items(), key=lambda kv: -kv[1])),
            "moe_fixed_us_per_layer": moe["fixed_us"] / profile["step_time"]["layers"][moe["layers"]]}


def _moe_layer_example(profile: dict) -> str:
    """' (at batch 1 an MoE layer's X MB is Y us of bytes at Z GB/s but its kernels take W us)' from the profile."""
    st = profile.get("step_time")
    if not st:
        return ""
    moe, ref = st["families"]["moe"], profile["measured"]["reference_gbs"]
    n = st["layers"][moe["layers"]]
    return (f" (at batch 1 an MoE layer's {moe['bytes'] / n / 1e6:.0f} MB is {moe['bytes'] / n / (ref * 1e3):.0f} us of "
            f"bytes at {ref:g} GB/s but its kernels take {moe['us'] / n:.0f} us)")


def assumptions(board, profile: dict, how: str = "not yet measured") -> list[str]:
    measured = [f for f, e in efficiencies(profile).items() if e[2] != "not yet measured"]
    ref = profile.get("measured") or {}
    return [
        f"decode is memory-bound per op family: family time = its bytes / (efficiency x {board.bandwidth_gbs} GB/s "
        f"({board.name}, capability table: a measured read rate)); ceiling = every byte at 100 % with no launch cost",
        f"engine profile: {how}"
        + (f" ({profile.get('command')}, {profile.get('date')})" if profile.get("command") else ""),
        "efficiency per family: measured for " + (", ".join(measured) or "no family")
        + (f" as (family bytes / the measuring GPU's {ref.get('reference', 'read')} bandwidth "
           f"{ref.get('reference_gbs')} GB/s) / (the family's kernel time per decode step - its launches x "
           f"{ref.get('kernel_fixed_us')} us, that GPU's one-element-kernel time)" if measured else "")
        + f" (an NVIDIA efficiency applied to {board.name} is itself an assumption); every other family: "
        + UNMEASURED_SOURCE + " -> the low-high range",
        f"per-kernel launch cost {LAUNCH_COST_US} us with HIP graphs: {LAUNCH_SOURCE}; launches are added to, "
        "not overlapped with, the bytes time (one decode step is a chain of dependent kernels)",
        "kernels per step: the engine profile's count of kernels and copies in one CUDA-graph decode step when it "
        "measured this model; from a profile of another depth or model: its per-layer launches x this model's layers "
        "(full-attention and GDN kernels by their own layer counts) + its per-step launches ("
        + ((profile.get("step_time") or {}).get("per_step_rule") or "no profile")
        + f"); with no profile {KERNELS_ESTIMATE} (estimate)",
        "(a) carries the measuring GPU's efficiencies over to the board's bandwidth: they hold that GPU's fixed time "
        "per kernel" + _moe_layer_example(profile) + ", which does not grow when the bandwidth is lower, so (a) is a "
        "pessimistic floor",
        f"(b) bytes at {ACHIEVABLE_GBS[0]:g}-{ACHIEVABLE_GBS[1]:g} GB/s, an assumption: {ACHIEVABLE_SOURCE}",
        "(b) non-bytes time per family = its kernel time on the profiling GPU - its bytes at that GPU's read rate, "
        "carried over in microseconds (an RDNA kernel's latency may be longer: this term is not a bound), scaled to "
        "this model's depth as the launches are (the per-step part once); the opt-in FP8 lm_head keeps the BF16 "
        "head's measured fixed time (the W8A16 kernel on the head's shape was not profiled in the engine)",
        f"(b) launches: x ({LAUNCH_COST_US} us per HIP-graph node - the profiling GPU's one-element-kernel time, which "
        "its non-bytes time already holds); (b) is projected at the profile's batch and for one GPU",
        "(b) 'with host': + the profiling host's time per step outside the GPU (step - GPU busy - launches x the "
        "graph-node gap; 0 when the GPU busy time under the profiler exceeds the unprofiled step, i.e. the host "
        "overlapped the GPU); Strix Halo's host time is not measured",
        "MoE: top-k routed experts per token plus the shared expert and router; for batch > 1 the distinct "
        "experts touched assume uniform routing",
        "full-attention KV read every step for each sequence's whole context; GDN state read and written once per token",
    ]
