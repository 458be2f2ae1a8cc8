"""Source patch of fp8_group_quant_code_object.py's record: vLLM's W8A8 FP8 activation quant (QuantFP8
and the FP8 MoE's input quant) runs in torch when _C lacks a code object for this GPU."""
from __future__ import annotations

from rocm_enable.stacks.vllm.hip_code_objects_recipes import C_EXTENSIONS, LACKS_CODE_OBJECT_END
from rocm_enable.stacks.vllm.recipe import ROCM, Recipe, Tree

INPUT_QUANT = "vllm/model_executor/layers/quantization/input_quant_fp8.py"
MOE_UTILS = "vllm/model_executor/layers/fused_moe/utils.py"
QUANT_INIT_END = (
    '                    "Only per-token or per-tensor scales are supported for dynamic "\n'
    '                    "non-group quantization."\n'
    "                )\n"
)
QUANT_INIT_NATIVE = (
    "\n"
    "        if (\n"
    "            type(self) is QuantFP8  # subclasses override forward_cuda\n"
    "            and self._forward_method == self.forward_hip\n"
    "            and not self.use_aiter\n"
    "            and not (self.use_ue8m0 and self.use_deep_gemm_supported)\n"
    "            and not self.tma_aligned_scales\n"
    f"            and current_platform.lacks_code_object({C_EXTENSIONS[0]}, {C_EXTENSIONS[1]})\n"
    "        ):\n"
    "            # _C was built without this GPU: its quant ops cannot launch. vLLM's\n"
    "            # torch quant, as for a disabled quant_fp8, chosen here (not in forward)\n"
    "            # so that torch.compile traces torch ops only.\n"
    "            self._forward_method = self.forward_native\n"
)
MOE_QUANT_FUNCTIONS = f'''def per_token_group_quant_fp8(
    x: torch.Tensor,
    group_size: int,
    eps: float = 1e-10,
    dtype: torch.dtype | None = None,
    column_major_scales: bool = False,
    tma_aligned_scales: bool = False,
    out_q: torch.Tensor | None = None,
    use_ue8m0: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """fp8_utils.per_token_group_quant_fp8, in torch for plain group quant (no
    UE8M0, no TMA layout, contiguous input) when _C was built without this GPU:
    the Triton fallback's math, scale = max(absmax, eps) / fp8_max per group and
    q = clamp(x / scale), with the op's scale layout."""
    if use_ue8m0 is None:
        use_ue8m0 = is_deep_gemm_e8m0_used()
    plain = (
        not use_ue8m0
        and not tma_aligned_scales
        and x.is_contiguous()
        and x.shape[-1] % group_size == 0
    )
    if not (
        plain
        and current_platform.is_rocm()
        and current_platform.lacks_code_object({C_EXTENSIONS[0]}, {C_EXTENSIONS[1]})
    ):
        return _per_token_group_quant_fp8_op(
            x,
            group_size,
            eps=eps,
            dtype=dtype,
            column_major_scales=column_major_scales,
            tma_aligned_scales=tma_aligned_scales,
            out_q=out_q,
            use_ue8m0=use_ue8m0,
        )
    fp8_min, fp8_max = get_fp8_min_max()
    dtype = current_platform.fp8_dtype() if dtype is None else dtype
    groups = x.unflatten(-1, (-1, group_size)).float()
    scale = groups.abs().amax(dim=-1, keepdim=True).clamp(min=eps) * (1.0 / fp8_max)
    q = (groups / scale).clamp(fp8_min, fp8_max).to(dtype).flatten(-2)
    if out_q is not None:
        out_q.copy_(q)
        q = out_q
    scale = scale.squeeze(-1)
    if column_major_scales:
        scale = scale.transpose(-2, -1).contiguous().transpose(-2, -1)
    return q, scale


def _dynamic_quant_fp8(
    A: torch.Tensor, per_act_token: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """ops.scaled_fp8_quant with dynamic scales, as QuantFP8.forward_native
    computes it: scale = max(absmax / fp8_max, 1 / (fp8_max * 512)) per token
    ([M, 1]) or per tensor ([1]), q = clamp(x / scale)."""
    fp8_min, fp8_max = get_fp8_min_max()
    if per_act_token:
        absmax = A.abs().amax(dim=-1, keepdim=True)
    else:
        absmax = A.abs().max().unsqueeze(-1)
    scale = (absmax.to(torch.float32) / fp8_max).clamp(min=1.0 / (fp8_max * 512.0))
    q = (A.to(torch.float32) * scale.reciprocal()).clamp(fp8_min, fp8_max)
    return q.to(current_platform.fp8_dtype()), scale


'''
MOE_DYNAMIC_QUANT = (
    "    if (\n"
    "        block_shape is None\n"
    "        and A_scale is None\n"
    "        and A.dim() == 2\n"
    "        and current_platform.is_rocm()\n"
    f"        and current_platform.lacks_code_object({C_EXTENSIONS[0]}, {C_EXTENSIONS[1]})\n"
    "    ):\n"
    "        # _C was built without this GPU: its dynamic quant ops cannot launch.\n"
    "        return _dynamic_quant_fp8(A, per_act_token)\n"
)
CUSTOM_OPS = "vllm/_custom_ops.py"
SILU_MUL_BLOCK_QUANT_NATIVE = (
    "    if (\n"
    "        scale_ub is None\n"
    "        and quant_dtype == current_platform.fp8_dtype()\n"
    "        and hidden_size % group_size == 0\n"
    "        and current_platform.is_rocm()\n"
    f"        and current_platform.lacks_code_object({C_EXTENSIONS[0]}, {C_EXTENSIONS[1]})\n"
    "    ):\n"
    "        # _C was built without this GPU: vLLM's unfused path, SiluAndMul's torch\n"
    "        # forward then the group quant (scale = max(absmax, 1e-10) / fp8_max,\n"
    "        # q = clamp(x / scale)), into the layout allocated above.\n"
    "        from vllm.model_executor.layers.quantization.utils.quant_utils import (\n"
    "            get_fp8_min_max,\n"
    "        )\n"
    "\n"
    "        fp8_min, fp8_max = get_fp8_min_max()\n"
    "        act = torch.nn.functional.silu(input[:, :hidden_size]) * input[:, hidden_size:]\n"
    "        groups = act.unflatten(-1, (-1, group_size)).float()\n"
    "        group_scale = groups.abs().amax(dim=-1, keepdim=True).clamp(min=1e-10) * (\n"
    "            1.0 / fp8_max\n"
    "        )\n"
    "        q = (groups / group_scale).clamp(fp8_min, fp8_max).to(quant_dtype)\n"
    "        output.copy_(q.flatten(-2))\n"
    "        scales.copy_(group_scale.squeeze(-1))\n"
    "        return output, scales\n"
    "\n"
)


def fp8_group_quant_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.insert_between(INPUT_QUANT, QUANT_INIT_END, "\n    def forward_cuda(\n", QUANT_INIT_NATIVE)
    tree.replace_once(
        MOE_UTILS,
        "from vllm.model_executor.layers.quantization.utils.fp8_utils import (\n"
        "    per_token_group_quant_fp8,\n"
        ")\n",
        "from vllm.model_executor.layers.quantization.utils.fp8_utils import (\n"
        "    per_token_group_quant_fp8 as _per_token_group_quant_fp8_op,\n"
        ")\n"
        "from vllm.model_executor.layers.quantization.utils.quant_utils import (\n"
        "    get_fp8_min_max,\n"
        ")\n"
        "from vllm.utils.deep_gemm import is_deep_gemm_e8m0_used\n",
    )
    tree.insert_between(MOE_UTILS, "", "def _fp8_quantize(\n", MOE_QUANT_FUNCTIONS)
    tree.insert_between(MOE_UTILS, "", "    if block_shape is None:\n"
                        "        # TODO(luka): use QuantFP8 custom op\n", MOE_DYNAMIC_QUANT)
    tree.insert_between(CUSTOM_OPS, "            dtype=torch.float32,\n        )\n\n",
                        "    # Call the C++ kernel\n    torch.ops._C.silu_and_mul_per_block_quant(\n",
                        SILU_MUL_BLOCK_QUANT_NATIVE)


RECIPES = (
    Recipe(
        "fp8-group-quant-code-object",
        f"RocmPlatform.lacks_code_object({C_EXTENSIONS[0]}, {C_EXTENSIONS[1]})",
        "QuantFP8.__init__ ends by dispatching to forward_native (as for a disabled quant_fp8) "
        "when its forward_hip would reach a _C quant op (no aiter, no DeepGEMM UE8M0, no TMA "
        "scales) and _C lacks a code object for this RDNA GPU. fused_moe/utils.py gets its own "
        "per_token_group_quant_fp8 over fp8_utils' op: plain group quant (no UE8M0, no TMA "
        "layout, contiguous input) in torch with the Triton fallback's math and the op's scale "
        "layout under the same condition; _fp8_quantize computes dynamic scales without a block "
        "shape with QuantFP8.forward_native's math; ops.silu_and_mul_per_block_quant (the Triton FP8 "
        "MoE's fused SiLU-and-mul + block quant) computes FP8 without scale_ub as vLLM's unfused "
        "path, SiluAndMul's torch forward then that group quant. Needs the silu-and-mul-code-object patch.",
        fp8_group_quant_code_object),
)
