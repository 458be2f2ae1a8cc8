# Stand-in for aiter.ops.triton.unified_attention (the Triton unified attention kernel vLLM's
# ROCM_AITER_UNIFIED_ATTN backend imports in its impl's __init__). No kernel runs in these tests.
def unified_attention(*args, **kwargs):
    raise NotImplementedError("stand-in aiter: no kernels")
