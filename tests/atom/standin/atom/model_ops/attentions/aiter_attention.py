"""Stand-in for atom.model_ops.attentions.aiter_attention.AiterAttentionMetadataBuilder: pure
prefill metadata with block_tables=None, except that under ATOM_USE_UNIFIED_ATTN it uploads the
real tables (as ATOM main does since #1738)."""
import torch

from atom.utils import CpuGpuBuffer, envs
from atom.utils.forward_context import AttentionMetaData


class AiterAttentionMetadataBuilder:
    def __init__(self, model_runner):
        """Stand-in: keeps the runner whose forward_vars hold the staging buffers."""
        self.model_runner = model_runner
        model_runner.forward_vars.setdefault("block_tables", CpuGpuBuffer(64, 64))

    def prepare_block_tables(self, batch):
        """Stand-in: stage the batch's block tables in forward_vars['block_tables']."""
        buf = self.model_runner.forward_vars["block_tables"]
        buf.cpu.zero_()
        for i, row in enumerate(batch.block_tables):
            buf.cpu[i, : len(row)] = torch.tensor(row, dtype=torch.int32)

    def prepare_prefill(self, batch):
        """Stand-in: cu_seqlens, context lens and positions of a pure prefill."""
        lens = torch.tensor(batch.seq_lens, dtype=torch.int32)
        cu = torch.zeros(len(lens) + 1, dtype=torch.int32)
        cu[1:] = torch.cumsum(lens, 0)
        meta = AttentionMetaData(cu_seqlens_q=cu, cu_seqlens_k=cu.clone(),
                                 max_seqlen_q=int(lens.max()), max_seqlen_k=int(lens.max()),
                                 context_lens=lens)
        if envs.ATOM_USE_UNIFIED_ATTN and batch.block_tables:
            self.prepare_block_tables(batch)
            meta.block_tables = self.model_runner.forward_vars["block_tables"].copy_to_gpu(
                batch.total_seqs_num_prefill)
        positions = torch.cat([torch.arange(n) for n in batch.seq_lens])
        return meta, positions
