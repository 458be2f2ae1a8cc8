"""Opt-in FP8 lm_head (ROCM_ENABLE_FP8_LM_HEAD=1): the BF16 output projection quantized to e4m3
with one fp32 scale per 128x128 block when the weights are loaded, and run through the W8A16 dense
kernel. The FP8 checkpoints keep lm_head in BF16; on Qwen3.6's 248K vocabulary that is ~1 GB read
per decoded token, ~28 % of a batch-1 step at 4K context (`rocm-enable plan`). Off by default: it
changes the logits (tests/gates/test_fp8_lm_head*.py state by how much).

vLLM builds ParallelLMHead with UnquantizedEmbeddingMethod whenever the quantization config has no
method for it (FP8 / compressed-tensors checkpoints, BF16 models); LogitsProcessor computes the
logits through `lm_head.quant_method.apply`. Left alone: a tied head (tie_word_embeddings: the input
embedding looks rows up in the same BF16 weight) and a head_dtype override (LogitsProcessor then
reads lm_head.weight directly).
"""
from __future__ import annotations

import logging

import torch

from rocm_enable.engine.record import Fix, Patch
from rocm_enable.gates.capabilities import lacks_fp8_compute
from rocm_enable.ops.fp8_dequant import fold_fp8_scale_for_fp16_bits

EMBED = "vllm.model_executor.layers.vocab_parallel_embedding"
BLOCK = 128
E4M3_MAX = 448.0
_TIED = "_rocm_enable_tied_lm_head"
_SCALE = "rocm_enable_fp8_scale"  # folded block scales; present <=> the head runs in FP8
_ROWS_PER_CHUNK = 64 * BLOCK  # bounds the fp32 temporary of the quantization to 64 row blocks


def quantize_block_fp8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, K] -> (e4m3 [N, K], unfolded fp32 scales [ceil(N/128), ceil(K/128)]): each 128x128
    block's absolute maximum maps to 448 (round to nearest even by torch's cast)."""
    n, k = weight.shape
    nb, kb = -(-n // BLOCK), -(-k // BLOCK)
    q = torch.empty(n, k, dtype=torch.float8_e4m3fn, device=weight.device)
    scale = torch.empty(nb, kb, dtype=torch.float32, device=weight.device)
    for r0 in range(0, n, _ROWS_PER_CHUNK):
        w = weight[r0:r0 + _ROWS_PER_CHUNK].float()
        rows = w.shape[0]
        padded = torch.nn.functional.pad(w, (0, kb * BLOCK - k, 0, -(-rows // BLOCK) * BLOCK - rows))
        blocks = padded.view(-1, BLOCK, kb, BLOCK)
        s = (blocks.abs().amax(dim=(1, 3)) / E4M3_MAX).clamp(min=torch.finfo(torch.float32).tiny)
        scale[r0 // BLOCK:r0 // BLOCK + s.shape[0]] = s
        full = s.repeat_interleave(BLOCK, 0)[:rows].repeat_interleave(BLOCK, 1)[:, :k]
        q[r0:r0 + rows] = (w / full).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return q, scale


def _is_lm_head(layer) -> bool:
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead

    return isinstance(layer, ParallelLMHead)


def _layer(args, kwargs):
    return args[0] if args else kwargs["layer"]


def _apply_args(layer, x, bias=None):
    return layer, x, bias


def _head_dtype_overridden() -> bool:
    """--hf-overrides head_dtype (e.g. float32 for RL): LogitsProcessor then multiplies by
    lm_head.weight itself instead of calling quant_method.apply, so the head must stay as loaded."""
    from vllm.config import get_current_vllm_config

    mc = get_current_vllm_config().model_config
    return mc is not None and mc.head_dtype != mc.dtype


def _mark_tied(wrapped, instance, args, kwargs):
    setattr(_layer(args, kwargs), _TIED, True)
    return wrapped(*args, **kwargs)


def _quantize_after_loading(wrapped, instance, args, kwargs):
    result = wrapped(*args, **kwargs)
    layer = _layer(args, kwargs)
    if not _is_lm_head(layer) or hasattr(layer, _SCALE):  # a head shared with a drafter: once
        return result
    log = logging.getLogger("vllm.rocm_enable")
    if getattr(layer, _TIED, False):
        log.info("rocm-enable: fp8-lm-head leaves the lm_head in BF16: it is tied to the input embedding")
        return result
    if _head_dtype_overridden():
        log.warning("rocm-enable: fp8-lm-head skipped: head_dtype differs from the model dtype (--hf-overrides)")
        return result
    if layer.weight.dtype not in (torch.bfloat16, torch.float16):
        log.warning("rocm-enable: fp8-lm-head skipped: lm_head weight is %s, not bf16/fp16", layer.weight.dtype)
        return result
    q, scale = quantize_block_fp8(layer.weight.data)
    layer.weight = torch.nn.Parameter(q, requires_grad=False)  # the BF16 tensor is freed
    setattr(layer, _SCALE, torch.nn.Parameter(fold_fp8_scale_for_fp16_bits(scale), requires_grad=False))
    log.info("rocm-enable: lm_head %s quantized to FP8 (block 128) for the W8A16 kernel", tuple(q.shape))
    return result


def _apply_fp8(wrapped, instance, args, kwargs):
    layer, x, bias = _apply_args(*args, **kwargs)
    scale = getattr(layer, _SCALE, None)
    if scale is None:
        return wrapped(*args, **kwargs)
    from rocm_enable.ops.linear_w8a16 import linear_w8a16
    from rocm_enable.runtime import active_caps

    return linear_w8a16(x, layer.weight, scale, block_shape=[BLOCK, BLOCK], bias=bias,
                        arch_family=active_caps().kernel_family)


_ANCHORS_APPLY = {"0.32.0": "645ab5ee5d0d9396", "0.33.0": "645ab5ee5d0d9396", "0.34.0": "645ab5ee5d0d9396"}
_ANCHORS_TIE = {"0.32.0": "af2ee4f8e5325cf8", "0.33.0": "af2ee4f8e5325cf8", "0.34.0": "af2ee4f8e5325cf8"}
_ANCHORS_LOAD = {"0.32.0": "87c71264fcf504fa", "0.33.0": "87c71264fcf504fa", "0.34.0": "9c0299ca6e3845ad"}

FP8_LM_HEAD = Fix(
    name="fp8-lm-head",
    title="Opt-in FP8 lm_head through the W8A16 dense kernel (ROCM_ENABLE_FP8_LM_HEAD=1)",
    stack="vllm",
    patches=(
        Patch(f"{EMBED}:UnquantizedEmbeddingMethod.tie_weights", _mark_tied, _ANCHORS_TIE),
        Patch(f"{EMBED}:UnquantizedEmbeddingMethod.process_weights_after_loading", _quantize_after_loading,
              _ANCHORS_LOAD),
        Patch(f"{EMBED}:UnquantizedEmbeddingMethod.apply", _apply_fp8, _ANCHORS_APPLY),
    ),
    condition=lacks_fp8_compute,
    versions=">=0.32.0,<0.35",
    why=(
        "FP8 checkpoints (Qwen3-Next-FP8, Qwen3.6-FP8) store lm_head in BF16: vocab x hidden x 2 bytes read "
        "every decode step (1.0 GB on Qwen3.6-35B-A3B, ~28 % of its batch-1 bytes at 4K context), where "
        "llama.cpp's Q8 files quantize the output layer too. Bandwidth-bound decode on gfx1151 pays for "
        "every byte."
    ),
    how=(
        "Wrap UnquantizedEmbeddingMethod: tie_weights marks a tied head (left in BF16); "
        "process_weights_after_loading quantizes an untied ParallelLMHead's weight to e4m3 with one fp32 "
        "scale per 128x128 block (absmax/448) and frees the BF16 tensor; apply runs such a head through "
        "rocm_enable.ops.linear_w8a16 (bf16 activations, fp32 accumulation). Every other layer, and every "
        "head while ROCM_ENABLE_FP8_LM_HEAD is unset, runs vLLM's own code."
    ),
    upstream="none (vLLM has no quantized-lm_head option for FP8 block checkpoints)",
    removal="when vLLM offers an FP8 lm_head for checkpoints that ship it in BF16",
)

FIXES = (FP8_LM_HEAD,)
