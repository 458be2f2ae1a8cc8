"""`rocm-enable tune`: measure the W8A16 launch configs on the user's own GPU.

The shipped configs for RDNA/CDNA were chosen from AOT ISA analysis (no AMD GPU was available
to time them). This measures a small candidate set per M point for one model's MoE (and
optionally dense) shapes on the GPU in this process and writes a complete family file to
``config.tuned_path(family)``, which ``config.load_family`` then prefers over the shipped file.

Method: random FP8 weights at the model's shapes (one copy; every timed call uses a fresh
routing set, so the touched experts are rarely L2-resident, as in a real decode step), bf16
activations, ``reps`` launches captured in one CUDA/HIP graph, median over graph replays. Every candidate's output is
checked against the shipped config's output first; a candidate that fails to compile, fails to
launch or computes something else is dropped and reported.
"""
from __future__ import annotations

import datetime
import json
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from rocm_enable.ops import config as cfgmod

MS_DEFAULT = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
MS_QUICK = (1, 4, 16, 64, 256, 2048)
MATCH_TOL = 2e-2  # relative to the shipped config's output: both round to bf16 differently


class TuneError(RuntimeError):
    """Tuning cannot run here (no GPU, unknown family, nothing valid measured)."""


@dataclass(frozen=True)
class MoeShape:
    experts: int
    top_k: int
    hidden: int
    intermediate: int  # per tensor-parallel shard

    def __str__(self):
        return (f"E={self.experts} top-k={self.top_k} hidden={self.hidden} "
                f"intermediate={self.intermediate} per shard")


# config.json keys of the MoE shape, as the common MoE families spell them (Qwen-MoE / Qwen3-Next,
# DeepSeek-V2/V3, Mixtral, OLMoE, GPT-OSS, ...). Mixtral-style configs have no moe_intermediate_size:
# their intermediate_size is the expert's.
EXPERT_KEYS = ("num_experts", "n_routed_experts", "num_local_experts", "moe_num_experts")
TOPK_KEYS = ("num_experts_per_tok", "moe_top_k", "num_experts_per_token", "top_k")
EXPERT_INTERMEDIATE_KEYS = ("moe_intermediate_size", "expert_intermediate_size", "intermediate_size")


def _first(cfg: dict, keys) -> int:
    return next((int(cfg[k]) for k in keys if cfg.get(k)), 0)


def shapes_from_config(raw: dict, tp: int, where: str) -> tuple[MoeShape | None, tuple[int, int] | None]:
    """(MoE expert shape per tensor-parallel shard, or None for a dense model; the dense gate_up
    projection [2 * intermediate / tp, hidden] for a dense model, else None) from a HF
    config.json dict (its text_config for multimodal checkpoints)."""
    text = raw.get("text_config") or raw
    hidden = _first(text, ("hidden_size",))
    if not hidden:
        raise TuneError(f"{where}: config has no hidden_size")
    experts = _first(text, EXPERT_KEYS)
    inter = _first(text, EXPERT_INTERMEDIATE_KEYS if experts else ("intermediate_size",))
    if not inter:
        raise TuneError(f"{where}: config has none of {EXPERT_INTERMEDIATE_KEYS if experts else 'intermediate_size'}")
    if inter % tp:
        raise TuneError(f"{where}: intermediate size {inter} is not divisible by --tensor-parallel-size {tp}")
    if not experts:
        return None, (2 * inter // tp, hidden)
    top_k = _first(text, TOPK_KEYS)
    if not top_k:
        raise TuneError(f"{where}: a MoE config ({experts} experts) without any of {TOPK_KEYS}")
    return MoeShape(experts, top_k, hidden, inter // tp), None


def hub_cached_config(model_id: str) -> str | None:
    """config.json of a Hugging Face model id already in the local hub cache (where `vllm serve` /
    huggingface_hub put downloads: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub),
    the snapshot refs/main names if present, else the newest; None when not cached. Nothing is
    downloaded."""
    if model_id.count("/") != 1 or os.path.exists(model_id):
        return None
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub")
    repo = os.path.join(hub, "models--" + model_id.replace("/", "--"))
    snapshots = os.path.join(repo, "snapshots")
    if not os.path.isdir(snapshots):
        return None
    ref = os.path.join(repo, "refs", "main")
    names = [open(ref).read().strip()] if os.path.isfile(ref) else []
    names += sorted(os.listdir(snapshots), key=lambda n: os.path.getmtime(os.path.join(snapshots, n)),
                    reverse=True)
    for name in names:
        path = os.path.join(snapshots, name, "config.json")
        if os.path.isfile(path):
            return path
    return None


def parse_moe_shape(text: str) -> MoeShape:
    """'E,TOPK,HIDDEN,INTERMEDIATE' (intermediate per tensor-parallel shard)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or min(values) <= 0:
        raise TuneError(f"--moe-shape {text!r}: expected four positive integers "
                        "EXPERTS,TOP_K,HIDDEN,INTERMEDIATE_PER_SHARD, e.g. 128,8,2048,768")
    if values[1] > values[0]:
        raise TuneError(f"--moe-shape {text!r}: top-k {values[1]} exceeds the {values[0]} experts")
    return MoeShape(*values)


def _gemm(bn, bk, w, s, kernel="tile"):
    cfg = {"BLOCK_N": bn, "BLOCK_K": bk, "num_warps": w, "num_stages": s}
    if kernel == "gemv":
        cfg = {"kernel": "gemv", **cfg}
    return cfg


def gemm_candidates(kind: str, naive: bool, quick: bool) -> list[dict]:
    """GEMM configs to try for one bucket: the GEMV only where routing is one pair per block
    (the launcher runs the tile kernel otherwise)."""
    tile = [_gemm(32, 64, 4, 2), _gemm(32, 128, 4, 2), _gemm(64, 128, 4, 3), _gemm(64, 64, 4, 2),
            _gemm(128, 64, 8, 2), _gemm(128, 128, 4, 3)]
    gemv = [_gemm(8, 512, 4, 2, "gemv"), _gemm(16, 512, 4, 2, "gemv"), _gemm(32, 256, 4, 2, "gemv"),
            _gemm(16, 256, 2, 2, "gemv")]
    if kind == "dense":
        gemv = [_gemm(8, 1024, 4, 2, "gemv"), _gemm(16, 512, 4, 2, "gemv"), _gemm(16, 1024, 4, 2, "gemv")]
    if quick:
        tile, gemv = tile[1:3], gemv[:2]
    return (gemv if naive else []) + tile


def block_m_options(naive: bool, m: int) -> list[tuple[int, bool]]:
    """(BLOCK_M, fuse_silu) pairs for a MoE bucket."""
    if naive:
        return [(16, True)]
    opts = [(16, True), (16, False), (32, False)]
    return opts + ([(64, False)] if m >= 256 else [])


def gpu_timer(reps: int = 16, repeats: int = 10) -> Callable:
    """Median microseconds per call of ``run(i)`` (i = call index, selects the routing set).

    The ``reps`` calls are captured once in a CUDA/HIP graph and the graph is replayed: decode
    launches take a few microseconds on the GPU, less than Python takes to issue them, so timing
    eager launches would measure the host. If capture fails, eager launches are timed instead."""
    import torch

    def timer(run: Callable[[int], None], label: dict) -> float:
        for i in range(reps):  # compile, build routing, warm caches
            run(i)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            stream = torch.cuda.Stream()
            with torch.cuda.stream(stream):
                with torch.cuda.graph(graph, stream=stream):
                    for i in range(reps):
                        run(i)
            replay = graph.replay
        except Exception:  # noqa: BLE001 - a launch that cannot be captured is timed eagerly
            def replay():
                for i in range(reps):
                    run(i)
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e3 / reps)
        return statistics.median(times)

    return timer


def _rel(a, b) -> float:
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _best(trials: list, report: list, label: dict):
    """(config, us) of the fastest valid trial; every trial is recorded in ``report``."""
    best = None
    for cfg, us, err in trials:
        report.append({**label, "cfg": cfg, "us": us, "error": err})
        if err is None and (best is None or us < best[1]):
            best = (cfg, us)
    return best


def tune_moe(shape: MoeShape, family: str, ms, timer, device, quick=False, report=None, seed=0):
    """MoE buckets (config-file format) measured at each M in ``ms``."""
    import torch

    from rocm_enable.ops.fp8_dequant import fold_fp8_scale_for_fp16_bits
    from rocm_enable.ops.moe_align import moe_align
    from rocm_enable.ops.moe_w8a16 import launch_w8a16_gemm, silu_and_mul

    report = report if report is not None else []
    g = torch.Generator(device="cpu").manual_seed(seed)
    E, top_k, H, I = shape.experts, shape.top_k, shape.hidden, shape.intermediate
    w13 = torch.randint(0, 256, (E, 2 * I, H), generator=g, dtype=torch.uint8)
    w2 = torch.randint(0, 256, (E, H, I), generator=g, dtype=torch.uint8)
    for w in (w13, w2):  # finite e4m3 codes only (0x7F / 0xFF are NaN)
        w[(w & 0x7F) == 0x7F] -= 1
    w13, w2 = (w.to(device).view(torch.float8_e4m3fn) for w in (w13, w2))
    s13 = fold_fp8_scale_for_fp16_bits(torch.rand(E, -(-2 * I // 128), -(-H // 128), generator=g) * 1e-3 + 1e-4).to(device)
    s2 = fold_fp8_scale_for_fp16_bits(torch.rand(E, -(-H // 128), -(-I // 128), generator=g) * 1e-3 + 1e-4).to(device)
    shipped = cfgmod.load_shipped(family)
    sparsity = cfgmod.naive_sparsity(family)
    buckets = []
    for m in sorted(set(ms)):
        naive = m * top_k * sparsity <= E
        sets = []
        for _ in range(8):
            ids = torch.stack([torch.randperm(E, generator=g)[:top_k] for _ in range(m)]).to(device)
            x = (torch.randn(m, H, generator=g) * 0.5).to(torch.bfloat16).to(device)
            a2 = (torch.randn(m * top_k, I, generator=g) * 0.5).to(torch.bfloat16).to(device)
            tw = torch.rand(m * top_k, generator=g).to(device)
            sets.append(dict(ids=ids, x=x, a2=a2, tw=tw, routes={}))
        ref_bucket = cfgmod._bucket(shipped["moe"], cfgmod.moe_bucket_m(shipped, m, E, top_k))

        def route(s, bm):
            if bm not in s["routes"]:
                s["routes"][bm] = moe_align(s["ids"], bm, E, naive=naive and bm == 16)
            return s["routes"][bm]

        def w13_call(s, cfg, bm, fuse):
            out = torch.empty(m * top_k, I if fuse else 2 * I, dtype=torch.bfloat16, device=device)
            launch_w8a16_gemm(s["x"], w13, s13, out, routing=route(s, bm), top_k=top_k, block_shape=[128, 128],
                              gemm_cfg=cfg, block_m=bm, fuse_silu=fuse)
            return out if fuse else silu_and_mul(out)

        def w2_call(s, cfg, bm):
            out = torch.empty(m * top_k, H, dtype=torch.bfloat16, device=device)
            launch_w8a16_gemm(s["a2"], w2, s2, out, routing=route(s, bm), top_k=1, block_shape=[128, 128],
                              gemm_cfg=cfg, block_m=bm, topk_weights=s["tw"])
            return out

        ref13 = w13_call(sets[0], ref_bucket["w13"], ref_bucket["BLOCK_M"], ref_bucket["fuse_silu"])
        ref2 = w2_call(sets[0], ref_bucket["w2"], ref_bucket["BLOCK_M"])
        options = []
        for bm, fuse in block_m_options(naive, m):
            per_gemm = {}
            for gemm, call, ref in (("w13", lambda s, c: w13_call(s, c, bm, fuse), ref13),
                                    ("w2", lambda s, c: w2_call(s, c, bm), ref2)):
                trials = []
                label = {"M": m, "gemm": gemm, "BLOCK_M": bm, "fuse_silu": fuse}
                for cfg in gemm_candidates("moe", naive and bm == 16, quick):
                    try:
                        err = _rel(call(sets[0], cfg), ref)
                        if not err < MATCH_TOL:
                            raise TuneError(f"output differs from the shipped config's by {err:.2e}")
                        us = timer(lambda i, cfg=cfg: call(sets[i % len(sets)], cfg), {**label, "cfg": cfg})
                        trials.append((cfg, us, None))
                    except Exception as e:  # noqa: BLE001 - a candidate may not compile/launch here
                        trials.append((cfg, None, f"{type(e).__name__}: {str(e)[:160]}"))
                per_gemm[gemm] = _best(trials, report, label)
            if per_gemm["w13"] and per_gemm["w2"]:
                total = per_gemm["w13"][1] + per_gemm["w2"][1]
                options.append((total, {"BLOCK_M": bm, "fuse_silu": fuse,
                                        "w13": per_gemm["w13"][0], "w2": per_gemm["w2"][0],
                                        "_us": {"w13": round(per_gemm["w13"][1], 2), "w2": round(per_gemm["w2"][1], 2)}}))
        if not options:
            raise TuneError(f"no MoE candidate ran correctly at M={m}; see the report")
        buckets.append({"max_m": m, **min(options, key=lambda o: o[0])[1]})
    buckets[-1]["max_m"] = None
    return buckets


def tune_dense(n: int, k: int, family: str, ms, timer, device, quick=False, report=None, seed=1):
    """Dense buckets (config-file format) measured at each M in ``ms`` for weight [n, k]."""
    import torch

    from rocm_enable.ops.fp8_dequant import fold_fp8_scale_for_fp16_bits
    from rocm_enable.ops.moe_w8a16 import launch_w8a16_gemm

    report = report if report is not None else []
    g = torch.Generator(device="cpu").manual_seed(seed)
    w = torch.randint(0, 256, (1, n, k), generator=g, dtype=torch.uint8)
    w[(w & 0x7F) == 0x7F] -= 1
    w = w.to(device).view(torch.float8_e4m3fn)
    s = fold_fp8_scale_for_fp16_bits(torch.rand(-(-n // 128), -(-k // 128), generator=g) * 1e-3 + 1e-4).to(device)
    shipped = cfgmod.load_shipped(family)
    buckets = []
    for m in sorted(set(ms)):
        xs = [(torch.randn(m, k, generator=g) * 0.5).to(torch.bfloat16).to(device) for _ in range(4)]

        def call(x, cfg):
            cfg = dict(cfg)
            bm = cfg.pop("BLOCK_M")
            cfg.pop("max_m", None)
            out = torch.empty(m, n, dtype=torch.bfloat16, device=device)
            launch_w8a16_gemm(x, w, s, out, routing=None, top_k=1, block_shape=[128, 128], gemm_cfg=cfg,
                              block_m=bm)
            return out

        ref = call(xs[0], cfgmod._bucket(shipped["dense"], m))
        naive = m <= 4  # one row per program is only worth trying for a few rows
        bms = [16] if m <= 16 else [32, 64] if m <= 256 else [64, 128]
        trials = []
        label = {"M": m, "gemm": "dense"}
        for bm in bms:
            for c in gemm_candidates("dense", naive and bm == 16, quick):
                cfg = {"BLOCK_M": bm, **c}
                if c.get("kernel") != "gemv" and m <= 128:
                    cfg["split_k_programs"] = 256  # decode: enough programs for a tall K
                if m > 128:
                    cfg["GROUP_M"] = 8
                try:
                    err = _rel(call(xs[0], cfg), ref)
                    if not err < MATCH_TOL:
                        raise TuneError(f"output differs from the shipped config's by {err:.2e}")
                    us = timer(lambda i, cfg=cfg: call(xs[i % len(xs)], cfg), {**label, "cfg": cfg})
                    trials.append((cfg, us, None))
                except Exception as e:  # noqa: BLE001
                    trials.append((cfg, None, f"{type(e).__name__}: {str(e)[:160]}"))
        best = _best(trials, report, label)
        if best is None:
            raise TuneError(f"no dense candidate ran correctly at M={m}; see the report")
        buckets.append({"max_m": m, **best[0], "_us": round(best[1], 2)})
    buckets[-1]["max_m"] = None
    return buckets


def tune_family(family: str, moe: MoeShape | None, dense: tuple[int, int] | None, ms, *, timer=None,
                device="cuda", quick=False, source: str = "") -> tuple[dict, list]:
    """A complete, validated family config (MoE and/or dense measured; the rest shipped) and the
    per-candidate report."""
    if family not in cfgmod.ARCH_FAMILIES:
        raise TuneError(f"unknown family {family!r}; expected one of {cfgmod.ARCH_FAMILIES}")
    timer = timer or gpu_timer()
    report: list = []
    # what is not measured now stays as it is: an earlier tune's buckets (of the other kind), or shipped
    base = cfgmod.load_family(family)
    retuned = [kind for kind, asked in (("moe", moe), ("dense", dense)) if asked]
    runs = [r for r in base.get("_tuned", {}).get("runs", []) if r["kind"] not in retuned]
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    runs += [{"kind": kind, "source": source, "device": _device_name(device), "date": when,
              "ms": sorted(set(ms))} for kind in retuned]
    out = {"_why": "measured by `rocm-enable tune` on this machine; per-kind provenance in _tuned.runs, "
                   "every candidate and its time in _tuned.report; other MoE shapes map onto the measured "
                   "one by config.moe_bucket_m",
           "naive_sparsity": base.get("naive_sparsity", 4),
           "moe_reference": ({"experts": moe.experts, "top_k": moe.top_k} if moe
                             else cfgmod.moe_reference(base)),
           "moe": tune_moe(moe, family, ms, timer, device, quick, report) if moe else base["moe"],
           "dense": tune_dense(*dense, family, ms, timer, device, quick, report) if dense else base["dense"]}
    out["_tuned"] = {"family": family, "runs": runs, "report": report}
    return cfgmod.validate_family(out, "tuned config"), report


def _device_name(device) -> str:
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return f"{props.name} ({getattr(props, 'gcnArchName', '') or 'CUDA'})"
    return str(device)


def write_tuned(family: str, data: dict) -> str:
    path = cfgmod.tuned_path(family)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)  # atomic: a concurrent `vllm serve` never reads half a file
    cfgmod.load_family.cache_clear()
    return path
