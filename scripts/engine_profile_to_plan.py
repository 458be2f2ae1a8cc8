"""Turn an engine-harness speed result (scripts/engine/engine_job.py --speed, its per-step kernel
profile by family) into rocm_enable/models/engine_profile.json, the measured input of
`rocm-enable plan`'s decode projection.

    .venv/bin/python scripts/engine_profile_to_plan.py RESULT.json --model Qwen/Qwen3.6-35B-A3B-FP8 \
        --copy-gbs 3005 --launch-us 1.08 --command "..." --date 2026-12-06 [--write]

For each plan family: efficiency = (its bytes in one decode step / copy bandwidth) /
(the profile's GPU time for its kernels - their count x the device's per-kernel graph cost), so
the projection can add gfx1151's own launch cost without counting the measuring device's twice.
Bytes come from the plan's accounting of the same model at the profile's context (input length +
the profiled steps) and batch. The profile's families map onto the plan's: moe -> moe,
dense -> dense + router_bf16 + lm_head_bf16 (one GEMM family there), attention -> attention,
gdn + conv -> gdn. Norms, rope, sampling and 'other' move no weight bytes: they stay unmeasured
(the plan counts their kernels as launches).
"""
from __future__ import annotations

import argparse
import json
import sys
from importlib import resources

from rocm_enable.models import load_model
from rocm_enable.plan import components, gdn_state_bytes_per_seq, kv_bytes_per_token, step_bytes

PROFILED_STEPS = 17  # engine_job.speed profiles 17-token generations
# (plan families, profile families measured together)
GROUPS = [(("moe",), ("moe",)), (("dense", "router_bf16", "lm_head_bf16"), ("dense",)),
          (("attention",), ("attention",)), (("gdn",), ("gdn", "conv"))]


def efficiencies(result: dict, model: str, batch: int, copy_gbs: float, launch_us: float) -> tuple[dict, int]:
    prof = result["speed"][f"batch{batch}"]["profile"]
    fams = prof["families"]
    spec = load_model(model)
    context = int(result["args"]["input_len"]) + PROFILED_STEPS // 2
    step = step_bytes(spec, components(spec), context, batch, kv_bytes_per_token(spec), gdn_state_bytes_per_seq(spec))
    out = {}
    for plan_fams, src_fams in GROUPS:
        us = sum(fams.get(f, {}).get("us", 0.0) for f in src_fams)
        kernels = sum(fams.get(f, {}).get("kernels", 0.0) for f in src_fams)
        busy = us - kernels * launch_us
        byts = sum(step.by_family.get(f, 0.0) for f in plan_fams)
        if us <= 0 or byts <= 0:
            continue
        if busy < 0.1 * us:  # launch-bound there: its bytes say nothing about bandwidth
            print(f"{'/'.join(src_fams)}: {us:.1f} us is mostly launches ({kernels:g} kernels); left unmeasured",
                  file=sys.stderr)
            continue
        eff = round(byts / (copy_gbs * 1e3) / busy, 3)  # bytes / (GB/s * 1e3) = microseconds
        for f in plan_fams:
            out[f] = {"value": eff, "status": "measured",
                      "detail": f"{byts / 1e6:.1f} MB over {us:.1f} us of {', '.join(src_fams)} kernels "
                                f"({kernels:g} x {launch_us} us launch cost taken out), copy {copy_gbs} GB/s"}
    return out, round(prof["kernels_per_step"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("result", help="engine_job.py --speed output JSON")
    ap.add_argument("--model", required=True, help="bundled Hugging Face id of the profiled model")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--copy-gbs", type=float, required=True, help="the device's measured copy bandwidth")
    ap.add_argument("--launch-us", type=float, required=True, help="the device's measured per-kernel graph cost")
    ap.add_argument("--command", required=True, help="the device command that produced RESULT")
    ap.add_argument("--date", required=True)
    ap.add_argument("--write", action="store_true", help="write rocm_enable/models/engine_profile.json")
    args = ap.parse_args(argv)
    with open(args.result) as f:
        result = json.load(f)
    if not result.get("ok") or "speed" not in result:
        print(f"{args.result}: not a successful --speed result", file=sys.stderr)
        return 2
    effs, kernels = efficiencies(result, args.model, args.batch, args.copy_gbs, args.launch_us)
    path = resources.files("rocm_enable.models").joinpath("engine_profile.json")
    profile = json.loads(path.read_text())
    profile.update(status="measured", device=result["versions"]["gpu"], vllm_version=result["versions"]["vllm"],
                   command=args.command, date=args.date, source="docs/engine.md")
    for fam, entry in effs.items():
        profile["bandwidth_efficiency"][fam] = entry
    profile["kernels_per_step"] = {**profile["kernels_per_step"], "value": kernels, "model": args.model,
                                   "status": "measured"}
    text = json.dumps(profile, indent=2) + "\n"
    if args.write:
        with open(str(path), "w") as f:
            f.write(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
