"""tests/ops: numerics tests run the W8A16 kernels in Triton's CPU interpreter (each such
module turns TRITON_INTERPRET on before importing the kernels); ISA tests compile them ahead of
time. scripts/test.sh runs the two kinds in separate pytest sessions: the interpreter patches
Triton's language functions process-wide, which breaks AOT compiles in the same process."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
