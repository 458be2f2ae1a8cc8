"""Source patch of fused_shared_expert.py's record: Qwen3NextSparseMoeBlock fuses its shared expert
into the W8A16 routed experts where RocmPlatform.has_native_fp8_compute() is false, and the router
factory routes fused shared experts without aiter with one Triton launch."""
from __future__ import annotations

from rocm_enable.stacks.vllm.recipe import ROCM, Recipe, Tree
from rocm_enable.stacks.vllm.recipe_embed import EMBEDDED

FUSED_MOE = "vllm/model_executor/layers/fused_moe"
UTILS = f"{FUSED_MOE}/utils.py"
FACTORY = f"{FUSED_MOE}/router/router_factory.py"
EXPERT_MAP = f"{FUSED_MOE}/expert_map_manager.py"
QWEN3_NEXT = "vllm/model_executor/models/qwen3_next.py"
ROUTER = f"{FUSED_MOE}/router/triton_shared_routed_router.py"
TOPK_SOFTMAX = EMBEDDED["ops/topk_softmax.py"]
TOPK_PACKAGE, _, TOPK_MODULE = TOPK_SOFTMAX[:-3].replace("/", ".").rpartition(".")

ROUTER_MODULE = f'''# SPDX-License-Identifier: Apache-2.0
# SPDX-FileCopyrightText: Copyright contributors to the vLLM project

import torch

from vllm.distributed.eplb.eplb_state import EplbLayerState
from vllm.model_executor.layers.fused_moe.config import (
    RoutingMethodType,
    get_routing_method_type,
)
from vllm.model_executor.layers.fused_moe.router.base_router import BaseRouter
from {TOPK_PACKAGE}.{TOPK_MODULE} import route_with_shared


class TritonSharedRoutedFusedMoERouter(BaseRouter):
    """Router for fused shared experts without aiter (Qwen3-Next-style MoE on
    ROCm GPUs without FP8 compute, W8A16 experts).

    The runner's combined gate gives [M, E + S] logits: softmax top-k over
    the E routed logits (renormalised when asked), then the shared experts
    E.. with weight sigmoid(their gate logit), [M, top_k + S] in one Triton
    launch (no host sync).
    """

    def __init__(
        self,
        top_k: int,
        global_num_experts: int,
        num_fused_shared_experts: int,
        renormalize: bool,
        eplb_state: EplbLayerState | None = None,
    ):
        super().__init__(
            top_k=top_k,
            global_num_experts=global_num_experts,
            eplb_state=eplb_state,
        )
        self.renormalize = renormalize
        self.scoring_func = "softmax"
        self.num_fused_shared_experts = num_fused_shared_experts

    @property
    def routing_method_type(self) -> RoutingMethodType:
        return get_routing_method_type(
            scoring_func="softmax",
            top_k=self.top_k,
            renormalize=self.renormalize,
            num_expert_group=None,
            has_e_score_bias=False,
        )

    def _compute_routing(
        self,
        hidden_states: torch.Tensor,
        router_logits: torch.Tensor,
        indices_type: torch.dtype | None,
        *,
        input_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return route_with_shared(
            router_logits,
            self.top_k,
            self.renormalize,
            self.num_fused_shared_experts,
            torch.int32 if indices_type is None else indices_type,
        )
'''

DECISION = '''

def w8a16_experts_fuse_shared_expert(
    vllm_config,
    quant_config: "QuantizationConfig | None",
    prefix: str,
    shared_expert_name: str = "shared_experts",
) -> bool:
    """Fuse a Qwen3-Next-style shared expert into the routed experts when the
    routed experts are the W8A16 experts (FP8 block checkpoints on ROCm GPUs
    without FP8 compute): expert E with weight sigmoid(its gate logit), routed
    by TritonSharedRoutedFusedMoERouter. Needs the shared expert the size of a
    routed one, SiLU, no expert parallelism or EPLB."""
    from vllm.model_executor.layers.quantization.fp8 import Fp8Config
    from vllm.model_executor.layers.quantization.utils.quant_utils import (
        is_layer_skipped,
    )

    if (
        not current_platform.is_rocm()
        or current_platform.has_native_fp8_compute()
        or not isinstance(quant_config, Fp8Config)
        or not quant_config.is_checkpoint_fp8_serialized
        or vllm_config.kernel_config.moe_backend not in ("auto", "triton")
        or getattr(envs, "VLLM_FP8_MOE_REQUANT", "") == "mxfp4"
    ):
        return False
    fse_compatible, _ = is_shared_expert_quant_fse_compatible(
        quant_config, f"{prefix}.experts", f"{prefix}.{shared_expert_name}"
    )
    if not fse_compatible or is_layer_skipped(
        prefix=f"{prefix}.experts",
        ignored_layers=quant_config.ignored_layers,
        fused_mapping=quant_config.packed_modules_mapping,
        match_mode=quant_config.ignored_layers_match_mode,
    ):
        return False
    config = vllm_config.model_config.hf_text_config
    parallel_config = vllm_config.parallel_config
    return (
        config.shared_expert_intermediate_size == config.moe_intermediate_size
        and config.hidden_act == "silu"
        and not parallel_config.enable_expert_parallel
        and not parallel_config.enable_eplb
    )
'''

FACTORY_BRANCH = '''    if (
        num_fused_shared_experts > 0
        and not rocm_aiter_ops.is_fusion_moe_shared_experts_enabled()
    ):
        # Fused shared experts without aiter (w8a16_experts_fuse_shared_expert):
        # softmax top-k, then the shared experts with weight sigmoid(gate logit).
        if (
            scoring_func != "softmax"
            or use_grouped_topk
            or e_score_correction_bias is not None
            or custom_routing_function is not None
            or eplb_state is not None
            or zero_expert_type is not None
            or hash_indices_table is not None
            or shared_expert_weight != 1.0
            or envs.VLLM_MOE_ROUTING_SIMULATION_STRATEGY != ""
        ):
            raise NotImplementedError(
                "fused shared experts without aiter support plain softmax top-k "
                "routing only"
            )
        from vllm.model_executor.layers.fused_moe.router.triton_shared_routed_router import (  # noqa: E501
            TritonSharedRoutedFusedMoERouter,
        )

        return TritonSharedRoutedFusedMoERouter(
            top_k=top_k,
            global_num_experts=global_num_experts,
            num_fused_shared_experts=num_fused_shared_experts,
            renormalize=renormalize,
        )

'''


def fused_shared_expert(tree: Tree) -> None:
    tree.require(ROCM, "def has_native_fp8_compute(cls)", "RocmPlatform.has_native_fp8_compute()",
                 "fp8-moe-w8a16")
    tree.require(TOPK_SOFTMAX, "def route_with_shared(", "the Triton routing module",
                 "topk-softmax-code-object")
    tree.write(ROUTER, ROUTER_MODULE)
    # the decision, beside vLLM's aiter one
    tree.insert_between(UTILS, "    return is_fused_shared_expert_enabled\n", "", DECISION)
    tree.insert_between(QWEN3_NEXT, "    resolve_layer_fused_shared_expert,\n", ")\n",
                        "    w8a16_experts_fuse_shared_expert,\n")
    tree.replace_once(
        QWEN3_NEXT,
        '                shared_expert_name="shared_expert",\n'
        "            )\n"
        "\n"
        "        if self.is_fused_shared_expert_enabled:\n",
        '                shared_expert_name="shared_expert",\n'
        "            ) or w8a16_experts_fuse_shared_expert(\n"
        '                vllm_config, quant_config, prefix, shared_expert_name="shared_expert"\n'
        "            )\n"
        "\n"
        "        if self.is_fused_shared_expert_enabled:\n")
    # the router, before any other choice: vLLM's would softmax over the shared gate too
    tree.replace_regex_once(
        FACTORY,
        r"^(    \"\"\"\n)(    routing_strategy = envs\.VLLM_MOE_ROUTING_SIMULATION_STRATEGY\n"
        r"|    router: FusedMoERouter \| None = None\n)",
        lambda m: m.group(1) + FACTORY_BRANCH + m.group(2))
    # aiter's preallocated routing buffer (on "cuda") serves aiter's router and experts only
    tree.insert_between(EXPERT_MAP, "", "from vllm.config.parallel import ExpertPlacementStrategy\n",
                        "from vllm._aiter_ops import rocm_aiter_ops\n")
    tree.replace_once(
        EXPERT_MAP,
        "        if self.num_fused_shared_experts > 0:\n"
        "            dp_size = self.moe_parallel_config.dp_size\n",
        "        if (\n"
        "            self.num_fused_shared_experts > 0\n"
        "            and rocm_aiter_ops.is_fusion_moe_shared_experts_enabled()\n"
        "        ):\n"
        "            dp_size = self.moe_parallel_config.dp_size\n")


RECIPES = (
    Recipe(
        "fused-shared-expert", "RocmPlatform.has_native_fp8_compute() (from the fp8-moe-w8a16 patch)",
        "Adds w8a16_experts_fuse_shared_expert() to fused_moe/utils.py, which "
        "Qwen3NextSparseMoeBlock asks after resolve_layer_fused_shared_expert (FP8 block "
        "checkpoints with W8A16 experts: ROCm without FP8 compute, --moe-backend auto/triton, "
        "vLLM's is_shared_expert_quant_fse_compatible, routed experts quantized, shared expert "
        "the routed experts' size, SiLU, no EP/EPLB); TritonSharedRoutedFusedMoERouter "
        "(fused_moe/router/triton_shared_routed_router.py, route_with_shared of the Triton "
        "routing module the topk-softmax-code-object patch adds), which create_fused_moe_router "
        "returns for fused shared experts without aiter; and ExpertMapManager builds aiter's FSE "
        "routing buffer only with aiter's FSE switch.",
        fused_shared_expert),
)
