#!/usr/bin/env python3
"""What-if PROJECTION: `rocm-enable plan`'s (b) with named kernels taken out of an engine profile.

Before a fusion is measured in the engine, this answers "what would plan print if these kernels
were gone": each removed kernel's launches and its whole H100 time (its bytes time included, which
is ~0 for the elementwise / gate kernels this is for) leave the profile's family, and
`--remove-launches` takes N launches of a kernel name at that family's mean non-bytes time per
launch (for GEMVs whose bytes are still read by another kernel: only their fixed time goes).
Step bytes are the model's, unchanged. The profile is built from the same summary job the kernels
are named from (scripts/engine_profile_to_plan.py's entry), so the two always describe one run,
whatever engine_profile.json holds now. The output is labelled WHAT-IF PROJECTION; nothing here is
a measurement.

  .venv/bin/python scripts/plan_what_if.py --model Qwen/Qwen3.6-35B-A3B-FP8 \\
      --summary docs/engine-runs/run8-speed-routing/summary.json --job speed.qwen36-35b-fp8.l20 \\
      --remove router:dot_kernel router:reduce_1Block_kernel moe:sigmoid_kernel_cuda \\
               moe:BinaryFunctor moe:triton_poi_fused_mul_silu_slice \\
      --remove-launches dense:w8a16_gemv_kernel:40
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import engine_profile_to_plan  # noqa: E402  (beside this script: sys.path[0] run as a script)
from rocm_enable import plan  # noqa: E402

# speed_profile.py's family names -> engine_profile.json's
PROFILE_FAMILY = {"router": "router_bf16", "lm_head": "lm_head_bf16", "norm": "norms"}


def _graph_pass(summary: dict, job: str) -> dict:
    try:
        return summary["jobs"][job]["speed"]["profile"]["batch1"]["graph"]
    except KeyError as e:
        raise SystemExit(f"{job}: no batch-1 graph profile in the summary ({e}); give a speed job's name") from None


def profile_of(summary: dict, job: str) -> dict:
    """The engine_profile.json entry engine_profile_to_plan.py makes from this job (batch 1, read rate)."""
    try:
        return engine_profile_to_plan.profile_entry(summary["jobs"][job], 1, "read")
    except (KeyError, engine_profile_to_plan.ProfileError) as e:
        raise SystemExit(f"{job}: no engine profile from this summary ({e})") from None


def _matches(graph: dict, family: str, substring: str) -> list[tuple[str, float, float]]:
    """(name, launches in this family, their us) for kernel names of `family` containing `substring`;
    a name's time is split over families by its launches there."""
    fam = graph["families"].get(family)
    if fam is None:
        raise SystemExit(f"family {family!r} not in the profile (have: {', '.join(graph['families'])})")
    out = []
    for name, n in fam["names"].items():
        if substring in name:
            total_n, total_us = graph["names"][name]
            out.append((name, n, total_us * n / total_n))
    if not out:
        raise SystemExit(f"no kernel of family {family!r} contains {substring!r}")
    return out


def what_if(profile: dict, graph: dict, remove: list[str], remove_launches: list[str]) -> tuple[dict, list]:
    prof = copy.deepcopy(profile)
    fams = prof["step_time"]["families"]
    rows, removed = [], 0.0
    for spec in remove:
        family, _, sub = spec.partition(":")
        key = PROFILE_FAMILY.get(family, family)
        for name, n, us in _matches(graph, family, sub):
            f = fams[key]
            f["launches"] -= n
            f["us"] -= us
            f["fixed_us"] -= us
            removed += n
            rows.append((key, name, n, us))
    for spec in remove_launches:
        family, sub, count = spec.rsplit(":", 2)
        key = PROFILE_FAMILY.get(family, family)
        (name, n, _), = _matches(graph, family, sub)[:1]
        count = float(count)
        if count > n:
            raise SystemExit(f"{spec}: the profile has only {n:g} launches of {name}")
        f = fams[key]
        us = f["fixed_us"] / f["launches"] * count
        f["launches"] -= count
        f["us"] -= us
        f["fixed_us"] -= us
        removed += count
        rows.append((key, f"{name} (fixed time only)", count, us))
    prof["kernels_per_step"]["value"] -= removed
    prof["status"] = "measured"  # select_profile only offers measured profiles; the output says what-if
    return prof, rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, action="append", help="bundled HF id (repeatable)")
    ap.add_argument("--summary", required=True, help="a device run's summary.json (device_run.py speed)")
    ap.add_argument("--job", required=True)
    ap.add_argument("--remove", nargs="*", default=[], metavar="FAMILY:NAME_SUBSTRING")
    ap.add_argument("--remove-launches", nargs="*", default=[], metavar="FAMILY:NAME_SUBSTRING:N")
    ap.add_argument("--arch", default="gfx1151")
    ap.add_argument("--context", type=int, default=4096)
    a = ap.parse_args(argv)

    with open(a.summary) as fh:
        summary = json.load(fh)
    graph = _graph_pass(summary, a.job)
    measured = profile_of(summary, a.job)
    key = measured["model"]
    prof, rows = what_if(measured, graph, a.remove, a.remove_launches)
    print(f"WHAT-IF PROJECTION (not a measurement): {key} ({a.job} of {a.summary}) with these kernels "
          "removed per profiled step")
    for fam, name, n, us in rows:
        print(f"  {fam:<12} {n:>6g} launches {us:>8.1f} us  {name[:90]}")
    print(f"  kernels per profiled step: {measured['kernels_per_step']['value']:g} -> "
          f"{prof['kernels_per_step']['value']:g}")
    base = {"profiles": {key: measured}}
    what = {"profiles": {key: prof}}
    print(f"\n{'model':<28} {'head':<5} {'launches':>17} {'(b) tok/s, 165-197 GB/s':>30}")
    for model in a.model:
        res = [plan.plan(model, a.arch, None, a.context, 1, engine_profiles=d) for d in (base, what)]
        for head in ("bf16", "fp8"):
            b = [r["projection"] if head == "bf16" else r["projection"]["fp8_lm_head"] for r in res]
            fb = [x["fixed_time"] for x in b]
            print(f"{model:<28} {head:<5} {fb[0]['launches']:>7} -> {fb[1]['launches']:>6} "
                  f"{fb[0]['tok_s'][0]:>8.1f}-{fb[0]['tok_s'][1]:<5.1f} -> {fb[1]['tok_s'][0]:.1f}-{fb[1]['tok_s'][1]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
