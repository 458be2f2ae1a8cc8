"""Which kernel vLLM's packed GDN decode (fused_recurrent_gated_delta_rule_packed_decode as
qwen_gdn_linear_attn calls it) launches, and with how many value rows per program, once the plugin
is loaded, under simulated archs: rocm_enable's kernel with 8 rows on wave32 RDNA at the
Qwen3-Next / Qwen3.6 shape; vLLM's kernel with its 32 rows elsewhere, for key heads above 128, and
with the fix disabled.

The snippet runs in tests/gdn/test_gdn_selection.py's processes, beside the prefill's (one simulated
vLLM per arch instead of two); tests/patches/equivalence.py runs it on the patched tree."""

DECIDE = """
import torch
import vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn as layer
from rocm_enable.ops.launch_recorder import recorded_launches

# vLLM's kernel; rocm_enable's, also as its copy in vLLM's tree where the source patch series carries it
WHO = {"fused_recurrent_gated_delta_rule_packed_decode_kernel": "vllm", "gdn_packed_decode_kernel": "rdna"}

def run(K):
    B, H, HV, V = 4, 16, 32, 128
    state = torch.zeros(9, HV, V, K)
    with recorded_launches() as launched:  # recorded, not run
        out, st = layer.fused_recurrent_gated_delta_rule_packed_decode(
            mixed_qkv=torch.zeros(B, 2 * H * K + HV * V, dtype=torch.bfloat16), a=torch.zeros(B, HV, dtype=torch.bfloat16),
            b=torch.zeros(B, HV, dtype=torch.bfloat16), A_log=torch.zeros(HV), dt_bias=torch.zeros(HV), scale=K ** -0.5,
            initial_state=state, out=torch.zeros(B, 1, HV, V, dtype=torch.bfloat16),
            ssm_state_indices=torch.arange(B, dtype=torch.int32), use_qk_l2norm_in_kernel=True)
    assert st is state and out.shape == (B, 1, HV, V)
    return [[WHO[launch.kernel], launch.kwargs["BV"]] for launch in launched]

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
