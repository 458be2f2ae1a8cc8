"""aiter-gdn-triton-decode: vLLM's real GDN decode choice (GDN_AITER_TRITON_AVAILABLE, read when
qwen_gdn_linear_attn is imported) under simulated archs, with and without the plugin.

aiter is not installable here. tests/gates/fakeaiter is a STAND-IN package, put on PYTHONPATH by
this test only: it contains just the module names vLLM probes (aiter.ops.triton.* GDN modules); no
aiter kernel is executed or compiled by these tests."""
import os

import pytest
from packaging.version import Version

from shared_sim import ON_ONE_WORKER, run_shared
from sim_harness import run_python

pytestmark = pytest.mark.vllm_sim
FAKE_AITER = os.path.join(os.path.dirname(__file__), "fakeaiter")


def rdna_switch_is_vllms(vllm) -> bool:
    """vLLM 0.34.0 made is_rdna_aiter_enabled() on_rdna() (gfx11 and gfx12): the GDN decode check,
    the unified-attention offer and the op registrations became vLLM's own there."""
    return Version(vllm.version) >= Version("0.34.0")

# One fresh simulated process answers the GDN decode, RoPE and op-registration questions of one
# (arch, vLLM, plugin, environment): each is decided at import (GDN_AITER_TRITON_AVAILABLE when
# qwen_gdn_linear_attn is imported, vLLM's ops registered when vllm._aiter_ops is imported, the
# plugin's after them), so each needs a fresh interpreter, but not one each. VLLM_ROCM_USE_AITER_
# TRITON_ROPE (on for the RoPE questions) is read only by rocm_aiter_ops' RoPE switch
# (_TRITON_ROTARY_EMBED), not by the GDN or registration decisions.
PROBE = """
import torch
from vllm.config import CompilationConfig, VllmConfig, set_current_vllm_config
if os.environ.get("LOAD_PLUGIN") == "1":
    import vllm.plugins; vllm.plugins.load_general_plugins()
from vllm._aiter_ops import rocm_aiter_ops  # register_ops_once runs here
widen = {"fusion_op_registered": hasattr(torch.ops.vllm, "rocm_aiter_rmsnorm_fp8_group_quant")}
import vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn as gdn
decide = {"gdn_aiter_triton": gdn.GDN_AITER_TRITON_AVAILABLE,
          "rdna_aiter_enabled": rocm_aiter_ops.is_rdna_aiter_enabled(),
          "hip_umbrella": bool(rocm_aiter_ops.is_enabled())}
from vllm.model_executor.layers.rotary_embedding.base import RotaryEmbedding
with set_current_vllm_config(VllmConfig(compilation_config=CompilationConfig(custom_ops=["+rotary_embedding"]))):
    rope = RotaryEmbedding(256, 64, 4096, 10000000, True, torch.bfloat16)
    op = getattr(rope, "rocm_aiter_triton_rotary_embedding", None)
rope = {"use_aiter": bool(rope.use_aiter), "op": str(op) if op is not None else None,
        "op_has_gpu_kernel": torch._C._dispatch_has_kernel_for_dispatch_key(
            "vllm::rocm_aiter_triton_rotary_embedding", "CUDA")
        if hasattr(torch.ops.vllm, "rocm_aiter_triton_rotary_embedding") else False}
result = {"decide": decide, "widen": widen, "rope": rope}
"""


@pytest.fixture(scope="module")
def probe():
    """probe(arch, vllm, plugin, **env) -> PROBE's result, one process per distinct call in this
    module (module scope: tests/conftest.py runs the module on one xdist worker)."""
    answers = {}

    def run(arch, vllm, plugin, **env):
        base = {"PYTHONPATH": os.pathsep.join(p for p in (vllm.pythonpath, FAKE_AITER) if p),
                "VLLM_ROCM_USE_AITER": "1", "VLLM_ROCM_USE_AITER_TRITON_ROPE": "1",
                "LOAD_PLUGIN": "1" if plugin else "0"}
        base.update(env)
        key = (arch, vllm.version, vllm.pythonpath, tuple(sorted(base.items())))
        if key not in answers:
            answers[key] = run_python(PROBE, arch=arch, vllm=None, env=base)["result"]
        return answers[key]
    return run


def decide(probe, arch, vllm, plugin, **env):
    return probe(arch, vllm, plugin, **env)["decide"]


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100"])
def test_gfx11_gets_aiter_triton_gdn_decode(arch, vllm_under_test, probe):
    before = decide(probe, arch, vllm_under_test, plugin=False)
    after = decide(probe, arch, vllm_under_test, plugin=True)
    assert after["gdn_aiter_triton"] is True
    assert after["hip_umbrella"] is False               # no gfx9 HIP/CK kernel is reachable
    if rdna_switch_is_vllms(vllm_under_test):
        # fixed upstream (the record is not applicable): vLLM's own answer, nothing changed
        assert before == after and before["rdna_aiter_enabled"] is True
    else:
        assert before["gdn_aiter_triton"] is False      # vLLM: RDNA4 only
        assert after["rdna_aiter_enabled"] is False     # the broad RDNA switch is not widened


def test_aiter_env_off_keeps_fla(vllm_under_test, probe):
    after = decide(probe, "gfx1151", vllm_under_test, plugin=True, VLLM_ROCM_USE_AITER="0")
    assert after["gdn_aiter_triton"] is False


@pytest.mark.parametrize("arch", ["gfx1201", "gfx942", "gfx950"])
def test_other_archs_unchanged(arch, vllm_under_test, probe):
    assert decide(probe, arch, vllm_under_test, plugin=False) == decide(probe, arch, vllm_under_test, plugin=True)


def test_disable_toggle_restores_vllm(vllm_under_test, probe):
    after = decide(probe, "gfx1151", vllm_under_test, plugin=True, ROCM_ENABLE_DISABLE="aiter-gdn-triton-decode")
    assert after["gdn_aiter_triton"] is rdna_switch_is_vllms(vllm_under_test)  # vLLM's own answer


@pytest.mark.parametrize("arch,registered", [("gfx1201", True), ("gfx1151", False)])
def test_widening_rdna_switch_is_unsafe(arch, registered, vllm_under_test, probe):
    """Why B3/A10 (aiter unified attention), B4 and the fusion passes are not widened to gfx11:
    the rocm_aiter_* ops that rocm_aiter_fusion's pattern classes look up at class creation
    (imported by pass_manager whenever is_rdna_aiter_enabled() holds) are registered only on
    CDNA3+/RDNA4, at vllm._aiter_ops import. (The simulation cannot import rocm_aiter_fusion
    itself: its other imports need vLLM's compiled _C.)"""
    out = probe(arch, vllm_under_test, plugin=False)["widen"]  # at vllm._aiter_ops import, no plugin
    # vLLM 0.34.0 registers them on every RDNA arch itself (and widens its switch with them)
    assert out["fusion_op_registered"] is (registered or rdna_switch_is_vllms(vllm_under_test))


# ---- aiter-unified-attention-rdna (B3/A10) ---------------------------------------------------

SELECT = """
import torch
from vllm.config import VllmConfig, set_current_vllm_config
from vllm.platforms import current_platform
from vllm.utils.import_utils import resolve_obj_by_qualname
from vllm.v1.attention.selector import AttentionSelectorConfig
# Qwen3-Next / Qwen3.6 full attention: head 256, hybrid KV page 544; an fp8 KV cache (which
# rocm_enable's RDNA backend does not take); a plain head-128 layer.
CASES = {"qwen3-next/bf16/b544": (256, torch.bfloat16, "auto", 544),
         "qwen3-next/fp8kv/b544": (256, torch.bfloat16, "fp8", 544),
         "head128/bf16/b16": (128, torch.bfloat16, "auto", 16)}
def decide():
    out = {}
    for key, (hd, dt, kv, bs) in CASES.items():
        cfg = AttentionSelectorConfig(head_size=hd, dtype=dt, kv_cache_dtype=kv, block_size=bs)
        out[key] = resolve_obj_by_qualname(current_platform.get_attn_backend_cls(None, cfg)).get_name()
    # the ranked valid backends vLLM's selector chooses from (head 256, bf16, page 544)
    valid, _ = current_platform.get_valid_backends(
        current_platform.get_device_capability(),
        AttentionSelectorConfig(head_size=256, dtype=torch.bfloat16, kv_cache_dtype="auto", block_size=544))
    out["priorities"] = [b.name for b, _ in sorted(valid, key=lambda bp: bp[1])]
    return out
with set_current_vllm_config(VllmConfig()):
    before = decide()
    if os.environ.get("LOAD_PLUGIN") == "1":
        import vllm.plugins; vllm.plugins.load_general_plugins()
    after = decide()
from vllm._aiter_ops import rocm_aiter_ops
result = {"before": before, "after": after, "rdna_switch_after": rocm_aiter_ops.is_rdna_aiter_enabled()}
"""
UA = "ROCM_AITER_UNIFIED_ATTN"


def select(arch, vllm, aiter=FAKE_AITER, **env):
    base = {"PYTHONPATH": os.pathsep.join(p for p in (vllm.pythonpath, aiter) if p),
            "VLLM_ROCM_USE_AITER": "1", "LOAD_PLUGIN": "1"}
    base.update(env)
    return run_shared(SELECT, arch=arch, vllm=None, env=base)["result"]


@ON_ONE_WORKER
@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100"])
def test_gfx11_offers_aiter_unified_attention(arch, vllm_under_test):
    out = select(arch, vllm_under_test, ROCM_ENABLE_DISABLE="rdna-attention")
    if rdna_switch_is_vllms(vllm_under_test):
        # vLLM offers it on gfx11 itself, after its default backend on purpose: its ranking stands
        assert UA in out["before"]["priorities"] and out["before"]["priorities"][0] != UA
        assert out["after"] == out["before"]
        return
    assert UA not in out["before"]["priorities"]                     # vLLM: RDNA4 only (A10)
    assert out["before"]["qwen3-next/bf16/b544"] == out["before"]["qwen3-next/fp8kv/b544"] == "ROCM_ATTN"
    assert out["after"]["priorities"][0] == UA                        # ranked as vLLM ranks it on RDNA4
    assert {out["after"][k] for k in ("qwen3-next/bf16/b544", "qwen3-next/fp8kv/b544", "head128/bf16/b16")} == {UA}
    assert out["rdna_switch_after"] is False                          # the global switch is not widened


@ON_ONE_WORKER
def test_with_rdna_attention_it_serves_what_ours_does_not(vllm_under_test):
    out = select("gfx1151", vllm_under_test)
    if rdna_switch_is_vllms(vllm_under_test):
        assert out["after"]["priorities"][0] == "ROCM_RDNA_ATTN" and UA in out["after"]["priorities"]
        assert out["after"]["qwen3-next/bf16/b544"] == "ROCM_RDNA_ATTN"
        return
    assert out["after"]["priorities"][:2] == ["ROCM_RDNA_ATTN", UA]
    assert out["after"]["qwen3-next/bf16/b544"] == "ROCM_RDNA_ATTN"
    # fp8 (e4m3) KV is served by ours too since the RDNA backend decodes it (issue 16): aiter's
    # backend stays the runner-up in the ranking above, for what ours refuses
    assert out["after"]["qwen3-next/fp8kv/b544"] == "ROCM_RDNA_ATTN"   # was ROCM_ATTN
    assert out["before"]["qwen3-next/fp8kv/b544"] == "ROCM_ATTN"


@ON_ONE_WORKER
def test_unified_attention_needs_aiter_env_and_module(vllm_under_test, tmp_path):
    off = select("gfx1151", vllm_under_test, VLLM_ROCM_USE_AITER="0", ROCM_ENABLE_DISABLE="rdna-attention")
    assert UA not in off["after"]["priorities"]
    (tmp_path / "aiter").mkdir()
    (tmp_path / "aiter" / "__init__.py").write_text("")  # an aiter without the Triton unified attention
    bare = select("gfx1151", vllm_under_test, aiter=str(tmp_path), ROCM_ENABLE_DISABLE="rdna-attention")
    if rdna_switch_is_vllms(vllm_under_test):
        assert bare["after"] == bare["before"]  # the ranking is vLLM's own there
    else:
        assert UA not in bare["after"]["priorities"]


@ON_ONE_WORKER
@pytest.mark.parametrize("arch", ["gfx1201", "gfx942", "gfx950"])
def test_unified_attention_other_archs_unchanged(arch, vllm_under_test):
    out = select(arch, vllm_under_test, ROCM_ENABLE_DISABLE="rdna-attention")
    assert out["after"] == out["before"]
    if arch == "gfx1201":
        assert out["before"]["priorities"][0] == UA                   # vLLM's own RDNA4 ranking


@ON_ONE_WORKER
def test_unified_attention_disable_restores_vllm(vllm_under_test):
    out = select("gfx1151", vllm_under_test,
                 ROCM_ENABLE_DISABLE="rdna-attention,aiter-unified-attention-rdna")
    assert out["after"] == out["before"]
    assert (UA in out["after"]["priorities"]) is rdna_switch_is_vllms(vllm_under_test)


IMPL = """
import torch
from vllm.config import VllmConfig, set_current_vllm_config
if os.environ.get("LOAD_PLUGIN") == "1":
    import vllm.plugins; vllm.plugins.load_general_plugins()
from vllm.v1.attention.backends.rocm_aiter_unified_attn import RocmAiterUnifiedAttentionImpl
with set_current_vllm_config(VllmConfig()):
    impl = RocmAiterUnifiedAttentionImpl(16, 256, 256 ** -0.5, 2, None, None, "auto")
result = {"aiter_kernel": impl.unified_attention.__module__,
          "mrope_kvcache_fusion": bool(impl.fused_qk_norm_mrope_kvcache_supported()),
          "rope_kvcache_fusion": bool(impl.fused_rope_kvcache_supported()),
          "qk_norm_rope_kvcache_fusion": bool(impl.fused_qk_norm_rope_kvcache_supported()),
          "quant_query": impl.supports_quant_query_input}
"""


@ON_ONE_WORKER
@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100"])
def test_unified_attention_impl_uses_no_aiter_hip_kernel(arch, vllm_under_test):
    """What the backend needs at construction: aiter's Triton kernel (imported), no fusion hook
    that hands a pass aiter's HIP kernel (the MRoPE+KV-cache one answered IS_AITER_FOUND)."""
    env = {"PYTHONPATH": os.pathsep.join(p for p in (vllm_under_test.pythonpath, FAKE_AITER) if p),
           "VLLM_ROCM_USE_AITER": "1"}
    before = run_shared(IMPL, arch=arch, vllm=None, env={**env, "LOAD_PLUGIN": "0"})["result"]
    after = run_shared(IMPL, arch=arch, vllm=None, env={**env, "LOAD_PLUGIN": "1"})["result"]
    assert before["aiter_kernel"] == after["aiter_kernel"] == "aiter.ops.triton.unified_attention"
    assert before["mrope_kvcache_fusion"] is True and after["mrope_kvcache_fusion"] is False
    assert not after["rope_kvcache_fusion"] and not after["qk_norm_rope_kvcache_fusion"]
    assert after["quant_query"] is False                              # vLLM's own gfx11 rule


# ---- aiter-triton-rope (G5) ----------------------------------------------------------------

def rope(probe, arch, vllm, plugin, **env):
    return probe(arch, vllm, plugin, **env)["rope"]


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100", "gfx1201"])
def test_rdna_gets_aiter_triton_rope(arch, vllm_under_test, probe):
    before = rope(probe, arch, vllm_under_test, plugin=False)
    after = rope(probe, arch, vllm_under_test, plugin=True)
    assert before["use_aiter"] is False                               # CDNA3+ umbrella (G5)
    # registered on RDNA4 only; vLLM 0.34.0 registers it on every RDNA arch (the switch stays off)
    assert before["op_has_gpu_kernel"] is (arch == "gfx1201" or rdna_switch_is_vllms(vllm_under_test))
    assert after["use_aiter"] is True and after["op_has_gpu_kernel"] is True
    assert after["op"] == "vllm.rocm_aiter_triton_rotary_embedding.default"


def test_rope_env_still_decides(vllm_under_test, probe):
    assert rope(probe, "gfx1151", vllm_under_test, plugin=True, VLLM_ROCM_USE_AITER_TRITON_ROPE="0")["use_aiter"] is False
    assert rope(probe, "gfx1151", vllm_under_test, plugin=True, VLLM_ROCM_USE_AITER="0")["use_aiter"] is False


@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
def test_rope_cdna_unchanged(arch, vllm_under_test, probe):
    assert rope(probe, arch, vllm_under_test, plugin=False) == rope(probe, arch, vllm_under_test, plugin=True)


def test_rope_disable_restores_vllm(vllm_under_test, probe):
    out = rope(probe, "gfx1151", vllm_under_test, plugin=True, ROCM_ENABLE_DISABLE="aiter-triton-rope")
    assert out == rope(probe, "gfx1151", vllm_under_test, plugin=False)
