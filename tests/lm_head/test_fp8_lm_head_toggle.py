"""ROCM_ENABLE_FP8_LM_HEAD: off unless set to a true value; a malformed value is an error naming
the variable; ROCM_ENABLE_DISABLE still wins."""
import pytest

from rocm_enable.toggles import FP8_LM_HEAD_ENV, ToggleError, read_selection

NAMES = {"fp8-lm-head", "fp8-moe-w8a16"}


@pytest.mark.parametrize("env,selected", [({}, False), ({FP8_LM_HEAD_ENV: "0"}, False), ({FP8_LM_HEAD_ENV: ""}, False),
                                          ({FP8_LM_HEAD_ENV: "1"}, True), ({FP8_LM_HEAD_ENV: "on"}, True)])
def test_opt_in(env, selected):
    sel = read_selection(NAMES, env)
    assert (sel.why_not_selected("fp8-lm-head") is None) == selected
    assert sel.why_not_selected("fp8-moe-w8a16") is None  # other fixes are not opt-in
    if not selected:
        assert f"{FP8_LM_HEAD_ENV}=1" in sel.why_not_selected("fp8-lm-head")


def test_malformed_value_names_the_variable():
    with pytest.raises(ToggleError, match=f"{FP8_LM_HEAD_ENV}='maybe' is not a boolean"):
        read_selection(NAMES, {FP8_LM_HEAD_ENV: "maybe"})


def test_disable_list_wins_over_opt_in():
    sel = read_selection(NAMES, {FP8_LM_HEAD_ENV: "1", "ROCM_ENABLE_DISABLE": "fp8-lm-head"})
    assert sel.why_not_selected("fp8-lm-head") == "listed in ROCM_ENABLE_DISABLE"
