import pytest

from rocm_enable.toggles import ToggleError, read_selection

NAMES = {"fix-a", "fix-b", "fix-c"}


def test_defaults_select_everything():
    sel = read_selection(NAMES, {})
    assert sel.enabled and all(sel.why_not_selected(n) is None for n in NAMES)


@pytest.mark.parametrize("raw,enabled", [("0", False), ("false", False), ("1", True), ("on", True)])
def test_rocm_enable_bool(raw, enabled):
    assert read_selection(NAMES, {"ROCM_ENABLE": raw}).enabled is enabled


def test_rocm_enable_zero_disables_every_fix():
    sel = read_selection(NAMES, {"ROCM_ENABLE": "0"})
    assert all(sel.why_not_selected(n) == "ROCM_ENABLE=0" for n in NAMES)


def test_malformed_bool_names_the_fix():
    with pytest.raises(ToggleError, match="ROCM_ENABLE=1 or ROCM_ENABLE=0"):
        read_selection(NAMES, {"ROCM_ENABLE": "maybe"})


def test_disable_and_only():
    sel = read_selection(NAMES, {"ROCM_ENABLE_DISABLE": "fix-a, fix-b"})
    assert sel.why_not_selected("fix-a") and sel.why_not_selected("fix-c") is None
    sel = read_selection(NAMES, {"ROCM_ENABLE_ONLY": "fix-c"})
    assert sel.why_not_selected("fix-a") and sel.why_not_selected("fix-c") is None


@pytest.mark.parametrize("env", [{"ROCM_ENABLE_DISABLE": "fix-z"}, {"ROCM_ENABLE_ONLY": "fix-a,nope"}])
def test_unknown_names_list_the_valid_ones(env):
    with pytest.raises(ToggleError) as err:
        read_selection(NAMES, env)
    assert "fix-a, fix-b, fix-c" in str(err.value)


def test_empty_entry_and_conflicts_are_errors():
    with pytest.raises(ToggleError, match="empty entry"):
        read_selection(NAMES, {"ROCM_ENABLE_ONLY": "fix-a,,fix-b"})
    with pytest.raises(ToggleError, match="both"):
        read_selection(NAMES, {"ROCM_ENABLE_ONLY": "fix-a", "ROCM_ENABLE_DISABLE": "fix-a"})
