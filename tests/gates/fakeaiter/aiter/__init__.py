"""Stand-in for the `aiter` package (not installable here), put on PYTHONPATH by
tests/gates/test_aiter_triton.py only. It holds just the module names vLLM probes for the GDN
Triton decode path, the Triton unified attention and the Triton RoPE; calling a kernel is an error
(no kernel runs in these tests), except the RoPE stand-in, which records the call."""
