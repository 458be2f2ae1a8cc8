"""Stand-in for aiter's HIP kernel launch: code objects exist for gfx9 only (as in aiter's builds
of these kernels, which use v_pk_mul_f32 / gfx9 headers)."""
import functools

from aiter.jit.utils.chip_info import get_gfx_runtime

LAUNCHES = []  # (kernel module, arch) of every successful launch, for the tests


def hip_kernel(module_name):
    def decorate(body):
        @functools.wraps(body)
        def launch(*args, **kwargs):
            arch = get_gfx_runtime()
            if not arch.startswith("gfx9"):
                raise RuntimeError(
                    f"HIP error: invalid device function ({module_name} has no code object "
                    f"for {arch})")
            LAUNCHES.append((module_name, arch))
            return body(*args, **kwargs)

        return launch

    return decorate
