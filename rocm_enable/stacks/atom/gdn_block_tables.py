"""Give ATOM's GDN (hybrid) prefill metadata the block_tables its full-attention layers read."""
from __future__ import annotations

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import aiter_hip_kernels_unsupported
from rocm_enable.stacks.atom.pin import PR_1314, VERSIONS, anchors


def _populate_block_tables(wrapped, instance, args, kwargs):
    attn_metadata, positions = wrapped(*args, **kwargs)
    if attn_metadata.block_tables is not None:
        return attn_metadata, positions
    import torch
    from atom.utils import envs

    batch = args[0] if args else kwargs["batch"]
    if envs.ATOM_USE_UNIFIED_ATTN and batch.block_tables:
        # Real per-sequence tables: prepare_gdn_metadata() already ran prepare_block_tables(batch)
        # into forward_vars. (At the pinned commit the base builder fills this case itself; the
        # branch keeps the fix right on the PR's base too.)
        attn_metadata.block_tables = instance.model_runner.forward_vars[
            "block_tables"].copy_to_gpu(batch.total_seqs_num_prefill)
    else:
        # Pure prefill on raw K/V viewed as a block_size=1 cache, as TritonMHAMetadataBuilder does:
        # row i = cu_seqlens_k[i] + [0, max_seqlen_k).
        cu_k = attn_metadata.cu_seqlens_k
        offsets = cu_k[: cu_k.shape[0] - 1]
        attn_metadata.block_tables = offsets.unsqueeze(1) + torch.arange(
            attn_metadata.max_seqlen_k, dtype=torch.int32, device=cu_k.device)
    return attn_metadata, positions


GDN_PREFILL_BLOCK_TABLES = Fix(
    name="atom-gdn-prefill-block-tables",
    title="ATOM GDN metadata builder: populate block_tables for pure prefill",
    stack="atom",
    patches=(
        Patch("atom.model_ops.attentions.gdn_attn:GDNAttentionMetadataBuilder.prepare_prefill",
              _populate_block_tables, anchors("db0f7955de80871e")),
    ),
    condition=aiter_hip_kernels_unsupported,
    versions=VERSIONS,
    why=(
        "Hybrid models (Qwen3-Next, Qwen3.5/3.6) build one metadata object for GDN and their "
        "interleaved full-attention layers. Where aiter's HIP/CK attention is unavailable those "
        "layers prefill with aiter's Triton unified_attention, which reads block_table even for a "
        "pure prefill; GDNAttentionMetadataBuilder.prepare_prefill leaves it None (only "
        "TritonMHAMetadataBuilder builds one), so prefill fails with \"'NoneType' object has no "
        "attribute 'stride'\"."
    ),
    how=(
        "Wrap GDNAttentionMetadataBuilder.prepare_prefill; if block_tables is still None, set the "
        "real per-sequence tables under ATOM_USE_UNIFIED_ATTN (from forward_vars, already prepared "
        "by prepare_gdn_metadata), else the block_size=1 table over raw K/V that "
        "TritonMHAMetadataBuilder builds. ATOM's native engine path: in vLLM plugin mode vLLM's "
        "own GDN builder supplies block tables and this code does not run."
    ),
    upstream=(f"ATOM PR #1314 ({PR_1314}), commits 2516cb85b + ccb179f0d, gdn_attn.py; the "
              "unified-attention half reached main in #1738 (AiterAttentionMetadataBuilder)"),
    removal="when GDNAttentionMetadataBuilder.prepare_prefill never returns block_tables=None (PR #1314 merged)",
)

FIXES = (GDN_PREFILL_BLOCK_TABLES,)
