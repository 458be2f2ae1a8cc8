#!/usr/bin/env python3
"""One vLLM engine configuration on the GPU machine (started by device_run.py; needs the simulated
arch in the process, which device_run.py's sitecustomize sets up from ROCM_ENABLE_SIM_ARCH).

correctness mode: LLM(model=DIR, skip_tokenizer_init) with token-id prompts: batch 1 (one prompt)
and 8 concurrent prompts of different lengths (prefix caching on, two prompts sharing a 64-token
prefix, one prompt longer than max_num_batched_tokens so its prefill is chunked); greedy, 32 steps,
the chosen token's logprob. speed mode: load_format=dummy, decode tokens/s at batch 1 and 8 and a
kernel profile of decode steps. Writes one JSON result.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import traceback

BATCH_TOKENS = 512  # max_num_batched_tokens: vLLM's largest default CUDA-graph capture size
STEPS = 32


def prompts(vocab: int) -> list[list[int]]:
    """8 prompts of different lengths; #2 and #3 share a 64-token prefix; #7 (700 tokens) is longer
    than max_num_batched_tokens, so its prefill is chunked. #0 is also the batch-1 prompt."""
    rng = random.Random(1234)
    draw = lambda n: [rng.randrange(4, vocab - 8) for _ in range(n)]  # noqa: E731  no special ids
    shared = draw(64)
    return [draw(23), draw(7), shared + draw(17), shared + draw(40), draw(100), draw(150),
            draw(230), draw(BATCH_TOKENS + 188)]


def engine_kwargs(args) -> dict:
    kw = dict(model=args.model, dtype="bfloat16", seed=0, max_model_len=1024,
              gpu_memory_utilization=args.gpu_util, kv_cache_memory_bytes=args.kv_bytes,
              tensor_parallel_size=args.tensor_parallel_size)
    if args.enable_expert_parallel:
        kw["enable_expert_parallel"] = True
    if args.speed:
        # full-size model alone on the GPU: room for the weights, a KV cache for 16 sequences
        kw.update(load_format="dummy", skip_tokenizer_init=True, max_model_len=1024, max_num_seqs=16,
                  gpu_memory_utilization=0.92, kv_cache_memory_bytes=8 << 30)
    else:
        kw.update(skip_tokenizer_init=True, enable_prefix_caching=True, enable_chunked_prefill=True,
                  disable_log_stats=False,
                  max_num_batched_tokens=BATCH_TOKENS)
    if args.mode == "eager":
        kw["enforce_eager"] = True
    elif args.mode == "compile":  # torch.compile without CUDA graphs
        kw["compilation_config"] = {"cudagraph_mode": "NONE"}
    elif args.mode == "graphs-small":
        kw["compilation_config"] = {"cudagraph_capture_sizes": [1, 2, 4, 8]}
    with open(os.path.join(args.model, "config.json")) as f:
        if "vision_config" in json.load(f):
            kw["language_model_only"] = True
    kw.update(json.loads(args.extra))
    return kw


def describe(llm) -> dict:
    """Which vLLM config and which layer implementations the engine chose (in-process engine)."""
    info = {}
    vc = llm.llm_engine.vllm_config
    cc = vc.compilation_config
    info["config"] = {
        "cudagraph_mode": str(cc.cudagraph_mode), "compile_mode": str(cc.mode),
        "capture_sizes": list(cc.cudagraph_capture_sizes or [])[:3] + ["..."] + list(cc.cudagraph_capture_sizes or [])[-2:],
        "n_capture_sizes": len(cc.cudagraph_capture_sizes or []),
        "prefix_caching": vc.cache_config.enable_prefix_caching,
        "chunked_prefill": vc.scheduler_config.enable_chunked_prefill,
        "max_num_batched_tokens": vc.scheduler_config.max_num_batched_tokens,
        "block_size": vc.cache_config.block_size,
        "v2_runner": getattr(vc, "use_v2_model_runner", None),
    }
    try:
        core = llm.llm_engine.engine_core.engine_core
        runner = core.model_executor.driver_worker.worker.model_runner
        seen = {}
        for name, m in runner.model.named_modules():
            t = type(m).__name__
            if not any(x in t for x in ("Attention", "MoE", "Linear", "Experts", "DeltaNet", "Norm")):
                continue
            desc = t
            qm = getattr(m, "quant_method", None)
            if qm is not None:
                desc += f" quant={type(qm).__name__}"
                for attr in ("kernel", "fp8_linear", "w8a8_block_fp8_linear", "moe_kernel", "experts",
                             "fused_experts", "moe_mk"):
                    v = getattr(qm, attr, None)
                    if v is not None:
                        desc += f" {attr}={type(v).__name__}"
                        inner = getattr(v, "fused_experts", None)
                        if inner is not None:
                            desc += f"({type(inner).__name__})"
            scheme = getattr(m, "scheme", None)  # compressed-tensors: the scheme holds the kernel
            if scheme is not None:
                desc += f" scheme={type(scheme).__name__}"
                for attr in ("kernel", "fp8_linear", "w8a8_block_fp8_linear"):
                    v = getattr(scheme, attr, None)
                    if v is not None:
                        desc += f" {attr}={type(v).__name__}"
            impl = getattr(m, "impl", None)
            if impl is not None:
                desc += f" impl={type(impl).__name__}"
            seen.setdefault(desc, name)
        info["modules"] = seen
    except Exception as exc:  # the engine may run out of process (multiprocessing, TP)
        info["modules_error"] = repr(exc)
    return info


def fixes() -> list[list[str]]:
    from rocm_enable.runtime import activate

    report = activate(apply=True)  # re-entrant: reports what the plugin applied in this process
    return [[r.name, r.status, r.reason[:200]] for r in report.results]


def generate(llm, batch: list[list[int]], steps: int, logprobs: bool = True):
    from vllm import SamplingParams

    sp = SamplingParams(max_tokens=steps, temperature=0.0, ignore_eos=True, detokenize=False,
                        logprobs=1 if logprobs else None)
    outs = llm.generate([{"prompt_token_ids": p} for p in batch], sp, use_tqdm=False)
    res = []
    for o in outs:
        c = o.outputs[0]
        lps = None
        if logprobs and c.logprobs is not None:
            lps = [step[tok].logprob for step, tok in zip(c.logprobs, c.token_ids)]
        res.append({"tokens": list(c.token_ids), "logprobs": lps})
    return res


def correctness(llm, vocab: int) -> dict:
    ps = prompts(vocab)
    out = {"prompts": ps}
    t = time.time()
    out["batch1"] = generate(llm, ps[:1], STEPS)
    out["batch8"] = generate(llm, ps, STEPS)
    out["batch8_again"] = [r["tokens"] for r in generate(llm, ps, STEPS, logprobs=False)]
    out["generate_s"] = round(time.time() - t, 2)
    try:
        metrics = {m.name: getattr(m, "value", None) for m in llm.get_metrics()
                   if "prefix_cache" in m.name}
        out["prefix_cache_metrics"] = metrics
    except Exception as exc:
        out["prefix_cache_metrics"] = repr(exc)
    return out


def kernel_family(name: str) -> str:
    n = name.lower()
    rules = [("moe", ("moe", "expert", "w8a16_moe", "fused_experts", "align", "topk", "sort", "gather",
                      "scatter", "index", "bincount", "cumsum")),
             ("gdn", ("delta", "gdn", "fused_recurrent", "chunk_", "l2norm", "gated")),
             ("conv", ("conv1d",)),
             ("attention", ("attn", "attention", "flash", "paged", "reshape_and_cache", "unified")),
             ("norm", ("norm", "rms")),
             ("dense", ("gemm", "gemv", "w8a16", "linear", "matmul", "cutlass", "sm90", "nvjet", "cublas")),
             ("rope", ("rotary", "rope")),
             ("sampling", ("argmax", "softmax", "sample", "log_softmax", "logsumexp", "max_"))]
    for fam, keys in rules:
        if any(k in n for k in keys):
            return fam
    return "other"


def speed(llm, vocab: int, input_len: int, output_len: int, batches=(1, 8)) -> dict:
    from vllm import SamplingParams
    import torch

    rng = random.Random(7)
    res = {}
    for b in batches:
        ps = [[rng.randrange(4, vocab - 8) for _ in range(input_len)] for _ in range(b)]
        sp1 = SamplingParams(max_tokens=1, temperature=0.0, ignore_eos=True, detokenize=False)
        spn = SamplingParams(max_tokens=output_len, temperature=0.0, ignore_eos=True, detokenize=False)
        gen = lambda sp: llm.generate([{"prompt_token_ids": p} for p in ps], sp, use_tqdm=False)  # noqa: E731
        gen(spn)  # warm-up (prefix caching makes the timed prefill short; decode dominates anyway)
        torch.cuda.synchronize()
        t0 = time.perf_counter(); gen(sp1); torch.cuda.synchronize(); t_prefill = time.perf_counter() - t0
        t0 = time.perf_counter(); gen(spn); torch.cuda.synchronize(); t_all = time.perf_counter() - t0
        step_s = (t_all - t_prefill) / (output_len - 1)
        res[f"batch{b}"] = {"decode_step_ms": round(step_s * 1e3, 3),
                            "decode_tok_s": round(b / step_s, 1), "total_s": round(t_all, 2)}
        # kernel profile of decode steps: 17 tokens, minus a 1-token run (prefill + first step)
        from torch.profiler import ProfilerActivity, profile

        def kernels(sp):
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                gen(sp)
                torch.cuda.synchronize()
            ks = {}
            for e in prof.events():
                if e.device_type == torch.autograd.DeviceType.CUDA:
                    k = ks.setdefault(e.name, [0, 0.0])
                    k[0] += 1
                    k[1] += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
            return ks

        n_steps = 16
        k_long = kernels(SamplingParams(max_tokens=n_steps + 1, temperature=0.0, ignore_eos=True, detokenize=False))
        k_short = kernels(sp1)
        per_step = {}
        for name, (cnt, us) in k_long.items():
            c0, u0 = k_short.get(name, (0, 0.0))
            if cnt - c0 > 0:
                per_step[name] = [(cnt - c0) / n_steps, (us - u0) / n_steps]
        fams = {}
        for name, (cnt, us) in per_step.items():
            f = fams.setdefault(kernel_family(name), {"kernels": 0.0, "us": 0.0, "names": []})
            f["kernels"] += cnt
            f["us"] += us
            f["names"].append(name[:120])
        total_us = sum(f["us"] for f in fams.values()) or 1.0
        for f in fams.values():
            f["share"] = round(f["us"] / total_us, 3)
            f["kernels"] = round(f["kernels"], 2)
            f["us"] = round(f["us"], 1)
            f["names"] = sorted(set(f["names"]))[:12]
        res[f"batch{b}"]["profile"] = {"kernels_per_step": round(sum(v[0] for v in per_step.values()), 1),
                                       "gpu_us_per_step": round(total_us, 1), "families": fams}
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--mode", choices=("eager", "compile", "default", "graphs-small"), default="default")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tensor-parallel-size", type=int, default=1)
    ap.add_argument("--enable-expert-parallel", action="store_true")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--input-len", type=int, default=512)
    ap.add_argument("--output-len", type=int, default=256)
    ap.add_argument("--gpu-util", type=float, default=0.05)
    ap.add_argument("--kv-bytes", type=int, default=768 << 20)
    ap.add_argument("--extra", default="{}", help="JSON kwargs for LLM()")
    args = ap.parse_args(argv)
    result = {"args": vars(args), "arch": os.environ.get("ROCM_ENABLE_SIM_ARCH"), "ok": False}
    t0 = time.time()

    def dump():
        result["wall_s"] = round(time.time() - t0, 1)
        with open(args.out, "w") as f:
            json.dump(result, f)

    try:
        import torch
        import vllm
        from vllm import LLM
        from vllm.platforms import current_platform

        result["versions"] = {"vllm": vllm.__version__, "torch": torch.__version__,
                              "platform": type(current_platform).__name__,
                              "gpu": torch.cuda.get_device_name(0)}
        kw = engine_kwargs(args)
        result["llm_kwargs"] = {k: v for k, v in kw.items() if k != "model"}
        llm = LLM(**kw)
        result["engine_up_s"] = round(time.time() - t0, 1)
        dump()
        result["fixes"] = fixes()
        result.update(describe(llm))
        vocab = llm.llm_engine.vllm_config.model_config.get_vocab_size()
        if args.speed:
            result["speed"] = speed(llm, vocab, args.input_len, args.output_len)
        else:
            result["run"] = correctness(llm, vocab)
        result["ok"] = True
    except BaseException as exc:  # record the fault with its traceback, then exit non-zero
        result["error"] = repr(exc)[:2000]
        result["traceback"] = traceback.format_exc()[-6000:]
        dump()
        print(result["traceback"], file=sys.stderr, flush=True)
        os._exit(1)
    dump()
    print(f"ENGINE-JOB OK {args.out}", flush=True)
    os._exit(0)  # skip vLLM's shutdown (the stubbed cumem_allocator has no init_module)


if __name__ == "__main__":
    main()
