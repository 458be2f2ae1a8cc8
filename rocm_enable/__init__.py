"""rocm-enable: capability gates, W8A16 FP8 kernels and op routing for vLLM on AMD consumer GPUs."""
__version__ = "0.1.0"
