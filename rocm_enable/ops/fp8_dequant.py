"""FP8 e4m3fn -> fp16 dequantisation by integer bit operations (no fp8 casts anywhere).

Why bit operations: gfx11 (RDNA3 / RDNA3.5) has no FP8 conversion instruction, and
Triton lowers an fp8->fp16 cast there into a 9-compare / 9-select ladder per byte
(768 K-loop instructions per WMMA in vLLM's kernel, see docs/kernels.md).

The mapping. For an e4m3fn byte ``x = s eeee mmm`` the fp16 bit pattern

    bits = ((x & 0x80) << 8) | ((x & 0x7F) << 7)        # s 0eeee mmm 0000000

puts sign, exponent and mantissa into the fp16 fields unchanged. The fp16 exponent
bias (15) exceeds e4m3's (7) by 8, so ``fp16(bits) == e4m3(x) * 2**-8`` exactly, for
every finite value including the e4m3 subnormals (exponent field 0 -> fp16 subnormal
with the same mantissa, which is again the value times 2**-8). The 2**8 is folded once
into the weight scales by :func:`fold_fp8_scale_for_fp16_bits`.

Packed form used by the kernels. A little-endian int32 word ``w`` holds the bytes of
four consecutive K positions k0..k3 (byte 0 = k0). Two 32-bit results hold two fp16
values each, already packed the way matrix instructions consume fp16 pairs:

    even = ((w << 8) & 0x80008000) | ((w << 7) & 0x3F803F80)   # (k0, k2) -> lo, hi half
    odd  = ( w       & 0x80008000) | ((w >> 1) & 0x3F803F80)   # (k1, k3)

7 integer ops per 4 weights, no selects, no compares. ``even`` therefore carries the
even K positions in order, ``odd`` the odd ones, and the kernels compute
``dot(W_even, A_even) + dot(W_odd, A_odd)`` with A split the same way.

NaN: e4m3fn NaN is 0x7F / 0xFF; the trick would turn it into the finite value
1.875 * 2**-8 * 2**8 * scale... i.e. a silently wrong weight. Checkpoints never
legitimately contain NaN, so instead of a per-byte check in the hot loop we scan the
weights once at load time (:func:`check_fp8_weights_finite`) and refuse NaN loudly.
"""
from __future__ import annotations

import torch

# 2**8: fp16 exponent bias 15 minus e4m3 exponent bias 7.
FP16_BITS_SCALE = 256.0


def fold_fp8_scale_for_fp16_bits(scale: torch.Tensor) -> torch.Tensor:
    """Return ``scale`` as float32 multiplied by 2**8 (a new tensor, same shape/device).

    The kernels reinterpret each e4m3fn byte as fp16 bits, which yields the e4m3 value
    times 2**-8; multiplying the (block / channel / tensor) scale by 2**8 restores
    ``w_true = e4m3(x) * scale``. Multiplying an fp32 by a power of two is exact (no
    rounding) unless it overflows, which needs |scale| > 2**120 and is rejected.
    Call it exactly once per scale tensor (e.g. in process_weights_after_loading);
    folding twice multiplies the layer's output by 256.
    """
    if not torch.is_floating_point(scale):
        raise TypeError(f"fp8 weight scale must be floating point, got {scale.dtype}")
    s = scale.detach().to(torch.float32)
    if s.numel() and not bool(torch.isfinite(s).all()):
        raise ValueError("fp8 weight scale contains inf/NaN; refusing to fold")
    if s.numel() and float(s.abs().max()) > 2.0 ** 120:
        raise ValueError("fp8 weight scale too large to fold by 2**8 in float32")
    return s * FP16_BITS_SCALE


def check_fp8_weights_finite(weight: torch.Tensor, name: str, chunk_bytes: int = 1 << 28) -> None:
    """Raise ValueError naming ``name`` if ``weight`` holds an e4m3fn NaN encoding (0x7F/0xFF).

    One-time load-time scan, chunked to bound the temporary memory (a bool per byte of
    the chunk). It runs on the weight's own device. e4m3fn has no infinities, so
    "no NaN encoding" means "every byte is a finite value" for the bit trick.
    """
    if weight.dtype not in (torch.float8_e4m3fn, torch.uint8, torch.int8):
        raise TypeError(f"{name}: expected float8_e4m3fn weight bytes, got {weight.dtype}")
    flat = weight.reshape(-1).view(torch.uint8)
    bad = 0
    first = None
    for start in range(0, flat.numel(), chunk_bytes):
        part = flat[start:start + chunk_bytes]
        hit = (part & 0x7F) == 0x7F
        n = int(hit.sum())
        if n and first is None:
            first = start + int(hit.nonzero()[0, 0])
        bad += n
    if bad:
        raise ValueError(
            f"{name}: {bad} FP8 e4m3fn NaN encodings (0x7F/0xFF) found, first at flat index "
            f"{first} of shape {tuple(weight.shape)}; the W8A16 kernels dequantise by bit "
            f"operations and cannot represent NaN weights (a valid checkpoint has none)")


def e4m3_to_fp16_bits_torch(x: torch.Tensor) -> torch.Tensor:
    """Reference (torch, any device) of the per-byte mapping: returns fp16 = e4m3 * 2**-8."""
    b = x.view(torch.uint8).to(torch.int32)
    bits = ((b & 0x80) << 8) | ((b & 0x7F) << 7)
    bits = bits - ((bits >> 15) << 16)  # to signed int16 range
    return bits.to(torch.int16).view(torch.float16)


SCALE_BLOCK, SCALE_CHANNEL, SCALE_TENSOR = 0, 1, 2


def classify_scale(scale: torch.Tensor, num_experts: int, N: int, K: int, block_shape=None):
    """Infer the scale layout and return ``(mode, scale3d, block_shape)``.

    ``scale3d`` is a float32 view [E, n_rows, n_cols] (E=1 for dense) used by the kernels:
    block [E, cdiv(N,bn), cdiv(K,bk)]; channel [E, N, 1]; tensor [E, 1, 1].
    Accepted inputs (MoE, E experts / dense, E=1):
      block:   [E, N/bn, K/bk] / [N/bn, K/bk]   (block_shape given, or inferred as 128x128)
      channel: [E, N] or [E, N, 1] / [N] or [N, 1]
      tensor:  [E], [E, 1], [E, 1, 1] / scalar or [1]
    """
    s = scale.to(torch.float32)
    E = num_experts
    if s.numel() == E:
        return SCALE_TENSOR, s.reshape(E, 1, 1), None
    if s.numel() == E * N and (s.dim() <= 2 or s.shape[-1] == 1):
        return SCALE_CHANNEL, s.reshape(E, N, 1), None
    bs = list(block_shape) if block_shape is not None else [128, 128]
    if s.numel() == E * -(-N // bs[0]) * -(-K // bs[1]):
        return SCALE_BLOCK, s.reshape(E, -(-N // bs[0]), -(-K // bs[1])), bs
    raise ValueError(f"cannot infer fp8 scale layout: scale {tuple(scale.shape)} for E={E} "
                     f"N={N} K={K} block_shape={block_shape}")


def dequant_fp8_reference(weight: torch.Tensor, scale: torch.Tensor, block_shape=None,
                          dtype=torch.float64) -> torch.Tensor:
    """Reference dequantisation with UNfolded scales (torch's own fp8 cast, for tests).
    weight [E, N, K] or [N, K] float8_e4m3fn, scale in any layout :func:`classify_scale` takes."""
    dense = weight.dim() == 2
    w = weight.reshape(-1, *weight.shape[-2:]).to(dtype)
    E, N, K = w.shape
    mode, s, bs = classify_scale(scale, E, N, K, block_shape)
    s = s.to(dtype)
    if mode == SCALE_BLOCK:
        s = s.repeat_interleave(bs[0], 1)[:, :N].repeat_interleave(bs[1], 2)[:, :, :K]
    out = w * s
    return out[0] if dense else out
