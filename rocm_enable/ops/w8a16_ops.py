"""The W8A16 launches as torch custom ops, so torch.compile (vLLM's default) treats each as one
opaque node with a shape-only fake implementation, instead of tracing into the Python
launchers (config lookup, weight-layout checks, Triton launch plumbing).

Registered on import, once per process, in the ``rocm_enable`` namespace:
  torch.ops.rocm_enable.w8a16_linear(x, weight, weight_scale, block_shape, bias, family) -> y
  torch.ops.rocm_enable.w8a16_fused_experts(output, hidden_states, w13, w2, w13_scale, w2_scale,
      topk_weights, topk_ids, expert_map, workspace13, workspace2, block_shape,
      apply_router_weight_on_input, global_num_experts, family) -> None (writes output)
Scales are already folded (fold_fp8_scale_for_fp16_bits). Empty workspaces (numel 0) mean
"allocate"; vLLM passes its own (RocmW8A16Fp8Experts.workspace_shapes).
"""
from __future__ import annotations

from typing import Optional

import torch

from rocm_enable.ops import config as cfgmod
from rocm_enable.ops.linear_w8a16 import linear_w8a16
from rocm_enable.ops.moe_w8a16 import fused_experts_w8a16, words_need_copy

NAMESPACE = "rocm_enable"


@torch.library.custom_op(f"{NAMESPACE}::w8a16_linear", mutates_args=())
def w8a16_linear(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                 block_shape: Optional[list[int]], bias: Optional[torch.Tensor],
                 family: str) -> torch.Tensor:
    return linear_w8a16(x, weight, weight_scale, block_shape=block_shape, bias=bias,
                        arch_family=family)


@w8a16_linear.register_fake
def _w8a16_linear_fake(x, weight, weight_scale, block_shape, bias, family):
    return x.new_empty(*x.shape[:-1], weight.shape[0])


def _workspace(t: torch.Tensor) -> Optional[torch.Tensor]:
    return t if t.numel() else None


@torch.library.custom_op(f"{NAMESPACE}::w8a16_fused_experts",
                         mutates_args=("output", "workspace13", "workspace2"))
def w8a16_fused_experts(output: torch.Tensor, hidden_states: torch.Tensor, w13: torch.Tensor,
                        w2: torch.Tensor, w13_scale: torch.Tensor, w2_scale: torch.Tensor,
                        topk_weights: torch.Tensor, topk_ids: torch.Tensor,
                        expert_map: Optional[torch.Tensor], workspace13: torch.Tensor,
                        workspace2: torch.Tensor, block_shape: Optional[list[int]],
                        apply_router_weight_on_input: bool, global_num_experts: int,
                        family: str) -> None:
    fused_experts_w8a16(hidden_states, w13, w2, w13_scale, w2_scale, topk_weights, topk_ids,
                        block_shape=block_shape, apply_router_weight_on_input=apply_router_weight_on_input,
                        global_num_experts=global_num_experts, expert_map=expert_map, output=output,
                        arch_family=family, workspace13=_workspace(workspace13),
                        workspace2=_workspace(workspace2))


@w8a16_fused_experts.register_fake
def _w8a16_fused_experts_fake(output, hidden_states, w13, w2, w13_scale, w2_scale, topk_weights,
                              topk_ids, expert_map, workspace13, workspace2, block_shape,
                              apply_router_weight_on_input, global_num_experts, family):
    return None


def prepare_weight(weight: torch.Tensor, family: str) -> Optional[torch.Tensor]:
    """Weight-processing-time work the per-call path must not do: load (and validate) the
    family's launch configs now, and return a word-aligned copy of ``weight`` ([..., N, K] as
    the kernel reads it) when its layout would otherwise be copied on every call, else None."""
    cfgmod.load_family(family)
    return weight.contiguous() if words_need_copy(weight) else None
