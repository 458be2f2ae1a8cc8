"""tests/ops: the W8A16 kernels run in Triton's interpreter on CPU (numerics tests).

TRITON_INTERPRET must be set before any @triton.jit kernel of rocm_enable.ops is
decorated, so it is set here, before the test modules import them. The ISA tests are not
affected: rocm_enable.isa re-loads the kernel modules with the interpreter off.
"""
import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
