"""Qwen3-Next / Qwen3.6 MoE: the shared expert served as expert E of the W8A16 routed experts
(vLLM's fused shared expert, FSE), routed by one Triton launch.

vLLM builds FSE for every Qwen3NextSparseMoeBlock (Qwen3-Next, Qwen3-Coder-Next, Qwen3.5/3.6 MoE
and their MTP layers) but decides it only through `rocm_aiter_ops.is_fusion_moe_shared_experts_
enabled()` (gfx9 with aiter). With it the block builds no separate shared expert: the routed
experts get E + 1 local experts (`ExpertMapManager`), the model's loader renames
`mlp.shared_expert.*` to `mlp.experts.E.*` (`maybe_fuse_shared_experts`), and the MoE runner runs
the router gate and `shared_expert_gate` as one [E + 1, H] GEMM (`MoERunner._fse_fuse_gate`).
What it lacks off gfx9 is a router: `create_fused_moe_router` returns aiter's
`AiterSharedRoutedFusedMoERouter` only with aiter, else `FusedTopKRouter`, which would softmax
over the E + 1 logits.

This record decides FSE per block where the routed experts are rocm-enable's W8A16 experts and
supplies the router (`rocm_enable.ops.topk_softmax.route_with_shared`: top-k softmax over the
first E logits, then id E with weight sigmoid(gate logit), one launch). Not flipped globally:
`is_fusion_moe_shared_experts_enabled()` also steers aiter's experts and routers elsewhere.
"""
from __future__ import annotations

import functools
import logging

from rocm_enable.engine.calls import bound_arguments
from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import lacks_fp8_compute

log = logging.getLogger("vllm.rocm_enable")

NAME = "fused-shared-expert"
# the record whose W8A16 experts run the fused block, and the --moe-backend values it serves
EXPERTS_FIX = "fp8-moe-w8a16"
FUSED_MOE = "vllm.model_executor.layers.fused_moe"


def _aiter_fuses_shared_experts() -> bool:
    from vllm._aiter_ops import rocm_aiter_ops

    # decorated with if_aiter_supported: None where aiter cannot run
    return bool(rocm_aiter_ops.is_fusion_moe_shared_experts_enabled())


def _experts_skipped(quant_config, experts_prefix: str) -> bool:
    """Fp8Config.get_quant_method's test for unquantized (ignored) routed experts."""
    from vllm.model_executor.layers.quantization.utils.quant_utils import is_layer_skipped

    return is_layer_skipped(prefix=experts_prefix, ignored_layers=quant_config.ignored_layers,
                            fused_mapping=quant_config.packed_modules_mapping,
                            match_mode=quant_config.ignored_layers_match_mode)


def refusal(quant_config, prefix: str, shared_expert_name: str, text_config, parallel_config,
            moe_backend: str) -> str | None:
    """Why the MoE block at ``prefix`` keeps vLLM's separate shared expert; None: fuse it."""
    from rocm_enable.engine.apply import applied_names
    from rocm_enable.stacks.vllm.fp8_moe import USER_BACKENDS_SERVED

    if quant_config is None:
        # vLLM's TritonExperts align routes by the routed expert count: id E would be dropped.
        return "BF16 experts (vLLM's TritonExperts) are not fused: only the W8A16 experts were proven with E + 1"
    if EXPERTS_FIX not in applied_names():
        return f"{EXPERTS_FIX} is not applied, so the routed experts are not rocm-enable's W8A16 experts"
    if moe_backend not in USER_BACKENDS_SERVED:
        return f"--moe-backend {moe_backend} selects vLLM's experts"
    import vllm.envs as envs
    from vllm.model_executor.layers.quantization.utils.config_utils import (
        is_shared_expert_quant_fse_compatible,
    )

    # vLLM's own check: per-tensor FP8, another storage dtype, routed and shared experts ignored
    # differently, compressed-tensors (no branch for it) are refused there
    ok, why = is_shared_expert_quant_fse_compatible(
        quant_config, f"{prefix}.experts", f"{prefix}.{shared_expert_name}")
    if not ok:
        return why or "vLLM's FSE quantization check refuses it"
    if quant_config.get_name() != "fp8" or not quant_config.is_checkpoint_fp8_serialized:
        return f"{quant_config.get_name()} checkpoint: only FP8-serialized Fp8Config experts were proven"
    if _experts_skipped(quant_config, f"{prefix}.experts"):
        return "the checkpoint leaves the routed experts unquantized"
    if getattr(envs, "VLLM_FP8_MOE_REQUANT", "") == "mxfp4":
        return "VLLM_FP8_MOE_REQUANT=mxfp4 replaces the FP8 experts"
    shared, routed = text_config.shared_expert_intermediate_size, text_config.moe_intermediate_size
    if shared != routed:
        return f"shared_expert_intermediate_size {shared} != moe_intermediate_size {routed}"
    if text_config.hidden_act != "silu":
        return f"hidden_act {text_config.hidden_act}: the W8A16 experts run SiLU only"
    if parallel_config.enable_expert_parallel or parallel_config.enable_eplb:
        # every EP rank would add the shared expert; EPLB maps ids >= E to no physical expert
        return "expert parallelism / EPLB"
    return None


# ---- the decision: Qwen3NextSparseMoeBlock asks resolve_layer_fused_shared_expert -------------

def _resolve_fused_shared_expert(wrapped, instance, args, kwargs):
    if wrapped(*args, **kwargs):
        return True  # aiter's FSE (gfx9): vLLM's own path
    a = bound_arguments(wrapped, args, kwargs)
    try:
        from vllm.config import get_current_vllm_config

        vllm_config = get_current_vllm_config()
        why = refusal(a["quant_config"], a["prefix"], a["shared_expert_name"],
                      vllm_config.model_config.hf_text_config, vllm_config.parallel_config,
                      vllm_config.kernel_config.moe_backend)
    except Exception as exc:  # never into vLLM: its unfused shared expert runs
        log.warning("rocm-enable: %s could not decide for this layer (%s: %s); the shared "
                    "expert stays separate", NAME, type(exc).__name__, exc)
        return False
    if why:
        if why not in _REFUSALS_LOGGED:  # once per reason, not once per layer
            _REFUSALS_LOGGED.add(why)
            log.info("rocm-enable: %s: the shared expert of %s (and of every layer like it) stays "
                     "separate: %s", NAME, a["prefix"], why)
        return False
    return True


_REFUSALS_LOGGED: set[str] = set()


# ---- the router ------------------------------------------------------------------------------

@functools.cache
def router_class():
    """vLLM's BaseRouter with the one-launch routing over routed + shared gate logits (built on
    first use: it subclasses vLLM's router base)."""
    from vllm.model_executor.layers.fused_moe.config import get_routing_method_type
    from vllm.model_executor.layers.fused_moe.router.base_router import BaseRouter

    from rocm_enable.ops.topk_softmax import route_with_shared

    class RocmSharedExpertRouter(BaseRouter):
        """Softmax top-k over the E routed logits, renormalised as the model asks, then the
        shared expert(s) E.. with weight sigmoid(their gate logit): [M, top_k + S] fp32 weights
        and ids, from the runner's combined [M, E + S] gate output, in one Triton launch."""

        def __init__(self, top_k: int, global_num_experts: int, num_fused_shared_experts: int,
                     renormalize: bool, eplb_state=None):
            super().__init__(top_k=top_k, global_num_experts=global_num_experts,
                             eplb_state=eplb_state)
            self.renormalize = renormalize
            self.scoring_func = "softmax"
            self.num_fused_shared_experts = num_fused_shared_experts

        @property
        def routing_method_type(self):
            # what vLLM's aiter FSE router advertises for the same routing
            return get_routing_method_type(scoring_func="softmax", top_k=self.top_k,
                                           renormalize=self.renormalize, num_expert_group=None,
                                           has_e_score_bias=False)

        def _compute_routing(self, hidden_states, router_logits, indices_type, *, input_ids=None):
            import torch

            return route_with_shared(router_logits, self.top_k, self.renormalize,
                                     self.num_fused_shared_experts,
                                     torch.int32 if indices_type is None else indices_type)

    return RocmSharedExpertRouter


def _serves_with_router(a: dict) -> str | None:
    """Why our router cannot route this layer's fused shared experts (None: it can)."""
    import vllm.envs as envs

    unsupported = {
        "scoring_func": a["scoring_func"] != "softmax",
        "use_grouped_topk": a["use_grouped_topk"],
        "e_score_correction_bias": a["e_score_correction_bias"] is not None,
        "custom_routing_function": a["custom_routing_function"] is not None,
        "eplb_state": a["eplb_state"] is not None,
        "zero_expert_type": a["zero_expert_type"] is not None,
        "hash_indices_table": a["hash_indices_table"] is not None,
        "shared_expert_weight": a["shared_expert_weight"] != 1.0,
        "VLLM_MOE_ROUTING_SIMULATION_STRATEGY": envs.VLLM_MOE_ROUTING_SIMULATION_STRATEGY != "",
    }
    named = [k for k, v in unsupported.items() if v]
    return ", ".join(named) or None


def _create_router(wrapped, instance, args, kwargs):
    a = bound_arguments(wrapped, args, kwargs)
    if a["num_fused_shared_experts"] == 0 or _aiter_fuses_shared_experts():
        return wrapped(*args, **kwargs)
    # Only this record's decision fuses shared experts off aiter; vLLM's answer here would be
    # FusedTopKRouter over E + 1 logits (wrong weights), so a routing we do not serve is an error.
    why = _serves_with_router(a)
    if why:
        raise RuntimeError(f"rocm-enable {NAME}: fused shared experts with {why} cannot be "
                           "routed; set ROCM_ENABLE_FUSED_SHARED_EXPERT=0 and report this model")
    return router_class()(a["top_k"], a["global_num_experts"], a["num_fused_shared_experts"],
                          a["renormalize"])


def _skip_aiter_topk_buffer(wrapped, instance, args, kwargs):
    # aiter's preallocated [tokens, top_k + S] routing buffer (on "cuda", with a host-built id
    # table) is read only by AiterSharedRoutedFusedMoERouter and aiter's experts.
    if instance.num_fused_shared_experts > 0 and not _aiter_fuses_shared_experts():
        return None
    return wrapped(*args, **kwargs)


FUSED_SHARED_EXPERT = Fix(
    name=NAME,
    title="Qwen3-Next / Qwen3.6 FP8 MoE: shared expert as expert E of the W8A16 experts, one routing launch",
    stack="vllm",
    patches=(
        # the decision Qwen3NextSparseMoeBlock.__init__ takes (imported by name into qwen3_next;
        # Qwen3.5/3.6 and both MTP models build the same block)
        Patch("vllm.model_executor.models.qwen3_next:resolve_layer_fused_shared_expert",
              _resolve_fused_shared_expert,
              {"0.32.0": "d15e0ed5174fb316", "0.33.0": "073660a053dce750",
               "0.34.0": "8e90518c3aa67bde"}),
        Patch(f"{FUSED_MOE}.layer:create_fused_moe_router", _create_router,
              {"0.32.0": "851f7e4ea49d3527", "0.33.0": "a05c8d19e2ed1bc8",
               "0.34.0": "a05c8d19e2ed1bc8"}),
        Patch(f"{FUSED_MOE}.expert_map_manager:ExpertMapManager._init_aiter_shared_experts_topK_buffer",
              _skip_aiter_topk_buffer,
              {"0.32.0": "200053bce50b3f5f", "0.33.0": "200053bce50b3f5f",
               "0.34.0": "200053bce50b3f5f"}),
        # guards: the FSE wiring this record relies on (block construction, E + 1 local experts,
        # the combined gate, the checkpoint renaming), anchored and not wrapped
        Patch("vllm.model_executor.models.qwen3_next:Qwen3NextSparseMoeBlock.__init__", None,
              {"0.32.0": "376b986774c15389", "0.33.0": "376b986774c15389",
               "0.34.0": "376b986774c15389"}),
        Patch(f"{FUSED_MOE}.expert_map_manager:ExpertMapManager._calculate_expert_maps", None,
              {"0.32.0": "143a25b43434b667", "0.33.0": "ff7d99b2b9ab1d5a",
               "0.34.0": "ff7d99b2b9ab1d5a"}),
        Patch(f"{FUSED_MOE}.runner.moe_runner:MoERunner.__init__", None,
              {"0.32.0": "6edfe216dd4342ff", "0.33.0": "6edfe216dd4342ff",
               "0.34.0": "6edfe216dd4342ff"}),
        Patch("vllm.model_executor.models.qwen3_next:Qwen3NextModel.load_weights", None,
              {"0.32.0": "27583c03592a11a8", "0.33.0": "27583c03592a11a8",
               "0.34.0": "b4e304ff7ef7d0c8"}),
        Patch("vllm.model_executor.models.utils:maybe_fuse_shared_experts", None,
              {"0.32.0": "fda3fff6194a243f", "0.33.0": "fda3fff6194a243f",
               "0.34.0": "ae4f62a566fc3b2b"}),
    ),
    condition=lacks_fp8_compute,
    versions=">=0.32.0,<0.35",
    why=(
        "Every Qwen3-Next / Qwen3-Coder-Next / Qwen3.6-35B-A3B MoE layer runs its shared expert "
        "(intermediate 512, the routed experts' size) beside the routed experts: a gate_up GEMV, "
        "SiLU*mul, a down GEMV, the 1-output shared_expert_gate GEMM (cuBLAS/hipBLASLt dot + "
        "reduce), sigmoid, multiply and add - about 7 launches per layer of a decode step that "
        "is launch-bound at batch 1 (docs/plan.md). vLLM fuses the shared expert into the routed "
        "experts (FSE) only when aiter's FSE switch is on (gfx9), and without aiter its router "
        "factory returns FusedTopKRouter, which would softmax over the shared gate too."
    ),
    how=(
        "For FP8 block-128 checkpoints whose routed experts run rocm-enable's W8A16 experts "
        "(fp8-moe-w8a16 applied, --moe-backend auto/triton, routed experts quantized, vLLM's own "
        "is_shared_expert_quant_fse_compatible true, shared_expert_intermediate_size == "
        "moe_intermediate_size, SiLU, no expert parallelism / EPLB), "
        "resolve_layer_fused_shared_expert as Qwen3NextSparseMoeBlock calls it answers True, so "
        "vLLM's own FSE wiring builds E + 1 experts, loads mlp.shared_expert.* into slot E and "
        "runs the router and shared-expert gates as one [E + 1, H] GEMM. create_fused_moe_router "
        "then returns RocmSharedExpertRouter: one Triton launch (topk_softmax.py, NUM_SHARED=1) "
        "writes the top-k softmax over the routed logits and id E with weight sigmoid(gate "
        "logit); the W8A16 experts run the E + 1 experts in their two GEMVs. aiter's "
        "preallocated FSE routing buffer is not built on this path. Everything else (BF16, "
        "compressed-tensors, per-tensor FP8, aiter's FSE) keeps vLLM's decision. "
        "ROCM_ENABLE_FUSED_SHARED_EXPERT=0 switches it off."
    ),
    upstream="vLLM FSE (AITER only): fused_moe/utils.py resolve_layer_fused_shared_expert, "
             "router_factory AiterSharedRoutedFusedMoERouter; no non-aiter FSE router upstream",
    removal="when vLLM decides FSE by the experts backend and ships a non-aiter FSE router",
    gates=(),
)

FIXES = (FUSED_SHARED_EXPERT,)
