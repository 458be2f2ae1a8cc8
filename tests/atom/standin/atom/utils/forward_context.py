"""Stand-in for atom.utils.forward_context.AttentionMetaData (the fields the GDN path uses)."""
from dataclasses import dataclass
from typing import Any, Optional

import torch


@dataclass
class AttentionMetaData:
    cu_seqlens_q: torch.Tensor
    cu_seqlens_k: torch.Tensor
    max_seqlen_q: int
    max_seqlen_k: int
    context_lens: torch.Tensor
    block_tables: Optional[torch.Tensor] = None
    num_cached_tokens: Optional[torch.Tensor] = None
    gdn_metadata: Any = None
