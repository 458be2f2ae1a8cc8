#!/usr/bin/env python
"""Derive vLLM fused-MoE tuned configs for Strix Halo (gfx1151) without AMD hardware.

    .venv/bin/python scripts/derive_vllm_moe_configs.py [--jobs 2] [--out DIR]

Writes one vLLM config file per target shape and dtype into rocm_enable/stacks/vllm/moe_configs/
(found at run time by the fix `moe-config-board-names`) and that folder's README.md. Targets: the
MoE layers of the bundled Qwen3-Next-80B-A3B (E=512, top-10) and Qwen3.6-35B-A3B (E=256, top-8)
configs (hidden 2048, moe_intermediate 512) at TP=1 (N=512) and TP=2 (N=256), for the two vLLM
Triton kernels that still run on gfx1151: fused_moe_kernel (bf16 checkpoints, file name without
dtype) and fused_moe_kernel_gptq_awq (dtype=int4_w4a16). Nothing here is a measurement.

Rule (also written into the README):
 1. int4_w4a16 seed. The one measured data point for this board is vLLM's own
    E=128,N=768,device_name=Radeon_8060S_Graphics,dtype=int4_w4a16.json (Qwen3-30B-A3B: 128
    experts, top-8, tuned on a Strix Halo). Tokens per expert t = M*top_k/E sets the useful
    BLOCK_SIZE_M (the kernel pads every expert's tokens to a multiple of it), so a target batch M
    takes the seed entry whose t is nearest in log2 (the smallest seed entry for t below the
    seed's range), copied verbatim (SPLIT_K and waves_per_eu included). Above the seed's largest
    t there is no measurement: those M use step 3 on the int4 kernel, among BLOCK_SIZE_M >= the
    seed's at its largest t (more tokens per expert never make a smaller M tile useful, and step 3
    alone misjudges the measured entries: see "The static rule against the one measurement").
 2. AOT check. Every chosen entry is compiled (vLLM's kernel, read from the installed vLLM) for
    GPUTarget("hip", "gfx1151", 32) for every launch vLLM can make with it (w13 and w2; bf16:
    sorted and, where the batch takes it, naive block assignment; int4: with and without zero
    points). An entry with a VGPR/SGPR spill, scratch, LDS over 64 KiB or no WMMA is replaced by
    the best static candidate (step 3) with the same BLOCK_SIZE_M, or the best overall if none.
 3. Static choice (bf16 everywhere; int4 above the seed's range). Candidates: BLOCK_SIZE_M x
    BLOCK_SIZE_N x num_warps with 512..2048 accumulator elements per wave (at least two 16x16
    WMMA tiles, at most 64 fp32 accumulator VGPRs), BLOCK_SIZE_K from a short list, num_stages 2
    (vLLM's ROCm default); see GRIDS. Eligible: no spill, no scratch, LDS <= 64 KiB, >= 2
    waves/SIMD, in every launch (int4: scored on the zero-point build; where the naive path runs,
    only BLOCK_SIZE_M <= 32, as each block holds one token). Among those, the least estimated
    issue time for w13 + w2 at that M:
        programs = M-blocks * ceil(N / BLOCK_SIZE_N),  M-blocks = sum over experts of
                   E[ceil(X_e / BLOCK_SIZE_M)], X_e ~ Binomial(M, top_k/E) (vLLM pads each expert
                   to BLOCK_SIZE_M; the naive path is one block per (token, expert) pair)
        wave instructions = static code outside the K loop + K-loop trips * K-loop instructions
                   (trips from the WMMAs a wave owes: ceil(K/BK) * BM*BN*BK / 16^3 / num_warps)
        time ~ programs * num_warps * wave instructions / min(programs * num_warps, SIMDs)
    i.e. K-loop instructions per WMMA, weighted by the padding waste at that tokens-per-expert,
    spread over the board's 80 SIMD32 (40 CUs). Ties: smaller tiles first. GROUP_SIZE_M cannot be
    judged statically (it is an L2 effect): vLLM's own default rule (16 when M // E > 128, else 1).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
os.environ.pop("TRITON_INTERPRET", None)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rocm_enable.gates.capabilities import capabilities_for, is_wave32_rdna  # noqa: E402
from rocm_enable.ops import vllm_moe_isa as V  # noqa: E402

ARCH = "gfx1151"
OUT_DIR = os.path.join(ROOT, "rocm_enable", "stacks", "vllm", "moe_configs")
# vLLM's benchmark_moe.py batch sizes: the key set of 288 of the 338 config files vLLM 0.32 ships.
M_LIST = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 1536, 2048, 3072, 4096)
# The seed file's model (its file name gives E and N only): Qwen3-30B-A3B / Qwen3-Coder-30B-A3B.
SEED_MODELS = {(128, 768): {"model": "Qwen3-30B-A3B", "top_k": 8, "hidden": 2048}}
# Candidate grids (step 3), kept small so the script runs in minutes on 2 cores. bf16: the tiles
# of vLLM's own defaults (BLOCK_SIZE_N 64/128, BLOCK_SIZE_K 64/128). int4: BLOCK_SIZE_N 16 (the
# seed's), 64 (vLLM's wna16 default) and 128; BLOCK_SIZE_K 32 (vLLM's default) and 64 (the seed's).
GRIDS = {
    None: dict(BM=(16, 32, 64, 128), BN=(64, 128), BK=(64, 128)),
    V.INT4_DTYPE: dict(BM=(16, 32, 64, 128), BN=(16, 64, 128), BK=(32, 64)),
}
WARPS = (2, 4, 8)
STAGES = 2
# accumulator elements per wave: at least two 16x16 WMMA tiles, at most 64 fp32 VGPRs
PER_WAVE = (512, 2048)
MIN_WAVES_PER_SIMD = 2


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ seed


def find_seed(arch: str) -> dict:
    """vLLM's measured int4 file for a board of ``arch`` (under any published board name)."""
    names = {n for b in capabilities_for(arch).boards for n in b.config_names}
    folder = V.vllm_configs_dir()
    found = []
    for f in sorted(os.listdir(folder)):
        m = re.fullmatch(r"E=(\d+),N=(\d+),device_name=([^,]+),dtype=int4_w4a16\.json", f)
        if m and m.group(3) in names:
            found.append((f, int(m.group(1)), int(m.group(2)), m.group(3)))
    if len(found) != 1:
        raise SystemExit(f"expected one int4_w4a16 seed file for {sorted(names)} in {folder}, found "
                         f"{[f[0] for f in found]}: extend SEED_MODELS / the seed rule")
    f, E, N, device = found[0]
    if (E, N) not in SEED_MODELS:
        raise SystemExit(f"{f}: unknown model for E={E},N={N}; add it to SEED_MODELS")
    with open(os.path.join(folder, f)) as fh:
        entries = json.load(fh)
    triton_version = entries.pop("triton_version", None)
    top_k = SEED_MODELS[(E, N)]["top_k"]
    return dict(file=f, E=E, N=N, device=device, top_k=top_k, triton_version=triton_version,
                model=SEED_MODELS[(E, N)]["model"],
                entries={int(k): v for k, v in entries.items()},
                tpe={int(k): int(k) * top_k / E for k in entries})


def seed_model_shape(seed: dict) -> V.MoeShape:
    return V.MoeShape(seed["E"], seed["top_k"], SEED_MODELS[(seed["E"], seed["N"])]["hidden"], seed["N"])


def seed_entry_for(seed: dict, shape: V.MoeShape, m: int):
    """The seed batch whose tokens per expert is nearest (log2) to the target's, or None above
    the seed's range."""
    t = m * shape.top_k / shape.E
    if t > max(seed["tpe"].values()):
        return None
    return min(seed["tpe"], key=lambda ms: (abs(math.log2(t / seed["tpe"][ms])), ms))


# ------------------------------------------------------------------------------ static model


def candidates(dtype):
    g = GRIDS[dtype]
    out = []
    for bm in g["BM"]:
        for bn in g["BN"]:
            for w in WARPS:
                if not PER_WAVE[0] <= bm * bn // w <= PER_WAVE[1]:
                    continue
                for bk in g["BK"]:
                    out.append(dict(BLOCK_SIZE_M=bm, BLOCK_SIZE_N=bn, BLOCK_SIZE_K=bk, GROUP_SIZE_M=1,
                                    SPLIT_K=1, num_warps=w, num_stages=STAGES))
    return out


def _binom_pmf(n: int, p: float):
    lq, lp = math.log1p(-p), math.log(p)
    for x in range(n + 1):
        log_choose = math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1)
        yield x, math.exp(log_choose + x * lp + (n - x) * lq)


def m_blocks(shape: V.MoeShape, m: int, bm: int, naive: bool) -> float:
    """Expected M-blocks vLLM launches work for: the naive path gives each (token, expert) pair a
    block; moe_align_block_size pads each expert's tokens to a multiple of BLOCK_SIZE_M."""
    if naive:
        return float(m * shape.top_k)
    pmf = _binom_pmf(m, shape.top_k / shape.E)
    return shape.E * sum(pr * math.ceil(x / bm) for x, pr in pmf if pr > 1e-12)


def simds(arch: str) -> int:
    """SIMDs of the largest board of the arch (wave32 RDNA: 2 SIMD32 per CU)."""
    caps = capabilities_for(arch)
    return max(b.compute_units for b in caps.boards) * (2 if is_wave32_rdna(caps) else 4)


def estimate(shape, dtype, cfg, m, metrics, arch) -> float:
    """Estimated issue time (instructions per SIMD) of w13 + w2 at batch m; inf if ineligible."""
    naive = dtype is None and shape.naive(m)
    total = 0.0
    # int4 candidates are compiled with zero points (AWQ, the larger build); step 2 checks both
    for launch in V.launches(shape, dtype, cfg, m, variants=(True,) if dtype == V.INT4_DTYPE else None):
        r = metrics[launch]
        if V.violations(r, arch) or (r["occupancy_lds"] or 0) < MIN_WAVES_PER_SIMD:
            return math.inf
    for gemm in ("w13", "w2"):
        variant = naive if dtype is None else True  # int4: score the zero-point (AWQ) build
        launch = V.Launch(dtype, shape, gemm, V.config_key(cfg), variant)
        g = shape.gemm(gemm)
        programs = m_blocks(shape, m, cfg["BLOCK_SIZE_M"], naive) * math.ceil(g["N"] / cfg["BLOCK_SIZE_N"])
        waves = programs * cfg["num_warps"]
        total += waves * V.wave_instructions(metrics[launch], cfg, g["K"]) / min(waves, simds(arch))
    return total


def group_size_m(shape: V.MoeShape, m: int) -> int:
    """vLLM's get_default_config rule for GROUP_SIZE_M (bf16/fp16 branch)."""
    return 16 if m // max(shape.E, 1) > 128 else 1


# ------------------------------------------------------------------------------ derivation


def derive(jobs: int):
    seed = find_seed(ARCH)
    log(f"seed: {seed['file']} ({seed['model']}, top-{seed['top_k']}; triton {seed['triton_version']})")
    top_seed_bm = seed["entries"][max(seed["tpe"], key=seed["tpe"].get)]["BLOCK_SIZE_M"]
    plans = []  # (shape, dtype, model, tp, {m: (cfg, source)})
    static_launches = []
    for model, tp, shape in V.target_shapes():
        for dtype in (None, V.INT4_DTYPE):
            need_static = [m for m in M_LIST if dtype is None or seed_entry_for(seed, shape, m) is None]
            plans.append((shape, dtype, model, tp, need_static))
            for cfg in candidates(dtype) if need_static else ():
                if dtype == V.INT4_DTYPE and cfg["BLOCK_SIZE_M"] < top_seed_bm:
                    continue  # never chosen above the seed's range (step 1)
                variants = (True,) if dtype == V.INT4_DTYPE else (False,)
                static_launches += V.launches(shape, dtype, cfg, variants=variants)
                if dtype is None and any(shape.naive(m) for m in need_static) and cfg["BLOCK_SIZE_M"] <= 32:
                    # naive path: one token per block, so only small M tiles can win there
                    static_launches += V.launches(shape, dtype, cfg, variants=(True,))
    # the static rule at the seed's own shape, to compare with what was measured there
    seed_shape = seed_model_shape(seed)
    for cfg in candidates(V.INT4_DTYPE) + list(seed["entries"].values()):
        static_launches += V.launches(seed_shape, V.INT4_DTYPE, cfg, variants=(True,))
    t0 = time.time()
    log(f"static candidates: {len(set(static_launches))} launches")
    metrics = V.compile_many(static_launches, ARCH, jobs, progress=_progress("static"))
    log(f"  compiled in {time.time() - t0:.0f}s")

    failed = set()  # (shape, dtype, config) that failed the step-2 check

    def best(shape, dtype, m, same_bm=None, min_bm=0):
        naive = dtype is None and shape.naive(m)
        cands = [c for c in candidates(dtype) if not (naive and c["BLOCK_SIZE_M"] > 32)
                 and (shape, dtype, V.config_key(c)) not in failed and c["BLOCK_SIZE_M"] >= min_bm]
        if same_bm is not None and any(c["BLOCK_SIZE_M"] == same_bm for c in cands):
            cands = [c for c in cands if c["BLOCK_SIZE_M"] == same_bm]
        scored = [(estimate(shape, dtype, c, m, metrics, ARCH), c["BLOCK_SIZE_M"], c["BLOCK_SIZE_N"],
                   c["BLOCK_SIZE_K"], c["num_warps"], i) for i, c in enumerate(cands)]
        s = min(scored)
        if math.isinf(s[0]):
            raise SystemExit(f"no eligible candidate for {shape} {dtype} M={m}")
        cfg = dict(cands[s[-1]])
        cfg["GROUP_SIZE_M"] = group_size_m(shape, m)
        return cfg, s[0]

    files = []
    for shape, dtype, model, tp, need_static in plans:
        entries = {}
        for m in M_LIST:
            if m in need_static:
                cfg, est = best(shape, dtype, m, min_bm=top_seed_bm if dtype == V.INT4_DTYPE else 0)
                entries[m] = dict(cfg=cfg, source="static", est=est)
            else:
                ms = seed_entry_for(seed, shape, m)
                entries[m] = dict(cfg=dict(seed["entries"][ms]), source=f"seed M={ms}", seed_m=ms)
        files.append(dict(shape=shape, dtype=dtype, model=model, tp=tp, entries=entries))

    validation = []
    for ms, measured in sorted(seed["entries"].items()):
        pick, est = best(seed_shape, V.INT4_DTYPE, ms)
        validation.append(dict(m=ms, measured=measured, pick=pick, est_pick=est,
                               est_measured=estimate(seed_shape, V.INT4_DTYPE, measured, ms, metrics, ARCH)))

    # step 2: compile every entry as vLLM would launch it; replace what fails
    for attempt in range(3):
        checks = [launch for f in files for m, e in f["entries"].items()
                  for launch in V.launches(f["shape"], f["dtype"], e["cfg"], m)]
        t0 = time.time()
        checked = V.compile_many(checks, ARCH, jobs, progress=_progress("check"))
        log(f"  checked {len(set(checks))} launches in {time.time() - t0:.0f}s")
        replaced = 0
        for f in files:
            for m, e in f["entries"].items():
                bad = {lc.label: V.violations(checked[lc], ARCH)
                       for lc in V.launches(f["shape"], f["dtype"], e["cfg"], m)}
                bad = {k: v for k, v in bad.items() if v}
                if not bad:
                    e["metrics"] = {lc.label: checked[lc]
                                    for lc in V.launches(f["shape"], f["dtype"], e["cfg"], m)}
                    continue
                failed.add((f["shape"], f["dtype"], V.config_key(e["cfg"])))
                if f["dtype"] == V.INT4_DTYPE and e["source"].startswith("seed"):
                    _ensure_static(f["shape"], f["dtype"], metrics, jobs)
                cfg, est = best(f["shape"], f["dtype"], m, same_bm=e["cfg"]["BLOCK_SIZE_M"])
                log(f"  replace {f['shape']} {f['dtype']} M={m} {e['cfg']}: {bad} -> {cfg}")
                why = "; ".join(f"{k}: {v}" for k, v in bad.items())
                e.update(cfg=cfg, est=est, source=e["source"] + f" replaced ({why})")
                replaced += 1
        if not replaced:
            break
    else:
        raise SystemExit("entries still fail the AOT check after replacement")
    return seed, files, validation


def _ensure_static(shape, dtype, metrics, jobs):
    todo = [lc for c in candidates(dtype) for lc in V.launches(shape, dtype, c, variants=(True,))]
    todo = [lc for lc in todo if lc not in metrics]
    if todo:
        metrics.update(V.compile_many(todo, ARCH, jobs, progress=_progress("replacement")))


def _progress(what):
    def f(i, n):
        if i == n or i % 25 == 0:
            log(f"  {what}: {i}/{n}")
    return f


# ------------------------------------------------------------------------------ output

ORDER = ("BLOCK_SIZE_M", "BLOCK_SIZE_N", "BLOCK_SIZE_K", "GROUP_SIZE_M", "SPLIT_K", "num_warps",
         "num_stages", "waves_per_eu")


def file_json(f, triton_version) -> str:
    data = {"triton_version": triton_version}
    for m, e in f["entries"].items():
        cfg = dict(e["cfg"])
        cfg.setdefault("SPLIT_K", 1)  # fused_moe_kernel_gptq_awq takes SPLIT_K from the config
        data[str(m)] = {k: int(cfg[k]) for k in ORDER if k in cfg}
    return json.dumps(data, indent=4) + "\n"


def _cfg_str(c):
    s = (f"{c['BLOCK_SIZE_M']}x{c['BLOCK_SIZE_N']}x{c['BLOCK_SIZE_K']} G{c['GROUP_SIZE_M']} "
         f"w{c['num_warps']} s{c['num_stages']}")
    return s + (f" wpe{c['waves_per_eu']}" if "waves_per_eu" in c else "")


def readme(seed, files, validation, device, triton_version) -> str:
    cmd = ".venv/bin/python scripts/derive_vllm_moe_configs.py --jobs 2"
    doc = __doc__.split("Rule (also written into the README):\n", 1)[1].rstrip()
    lines = [
        "# Fused-MoE configs for Strix Halo (gfx1151): DERIVED, NOT MEASURED",
        "",
        "These files are **not** tuning results. There is no AMD GPU in this project; no entry here",
        "was timed on a Radeon 8060S/8050S. Each entry is derived from the one measured data point",
        "for this board, vLLM's own",
        f"`{seed['file']}`",
        f"(tuned on a Strix Halo for {seed['model']}), and from a static analysis of the AMDGCN that",
        f"Triton {triton_version} emits for vLLM's own kernels on gfx1151 (spills, scratch, LDS,",
        "instructions per WMMA). They replace vLLM's generic defaults (which vLLM uses, with a warning,",
        "when no file exists); whether they are faster than those defaults has not been measured. They",
        "are no substitute for vLLM's `benchmarks/kernels/benchmark_moe.py --tune` on the box.",
        "",
        "Regenerate (no GPU; about 550 AOT compiles, some 11 CPU-minutes: 6 minutes on 2 idle cores,",
        f"seconds when Triton's cache holds them; the output is byte-identical): `{cmd}`",
        "",
        "vLLM finds them through the rocm-enable fix `moe-config-board-names`, only when it finds no",
        "file of its own. **Override** them with vLLM's own mechanism: put a tuned file in a folder",
        "and set `VLLM_TUNED_CONFIG_FOLDER` to it; name it as vLLM computes the name on this board",
        "(`device_name=AMD_Radeon_8060S`, e.g. `E=512,N=512,device_name=AMD_Radeon_8060S.json`).",
        "A user folder and vLLM's own exact match always win over these files; `ROCM_ENABLE_DISABLE=",
        "moe-config-board-names` turns the lookup off.",
        "",
        f"File names use the board's published name `{device}` (the seed's). Keys: vLLM's usual",
        "batch sizes M; vLLM picks the nearest key. bf16 files (no `dtype`) serve `fused_moe_kernel` for",
        "bf16/fp16 checkpoints; `dtype=int4_w4a16` files serve `fused_moe_kernel_gptq_awq` (GPTQ/AWQ",
        "int4 via moe_wna16, group size 128). N is the per-GPU intermediate size: 512 at TP=1, 256 at TP=2.",
        "",
        "## Rule",
        "",
        "```",
        doc,
        "```",
        "",
    ]
    agree = sum(1 for v in validation if v["pick"]["BLOCK_SIZE_M"] == v["measured"]["BLOCK_SIZE_M"])
    agree_all = sum(1 for v in validation if all(v["pick"][k] == v["measured"][k] for k in
                                                 ("BLOCK_SIZE_M", "BLOCK_SIZE_N", "BLOCK_SIZE_K", "num_warps")))
    lines += [
        "## The static rule against the one measurement", "",
        f"Step 3 applied to the seed's own shape ({seed['model']}: E={seed['E']}, top-{seed['top_k']},",
        f"N={seed['N']}, int4) picks the measured BLOCK_SIZE_M at {agree} of {len(validation)} batch sizes "
        f"and the whole",
        f"measured tile (M, N, K, warps) at {agree_all}. Last column: the rule's estimated issue time of the",
        "measured config divided by that of its own pick (> 1: the rule misjudges this measured optimum",
        "by that factor; < 1: the measured config lies outside the grid, e.g. fewer than 512 accumulator",
        "elements per wave, and the rule rates it above everything in the grid). It models instruction",
        "issue only, not memory latency or bandwidth, which the measured small-BLOCK_SIZE_N choices",
        "suggest dominate at these batch sizes. The int4 files keep the",
        "measured entries wherever the seed covers the tokens per expert; the static rule fills only",
        "the batch sizes above it, and every bf16 entry.", "",
        "| M | t | measured | static pick | est measured / pick |", "|---|---|---|---|---|"]
    for v in validation:
        t = v["m"] * seed["top_k"] / seed["E"]
        lines.append(f"| {v['m']} | {t:.3g} | {_cfg_str(v['measured'])} | {_cfg_str(v['pick'])} | "
                     f"{v['est_measured'] / v['est_pick']:.2f} |")
    lines += [
        "",
        "## Files and AOT metrics (gfx1151, per entry: worst over its launches)",
        "",
        "t = tokens per expert (M*top_k/E). VGPR / LDS: max over w13 and w2 launches; waves: min",
        "waves/SIMD (LDS-limited); ipw: K-loop instructions per WMMA (w13/w2, sorted or zero-point build).",
        "Every launch of every entry: 0 spills, 0 scratch, LDS <= 64 KiB.",
    ]
    for f in files:
        shape = f["shape"]
        name = shape.file_name(device, f["dtype"])
        entries = f["entries"]
        n_launch = len({lc for m, e in entries.items() for lc in V.launches(shape, f["dtype"], e["cfg"], m)})
        distinct = len({V.config_key(e["cfg"]) for e in entries.values()})
        lines += ["", f"### `{name}`", "",
                  f"{f['model']} TP={f['tp']} (E={shape.E}, top-{shape.top_k}, hidden {shape.hidden}, "
                  f"N={shape.inter}); {distinct} distinct configs, {n_launch} launches compiled.", "",
                  "| M | t | source | config (MxNxK G warps stages) | VGPR | LDS | waves | ipw w13/w2 |",
                  "|---|---|---|---|---|---|---|---|"]
        for m, e in entries.items():
            ms = e["metrics"]
            vg = max(r["vgpr"] for r in ms.values())
            lds = max(r["lds"] for r in ms.values())
            occ = min(r["occupancy_lds"] or 0 for r in ms.values())
            pick = "zp" if f["dtype"] == V.INT4_DTYPE else ("naive" if shape.naive(m) else "sorted")
            ipw = "/".join(str(next(r["loop_insts_per_wmma"] for k, r in ms.items() if k.startswith(g) and
                                    (pick in k or (pick == "zp" and "awq" in k))))
                           for g in ("w13", "w2"))
            t = m * shape.top_k / shape.E
            lines.append(f"| {m} | {t:.3g} | {e['source']} | {_cfg_str(e['cfg'])} | {vg} | {lds} | {occ} | {ipw} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2, help="compile processes (default 2)")
    ap.add_argument("--out", default=OUT_DIR, help=f"output folder (default {os.path.relpath(OUT_DIR, ROOT)})")
    a = ap.parse_args(argv)
    import triton

    t0 = time.time()
    seed, files, validation = derive(a.jobs)
    os.makedirs(a.out, exist_ok=True)
    for f in files:
        name = f["shape"].file_name(seed["device"], f["dtype"])
        with open(os.path.join(a.out, name), "w") as fh:
            fh.write(file_json(f, triton.__version__))
        log(f"wrote {name}")
    with open(os.path.join(a.out, "README.md"), "w") as fh:
        fh.write(readme(seed, files, validation, seed["device"], triton.__version__))
    log(f"done in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
