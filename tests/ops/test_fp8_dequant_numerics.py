"""Exhaustive and edge-case checks of the e4m3fn -> fp16-bits dequantisation (CPU, interpreter)."""
import os

# The kernels run in Triton's CPU interpreter; it must be on before they are decorated.
os.environ.setdefault("TRITON_INTERPRET", "1")
import pytest
import torch

from rocm_enable.ops.fp8_dequant import (check_fp8_weights_finite, e4m3_to_fp16_bits_torch,
                                         fold_fp8_scale_for_fp16_bits)
from rocm_enable.ops.linear_w8a16 import linear_w8a16
from rocm_enable.ops.moe_w8a16 import launch_w8a16_gemm

FINITE = torch.tensor([v for v in range(256) if v & 0x7F != 0x7F], dtype=torch.uint8)


def test_all_254_finite_codes_torch_mapping():
    assert FINITE.numel() == 254
    got = e4m3_to_fp16_bits_torch(FINITE).double() * 256
    want = FINITE.view(torch.float8_e4m3fn).double()
    assert torch.equal(got, want)


# BLOCK_N = N: one program per activation row (the interpreter runs programs one by one)
GEMV = {"kernel": "gemv", "BLOCK_N": 32, "BLOCK_K": 64, "num_warps": 4, "num_stages": 2}


@pytest.mark.parametrize("kernel", ["tile", "gemv"])
@pytest.mark.parametrize("act_dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale_kind", ["tensor", "channel", "block"])
def test_all_254_finite_codes_through_kernel(act_dtype, scale_kind, kernel):
    """Every finite code sits in the weight; one-hot activations read each weight back
    through the kernel (packed bit-trick dequant, even/odd split, MMA or the GEMV's fp32 products
    with the scale on the activation, folded scale).
    Scales are powers of two, so the output must equal the exact value bit for bit."""
    K, N = 64, 32  # 2048 weights: every code appears 8 times, at every K parity and byte lane
    perm = torch.randperm(N * K, generator=torch.Generator().manual_seed(1)) % 254
    w = FINITE[perm].reshape(N, K).view(torch.float8_e4m3fn)
    if scale_kind == "tensor":
        s, full = torch.tensor([0.5]), torch.full((N, 1), 0.5)
    elif scale_kind == "channel":
        p = 2.0 ** -torch.randint(0, 4, (N,)).double()
        s, full = p.float(), p[:, None]
    else:
        s, full = torch.tensor([[0.25]]), torch.full((N, 1), 0.25)
    x = torch.eye(K, dtype=act_dtype)
    bs = [128, 128] if scale_kind == "block" else None
    if kernel == "gemv":  # the decode GEMV (one row per program, scales on the activation)
        y = torch.full((K, N), float("nan"), dtype=act_dtype)
        launch_w8a16_gemm(x, w.unsqueeze(0), fold_fp8_scale_for_fp16_bits(s), y, routing=None, top_k=1,
                          block_shape=bs, gemm_cfg=GEMV, block_m=16)
    else:
        y = linear_w8a16(x, w, fold_fp8_scale_for_fp16_bits(s), block_shape=bs, arch_family="rdna3")
    want = (w.double() * full).T  # [K, N]
    assert torch.equal(y.double(), want.to(act_dtype).double())
    assert torch.equal(want.to(act_dtype).double(), want)  # the values are exact in act_dtype


def test_fold_is_exact_times_256_and_keeps_shape():
    s = torch.rand(3, 8, 16) * 1e-2
    f = fold_fp8_scale_for_fp16_bits(s)
    assert f.shape == s.shape and f.dtype == torch.float32
    assert torch.equal(f, s * 256) and torch.equal(f / 256, s)
    assert torch.equal(fold_fp8_scale_for_fp16_bits(s.to(torch.bfloat16)), s.to(torch.bfloat16).float() * 256)
    with pytest.raises(ValueError):
        fold_fp8_scale_for_fp16_bits(torch.tensor([1.0, float("inf")]))
    with pytest.raises(TypeError):
        fold_fp8_scale_for_fp16_bits(torch.tensor([1, 2]))


@pytest.mark.parametrize("nan_byte", [0x7F, 0xFF])
def test_nan_encoding_is_refused_with_tensor_name(nan_byte):
    w = torch.randint(0, 0x7E, (4, 64, 64), dtype=torch.uint8)
    check_fp8_weights_finite(w.view(torch.float8_e4m3fn), "ok")  # finite: passes
    w[2, 5, 7] = nan_byte
    with pytest.raises(ValueError, match=r"layers\.3\.mlp\.experts\.w13_weight.*flat index 8519"):
        check_fp8_weights_finite(w.view(torch.float8_e4m3fn), "layers.3.mlp.experts.w13_weight")
    # NaN in a later chunk than the first is still found
    with pytest.raises(ValueError, match="1 FP8"):
        check_fp8_weights_finite(w.view(torch.float8_e4m3fn), "w", chunk_bytes=1000)


def test_all_finite_codes_pass_the_scan():
    check_fp8_weights_finite(FINITE.view(torch.float8_e4m3fn), "all_finite")
