"""Source patches of hip_code_objects.py's records: vLLM's own torch/Triton twins of HIP ops
whose extension carries no code object for this GPU (offload-bundle reader in vLLM's tree)."""
from __future__ import annotations

from rocm_enable.stacks.vllm.recipe import CUSTOM_OPS, ROCM, Recipe, RecipeError, Tree
from rocm_enable.stacks.vllm.recipe_embed import EMBEDDED, LLVM_GENERIC_TARGETS, embed_module


CODE_OBJECT_READER = ("gates/code_objects.py",)


CODE_OBJECTS = EMBEDDED["gates/code_objects.py"]
IS_NAVI = '    @classmethod\n    def is_navi(cls) -> bool:\n        return "gfx1" in _GCN_ARCH\n'
C_EXTENSIONS = ('"vllm._C"', '"vllm._C_stable_libtorch"')  # as rocm_enable.stacks.vllm.hip_code_objects

CODE_OBJECT_METHODS = '''
    @classmethod
    @cache
    def code_object_status(cls, *extensions: str) -> "CodeObjectVerdict":
        """Whether vLLM's compiled extensions (e.g. "vllm._rocm_C") carry a code
        object that runs on this GPU, read from their offload bundles.

        An extension built without this GPU in PYTORCH_ROCM_ARCH still registers
        its ops (hasattr(torch.ops._rocm_C, ...) holds for every build), and the
        first launch fails with 'invalid device function'. "unknown" (no file, no
        readable bundle) is never reported as "absent"."""
        from vllm.platforms.rocm_code_objects import extensions_status

        verdict = extensions_status(extensions, _GCN_ARCH.split(":")[0].lower())
        if verdict.absent:
            logger.warning(
                "%s has no code object for %s (%s); its ops on the model path are "
                "routed to native/Triton implementations",
                "/".join(extensions),
                _GCN_ARCH,
                verdict.reason,
            )
        return verdict

    @classmethod
    def lacks_code_object(cls, *extensions: str) -> bool:
        """The extensions provably carry no code object for this RDNA GPU.

        Asked on RDNA (gfx11/gfx12), the targets vLLM's ROCm wheels and images
        most often leave out of PYTORCH_ROCM_ARCH; CDNA GPUs keep vLLM's HIP ops
        as before. False when the offload bundles cannot be read."""
        return on_rdna() and cls.code_object_status(*extensions).absent
'''


def code_object_reader(tree: Tree) -> None:
    """vllm/platforms/rocm_code_objects.py and RocmPlatform.code_object_status() /
    lacks_code_object(). Checks first that the LLVM generic-target table agrees with rocm-enable's
    capability table on every arch the table knows (the equivalence tests run on those)."""
    from rocm_enable.gates.capabilities import capability_table

    for arch, caps in capability_table().items():
        llvm = {g for g, archs in LLVM_GENERIC_TARGETS.items() if arch in archs}
        if llvm != set(caps.generic_targets):
            raise RecipeError(f"{arch}: LLVM_GENERIC_TARGETS gives {sorted(llvm)}, "
                              f"capabilities.yaml {sorted(caps.generic_targets)}")
    tree.write(CODE_OBJECTS, embed_module("gates/code_objects.py"))
    tree.replace_once(
        ROCM,
        "    from vllm.config.kernel import IrOpPriorityConfig\n"
        "    from vllm.utils.argparse_utils import FlexibleArgumentParser\n",
        "    from vllm.config.kernel import IrOpPriorityConfig\n"
        "    from vllm.platforms.rocm_code_objects import CodeObjectVerdict\n"
        "    from vllm.utils.argparse_utils import FlexibleArgumentParser\n",
    )
    tree.insert_between(ROCM, IS_NAVI, "", CODE_OBJECT_METHODS)


def silu_and_mul_code_object(tree: Tree) -> None:
    code_object_reader(tree)
    # SiluAndMul's forward_cuda (other activations have a forward_cuda of the same shape).
    tree.replace_regex_once(
        "vllm/model_executor/layers/activation.py",
        r"^(class SiluAndMul\(CustomOp\):\n(?:(?!class ).*\n)*?"
        r"    def forward_cuda\(self, x: torch\.Tensor\) -> torch\.Tensor:\n)"
        r"(        d = x\.shape\[-1\] // 2\n"
        r"        output_shape = x\.shape\[:-1\] \+ \(d,\)\n"
        r"        out = torch\.empty\(output_shape, dtype=x\.dtype, device=x\.device\)\n"
        r"        self\.op\(out, x\)\n)",
        lambda m: m.group(1) + (
            "        if current_platform.is_rocm() and current_platform.lacks_code_object(\n"
            f"            {C_EXTENSIONS[0]}, {C_EXTENSIONS[1]}\n"
            "        ):\n"
            "            # vLLM was built without this GPU in PYTORCH_ROCM_ARCH: the op is\n"
            "            # registered but cannot launch ('invalid device function').\n"
            "            return self.forward_native(x)\n"
        ) + m.group(2),
    )


def skinny_gemm_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.replace_once(
        CUSTOM_OPS,
        "def LLMM1(a: torch.Tensor, b: torch.Tensor, rows_per_block: int) -> torch.Tensor:\n"
        "    return torch.ops._rocm_C.LLMM1(a, b, rows_per_block)\n"
        "\n"
        "\n"
        "def wvSplitK(\n"
        "    a: torch.Tensor, b: torch.Tensor, cu_count: int, bias: torch.Tensor = None\n"
        ") -> torch.Tensor:\n"
        "    return torch.ops._rocm_C.wvSplitK(a, b, bias, cu_count)\n",
        "def _rocm_C_lacks_code_object() -> bool:\n"
        '    """_rocm_C was built without this GPU in PYTORCH_ROCM_ARCH: its skinny\n'
        "    GEMMs are registered but cannot launch. torch's GEMM, which\n"
        '    rocm_unquantized_gemm uses for every other shape, serves instead."""\n'
        "    return current_platform.is_rocm() and current_platform.lacks_code_object(\n"
        '        "vllm._rocm_C"\n'
        "    )\n"
        "\n"
        "\n"
        "def LLMM1(a: torch.Tensor, b: torch.Tensor, rows_per_block: int) -> torch.Tensor:\n"
        "    if _rocm_C_lacks_code_object():\n"
        "        return torch.nn.functional.linear(b, a)\n"
        "    return torch.ops._rocm_C.LLMM1(a, b, rows_per_block)\n"
        "\n"
        "\n"
        "def wvSplitK(\n"
        "    a: torch.Tensor, b: torch.Tensor, cu_count: int, bias: torch.Tensor = None\n"
        ") -> torch.Tensor:\n"
        "    if _rocm_C_lacks_code_object():\n"
        "        return torch.nn.functional.linear(b, a, bias)\n"
        "    return torch.ops._rocm_C.wvSplitK(a, b, bias, cu_count)\n",
    )


RDNA3_KERNELS_METHOD = '''
    @classmethod
    def rdna3_kernels_status(cls) -> tuple[bool, str | None]:
        """Whether vLLM's RDNA3 WMMA HIP kernels (gptq_gemm_rdna3 and
        moe_gptq_gemm_rdna3 in _rocm_C) can run here, and why not.

        They are written for the RDNA3 ISA, which every gfx11 GPU (RDNA3 and
        RDNA3.5) runs: admitted where _rocm_C carries a code object for this GPU,
        rejected where it provably does not. When the offload bundles cannot be
        read, gfx1100 (where the kernels were validated) keeps them."""
        if on_gfx11():
            code_object = cls.code_object_status("vllm._rocm_C")
            if code_object.present:
                return True, None
            if code_object.absent:
                return False, (
                    f"_rocm_C has no code object for this GPU: {code_object.reason}"
                )
        return on_gfx1100(), None
'''
LACKS_CODE_OBJECT_END = "        return on_rdna() and cls.code_object_status(*extensions).absent\n"


def rdna3_kernels_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.insert_between(ROCM, LACKS_CODE_OBJECT_END, "", RDNA3_KERNELS_METHOD)
    tree.replace_once(
        "vllm/model_executor/kernels/linear/mixed_precision/rdna3_w4a16.py",
        "        from vllm.platforms.rocm import on_gfx1100\n"
        "\n"
        "        if not on_gfx1100():\n"
        '            return False, "RDNA3 W4A16 kernel requires gfx1100"\n',
        "        supported, reason = current_platform.rdna3_kernels_status()\n"
        "        if not supported:\n"
        '            return False, reason or "RDNA3 W4A16 kernel requires gfx1100"\n',
    )
    tree.replace_once(
        "vllm/model_executor/layers/fused_moe/experts/rdna3_moe.py",
        "    from vllm.platforms.rocm import on_gfx1100\n"
        "\n"
        "    return (\n"
        "        on_gfx1100()\n",
        "    supported, _ = current_platform.rdna3_kernels_status()\n"
        "    return (\n"
        "        supported\n",
    )


C_LACKS_CODE_OBJECT = (
    "def _C_lacks_code_object() -> bool:\n"
    '    """_C was built without this GPU in PYTORCH_ROCM_ARCH: its ops are\n'
    "    registered but cannot launch ('invalid device function'). Callers use\n"
    '    vLLM\'s torch or Triton implementation of the op instead."""\n'
    "    return current_platform.is_rocm() and current_platform.lacks_code_object(\n"
    f"        {C_EXTENSIONS[0]}, {C_EXTENSIONS[1]}\n"
    "    )\n"
    "\n"
    "\n"
)


TOPK_SOFTMAX = EMBEDDED["ops/topk_softmax.py"]
TOPK_PACKAGE, _, TOPK_MODULE = TOPK_SOFTMAX[:-3].replace("/", ".").rpartition(".")


def topk_softmax_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.write(TOPK_SOFTMAX, embed_module("ops/topk_softmax.py"))
    tree.replace_once(
        CUSTOM_OPS,
        "    is_padding: torch.Tensor | None = None,\n"
        ") -> None:\n"
        "    torch.ops._moe_C.topk_softmax(\n",
        "    is_padding: torch.Tensor | None = None,\n"
        ") -> None:\n"
        "    if (\n"
        "        e_score_correction_bias is None\n"
        "        and current_platform.is_rocm()\n"
        "        and current_platform.lacks_code_object(\n"
        '            "vllm._moe_C", "vllm._moe_C_stable_libtorch"\n'
        "        )\n"
        "    ):\n"
        "        # _moe_C was built without this GPU: the same routing from one Triton\n"
        "        # program per token (no host sync, so CUDA/HIP graphs capture it).\n"
        "        # Padding rows are routed like real rows (their outputs are discarded).\n"
        f"        from {TOPK_PACKAGE} import {TOPK_MODULE}\n"
        "\n"
        f"        {TOPK_MODULE}.topk_softmax(\n"
        "            topk_weights, topk_ids, token_expert_indices, gating_output, renormalize\n"
        "        )\n"
        "        return\n"
        "    torch.ops._moe_C.topk_softmax(\n",
    )


def c_ops_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.insert_between(
        CUSTOM_OPS,
        "",
        "def apply_repetition_penalties_cuda(\n",
        C_LACKS_CODE_OBJECT,
    )
    tree.replace_once(
        CUSTOM_OPS,
        "    repetition_penalties: torch.Tensor,\n"
        ") -> None:\n"
        "    torch.ops._C.apply_repetition_penalties_(\n",
        "    repetition_penalties: torch.Tensor,\n"
        ") -> None:\n"
        "    if _C_lacks_code_object():\n"
        "        apply_repetition_penalties_torch(\n"
        "            logits, prompt_mask, output_mask, repetition_penalties\n"
        "        )\n"
        "        return\n"
        "    torch.ops._C.apply_repetition_penalties_(\n",
    )
    tree.insert_between(
        CUSTOM_OPS,
        "",
        "    else:\n"
        "        torch.ops._C.static_scaled_fp8_quant(output, input, scale, group_shape)\n",
        "    elif (\n"
        "        scale.numel() == 1\n"
        "        and group_shape in (None, (-1, -1))\n"
        "        and not num_token_padding\n"
        "        and _C_lacks_code_object()\n"
        "    ):\n"
        "        # Per-tensor static scale (e.g. load-time requantization of fused\n"
        "        # FP8 shards) in torch: clamp(x / scale) to the FP8 range.\n"
        "        info = torch.finfo(out_dtype)\n"
        "        output.copy_(\n"
        "            (input.float() / scale.float().reshape(()))\n"
        "            .clamp(info.min, info.max)\n"
        "            .to(out_dtype)\n"
        "        )\n",
    )
    tree.replace_once(
        CUSTOM_OPS,
        "    v_scale: torch.Tensor,\n"
        ") -> None:\n"
        "    torch.ops._C_cache_ops.reshape_and_cache_flash(\n",
        "    v_scale: torch.Tensor,\n"
        ") -> None:\n"
        "    if _C_lacks_code_object():\n"
        "        from vllm.v1.attention.ops.triton_reshape_and_cache_flash import (\n"
        "            triton_reshape_and_cache_flash,\n"
        "        )\n"
        "\n"
        "        triton_reshape_and_cache_flash(\n"
        "            key,\n"
        "            value,\n"
        "            key_cache,\n"
        "            value_cache,\n"
        "            slot_mapping,\n"
        "            kv_cache_dtype,\n"
        "            k_scale,\n"
        "            v_scale,\n"
        "        )\n"
        "        return\n"
        "    torch.ops._C_cache_ops.reshape_and_cache_flash(\n",
    )
    base = "vllm/model_executor/layers/rotary_embedding/base.py"
    tree.insert_between(
        base,
        "from vllm.model_executor.custom_op import CustomOp\n",
        "",
        "from vllm.platforms import current_platform\n",
    )
    tree.replace_once(  # forward_cuda: after its flashinfer branch (forward_cpu has the rest too)
        base,
        "            return query, key\n"
        "\n"
        "        from vllm import _custom_ops as ops\n"
        "\n"
        "        cos_sin_cache = self._match_cos_sin_cache_dtype(query)\n"
        "\n"
        "        # ops.rotary_embedding() is an in-place operation\n",
        "            return query, key\n"
        "\n"
        "        if current_platform.is_rocm() and current_platform.lacks_code_object(\n"
        f"            {C_EXTENSIONS[0]}, {C_EXTENSIONS[1]}\n"
        "        ):\n"
        "            # vLLM was built without this GPU: _C.rotary_embedding cannot launch.\n"
        "            return self.forward_native(positions, query, key)\n"
        "\n"
        "        from vllm import _custom_ops as ops\n"
        "\n"
        "        cos_sin_cache = self._match_cos_sin_cache_dtype(query)\n"
        "\n"
        "        # ops.rotary_embedding() is an in-place operation\n",
    )


VLLM_C_KERNELS = "vllm/kernels/vllm_c.py"


def ir_vllm_c_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.insert_between(
        VLLM_C_KERNELS,
        "GPGPU_DEVICE = CUDA_ALIKE or current_platform.is_xpu()\n",
        "",
        "C_OPS_LAUNCHABLE = not (\n"
        "    IS_ROCM\n"
        f"    and current_platform.lacks_code_object({C_EXTENSIONS[0]}, {C_EXTENSIONS[1]})\n"
        ")\n"
        '"""False on ROCm when _C was built without this GPU in PYTORCH_ROCM_ARCH: its\n'
        "ops are registered but cannot launch, so the vllm_c implementations are\n"
        'unsupported there and vLLM dispatches to the next provider (e.g. native)."""\n',
    )
    tree.replace_once(
        VLLM_C_KERNELS,
        "@ir.ops.rms_norm.register_impl(\n"
        '    "vllm_c", supports_args=rms_no_var_size, supported=GPGPU_DEVICE\n'
        ")\n",
        "@ir.ops.rms_norm.register_impl(\n"
        '    "vllm_c",\n'
        "    supports_args=rms_no_var_size,\n"
        "    supported=GPGPU_DEVICE and C_OPS_LAUNCHABLE,\n"
        ")\n",
    )
    tree.replace_once(
        VLLM_C_KERNELS,
        "    supports_args=rms_add_no_var_size,\n"
        "    supported=GPGPU_DEVICE,\n",
        "    supports_args=rms_add_no_var_size,\n"
        "    supported=GPGPU_DEVICE and C_OPS_LAUNCHABLE,\n",
    )


def gdn_mtp_decode_code_object(tree: Tree) -> None:
    tree.require(ROCM, LACKS_CODE_OBJECT_END, "RocmPlatform.lacks_code_object()",
                 "silu-and-mul-code-object")
    tree.replace_once(
        "vllm/model_executor/layers/mamba/gdn/qwen_gdn_linear_attn.py",
        '        if not hasattr(torch.ops._C, "fused_gdn_decode_post_conv_mtp"):\n'
        '            return "torch.ops._C.fused_gdn_decode_post_conv_mtp is not built"\n'
        "        return None\n",
        '        if not hasattr(torch.ops._C, "fused_gdn_decode_post_conv_mtp"):\n'
        '            return "torch.ops._C.fused_gdn_decode_post_conv_mtp is not built"\n'
        "        if current_platform.is_rocm():\n"
        "            # Registered in every build; without this GPU in PYTORCH_ROCM_ARCH\n"
        "            # it cannot launch, and the Triton spec-decode path serves.\n"
        f"            c_ops = ({C_EXTENSIONS[0]}, {C_EXTENSIONS[1]})\n"
        "            if current_platform.lacks_code_object(*c_ops):\n"
        "                reason = current_platform.code_object_status(*c_ops).reason\n"
        "                return (\n"
        '                    "torch.ops._C.fused_gdn_decode_post_conv_mtp has no code "\n'
        '                    f"object for this GPU ({reason})"\n'
        "                )\n"
        "        return None\n",
    )


RECIPES = (
    Recipe(
        "silu-and-mul-code-object",
        "RocmPlatform.lacks_code_object(*extensions) (new; on_rdna() and the offload bundles say "
        "absent)",
        "Adds vllm/platforms/rocm_code_objects.py, an offload-bundle reader (ELF .hip_fatbin "
        "section, Clang offload bundles, CCOB-compressed bundles v1-v3 with zlib or zstd; LLVM "
        "generic targets such as gfx11-generic count for their processors), "
        "RocmPlatform.code_object_status(*extensions) (present / absent / unknown with the "
        "reason, cached, logged once when absent) and RocmPlatform.lacks_code_object(), true "
        "only on RDNA when every readable extension lacks the arch. SiluAndMul.forward_cuda "
        "returns forward_native when _C and _C_stable_libtorch lack a code object for this GPU. "
        "CDNA GPUs, readable bundles with the arch, and unreadable ones keep vLLM's HIP op. "
        "skinny-gemm-code-object and rdna3-kernels-code-object build on this patch.",
        silu_and_mul_code_object, CODE_OBJECT_READER),
    Recipe(
        "skinny-gemm-code-object", "RocmPlatform.lacks_code_object(\"vllm._rocm_C\")",
        "vllm._custom_ops.wvSplitK and LLMM1 (what rocm_unquantized_gemm calls for decode GEMMs "
        "with n <= 5 tokens on gfx9/gfx1x) return torch.nn.functional.linear(x, weight, bias), "
        "the GEMM vLLM uses for every other shape, when _rocm_C lacks a code object for this "
        "RDNA GPU. Needs the silu-and-mul-code-object patch (the reader and the predicate).",
        skinny_gemm_code_object),
    Recipe(
        "rdna3-kernels-code-object",
        "RocmPlatform.rdna3_kernels_status() (new; on_gfx11() and _rocm_C's code objects, "
        "on_gfx1100() when they cannot be read)",
        "Adds RocmPlatform.rdna3_kernels_status(): on every gfx11 GPU (the RDNA3 ISA the kernels "
        "are written for) the RDNA3 WMMA kernels are admitted when _rocm_C carries a code object "
        "for it and rejected with the reason when it does not; unreadable bundles keep vLLM's "
        "on_gfx1100() answer. RDNA3W4A16LinearKernel.can_implement and "
        "rdna3_moe_kernel_available ask it instead of on_gfx1100(); their op-registration, "
        "dtype, group-size and zero-point checks are unchanged. Needs the "
        "silu-and-mul-code-object patch.",
        rdna3_kernels_code_object),
    Recipe(
        "topk-softmax-code-object",
        "RocmPlatform.lacks_code_object(\"vllm._moe_C\", \"vllm._moe_C_stable_libtorch\")",
        "vllm._custom_ops.topk_softmax computes the routing with one Triton program per token "
        f"({TOPK_SOFTMAX}: fp32 softmax, top-k by logit with the lower expert id winning ties, "
        "optional renormalisation, token_expert_indices) into the caller's tensors when _moe_C "
        "lacks a code object for this RDNA GPU; calls with a correction bias keep the op. Needs "
        "the silu-and-mul-code-object patch.",
        topk_softmax_code_object, ("ops/topk_softmax.py",)),
    Recipe(
        "c-ops-code-object",
        "RocmPlatform.lacks_code_object(\"vllm._C\", \"vllm._C_stable_libtorch\")",
        "Adds _custom_ops._C_lacks_code_object(). When it holds: RotaryEmbedding.forward_cuda "
        "returns forward_native; reshape_and_cache_flash calls vLLM's "
        "triton_reshape_and_cache_flash; apply_repetition_penalties_cuda calls "
        "apply_repetition_penalties_torch; scaled_fp8_quant with a per-tensor static scale "
        "quantises in torch (clamp(x / scale) to the FP8 range). Dynamic, per-token and group "
        "quantisation keep the ops. Needs the silu-and-mul-code-object patch.",
        c_ops_code_object),
    Recipe(
        "ir-vllm-c-code-object",
        "RocmPlatform.lacks_code_object(\"vllm._C\", \"vllm._C_stable_libtorch\")",
        "kernels/vllm_c.py registers its rms_norm and fused_add_rms_norm implementations with "
        "supported=False on ROCm when _C lacks a code object for this RDNA GPU "
        "(C_OPS_LAUNCHABLE), so every IR priority list skips vllm_c there, as it skips any "
        "unsupported provider, and dispatches to the next one (native). Needs the "
        "silu-and-mul-code-object patch.",
        ir_vllm_c_code_object),
    Recipe(
        "gdn-mtp-decode-code-object",
        "RocmPlatform.lacks_code_object(\"vllm._C\", \"vllm._C_stable_libtorch\")",
        "QwenGatedDeltaNetAttention._fused_gdn_decode_unsupported_reason() returns a reason "
        "naming the missing code object on ROCm when _C lacks one for this RDNA GPU, so vLLM "
        "takes its Triton GDN spec-decode path (or raises its own error when the user forced "
        "VLLM_GDN_DECODE_KERNEL=cuda). vLLM 0.33 runs a Triton port on ROCm: no patch there. "
        "Needs the silu-and-mul-code-object patch.",
        gdn_mtp_decode_code_object),
)
