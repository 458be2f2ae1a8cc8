"""fp8-lm-head under vLLM's real code on a simulated arch: vLLM's own ParallelLMHead / embedding /
LogitsProcessor, weights loaded through their weight_loader, process_weights_after_loading as the
model loader calls it. Off by default (vLLM's logits bit for bit, doctor names the toggle); with
ROCM_ENABLE_FP8_LM_HEAD=1 on a gfx11 arch the untied head holds e4m3 bytes and its logits come from
the W8A16 kernel (Triton's interpreter here), the tied head and the embedding stay BF16; on an arch
with FP8 compute it does not apply."""
import pytest

from sim_harness import run_python

pytestmark = pytest.mark.vllm_sim

BODY = """
import socket, torch, vllm.plugins
from vllm.config import VllmConfig, set_current_vllm_config
from vllm.distributed import init_distributed_environment, initialize_model_parallel
from vllm.model_executor.layers.logits_processor import LogitsProcessor
from vllm.model_executor.layers.vocab_parallel_embedding import (ParallelLMHead, UnquantizedEmbeddingMethod,
                                                                 VocabParallelEmbedding)
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
with set_current_vllm_config(VllmConfig()):
    init_distributed_environment(world_size=1, rank=0, local_rank=0,
                                 distributed_init_method=f"tcp://127.0.0.1:{port}", backend="gloo")
    initialize_model_parallel(1)
V, H = 4000, 256  # vLLM pads the vocab to 4032: the last 128-row block is partial
g = torch.Generator().manual_seed(0)
W = (torch.randn(V, H, generator=g) * 0.25).bfloat16()
E = torch.randn(V, H, generator=g).bfloat16()
x = torch.randn(5, H, generator=g).bfloat16()
ids = torch.tensor([0, 17, 3999])

def run():
    with set_current_vllm_config(VllmConfig()):
        embed = VocabParallelEmbedding(V, H, params_dtype=torch.bfloat16)
        head = ParallelLMHead(V, H, params_dtype=torch.bfloat16)
        tied = ParallelLMHead(V, H, params_dtype=torch.bfloat16).tie_weights(embed)
        lp = LogitsProcessor(V)
        embed.weight_loader(embed.weight, E)
        head.weight_loader(head.weight, W)
        for m in (embed, head, tied):
            m.quant_method.process_weights_after_loading(m)
        return {"head_dtype": str(head.weight.dtype), "tied_dtype": str(tied.weight.dtype),
                "embed_dtype": str(embed.weight.dtype),
                "logits": lp(head, x).float(), "tied_logits": lp(tied, x).float(),
                "rows": embed(ids).float()}

before = run()
vllm.plugins.load_general_plugins()
after = run()
from rocm_enable.cli import doctor_report
fix = next(f for f in doctor_report(None)["fixes"] if f["name"] == "fp8-lm-head")
ref = x.double() @ W.double().T
result = {
    "fix": fix,
    "apply_wrapped": hasattr(UnquantizedEmbeddingMethod.__dict__["apply"], "__wrapped__"),
    "before": {k: v for k, v in before.items() if k.endswith("dtype")},
    "after": {k: v for k, v in after.items() if k.endswith("dtype")},
    "logits_identical": bool(torch.equal(before["logits"], after["logits"])),
    "tied_identical": bool(torch.equal(before["tied_logits"], after["tied_logits"])),
    "rows_identical": bool(torch.equal(before["rows"], after["rows"])),
    "shape": list(after["logits"].shape),
    "rel_err": ((after["logits"].double() - ref).norm() / ref.norm()).item(),
    "argmax_agree": (after["logits"].argmax(1) == ref.argmax(1)).float().mean().item(),
}
"""
ENV = {"TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}


def test_off_by_default_vllm_unchanged_and_doctor_names_the_toggle(vllm_under_test):
    out = run_python(BODY, arch="gfx1151", vllm=vllm_under_test, env=ENV)["result"]
    assert out["fix"]["status"] == "disabled"
    assert "ROCM_ENABLE_FP8_LM_HEAD=1" in out["fix"]["reason"] and "off by default" in out["fix"]["reason"]
    assert not out["apply_wrapped"]
    assert out["after"] == out["before"] == {"head_dtype": "torch.bfloat16", "tied_dtype": "torch.bfloat16",
                                             "embed_dtype": "torch.bfloat16"}
    assert out["logits_identical"] and out["tied_identical"] and out["rows_identical"]


def test_opted_in_on_gfx1151_quantizes_the_untied_head_only(vllm_under_test):
    out = run_python(BODY, arch="gfx1151", vllm=vllm_under_test,
                     env={**ENV, "ROCM_ENABLE_FP8_LM_HEAD": "1"})["result"]
    assert out["fix"]["status"] == "applied", out["fix"]
    assert out["apply_wrapped"]
    assert out["after"] == {"head_dtype": "torch.float8_e4m3fn", "tied_dtype": "torch.bfloat16",
                            "embed_dtype": "torch.bfloat16"}
    assert out["shape"] == [5, 4000]  # padding rows dropped by vLLM's LogitsProcessor as before
    assert not out["logits_identical"]
    assert 0.01 < out["rel_err"] < 0.035  # the FP8 head's error (test_fp8_lm_head_numerics.py)
    assert out["tied_identical"] and out["rows_identical"]


def test_opted_in_on_an_fp8_compute_arch_does_not_apply(vllm_under_test):
    out = run_python(BODY, arch="gfx1201", vllm=vllm_under_test,
                     env={**ENV, "ROCM_ENABLE_FP8_LM_HEAD": "1"})["result"]
    assert out["fix"]["status"] == "not-applicable"
    assert out["after"]["head_dtype"] == "torch.bfloat16" and out["logits_identical"]
