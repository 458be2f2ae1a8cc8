"""Test-side fix for a Triton 3.9 CPU-interpreter bug: ``create_dot`` multiplies bfloat16
operands as their uint16 storage (the interpreter keeps bf16 as uint16), giving ~1e10 errors for
any bf16 tl.dot. Here bf16 operands are widened to fp32 first (exact: bf16 -> fp32 only pads the
mantissa), which is what the matrix units compute (bf16 products, fp32 accumulation). Only the
interpreter is touched; the compiled kernels never see this."""
import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def _interpreter_bf16_dot():
    import triton.language as tl
    from triton.runtime import interpreter as I

    orig = I.InterpreterBuilder.create_dot

    def widen(h):
        if h.dtype.scalar == tl.bfloat16:
            return I.TensorHandle((h.data.astype(np.uint32) << 16).view(np.float32), tl.float32)
        return h

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        return orig(self, widen(a), widen(b), d, input_precision, max_num_imprecise_acc)

    I.InterpreterBuilder.create_dot = create_dot
    yield
    I.InterpreterBuilder.create_dot = orig
