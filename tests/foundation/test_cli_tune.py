"""`rocm-enable tune` refuses clearly where it cannot measure (the tuner itself is exercised in
tests/ops/test_tune_numerics.py with the interpreter, and on an H100 in docs/benchmarks.md)."""
import subprocess
import sys


def _tune(*args):
    return subprocess.run([sys.executable, "-m", "rocm_enable.cli", "tune", *args],
                          capture_output=True, text=True, timeout=300)


def test_tune_without_gpu_says_why():
    p = _tune("--model", "Qwen/Qwen3-Coder-Next-FP8", "--family", "rdna3")
    assert p.returncode == 2
    assert "times kernels on the GPU" in p.stderr and "torch.cuda.is_available() is False" in p.stderr


def test_tune_requires_a_model():
    p = _tune("--family", "rdna3")
    assert p.returncode == 2 and "--model" in p.stderr
