"""The RDNA attention backend's host code is CUDA/HIP-graph capturable at every batch size vLLM
captures: run on fake tensors (no data) under tests/ops/graph_guard.py's mode that refuses host
syncs and data-dependent shapes, Triton launches recorded and not run. Decode (split and direct),
prefill, 16-bit and fp8 caches: only the decode (+ combine) or prefill kernel is launched, with a
grid that depends on shapes alone, and no torch op touches the device (no per-call allocation)."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "ops"))
from graph_guard import HostSyncError, run_guarded  # noqa: E402

from rocm_enable.ops import attention_rdna as A  # noqa: E402

TARGET = A.AttnTarget(wave_size=32, lds_bytes=64 * 1024, num_cus=40)  # gfx1151
H, KVH, D, BLOCK, BLOCKS_PER_SEQ = 16, 2, 256, 544, 8
# vLLM's default CUDA-graph capture sizes (max_cudagraph_capture_size 512)
CAPTURE_SIZES = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, 513, 16))


def _inputs(num_seqs, num_tokens, kv):
    def make():
        dt = torch.uint8 if kv == "fp8" else torch.bfloat16
        cache = torch.empty(num_seqs * BLOCKS_PER_SEQ, KVH, BLOCK, 2 * D, dtype=dt)
        kc, vc = cache.transpose(1, 2).split(D, dim=-1)
        scratch = A.alloc_scratch(TARGET, KVH, H // KVH, D, "cpu")
        return (torch.empty(num_tokens, H, D, dtype=torch.bfloat16), kc, vc,
                torch.empty(num_tokens, H, D, dtype=torch.bfloat16),
                torch.empty(num_seqs, BLOCKS_PER_SEQ, dtype=torch.int32),
                torch.empty(num_seqs, dtype=torch.int32), torch.empty(num_seqs + 1, dtype=torch.int32),
                scratch, torch.empty(1), torch.empty(1))
    return make


def _call(max_query_len, kv):
    def call(q, kc, vc, out, bt, sl, cu, scratch, ks, vs):
        scales = dict(k_scale=ks, v_scale=vs) if kv == "fp8" else {}
        A.paged_attention(q, kc, vc, out, bt, sl, cu, max_query_len, 0.0625, TARGET, scratch, **scales)
    return call


@pytest.mark.parametrize("kv", ["bf16", "fp8"])
def test_decode_every_capture_size(kv):
    for n in CAPTURE_SIZES:
        launches = run_guarded(_inputs(n, n, kv), _call(1, kv))
        assert launches.torch_ops == [], (n, launches.torch_ops)
        splits = A.decode_num_splits(n, KVH, H // KVH, TARGET)
        names = [name for name, _ in launches.triton]
        assert names == (["paged_decode_kernel", "split_combine_kernel"] if splits > 1
                         else ["paged_decode_kernel"]), (n, names)
        assert launches.triton[0][1] == (n, KVH * A.num_groups(H // KVH), splits)


@pytest.mark.parametrize("kv", ["bf16", "fp8"])
def test_prefill_and_mixed_batches(kv):
    for seqs, tokens in ((1, 2048), (4, 512), (16, 64)):
        launches = run_guarded(_inputs(seqs, tokens, kv), _call(tokens // seqs + 1, kv))
        assert launches.torch_ops == [] and [n for n, _ in launches.triton] == ["paged_prefill_kernel"]


def test_guard_sees_a_host_sync():
    """Negative control: the same harness refuses a launcher that reads a device value."""
    def syncing(q, kc, vc, out, bt, sl, cu, scratch, ks, vs):
        A.paged_attention(q, kc, vc, out, bt, sl, cu, 1, 0.0625, TARGET, scratch,
                          num_splits=int(sl.max()))
    with pytest.raises(HostSyncError, match="_local_scalar_dense"):
        run_guarded(_inputs(8, 8, "bf16"), syncing)
