"""CUDA-graph timing: decode-sized launches take a few microseconds, less than the host needs to
issue them, so eager timing measures Python. Capturing many launches in one graph and timing the
replays measures the GPU."""
from __future__ import annotations

import statistics
from typing import Callable, Sequence


def graph_time(calls: Sequence[Callable[[], object]], replays: int = 20, *,
               launches: int | None = None, warmup: int = 3) -> list[float]:
    """Microseconds per launch, one value per replay.

    `calls` are captured round-robin, `launches` of them (default: each once) into one CUDA graph;
    pass different weight buffers / routing sets in `calls` so the timed data is not L2-resident.
    Each call runs once eagerly on a side stream first (Triton compiles, allocator warms)."""
    import torch

    launches = launches or len(calls)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for call in calls:
            call()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(launches):
            calls[i % len(calls)]()
    for _ in range(warmup):
        graph.replay()
    events = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return [start.elapsed_time(end) * 1e3 / launches for start, end in events]


def graph_median_us(calls: Sequence[Callable[[], object]], replays: int = 20) -> float:
    """Median of graph_time: the number the benchmark tables print."""
    return statistics.median(graph_time(calls, replays))


def _event_ms(fn: Callable[[], object], iters: int) -> list[float]:
    import torch

    events = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return [start.elapsed_time(end) for start, end in events]


def copy_bandwidth(nbytes: int = 2 << 30, iters: int = 20) -> dict[str, float]:
    """Device-to-device copy (bytes read + written per second) and a read-only reduction rate:
    the bandwidth a weight-streaming kernel is judged against on this GPU."""
    import torch

    src = torch.randint(1, 255, (nbytes,), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    copy_ms = sorted(_event_ms(lambda: dst.copy_(src), iters))
    if not torch.equal(dst[:4096], src[:4096]):
        raise RuntimeError("copy_bandwidth: the copy did not copy")
    as_bf16 = src.view(torch.bfloat16)
    for _ in range(2):
        as_bf16.sum(dtype=torch.float32)
    read_ms = statistics.median(_event_ms(lambda: as_bf16.sum(dtype=torch.float32), iters))
    median_ms = statistics.median(copy_ms)
    del src, dst, as_bf16
    torch.cuda.empty_cache()
    return {"copy_bytes": nbytes, "copy_ms_median": median_ms, "copy_ms_min": copy_ms[0],
            "copy_GBps_rw": 2 * nbytes / median_ms / 1e6,
            "copy_GBps_rw_best": 2 * nbytes / copy_ms[0] / 1e6,
            "read_sum_GBps": nbytes / read_ms / 1e6}
