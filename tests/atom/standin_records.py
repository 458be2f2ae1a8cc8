"""Child-process side of the ATOM tests (imported inside run_python snippets, with the stand-ins
of tests/atom/standin on PYTHONPATH; see standin/README.md).

The real `atom-*` records are anchored to ATOM's source at the pinned commit, so they do not
match the stand-ins (and must skip: fail closed). `use_standin_anchors()` swaps in test-only
copies that are identical except that their anchors are the stand-ins' fingerprints, so the same
wrappers can be shown working on code of the same shape."""
from __future__ import annotations

import dataclasses
import types

import rocm_enable.stacks.atom as atom_stack
from rocm_enable.engine.anchors import target_fingerprint

REAL_FIXES = atom_stack.FIXES


def standin_copy(fix):
    return dataclasses.replace(fix, patches=tuple(
        dataclasses.replace(p, anchors={"stand-in": target_fingerprint(p.target)})
        for p in fix.patches))


def use_standin_anchors() -> None:
    atom_stack.FIXES = tuple(standin_copy(f) for f in REAL_FIXES)  # read by the hookimpl per call


def _attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except Exception as exc:  # the failure the fix removes, reported to the test
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}


def _hip_launches():
    from aiter._hip import LAUNCHES

    return len(LAUNCHES)


def gemma_rms_norm() -> dict:
    import torch
    from atom.model_ops.layernorm import GemmaRMSNorm

    torch.manual_seed(0)
    norm = GemmaRMSNorm(64, eps=1e-6)
    norm.weight.data.normal_()
    x, res = torch.randn(5, 64), torch.randn(5, 64)
    ref = GemmaRMSNorm.forward_static(norm.weight.data, 1e-6, x, None)
    ref_res = GemmaRMSNorm.forward_static(norm.weight.data, 1e-6, x, res)

    class Block(torch.nn.Module):  # a parent module, compiled as ATOM compiles its models
        def __init__(self):
            super().__init__()
            self.norm = norm

        def forward(self, h):
            return self.norm(h) * 2

    launches = _hip_launches()
    out = {
        "plain": _attempt(lambda: float((norm(x) - ref).abs().max())),
        "residual": _attempt(lambda: float(max((a - b).abs().max()
                                               for a, b in zip(norm(x, res), ref_res)))),
        "compiled": _attempt(lambda: float((torch.compile(Block(), backend="eager", fullgraph=True)(x)
                                            - 2 * ref).abs().max())),
        "forward_bound_on_instance": "forward" in vars(norm),
    }
    out["hip_launches"] = _hip_launches() - launches
    return out


def silu_and_mul() -> dict:
    import torch
    import torch.nn.functional as F
    from aiter import QuantType
    from atom.model_ops.activation import SiluAndMul

    x = torch.randn(4, 32)
    ref = F.silu(x[:, :16]) * x[:, 16:]
    quant = types.SimpleNamespace
    launches = _hip_launches()
    plain = SiluAndMul()
    fp8_block = SiluAndMul(fused_quant=True, quant_config=quant(quant_type=QuantType.per_1x128,
                                                                 quant_dtype="fp8"))
    mxfp4 = SiluAndMul(fused_quant=True, quant_config=quant(quant_type=QuantType.per_1x32,
                                                             quant_dtype="fp4x2"))
    scale = torch.ones(1)
    out = {
        "plain": _attempt(lambda: float((plain(x) - ref).abs().max())),
        "fused_no_scale": _attempt(lambda: float((fp8_block(x) - ref).abs().max())),
        "fused_static_scale": _attempt(lambda: fp8_block(x, scale)[0]),
        "mxfp4": _attempt(lambda: mxfp4(x)[0]),
        "forward_bound_on_instance": "forward" in vars(plain),
    }
    out["hip_launches"] = _hip_launches() - launches
    return out


def gdn_prefill(unified: bool) -> dict:
    """Pure prefill of two sequences through the GDN builder and the full-attention layer."""
    import os

    import torch
    from atom.model_engine.scheduler import ScheduledBatch
    from atom.model_ops.attention_mha import prefill_attention_triton
    from atom.model_ops.attentions.gdn_attn import GDNAttentionMetadataBuilder

    os.environ["ATOM_USE_UNIFIED_ATTN"] = "1" if unified else "0"
    torch.manual_seed(0)
    block_size, heads, dim = 4, 2, 8
    batch = ScheduledBatch(seq_lens=[3, 6], block_tables=[[2], [0, 3]])
    builder = GDNAttentionMetadataBuilder(types.SimpleNamespace(forward_vars={}))
    meta, _ = builder.prepare_prefill(batch)
    total = sum(batch.seq_lens)
    q, k, v = (torch.randn(total, heads, dim) for _ in range(3))
    # the paged cache the layer's rope_cache step would have written (used under unified attn)
    k_cache = torch.zeros(5, block_size, heads, dim)
    v_cache = torch.zeros_like(k_cache)
    start = 0
    for n, blocks in zip(batch.seq_lens, batch.block_tables):
        for t in range(n):
            k_cache[blocks[t // block_size], t % block_size] = k[start + t]
            v_cache[blocks[t // block_size], t % block_size] = v[start + t]
        start += n
    scale = dim ** -0.5
    ref, start = [], 0
    for n in batch.seq_lens:
        s = slice(start, start + n)
        ref.append(torch.nn.functional.scaled_dot_product_attention(
            q[s].transpose(0, 1), k[s].transpose(0, 1), v[s].transpose(0, 1), is_causal=True,
            scale=scale).transpose(0, 1))
        start += n
    ref = torch.cat(ref)
    return {
        "block_tables_none": meta.block_tables is None,
        "attention": _attempt(lambda: float((prefill_attention_triton(
            q, k, v, k_cache, v_cache, meta, scale) - ref).abs().max())),
    }


def scenarios() -> dict:
    return {"norm": gemma_rms_norm(), "silu": silu_and_mul(),
            "gdn": gdn_prefill(unified=False), "gdn_unified": gdn_prefill(unified=True)}


def atom_rows() -> dict:
    from rocm_enable.runtime import activate

    return {r.name: [r.status, r.reason] for r in activate().results if r.stack == "atom"}
