import pytest

from rocm_enable.gates import capabilities as C
from rocm_enable.gates.detect import arch_from_hsa_override

REQUIRED = {"gfx90a", "gfx942", "gfx950", "gfx1100", "gfx1101", "gfx1102", "gfx1150", "gfx1151",
            "gfx1200", "gfx1201"}


def test_table_covers_required_archs():
    assert REQUIRED <= set(C.known_archs())


@pytest.mark.parametrize("arch,fp8", [("gfx1151", False), ("gfx1100", False), ("gfx1150", False),
                                      ("gfx90a", False), ("gfx1201", True), ("gfx1200", True),
                                      ("gfx942", True), ("gfx950", True)])
def test_fp8_compute_is_distinct_from_storage(arch, fp8):
    caps = C.capabilities_for(arch)
    assert C.supports_fp8_compute(caps) is fp8
    assert caps.fp8_storage is True


@pytest.mark.parametrize("arch,hip", [("gfx942", True), ("gfx950", True), ("gfx1151", False),
                                      ("gfx1100", False), ("gfx1201", False)])
def test_aiter_hip_versus_triton(arch, hip):
    caps = C.capabilities_for(arch)
    assert C.aiter_hip_kernels_supported(caps) is hip
    assert C.aiter_triton_kernels_supported(caps) is True


def test_wave_and_matrix_unit_follow_family():
    for arch in C.known_archs():
        caps = C.capabilities_for(arch)
        assert (caps.wave_size, caps.matrix_unit) == ((64, "mfma") if caps.kernel_family == "cdna"
                                                      else (32, "wmma")), arch
        assert caps.boards and all(b.bandwidth_gbs > 0 and b.compute_units > 0 for b in caps.boards)


def test_arch_suffixes_are_stripped():
    assert C.capabilities_for("gfx1151:sramecc+:xnack-").arch == "gfx1151"
    assert C.capabilities_for("GFX942:sramecc+:xnack-").arch == "gfx942"


def test_unknown_arch_error_names_the_fix():
    with pytest.raises(C.UnknownArchError) as err:
        C.capabilities_for("gfx1036")
    assert "gfx1151" in str(err.value) and "ROCM_ENABLE_ARCH" in str(err.value)


@pytest.mark.parametrize("value,arch", [("11.0.0", "gfx1100"), ("9.4.2", "gfx942"),
                                        ("11.5.1", "gfx1151"), ("9.0.10", "gfx90a")])
def test_hsa_override_maps_to_spoofed_arch(value, arch):
    assert arch_from_hsa_override(value) == arch


def test_malformed_hsa_override_is_a_clear_error():
    with pytest.raises(ValueError, match="MAJOR.MINOR.STEPPING"):
        arch_from_hsa_override("gfx1100")
