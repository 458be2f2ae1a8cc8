"""Stand-in: the GPU arch is the one rocm_enable.sim simulates (ROCM_ENABLE_ARCH)."""
import os


def get_gfx_runtime() -> str:
    return os.environ.get("ROCM_ENABLE_ARCH", "gfx942")


get_gfx = get_gfx_runtime
