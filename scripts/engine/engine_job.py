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
import contextlib
import json
import os
import random
import statistics
import sys
import time
import traceback

import speed_profile

BATCH_TOKENS = 512  # max_num_batched_tokens: vLLM's largest default CUDA-graph capture size
STEPS = 32

# speed mode (issue 14 point 4): full-size config, dummy weights, vLLM's defaults except
# max_num_seqs 8 (capture sizes 1, 2, 4, 8, 16 instead of 51: the batch-1 and batch-8 graphs are the
# ones the defaults capture too, start-up is shorter) and a fixed 4 GiB KV cache (8 x 1024 tokens
# need well under 1 GiB; the rest of the GPU stays free for the BF16 35B's 65 GiB of weights).
SPEED_KV_BYTES = 4 << 30
SPEED_MAX_SEQS = 8
SPEED_BATCHES = (1, 8)
SPEED_TOKEN_MAX = 100_000  # prompt ids below every special / vision token id of the Qwen vocabularies
SPEED_REPEATS = 3
GRAPH_STEPS = 8   # decode steps per profiled generate with CUDA graphs
EAGER_STEPS = 4   # ... and with graph dispatch off (every launch has its CPU op: bigger traces)
COPY_BYTES = 1 << 30
GRAPH_NODES = 1000


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
    if args.speed:  # full-size config alone on the GPU (SPEED_* above)
        kw.update(load_format="dummy", skip_tokenizer_init=True, max_model_len=1024,
                  max_num_seqs=SPEED_MAX_SEQS, gpu_memory_utilization=0.92, kv_cache_memory_bytes=SPEED_KV_BYTES)
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


def model_runner(llm):
    """The in-process engine's model runner (VLLM_ENABLE_V1_MULTIPROCESSING=0)."""
    return llm.llm_engine.engine_core.engine_core.model_executor.driver_worker.worker.model_runner


@contextlib.contextmanager
def graphs_off(runner):
    """CUDA-graph dispatch off for the block: every batch runs the compiled model without graphs,
    as vLLM does for a batch above its largest capture size."""
    mgr = getattr(runner, "cudagraph_manager", None)  # model runner V2 (vLLM 0.32's default)
    if mgr is not None and hasattr(mgr, "_graphs_captured"):
        obj, attr = mgr, "_graphs_captured"
    elif hasattr(getattr(runner, "cudagraph_dispatcher", None), "keys_initialized"):  # V1 runner
        obj, attr = runner.cudagraph_dispatcher, "keys_initialized"
    else:
        raise RuntimeError(f"{type(runner).__name__}: no CUDA-graph dispatch switch found (vLLM changed)")
    old = getattr(obj, attr)
    setattr(obj, attr, False)
    try:
        yield f"{type(obj).__name__}.{attr}"
    finally:
        setattr(obj, attr, old)


def copy_bandwidth(nbytes: int = COPY_BYTES, iters: int = 20) -> dict:
    """Device-to-device copy rate (bytes read + written) and a read-only rate (a sum over the
    same bytes), on buffers far larger than L2."""
    import torch

    src = torch.zeros(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    flat = src.view(torch.float32)

    def timed(fn) -> float:
        for _ in range(3):
            fn()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(iters):
            fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b) / iters  # ms

    copy_ms = timed(lambda: dst.copy_(src))
    read_ms = timed(flat.sum)
    del src, dst, flat
    torch.cuda.empty_cache()
    return {"bytes": nbytes, "copy_ms": round(copy_ms, 4), "read_ms": round(read_ms, 4),
            "copy_gbs": round(2 * nbytes / (copy_ms * 1e6), 1),   # read + written
            "read_gbs": round(nbytes / (read_ms * 1e6), 1)}


def graph_node_cost(nodes: int = GRAPH_NODES, replays: int = 20):
    """This GPU's cost per node of a CUDA graph of `nodes` serialized one-element kernels (the same
    benchmark as the RDNA per-launch cost the plan uses). Returns (graph, result)."""
    import torch

    x = torch.zeros(1, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            x.add_(1)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):  # the engine's threads may be busy
        for _ in range(nodes):
            x.add_(1)
    graph.replay()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(replays):
        graph.replay()
    b.record()
    b.synchronize()
    return graph, {"nodes": nodes, "us_per_node": round(a.elapsed_time(b) * 1e3 / (replays * nodes), 4)}


def speed_prompts(batch: int, input_len: int, vocab: int) -> list[list[int]]:
    rng = random.Random(7 + batch)
    top = min(vocab - 8, SPEED_TOKEN_MAX)
    return [[rng.randrange(4, top) for _ in range(input_len)] for _ in range(batch)]


def make_gen(llm):
    from vllm import SamplingParams

    def gen(prompts: list[list[int]], tokens: int) -> None:
        sp = SamplingParams(max_tokens=tokens, temperature=0.0, ignore_eos=True, detokenize=False)
        outs = llm.generate([{"prompt_token_ids": p} for p in prompts], sp, use_tqdm=False)
        got = sorted({len(o.outputs[0].token_ids) for o in outs})
        if len(outs) != len(prompts) or got != [tokens]:
            raise RuntimeError(f"asked {len(prompts)} x {tokens} tokens, got {len(outs)} outputs of {got}")
    return gen


def decode_timing(gen, prompts, output_len: int) -> dict:
    """Decode step = (time of prompts -> output_len tokens - time of prompts -> 1 token) /
    (output_len - 1): the same prefill in both (prefix-cached where vLLM's block size lets it be), so
    what is left is the decode steps, host work included, as a user's tokens/s. After one untimed
    warm-up; the median of SPEED_REPEATS pairs."""
    import torch

    gen(prompts, output_len)
    steps = []
    for _ in range(SPEED_REPEATS):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        gen(prompts, 1)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        gen(prompts, output_len)
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        steps.append(((t2 - t1) - (t1 - t0)) / (output_len - 1))
    step = statistics.median(steps)
    return {"decode_step_ms": round(step * 1e3, 6), "decode_tok_s": round(len(prompts) / step, 2),
            "step_ms_runs": [round(s * 1e3, 4) for s in steps], "batch": len(prompts),
            "input_len": len(prompts[0]), "output_len": output_len}


def profile_records(prof):
    """The profiler session as plain records for speed_profile: device kernels/copies, op-linked
    kernels with their op chain (innermost first) and the window markers."""
    from torch.autograd import DeviceType

    device, linked, marks, kinds = [], [], {}, {}
    for e in prof.events():
        if e.device_type == DeviceType.CPU:
            if e.name.startswith(speed_profile.MARK):
                marks[e.name[len(speed_profile.MARK):]] = (e.time_range.start, e.time_range.end)
                continue
            # a record_function region (user annotation) also lists its own GPU span among its
            # "kernels": its launches are left to the kernel-name rules
            if not e.kernels or getattr(e, "is_user_annotation", False):
                continue
            chain, p = [], e
            while p is not None:
                chain.append((p.name, p.input_shapes))
                p = p.cpu_parent
            for k in e.kernels:
                if not k.name.startswith(speed_profile.MARK):
                    linked.append((e.time_range.start, tuple(chain), k.name, k.duration))
        else:
            if getattr(e, "is_user_annotation", False) or e.name.startswith(speed_profile.MARK):
                continue
            kind = str(getattr(e, "activity_type", None))
            kinds[kind] = kinds.get(kind, 0) + 1
            device.append((e.name, e.time_range.start, e.time_range.elapsed_us()))
    return device, linked, marks, kinds


def kernel_profile(llm, gen, prompts_by_batch: dict, node_graph) -> dict:
    """One profiler session: per batch, graph pass then eager pass (1-token and 1+N-token generates,
    each in its own marked window), then one replay of the graph-node benchmark."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    runner = model_runner(llm)
    modes = [("graph", GRAPH_STEPS)]
    try:
        with graphs_off(runner) as switch:
            modes.append(("eager", EAGER_STEPS))
    except RuntimeError as exc:  # no eager pass: families by kernel name only
        switch = repr(exc)
    errors = {}
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        for b, prompts in prompts_by_batch.items():
            for mode, steps in modes:
                try:  # a pass that fails leaves the other passes (and the timings) standing
                    with graphs_off(runner) if mode == "eager" else contextlib.nullcontext():
                        for part, tokens in (("short", 1), ("long", 1 + steps)):
                            torch.cuda.synchronize()
                            time.sleep(0.002)  # a gap between windows: no device record sits on a border
                            with record_function(speed_profile.MARK + speed_profile.window_label(mode, b, part)):
                                gen(prompts, tokens)
                                torch.cuda.synchronize()
                except Exception as exc:
                    errors[f"{mode}:b{b}"] = repr(exc)[:500]
        if node_graph is not None:
            time.sleep(0.002)
            with record_function(speed_profile.MARK + "graph_node"):
                node_graph.replay()
                torch.cuda.synchronize()
    t0 = time.time()
    device, linked, marks, kinds = profile_records(prof)
    for failed in errors:  # "mode:bN": its windows hold a partial generate
        marks = {k: v for k, v in marks.items() if not k.startswith(failed + ":")}
    hf = llm.llm_engine.vllm_config.model_config.hf_text_config
    vocab = llm.llm_engine.vllm_config.model_config.get_vocab_size()
    experts = int(getattr(hf, "num_experts", 0) or 0)
    out = {f"batch{b}": speed_profile.profile_batch(device, linked, marks, b, GRAPH_STEPS, EAGER_STEPS,
                                                      vocab, experts) for b in prompts_by_batch}
    tiny = speed_profile.by_name(device, marks["graph_node"]) if "graph_node" in marks else {}
    n = sum(c for c, _ in tiny.values())
    out["graph_node_kernel_us"] = round(sum(u for _, u in tiny.values()) / n, 4) if n else None
    out["graph_switch"] = switch
    out["errors"] = errors
    out["device_record_kinds"] = kinds
    out["records"] = {"device": len(device), "linked": len(linked), "parse_s": round(time.time() - t0, 1)}
    return out


def speed(llm, args, into: dict, save) -> None:
    """Fills `into` step by step (and saves after each) so a job killed late keeps what it measured."""
    vocab = llm.llm_engine.vllm_config.model_config.get_vocab_size()
    vc = llm.llm_engine.vllm_config
    into["engine"] = {"max_num_seqs": vc.scheduler_config.max_num_seqs,
                      "max_num_batched_tokens": vc.scheduler_config.max_num_batched_tokens,
                      "async_scheduling": getattr(vc.scheduler_config, "async_scheduling", None),
                      "capture_sizes": list(vc.compilation_config.cudagraph_capture_sizes or []),
                      "cudagraph_mode": str(vc.compilation_config.cudagraph_mode),
                      "kv_cache_memory_bytes": vc.cache_config.kv_cache_memory_bytes,
                      "prefix_caching": vc.cache_config.enable_prefix_caching}
    node_graph = None
    try:  # the device's own numbers; a failure here must not cost the timings below
        into["copy"] = copy_bandwidth()
        node_graph, into["graph_node"] = graph_node_cost()
    except Exception as exc:
        into["device_error"] = repr(exc)[:500]
    save()
    gen = make_gen(llm)
    prompts = {b: speed_prompts(b, args.input_len, vocab) for b in SPEED_BATCHES}
    for b, ps in prompts.items():
        t = time.time()
        into[f"batch{b}"] = decode_timing(gen, ps, args.output_len)
        into[f"batch{b}"]["wall_s"] = round(time.time() - t, 1)
        save()
    if args.no_profile:
        return
    t = time.time()
    into["profile"] = kernel_profile(llm, gen, prompts, node_graph)
    into["profile"]["wall_s"] = round(time.time() - t, 1)
    save()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--mode", choices=("eager", "compile", "default", "graphs-small"), default="default")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tensor-parallel-size", type=int, default=1)
    ap.add_argument("--enable-expert-parallel", action="store_true")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--no-profile", action="store_true", help="speed: timings only, no kernel profile")
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
            result["speed"] = {}
            speed(llm, args, result["speed"], dump)
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
