"""Float64 references and random data for the W8A16 numerics tests."""
import json

import torch

from rocm_enable.ops import config as cfgmod
from rocm_enable.ops.fp8_dequant import dequant_fp8_reference

# Relative error ||out - ref|| / ||ref|| allowed per activation/output dtype.
# fp16: operands are exact (fp16 = e4m3 * 2**-8, A fp16), fp32 accumulation; only the fp16
#   output rounding remains (~2.1e-4 measured); 1e-3 leaves 5x margin and still catches
#   any wrong scale / index (those give >1e-1).
# bf16: bf16 output rounding (~1.6e-3 RMS with round-to-nearest). Triton's CPU interpreter
#   casts fp32 -> bf16 by TRUNCATION (checked: 100% match with bit truncation), doubling
#   it to ~3.5e-3 dense and ~7e-3 after the MoE's two roundings; 1.5e-2 bounds that.
REL_TOL = {torch.float16: 1e-3, torch.bfloat16: 1.5e-2}


def rand_fp8(*shape, gen=None):
    """Random e4m3fn bytes over all finite codes (subnormals included), never NaN, never 0."""
    b = torch.randint(0, 256, shape, dtype=torch.int32, generator=gen)
    b[(b & 0x7F) == 0x7F] -= 1
    b[(b & 0x7F) == 0] += 0x38  # +-1.0 instead of +-0
    return b.to(torch.uint8).view(torch.float8_e4m3fn)


def rand_scale(kind, E, N, K, gen=None, block=(128, 128)):
    """Unfolded fp32 scales of the given layout (E=None: dense)."""
    lead = () if E is None else (E,)
    if kind == "block":
        shape = lead + (-(-N // block[0]), -(-K // block[1]))
    elif kind == "channel":
        shape = lead + (N,)
    elif kind == "channel1":
        shape = lead + (N, 1)
    else:
        shape = lead if lead else (1,)
    return torch.rand(shape, generator=gen) * 4e-3 + 5e-4


def rel_err(out, ref):
    assert not torch.isnan(out).any(), "NaN in output (unwritten element or NaN weight)"
    return ((out.double() - ref).norm() / ref.norm()).item()


def moe_reference(x, w13, w2, s13, s2, topk_weights, topk_ids, block_shape, act_dtype,
                  on_input=False, expert_map=None, route_mask=None):
    """float64 MoE: per pair silu(g)*u (rounded to act_dtype like the kernel's buffer), w2,
    weighted sum over top-k. Non-local experts (expert_map -1) and routes where route_mask
    [M, top_k] is False (padded routes) contribute 0."""
    W13 = dequant_fp8_reference(w13, s13, block_shape)
    W2 = dequant_fp8_reference(w2, s2, block_shape)
    M, K = x.shape
    N = w2.shape[2]
    xd = x.double()
    out = torch.zeros(M, K, dtype=torch.float64)
    for m in range(M):
        for j in range(topk_ids.shape[1]):
            if route_mask is not None and not route_mask[m, j]:
                continue
            e = int(topk_ids[m, j])
            if expert_map is not None:
                e = int(expert_map[e])
                if e < 0:
                    continue
            wt = float(topk_weights[m, j])
            h = W13[e] @ xd[m]
            if on_input:
                h = h * wt
            a = (torch.nn.functional.silu(h[:N]) * h[N:]).to(act_dtype).double()
            y = W2[e] @ a
            out[m] += y if on_input else wt * y
    return out


def single_launch_family(arch):
    """A load_family stand-in: the shipped ``arch`` family with its GEMV decode bucket set to
    single_launch (no shipped bucket sets it), the other families as shipped."""
    d = json.loads(json.dumps(cfgmod.load_shipped(arch)))
    d["moe"][0]["single_launch"] = True
    return lambda fam: d if fam == arch else cfgmod.load_shipped(fam)


def interpreted_moe_bucket(d: dict, m: int, experts: int, top_k: int) -> str:
    """What Triton's interpreter runs for a MoE layer call of ``m`` tokens under family table
    ``d``: the bucket config.get_moe_config picks, less its compile options (num_warps,
    num_stages: the interpreter runs each program's logic, not its waves or software pipeline;
    the AOT ISA tests check those per family) and max_m (only selects), plus the naive-routing
    rule. Families with equal keys make the same interpreted launches on the same inputs."""
    b = cfgmod._bucket(d["moe"], cfgmod.moe_bucket_m(d, m, experts, top_k))
    tiles = {k: cfgmod.split_options(v)[0] if isinstance(v, dict) else v for k, v in b.items() if k != "max_m"}
    return json.dumps([tiles, int(d.get("naive_sparsity", 4))], sort_keys=True)


class ForbiddenLaunch:
    """Stands in for a kernel a test must not launch: any launch fails the test with ``why``."""

    def __init__(self, why: str):
        self.why = why

    def __getitem__(self, grid):
        raise AssertionError(self.why)
