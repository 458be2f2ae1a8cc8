"""W8A16 Triton kernels: FP8 e4m3fn weights, bf16/fp16 activations, fp32 accumulation."""
