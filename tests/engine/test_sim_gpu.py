"""rocm_enable.sim.gpu: the pieces the engine harness runs vLLM on a real GPU with, checked on a CPU.

The GPU run itself is scripts/engine (docs/engine.md); these check what can fail without one."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from rocm_enable.gates import code_objects  # noqa: E402
from rocm_enable.sim import gpu  # noqa: E402


@pytest.mark.parametrize("arch", ["gfx1151", "gfx1100", "gfx1201"])
def test_extension_image_reads_as_cdna_only_build(tmp_path, arch):
    path = gpu.write_extension_image(gpu.DEFAULT_EXTENSION_TARGETS, str(tmp_path))
    scan = code_objects.scan_file(path)
    assert scan.source == "hip_fatbin"
    assert scan.targets == frozenset({"gfx90a", "gfx942"})
    assert code_objects.code_object_status(path, arch).status == code_objects.ABSENT


def test_extension_image_with_the_arch_reads_present(tmp_path):
    path = gpu.write_extension_image(("gfx942", "gfx1151"), str(tmp_path))
    assert code_objects.code_object_status(path, "gfx1151").status == code_objects.PRESENT


def test_activate_on_gpu_refuses_a_cpu_torch():
    if torch.cuda.is_available():
        pytest.skip("this check is about a machine without a GPU")
    with pytest.raises(RuntimeError, match="sim.activate"):
        gpu.activate_on_gpu("gfx1151")


def test_host_ops_have_schemas_and_no_kernels():
    # its own process: the schemas must not leak into tests that expect torch.ops._C to be empty
    code = textwrap.dedent("""
        import torch
        from rocm_enable.sim import gpu
        defined = gpu.install_host_ops()
        assert "_C::silu_and_mul" in defined and "_C::weak_ref_tensor" in defined, defined
        assert gpu.install_host_ops() == []          # re-entrant
        x = torch.ones(3)
        assert torch.ops._C.weak_ref_tensor(x).data_ptr() == x.data_ptr()
        try:
            torch.ops._C.silu_and_mul(torch.empty(2), torch.ones(4))
        except NotImplementedError:
            print("no kernel")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no kernel" in out.stdout
