"""Stand-in for atom.model_ops.attentions.gdn_attn: the GDN hybrid builder whose prepare_prefill
adds GDN metadata to the base builder's and, like ATOM's, never sets block_tables itself."""
from .aiter_attention import AiterAttentionMetadataBuilder


class GDNStateMixin:
    def prepare_gdn_metadata(self, batch, attn_metadata, is_prefill=False, *,
                             prepare_block_tables=True):
        """Stand-in: stages block tables (as ATOM's does) and returns the GDN part."""
        if prepare_block_tables:
            self.prepare_block_tables(batch)
        return {"num_prefills": batch.total_seqs_num_prefill, "is_prefill": is_prefill}


class GDNAttentionMetadataBuilder(GDNStateMixin, AiterAttentionMetadataBuilder):
    def prepare_prefill(self, batch):
        """Stand-in: base metadata plus GDN metadata; block_tables as the base left them."""
        attn_metadata, positions = super().prepare_prefill(batch)
        if batch.block_tables == []:
            attn_metadata.gdn_metadata = None
            return attn_metadata, positions
        attn_metadata.gdn_metadata = self.prepare_gdn_metadata(batch, attn_metadata,
                                                               is_prefill=True)
        return attn_metadata, positions
