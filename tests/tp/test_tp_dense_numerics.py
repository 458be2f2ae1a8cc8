"""Dense W8A16 linears on vLLM's tensor-parallel-2 shards, full-size shapes of Qwen3-Next-80B-A3B
and Qwen3.6-35B-A3B (bundled configs), FP8 block-128 weights, in Triton's interpreter:

- column parallel (QKVParallelLinear, MergedColumnParallelLinear): rank r computes rows
  [r*N/2, (r+1)*N/2) of each packed part; the parts gathered back equal the unsharded output;
- row parallel (o_proj, GDN out_proj, the shared expert's down_proj): rank r holds input columns
  [r*K/2, (r+1)*K/2) and gets that slice of the input; the two partial outputs summed (vLLM's
  all-reduce) equal the unsharded output;
- the shared expert as vLLM runs it: column-parallel gate_up, SiLU-and-mul on the rank's half,
  row-parallel down, partials summed.
References are float64 on the dequantized unsharded weights."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
import pytest
import torch

from rocm_enable.models import load_model
from rocm_enable.ops.fp8_dequant import dequant_fp8_reference, fold_fp8_scale_for_fp16_bits
from rocm_enable.ops.linear_w8a16 import linear_w8a16
from tp_shards import BLOCK, rand_block_scale, rand_fp8, rel_err

pytestmark = pytest.mark.usefixtures("interpreter_tiles")
MODELS = {"qwen3-next-80b": "Qwen/Qwen3-Next-80B-A3B-Instruct-FP8", "qwen3.6-35b": "Qwen/Qwen3.6-35B-A3B-FP8"}
TOL = {torch.bfloat16: 2e-2, torch.float16: 1e-3}  # as tests/tp/test_tp_moe_numerics.py


class Fp8Linear:
    def __init__(self, n, k, gen):
        self.w, self.s = rand_fp8(n, k, gen=gen), rand_block_scale(n=n, k=k, gen=gen)

    def rows(self, parts, r):
        """Rank r's rows of each packed part (sizes in `parts`), concatenated as vLLM loads them."""
        w, s, start = [], [], 0
        for n in parts:
            lo, hi = start + r * n // 2, start + (r + 1) * n // 2
            assert lo % 128 == 0 and hi % 128 == 0, "block-128 shards start on a scale block"
            w.append(self.w[lo:hi])
            s.append(self.s[lo // 128:hi // 128])
            start += n
        return torch.cat(w), torch.cat(s)

    def cols(self, r):
        k = self.w.shape[1] // 2
        return self.w[:, r * k:(r + 1) * k].contiguous(), self.s[:, r * k // 128:(r + 1) * k // 128].contiguous()

    def ref(self, x):
        return x.double() @ dequant_fp8_reference(self.w, self.s, BLOCK).T


def _run(x, shard):
    w, s = shard
    return linear_w8a16(x, w, fold_fp8_scale_for_fp16_bits(s), block_shape=BLOCK, arch_family="rdna3")


def _geometry(model):
    s = load_model(MODELS[model])
    q = s.num_attention_heads * s.head_dim * (2 if s.attn_output_gate else 1)
    kv = s.num_kv_heads * s.head_dim
    return s, (q, kv, kv)


@pytest.mark.parametrize("model,M,dtype", [("qwen3-next-80b", 1, torch.bfloat16), ("qwen3.6-35b", 3, torch.float16)])
def test_column_parallel_qkv_gathers_to_the_unsharded_output(model, M, dtype):
    spec, parts = _geometry(model)
    g = torch.Generator().manual_seed(M)
    lin = Fp8Linear(sum(parts), spec.hidden_size, g)
    x = torch.randn(M, spec.hidden_size, generator=g).to(dtype)
    outs = [_run(x, lin.rows(parts, r)) for r in range(2)]
    # rank r's output is [q_r | k_r | v_r]; put each part's halves back in order
    pieces, at = [], [0, 0]
    for n in parts:
        for r in range(2):
            pieces.append(outs[r][:, at[r]:at[r] + n // 2])
            at[r] += n // 2
    assert rel_err(torch.cat(pieces, dim=1), lin.ref(x)) < TOL[dtype]


@pytest.mark.parametrize("model,M,dtype", [("qwen3-next-80b", 1, torch.bfloat16), ("qwen3.6-35b", 3, torch.float16)])
def test_row_parallel_out_proj_partials_sum_to_the_unsharded_output(model, M, dtype):
    """o_proj (heads x head_dim -> hidden); GDN's out_proj has the same K (32 value heads x 128)."""
    spec = load_model(MODELS[model])
    K = spec.num_attention_heads * spec.head_dim
    assert K == spec.linear_num_value_heads * spec.linear_value_head_dim
    g = torch.Generator().manual_seed(10 + M)
    lin = Fp8Linear(spec.hidden_size, K, g)
    x = torch.randn(M, K, generator=g).to(dtype)
    outs = [_run(x[:, r * K // 2:(r + 1) * K // 2].contiguous(), lin.cols(r)) for r in range(2)]
    ref = lin.ref(x)
    assert rel_err(outs[0].double() + outs[1].double(), ref) < TOL[dtype]
    assert min(rel_err(o.double(), ref) for o in outs) > 0.1  # a partial alone is not the answer


@pytest.mark.parametrize("model,M", [("qwen3-next-80b", 1), ("qwen3.6-35b", 4)])
def test_shared_expert_column_then_row_parallel(model, M):
    spec = load_model(MODELS[model])
    H, S = spec.hidden_size, spec.shared_expert_intermediate_size
    g = torch.Generator().manual_seed(20 + M)
    gate_up, down = Fp8Linear(2 * S, H, g), Fp8Linear(H, S, g)
    x = torch.randn(M, H, generator=g).to(torch.bfloat16)
    partial = []
    for r in range(2):
        h = _run(x, gate_up.rows((S, S), r))
        act = (torch.nn.functional.silu(h[:, :S // 2].float()) * h[:, S // 2:].float()).to(torch.bfloat16)
        partial.append(_run(act, down.cols(r)).double())
    h = gate_up.ref(x)
    act = (torch.nn.functional.silu(h[:, :S]) * h[:, S:]).to(torch.bfloat16).double()
    ref = act @ dequant_fp8_reference(down.w, down.s, BLOCK).T
    # the rank's gate_up output is rounded to bf16 before SiLU (as vLLM's layers do): one more
    # bf16 rounding than the MoE path, same bound
    assert rel_err(partial[0] + partial[1], ref) < TOL[torch.bfloat16]
