"""engine.scoped.answered: the value inside the block, the original after it (also on error),
a classmethod restored as a classmethod."""
import types

import pytest

from rocm_enable.engine.scoped import answered


class Gate:
    @classmethod
    def enabled(cls):
        return cls.__name__ == "Gate" and False


def test_module_attribute_answered_and_restored_on_error():
    mod = types.ModuleType("toy")
    mod.on_arch = lambda: False
    original = mod.on_arch
    with pytest.raises(RuntimeError):
        with answered(mod, "on_arch", lambda: True):
            assert mod.on_arch() is True
            raise RuntimeError("vLLM's check raised")
    assert mod.on_arch is original and mod.on_arch() is False


def test_classmethod_restored_as_classmethod():
    with answered(Gate, "enabled", classmethod(lambda cls: True)):
        assert Gate.enabled() is True
    assert isinstance(vars(Gate)["enabled"], classmethod) and Gate.enabled() is False


def test_missing_attribute_is_an_error_not_a_new_one():
    with pytest.raises(KeyError):
        with answered(Gate, "not_there", True):
            pass
    assert "not_there" not in vars(Gate)
