"""Which kernel vLLM's packed GDN decode (fused_recurrent_gated_delta_rule_packed_decode as
qwen_gdn_linear_attn calls it) launches, and with how many value rows per program, once the plugin
is loaded, under simulated archs: rocm_enable's kernel with 8 rows on wave32 RDNA at the
Qwen3-Next / Qwen3.6 shape; vLLM's kernel with its 32 rows elsewhere, for key heads above 128, and
with the fix disabled.

The snippet runs in tests/gdn/test_gdn_selection.py's processes, beside the prefill's (one simulated
vLLM per arch instead of two); tests/patches/equivalence.py runs it on the patched tree."""

DECIDE = """
import importlib, importlib.util
import torch
import vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn as layer
import vllm.third_party.flash_linear_attention.ops.fused_recurrent as fr

seen = []

class Spy:
    def __init__(self, who):
        self.who = who
    def __getitem__(self, grid):
        def launch(*a, **kw):
            seen.append([self.who, kw["BV"]])
        return launch

fr.fused_recurrent_gated_delta_rule_packed_decode_kernel = Spy("vllm")
# rocm_enable's kernel, and its copy in vLLM's tree where the source patch series carries it
for name in ("rocm_enable.ops.gdn_kernels", "vllm.third_party.flash_linear_attention.ops.rocm_rdna_gdn_kernels"):
    if importlib.util.find_spec(name) is not None:
        importlib.import_module(name).gdn_packed_decode_kernel = Spy("rdna")

def run(K):
    B, H, HV, V = 4, 16, 32, 128
    state = torch.zeros(9, HV, V, K)
    seen.clear()
    out, st = layer.fused_recurrent_gated_delta_rule_packed_decode(
        mixed_qkv=torch.zeros(B, 2 * H * K + HV * V, dtype=torch.bfloat16), a=torch.zeros(B, HV, dtype=torch.bfloat16),
        b=torch.zeros(B, HV, dtype=torch.bfloat16), A_log=torch.zeros(HV), dt_bias=torch.zeros(HV), scale=K ** -0.5,
        initial_state=state, out=torch.zeros(B, 1, HV, V, dtype=torch.bfloat16),
        ssm_state_indices=torch.arange(B, dtype=torch.int32), use_qk_l2norm_in_kernel=True)
    assert st is state and out.shape == (B, 1, HV, V)
    return list(seen)

def decide():
    return {"K128": run(128), "K256": run(256)}

before = decide()
import vllm.plugins; vllm.plugins.load_general_plugins()
result = {"before": before, "after": decide()}
"""

VLLM = {"K128": [["vllm", 32]], "K256": [["vllm", 32]]}


def check_rdna(out):
    """Wave32 RDNA: rocm_enable's kernel with 8 rows at K = 128, vLLM's launch at K = 256."""
    assert out["before"] == VLLM
    assert out["after"] == {"K128": [["rdna", 8]], "K256": [["vllm", 32]]}
