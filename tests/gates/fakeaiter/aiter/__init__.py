"""Stand-in for the `aiter` package (not installable here), put on PYTHONPATH by
tests/gates/test_aiter_triton.py only. It holds just the module names vLLM probes for the GDN
Triton decode path; calling any of them is an error (no kernel runs in these tests)."""
