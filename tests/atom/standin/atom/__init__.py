"""Stand-in for ROCm ATOM (test-only; see tests/atom/standin/README.md). Like the real package it
defines no __version__: the version lives in the distribution metadata."""
