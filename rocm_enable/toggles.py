"""Environment toggles. Every variable rocm-enable reads is defined here and documented in README.

  ROCM_ENABLE=0|1              0 disables everything: vLLM behaves exactly as without the package
  ROCM_ENABLE_DISABLE=a,b      apply every fix except these
  ROCM_ENABLE_ONLY=a,b         apply only these fixes
  ROCM_ENABLE_ARCH=gfx1151     use this arch's capabilities (override or simulation)
  ROCM_ENABLE_FP8_LM_HEAD=1    opt in to fix fp8-lm-head (quantizes the BF16 lm_head; off by default)
  ROCM_ENABLE_FUSED_SHARED_EXPERT=0   opt out of fix fused-shared-expert (on by default)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

ENABLE_ENV = "ROCM_ENABLE"
DISABLE_ENV = "ROCM_ENABLE_DISABLE"
ONLY_ENV = "ROCM_ENABLE_ONLY"
ARCH_ENV = "ROCM_ENABLE_ARCH"
FP8_LM_HEAD_ENV = "ROCM_ENABLE_FP8_LM_HEAD"
FUSED_SHARED_EXPERT_ENV = "ROCM_ENABLE_FUSED_SHARED_EXPERT"
# Fixes that change the model's numerics: off unless their variable is 1.
OPT_IN = {"fp8-lm-head": FP8_LM_HEAD_ENV}
# Fixes on by default that a user can switch off by their own variable (0), besides DISABLE.
OPT_OUT = {"fused-shared-expert": FUSED_SHARED_EXPERT_ENV}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ToggleError(ValueError):
    """A malformed or unknown value in one of the ROCM_ENABLE* variables."""


@dataclass(frozen=True)
class Selection:
    enabled: bool
    disabled: frozenset[str]
    only: frozenset[str] | None
    opted_in: frozenset[str] = frozenset()
    opted_out: frozenset[str] = frozenset()

    def why_not_selected(self, fix_name: str) -> str | None:
        if not self.enabled:
            return f"{ENABLE_ENV}=0"
        if fix_name in self.disabled:
            return f"listed in {DISABLE_ENV}"
        if fix_name in OPT_IN and fix_name not in self.opted_in:
            return f"off by default (it changes the logits); {OPT_IN[fix_name]}=1 enables it"
        if fix_name in self.opted_out:
            return f"{OPT_OUT[fix_name]}=0"
        if self.only is not None and fix_name not in self.only:
            return f"not listed in {ONLY_ENV}"
        return None


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ToggleError(f"{name}={raw!r} is not a boolean; use {name}=1 or {name}=0")


def _parse_names(name: str, raw: str, valid: set[str]) -> frozenset[str]:
    names = [n.strip() for n in raw.split(",")]
    if any(not n for n in names):
        raise ToggleError(
            f"{name}={raw!r} has an empty entry; give a comma-separated list of fix names, "
            f"valid names: {', '.join(sorted(valid))}"
        )
    unknown = sorted(set(names) - valid)
    if unknown:
        raise ToggleError(
            f"{name} names unknown fix(es) {', '.join(unknown)}; valid names: {', '.join(sorted(valid))}"
        )
    return frozenset(names)


def read_selection(valid_fix_names: set[str], environ=None) -> Selection:
    env = os.environ if environ is None else environ
    enabled = _parse_bool(ENABLE_ENV, env[ENABLE_ENV]) if env.get(ENABLE_ENV, "") != "" else True
    disabled = (
        _parse_names(DISABLE_ENV, env[DISABLE_ENV], valid_fix_names) if env.get(DISABLE_ENV) else frozenset()
    )
    only = _parse_names(ONLY_ENV, env[ONLY_ENV], valid_fix_names) if env.get(ONLY_ENV) else None
    if only is not None and disabled & only:
        raise ToggleError(
            f"{', '.join(sorted(disabled & only))} is both in {ONLY_ENV} and {DISABLE_ENV}; choose one"
        )
    opted_in = frozenset(name for name, var in OPT_IN.items() if env.get(var, "") != "" and _parse_bool(var, env[var]))
    opted_out = frozenset(name for name, var in OPT_OUT.items()
                          if env.get(var, "") != "" and not _parse_bool(var, env[var]))
    return Selection(enabled, disabled, only, opted_in, opted_out)
