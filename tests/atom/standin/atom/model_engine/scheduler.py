"""Stand-in for atom.model_engine.scheduler.ScheduledBatch (a batch of pure-prefill sequences)."""
from dataclasses import dataclass, field


@dataclass
class ScheduledBatch:
    seq_lens: list                      # new tokens per sequence (no cached prefix)
    block_tables: list = field(default_factory=list)  # per sequence: physical KV block ids

    @property
    def total_seqs_num_prefill(self):
        return len(self.seq_lens)

    @property
    def total_tokens_num_prefill(self):
        return sum(self.seq_lens)
