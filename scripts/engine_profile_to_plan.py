"""Turn the engine harness's speed results (device_run.py speed -> summary.json, one engine_job.py
--speed result per model) into rocm_enable/models/engine_profile.json, the measured input of
`rocm-enable plan`'s decode PROJECTION, and check the kernels that ran against `rocm-enable explain`.

    .venv/bin/python scripts/engine_profile_to_plan.py summary.json --command "..." --date 2026-12-06 \
        [--job speed.qwen36-35b-fp8 ...] [--batch 1] [--reference read|copy] \
        [--explain-json EXPLAIN.json ...] [--write]

Per model (the bundled config the job ran, its Hugging Face id from the bundle; a job on the first
N decoder layers, `dummy:FILE@N`, is the profile `<id>@N`, its bytes counted for those N layers):
  efficiency_f = (bytes_f / reference bandwidth) / (kernel time_f - launches_f x kernel_fixed_us)
    bytes_f           `rocm-enable plan`'s accounting of the family at the profiled batch and context
                      (input length + the middle of the profiled decode steps)
    reference         the same job's measured read bandwidth (a sum over 1 GiB; gfx1151's 212 GB/s in
                      the capability table is a measured read rate too), or its copy rate (--reference copy)
    kernel time_f     the family's GPU time in one decode step with vLLM's CUDA graphs (the graph pass,
                      kernels split over families as the graph-dispatch-off pass attributed them by op);
                      the graph-dispatch-off pass itself when CUPTI did not report kernels inside graphs
    kernel_fixed_us   the same GPU's duration of a one-element kernel replayed in a CUDA graph: the
                      part of every kernel's time that is not bytes, so the projection can add RDNA's
                      own per-launch cost instead
  Profile families -> plan families: moe, dense, router -> router_bf16, lm_head -> lm_head_bf16,
  attention, gdn + conv -> gdn, norm -> norms. Families whose time is mostly launches (busy < 10 %)
  stay unmeasured. Launches per step = kernels + copies of the graph pass.
Also written: decode tok/s at each batch, the step split (bytes at the reference rate vs the rest,
GPU busy vs host gaps), and the kernel check: for each decode-relevant `rocm-enable explain --arch
gfx1151` row, whether the kernels the profile attributed to that family are the ones explain names
(a backend that silently falls back to vLLM's kernel inside forward shows as MISMATCH).
Nothing here is a measurement on AMD hardware.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from importlib import resources

from rocm_enable.models import load_model, spec_from_config
from rocm_enable.plan import components, gdn_state_bytes_per_seq, kv_bytes_per_token, step_bytes

BUNDLED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "rocm_enable", "models",
                       "configs")
# plan family -> profile families measured together
GROUPS = {"moe": ("moe",), "dense": ("dense",), "router_bf16": ("router",), "lm_head_bf16": ("lm_head",),
          "attention": ("attention",), "gdn": ("gdn", "conv"), "norms": ("norm",)}
LAUNCH_BOUND = 0.1  # busy time below this share of the family's time: its bytes say nothing
# Profile families with GPU time but no weight bytes (scripts/engine/speed_profile.py FAMILIES less
# those in GROUPS); with GROUPS they make up the whole step. step_time refuses a family in neither.
NO_BYTES = ("rope", "activation", "copy", "other", "runner", "sampling")
# The layers a step-time entry's per-layer launches repeat over (default: every decoder layer)
LAYER_KIND = {"attention": "full_attention", "gdn": "linear_attention"}
VISIBLE = 0.9       # graph-pass kernels per step / eager-pass: CUPTI reported the kernels inside graphs

# The kernel check: explain row -> profile family, and kernel-name substrings each implementation
# explain can name launches (lower case). ALTERNATIVES: what a different implementation of the same
# row would launch; seeing one without the expected kernel, or beside it, is a mismatch.
BLAS = ("gemv", "gemm", "nvjet", "xmma", "cutlass", "cublas", "splitkreduce")
IMPLEMENTATIONS = (
    ("W8A16", ("w8a16_",)), ("TritonExperts", ("fused_moe_kernel",)),
    ("paged_decode_kernel", ("paged_decode_kernel",)), ("kernel_unified_attention", ("kernel_unified_attention",)),
    ("paged_attention_rocm", ("paged_attention",)), ("kernel_paged_attention_2d", ("kernel_paged_attention_2d",)),
    ("fused_rearrange_sigmoid_gated_delta_rule", ("fused_rearrange_sigmoid_gated_delta_rule",)),
    ("fused_recurrent_gated_delta_rule", ("fused_recurrent_gated_delta_rule",)),
    ("causal_conv1d_update_single_token", ("causal_conv1d_update_single_token",)),
    ("causal_conv1d_update", ("causal_conv1d_update",)),
    ("layer_norm_fwd_kernel", ("layer_norm",)),
    ("native implementation", ("triton_",)),  # torch code, fused by inductor
    ("wvSplitK", ("wvsplitk",)), ("LLMM1", ("llmm1",)),
    ("torch.nn.functional.linear", BLAS),     # hipBLASLt/rocBLAS on the board, cuBLAS on the measuring GPU
)
CHECKS = (
    ("MoE expert GEMMs", "moe", ("fused_moe_kernel", "w8a16_", "marlin", "moe_wna16")),
    ("shared expert and dense projections", "dense", ("scaled_mm", "marlin", "wvsplitk", "llmm1")),
    ("dense projections (GDN, attention, MLP)", "dense", ("scaled_mm", "marlin", "wvsplitk", "llmm1")),
    ("attention decode", "attention", ("paged_decode_kernel", "kernel_unified_attention", "paged_attention",
                                       "flash_attn", "fmha")),
    ("GDN decode", "gdn", ("fused_recurrent_gated_delta_rule", "fused_rearrange_sigmoid_gated_delta_rule",
                           "fused_sigmoid_gating_delta_rule", "gdn_packed_decode_kernel")),
    ("causal conv1d", "conv", ("causal_conv1d_update",)),
    ("norms (RMSNorm / GemmaRMSNorm)", "norm", ("rms_norm_kernel", "rmsnorm")),
    ("norms (GDN gated RMSNorm)", "norm", ("layer_norm_fwd", "layer_norm_gated")),
    ("router", "router", ("wvsplitk", "llmm1")),
    ("lm_head", "lm_head", ("wvsplitk", "llmm1", "w8a16_")),
)


class ProfileError(ValueError):
    """A result this script cannot turn into a profile (says what to fix)."""


def job_model(model: str):
    """'dummy:Qwen3.6-35B-A3B-FP8.json[@LAYERS]' -> (profile key, the bundle's Hugging Face id,
    layers or None, the ModelSpec the job ran: the first LAYERS decoder layers when given)."""
    if not model.startswith("dummy:"):
        raise ProfileError(f"{model!r} is not a speed job's model (dummy:<bundled config>[@layers])")
    config_file, _, layers = model[len("dummy:"):].partition("@")
    with open(os.path.join(BUNDLED, config_file)) as f:
        raw = json.load(f)
    hf_id = raw["_rocm_enable"]["hf_id"]
    if not layers:
        return hf_id, hf_id, None, load_model(hf_id)
    text = raw.get("text_config") or raw
    text["num_hidden_layers"] = int(layers)
    if "layer_types" in text:
        text["layer_types"] = text["layer_types"][:int(layers)]
    key = f"{hf_id}@{layers}"
    return key, hf_id, int(layers), spec_from_config(raw, key, "bundled")


def expected_kernels(text: str) -> tuple[str, ...]:
    """Kernel-name substrings the decode part of an explain row's kernel text names: per '; '-separated
    clause (e.g. the native norms, then the fused q/k norms of the full-attention layers), the first
    implementation marker it names, else the *_kernel names it spells out."""
    decode = text.split("; prefill")[0].split("; top-k")[0]
    out: list[str] = []
    for clause in decode.split("; "):
        tokens = next((t for marker, t in IMPLEMENTATIONS if marker in clause), None)
        if tokens is None:  # a clause naming its kernel
            tokens = tuple(k.lower() for k in re.findall(r"\b(\w+_kernel)\b", clause))
        out += [t for t in tokens if t not in out]
    return tuple(out)


def kernel_check(explain: dict, fams: dict) -> list[dict]:
    """Per decode-relevant explain row: the kernels the profile attributed to its family vs the row."""
    out = []
    rows = {r["family"]: r for r in explain.get("rows", [])}
    for row_family, fam, alternatives in CHECKS:
        if row_family not in rows:
            continue
        row = rows[row_family]["with_plugin"]
        text = row.get("kernel") or row.get("error") or ""
        expected = expected_kernels(text)
        note = None
        stand_in = [f for f in rows[row_family].get("fixes", []) if "code-object" in f and "(applied)" in f]
        if fam in ("dense", "router", "lm_head") and "(HIP" in text.split("; prefill")[0] and stand_in:
            # explain names a HIP kernel of vLLM's _rocm_C; the simulated build has no gfx1151 code
            # object for it, so the code-object record runs torch's linear (cuBLAS on the measuring GPU)
            expected = BLAS
            note = f"a build without gfx1151 code objects: {stand_in[0].split(' ')[0]} runs torch linear"
        names = list((fams.get(fam) or {}).get("names", {}))
        found = [n for n in names if any(t in n.lower() for t in expected)]
        other = [n for n in names if not any(t in n.lower() for t in expected)
                 and any(a in n.lower() for a in alternatives)]
        if not expected:
            verdict = "not checked: the row names no kernel this check knows"
        elif not names:
            verdict = f"MISMATCH: no kernel of family {fam} in the profile"
        elif not found:
            verdict = f"MISMATCH: explain names {text[:80]!r}, the profile ran {names[:6]}"
        elif other:
            verdict = f"MISMATCH: besides the explained kernel the profile ran {other[:6]}"
        else:
            verdict = "as explained" + (f" ({note})" if note else "")
        out.append({"explain_row": row_family, "explain_kernel": text, "profile_family": fam,
                    "expected": list(expected), "found": found, "unexpected": other, "verdict": verdict})
    return out


def _pass(prof_b: dict) -> tuple[dict, str]:
    graph, eager = prof_b.get("graph"), prof_b.get("eager")
    vis = prof_b.get("graph_kernels_visible")
    if graph and (eager is None or (vis is not None and vis >= VISIBLE)):
        return graph, "graph"
    if eager:
        return eager, f"eager (CUDA-graph pass saw {vis} of its kernels)"
    raise ProfileError("the speed result has no kernel profile (run without --no-profile)")


def step_time(pass_: dict, spec, step, ref_gbs: float) -> dict:
    """Each family's GPU time and launches in one profiled decode step, its bytes and its non-bytes
    time (time - bytes at the reference rate), with launches and time split into per-layer and
    per-step parts so `plan` can scale them to the full model. A kernel name launched fewer times per
    step than the profiled model has layers of its least common kind (full attention or GDN) is per
    step (sampler, runner, lm_head, state bookkeeping); every other name is per layer."""
    names = pass_.get("names")
    if not names:
        raise ProfileError("the profile pass has no per-kernel-name counts ('names'); re-run the speed job "
                           "with the current scripts/engine/speed_profile.py")
    kinds = {"all": spec.num_layers, "full_attention": spec.full_attention_layers,
             "linear_attention": spec.linear_attention_layers}
    fewest = min(n for n in kinds.values() if n)
    fams = pass_["families"]
    known = {f for src in GROUPS.values() for f in src} | set(NO_BYTES)
    unknown = sorted(set(fams) - known)
    if unknown:  # its time would silently drop out of the step
        raise ProfileError(f"profile families {unknown} are neither plan families nor NO_BYTES in "
                           "scripts/engine_profile_to_plan.py: add them there")
    out = {}
    for key, src in list(GROUPS.items()) + [(f, (f,)) for f in NO_BYTES if f in fams]:
        us = sum((fams.get(f) or {}).get("us", 0.0) for f in src)
        launches = sum((fams.get(f) or {}).get("kernels", 0.0) for f in src)
        step_launches = step_us = 0.0
        for f in src:
            for name, count in ((fams.get(f) or {}).get("names") or {}).items():
                if name not in names:
                    raise ProfileError(f"kernel {name!r} of family {f} is missing from the pass's names")
                total_count, total_us = names[name]
                if total_count < fewest:
                    step_launches += count
                    step_us += total_us * count / total_count
        byts = step.by_family.get(key, 0.0)
        out[key] = {"us": round(us, 2), "launches": round(launches, 2), "bytes": int(byts),
                    "fixed_us": round(us - byts / (ref_gbs * 1e3), 2),
                    "per_step_launches": round(step_launches, 2), "per_step_us": round(min(step_us, us), 2),
                    "layers": LAYER_KIND.get(key, "all")}
    return {"layers": kinds, "per_step_rule": f"a kernel name launched < {fewest} times per step (the fewest "
                                                "layers of one kind in the profiled model) is per step",
            "families": out}


def profile_entry(job: dict, batch: int, reference: str) -> dict:
    """One model's engine_profile.json entry from its summary.json job."""
    speed = job.get("speed") or {}
    hf_id, base, layers, spec = job_model(job["model"])
    if f"batch{batch}" not in speed or "profile" not in speed or f"batch{batch}" not in speed["profile"]:
        raise ProfileError(f"{hf_id}: no batch-{batch} timing and profile in this result "
                           f"(ok={job.get('ok')}, error={job.get('error')!r}); re-run its speed job")
    prof = speed["profile"]
    fams_src, pass_name = _pass(prof[f"batch{batch}"])
    ref_gbs = (speed.get("copy") or {}).get(f"{reference}_gbs")
    fixed_us = prof.get("graph_node_kernel_us")
    if not ref_gbs or fixed_us is None:
        raise ProfileError(f"{hf_id}: the job measured no {reference} bandwidth or graph-node kernel time "
                           f"({speed.get('device_error')!r})")
    steps = prof[f"batch{batch}"].get("graph_steps", 8)
    context = int(speed[f"batch{batch}"]["input_len"]) + steps // 2 + 1
    step = step_bytes(spec, components(spec), context, batch, kv_bytes_per_token(spec), gdn_state_bytes_per_seq(spec))
    fams = fams_src["families"]
    by_names = prof[f"batch{batch}"].get("attribution") == "kernel names only"
    effs = {}
    for plan_fam, src in GROUPS.items():
        if by_names and plan_fam in ("moe", "dense"):  # one W8A16 kernel name serves both
            effs[plan_fam] = {"value": None, "status": "not measured: kernels attributed by name only, and the "
                                                       "W8A16 kernels serve MoE and dense under one name"}
            continue
        us = sum((fams.get(f) or {}).get("us", 0.0) for f in src)
        n = sum((fams.get(f) or {}).get("kernels", 0.0) for f in src)
        byts = step.by_family.get(plan_fam, 0.0)
        busy = us - n * fixed_us
        if us <= 0 or byts <= 0:
            effs[plan_fam] = {"value": None, "status": "not measured: no time or no bytes in the profile"}
            continue
        if busy < LAUNCH_BOUND * us:
            effs[plan_fam] = {"value": None, "status": f"not measured: launch-bound ({us:.1f} us, {n:g} kernels)"}
            continue
        effs[plan_fam] = {"value": round(byts / (ref_gbs * 1e3) / busy, 3), "status": "measured",
                          "detail": f"{byts / 1e6:.2f} MB / {ref_gbs} GB/s over {us:.1f} us of {'+'.join(src)} "
                                    f"kernels less {n:g} x {fixed_us} us"}
    timing = speed[f"batch{batch}"]
    bytes_ms = step.total / (ref_gbs * 1e6)
    busy_ms = fams_src["gpu_us_per_step"] / 1e3
    launches = fams_src["kernels_per_step"] + fams_src["copies_per_step"]
    return {
        "model": hf_id, "base_model": base, "layers": layers, "architecture": spec.architecture,
        "fp8": spec.quant is not None, "status": "measured", "job": job.get("name"),
        # which records the measured engine applied: plan says when a default-on one is missing
        "fixes_applied": sorted(job.get("fixes_applied") or []),
        "device": (job.get("versions") or {}).get("gpu"), "vllm_version": (job.get("versions") or {}).get("vllm"),
        "measured": {
            "batch": batch, "context": context, "pass": pass_name, "reference": reference,
            "reference_gbs": ref_gbs, "copy_gbs": speed["copy"].get("copy_gbs"), "read_gbs": speed["copy"].get("read_gbs"),
            "kernel_fixed_us": fixed_us, "graph_node_us": (speed.get("graph_node") or {}).get("us_per_node"),
            "decode": {k: {"tok_s": v["decode_tok_s"], "step_ms": v["decode_step_ms"]}
                       for k, v in speed.items() if k.startswith("batch")},
            "step_split": {"step_ms": timing["decode_step_ms"], "bytes_ms": round(bytes_ms, 4),
                           "rest_ms": round(timing["decode_step_ms"] - bytes_ms, 4),
                           "gpu_busy_ms": round(busy_ms, 4), "host_and_gaps_ms": round(timing["decode_step_ms"] - busy_ms, 4),
                           "bytes_gb": round(step.total / 1e9, 4)},
        },
        "bandwidth_efficiency": effs,
        "step_time": step_time(fams_src, spec, step, ref_gbs),
        "kernels_per_step": {"value": round(launches, 1), "kernels": fams_src["kernels_per_step"],
                             "copies": fams_src["copies_per_step"], "model": hf_id, "status": "measured"},
    }


def markdown(doc: dict) -> str:
    """The measured profiles as docs/engine.md tables: speed and step split per model (with the FP8 /
    BF16 batch-1 ratio issue 14 targets at >= 1.3), then per model its families and kernel check."""
    profs = doc.get("profiles") or {}
    out = ["| model | device | batch 1 tok/s | batch 8 tok/s | step ms (b1) | bytes ms at read rate | rest ms | "
           "GPU busy ms | launches/step |", "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for name, p in profs.items():
        m, k = p["measured"], p["kernels_per_step"]
        sp = m["step_split"]
        out.append(f"| {name} | {p['device']} | {m['decode'].get('batch1', {}).get('tok_s')} | "
                   f"{m['decode'].get('batch8', {}).get('tok_s')} | {sp['step_ms']:.3f} | {sp['bytes_ms']:.3f} | "
                   f"{sp['rest_ms']:.3f} | {sp['gpu_busy_ms']:.3f} | {k['value']} |")
    for fp8_name, p in profs.items():
        bf16 = next((q for q in profs.values() if not q["fp8"] and q.get("architecture") == p.get("architecture")
                     and q.get("layers") == p.get("layers") and p["fp8"]), None)
        if bf16:
            r = p["measured"]["decode"]["batch1"]["tok_s"] / bf16["measured"]["decode"]["batch1"]["tok_s"]
            out.append(f"\nFP8 / BF16 batch-1 decode, {fp8_name} / {bf16['model']}: {r:.2f}x (issue 14 target >= 1.3x)")
    for name, p in profs.items():
        out += ["", f"{name}: efficiency per plan family ({p['measured']['pass']} pass, reference "
                    f"{p['measured']['reference']} {p['measured']['reference_gbs']} GB/s, one-element kernel "
                    f"{p['measured']['kernel_fixed_us']} us)", "", "| family | efficiency | how |", "|---|--:|---|"]
        for fam, e in p["bandwidth_efficiency"].items():
            out.append(f"| {fam} | {e['value'] if e['value'] is not None else '-'} | {e.get('detail') or e['status']} |")
        if p.get("kernel_check"):
            out += ["", "| explain row (gfx1151) | explain's kernel | kernels in the profile | verdict |", "|---|---|---|---|"]
            for c in p["kernel_check"]:
                out.append(f"| {c['explain_row']} | {c['explain_kernel'][:70]} | "
                           f"{', '.join((c['found'] + c['unexpected'])[:4]) or '-'} | {c['verdict'][:90]} |")
    return "\n".join(out) + "\n"


def _jobs(summary: dict, names) -> dict:
    jobs = {n: dict(j, name=n) for n, j in summary.get("jobs", {}).items() if str(j.get("model", "")).startswith("dummy:")}
    if not names:
        # a job with its own switches (device_run's A/B variants, e.g. fused-shared-expert off) measured
        # something other than the product's defaults, under the same model key: only when named
        jobs = {n: j for n, j in jobs.items() if not j.get("env")}
    else:
        missing = set(names) - set(jobs)
        if missing:
            raise ProfileError(f"no speed job {sorted(missing)} in the summary (it has {sorted(jobs)})")
        jobs = {n: jobs[n] for n in names}
    if not jobs:
        raise ProfileError("the summary holds no speed job: pass device_run.py speed's summary.json")
    return jobs


def _explain(hf_id: str, given: dict) -> dict | None:
    if hf_id in given:
        return given[hf_id]
    from rocm_enable import explain
    return explain.explain(hf_id, "gfx1151")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("summary", help="device_run.py speed's summary.json")
    ap.add_argument("--job", action="append", help="speed job(s) to use (default: every speed job with a result "
                                                   "that ran with the product's defaults, i.e. no job env)")
    ap.add_argument("--batch", type=int, default=1, help="the profiled batch the efficiencies come from")
    ap.add_argument("--reference", choices=("read", "copy"), default="read",
                    help="the measured bandwidth efficiencies are relative to (default read, as gfx1151's 212 GB/s)")
    ap.add_argument("--explain-json", action="append", default=[],
                    help="`rocm-enable explain --model M --arch gfx1151 --json` output (else explain runs here)")
    ap.add_argument("--no-explain", action="store_true", help="skip the kernel check")
    ap.add_argument("--command", required=True, help="the device command that produced the summary")
    ap.add_argument("--date", required=True)
    ap.add_argument("--write", action="store_true", help="write rocm_enable/models/engine_profile.json")
    ap.add_argument("--markdown", help="also write the profiles as docs tables to this file")
    args = ap.parse_args(argv)
    try:
        with open(args.summary) as f:
            summary = json.load(f)
        given = {}
        for path in args.explain_json:
            with open(path) as f:
                data = json.load(f)
            given[data["model"]] = data
        path = resources.files("rocm_enable.models").joinpath("engine_profile.json")
        doc = json.loads(path.read_text())
        failed, written = [], 0
        for name, job in _jobs(summary, args.job).items():
            try:
                entry = profile_entry(job, args.batch, args.reference)
            except ProfileError as exc:
                if args.job:
                    raise
                failed.append(str(exc))
                continue
            entry.update(command=args.command, date=args.date, source="docs/engine.md")
            if not args.no_explain:
                fams = _pass(job["speed"]["profile"][f"batch{args.batch}"])[0]["families"]
                entry["kernel_check"] = kernel_check(_explain(entry["base_model"], given), fams)
            doc.setdefault("profiles", {})[entry["model"]] = entry
            written += 1
        if not written:  # this summary gave none (profiles already in the file do not count)
            raise ProfileError("no speed job gave a profile: " + "; ".join(failed))
    except (OSError, KeyError, ProfileError) as exc:
        print(f"engine_profile_to_plan: {exc}", file=sys.stderr)
        return 2
    doc["status"] = "measured"
    doc.setdefault("_entry", {})["step_time"] = (
        "per family (plan families, plus copy/other/runner/sampling without weight bytes): GPU time us, launches, "
        "bytes, fixed_us (time - bytes at the reference rate) and the per-step part of launches and time; layers: "
        "the profiled model's layer counts by kind (plan's bytes + fixed-time projection scales the per-layer part)")
    for msg in failed:
        print(f"engine_profile_to_plan: skipped: {msg}", file=sys.stderr)
    text = json.dumps(doc, indent=2) + "\n"
    if args.write:
        with open(str(path), "w") as f:
            f.write(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(doc))
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
