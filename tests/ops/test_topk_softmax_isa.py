"""AOT AMDGCN of the one-launch MoE routing (rocm_enable.ops.topk_softmax, record
topk-softmax-code-object) for gfx1151 / gfx1100 / gfx1201, compiled through Triton's binder with
the arguments the launcher passes (bf16 router logits, fp32 weights, int32 ids and
token_expert_indices, contiguous): zero VGPR/SGPR spills, no scratch, within the arch's LDS.
Shapes: Qwen3.6-35B-A3B (256 experts, top-8), Qwen3-Next (512, top-10), a 128-expert top-8
model and 1024 experts (two waves), at decode (1 token, which Triton specialises) and 64 tokens;
with one appended shared expert (record fused-shared-expert) for the first two at decode."""
import pytest

from rocm_enable.gates.capabilities import capabilities_for
from rocm_enable.ops import aot
from rocm_enable.ops import topk_softmax as routing

ARCHS = ("gfx1151", "gfx1100", "gfx1201")
SHAPES = ((256, 8), (512, 10), (128, 8), (1024, 8))


def _compile(arch, experts, top_k, tokens, num_shared=0):
    import torch

    kernels = aot.load_compilable_kernels(routing.__file__, "topk_softmax_aot")
    meta = routing.launch_meta(experts, top_k)
    args = dict(
        logits_ptr=aot.fake_tensor(torch.bfloat16), weights_ptr=aot.fake_tensor(torch.float32),
        ids_ptr=aot.fake_tensor(torch.int32), token_expert_ptr=aot.fake_tensor(torch.int32),
        num_tokens=tokens, num_experts=experts, stride_lm=experts + num_shared, stride_le=1,
        stride_wm=top_k + num_shared, stride_wk=1, stride_im=top_k + num_shared, stride_ik=1,
        stride_tm=top_k, stride_tk=1, TOP_K=top_k, RENORMALIZE=True, BLOCK_E=meta["BLOCK_E"],
        BLOCK_K=meta["BLOCK_K"], NUM_SHARED=num_shared)
    k = aot.compile_for_arch(kernels.moe_topk_routing_kernel, args, {"num_warps": meta["num_warps"]}, arch)
    return aot.asm_metrics(k.asm["amdgcn"], k.metadata, arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_no_spills_no_scratch(arch):
    limit = capabilities_for(arch).lds_per_workgroup_kib * 1024
    rows = {(e, k, m): _compile(arch, e, k, m) for e, k in SHAPES for m in (1, 64)}
    # fused-shared-expert's launch (route_with_shared): the Qwen3.6 and Qwen3-Next shapes at decode
    rows.update({(e, k, 1, "shared"): _compile(arch, e, k, 1, num_shared=1) for e, k in SHAPES[:2]})
    bad = {key: r for key, r in rows.items()
           if r["spills"] or r["scratch"] or r["scratch_insts"] or r["lds"] > limit
           or not r["occupancy"]}
    assert not bad, bad
    assert all(r["vgpr"] and r["insts"] for r in rows.values())  # the metrics read real code
