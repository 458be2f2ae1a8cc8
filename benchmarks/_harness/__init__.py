"""GPU benchmark helpers shared by the scripts in benchmarks/ (none of them is a test).

- timing: one CUDA graph of many launches, timed by replay (graph_time); copy bandwidth.
- read_floor: the fastest a kernel can merely read the routed experts' FP8 bytes (run as a script).
- vllm_moe: vLLM's own fused-MoE Triton kernel, extracted from an installed vLLM into a
  git-ignored folder, and a mirror of vLLM's launch of it (configs, expert assignment, grid, args).
- moe_data: block-quantised FP8 expert weights, a float32 reference GEMM, relative error.

torch and triton are imported inside the functions: the extraction step runs where vLLM is
installed (a CPU machine), the timing where a GPU is (no vLLM needed there)."""
