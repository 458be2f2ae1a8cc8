"""Apply fix records to the running process: fail closed, idempotent, revertible.

A fix is applied only if its stack is importable, its capability condition holds, the user's
toggles select it, and every target's source matches an anchor. On a version inside the record's
verified range that is the whole test; on a newer, unverified release the fingerprints are the
authority: the fix applies when every target matches a verified fingerprint (the reason says
which version's), and is skipped naming the first target that drifted otherwise. Otherwise it is
skipped with one warning naming it and the reason; nothing here raises into the host stack."""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

import wrapt
from packaging.version import InvalidVersion, Version

from rocm_enable.engine.anchors import TargetError, fingerprint, resolve, underlying_function
from rocm_enable.engine.record import Fix, Stack, release
from rocm_enable.gates.capabilities import ArchCapabilities
from rocm_enable.toggles import Selection

APPLIED, SKIPPED, DISABLED, NOT_APPLICABLE = "applied", "skipped", "disabled", "not-applicable"
_MARK = "_self_rocm_enable_fix"


@dataclass(frozen=True)
class FixResult:
    name: str
    stack: str
    status: str
    reason: str

    def as_dict(self) -> dict:
        return {"name": self.name, "stack": self.stack, "status": self.status, "reason": self.reason}


# fix name -> [(owner, attribute, original raw attribute)], for revert and idempotency
_applied: dict[str, list[tuple[object, str, object]]] = {}
_warned: set[tuple[str, str]] = set()
_reasons: dict[str, str] = {}  # fix name -> why it was applied (repeated on re-entry)


def stack_version(stack: Stack) -> str | None:
    try:
        if stack.version_probe is not None:
            return stack.version_probe()
        return getattr(importlib.import_module(stack.module), "__version__", None)
    except Exception:
        return None


def _check_patches(fix: Fix, version: str, verified: bool) -> tuple[str | None, list[str]]:
    """(why the fix cannot be applied or None, per needed target the newest verified version whose
    anchor its source matches). On an unverified version the fingerprints are the authority."""
    matched = []
    for patch in fix.patches:
        if not patch.needed_on(version):
            continue
        try:
            _, _, raw = resolve(patch.target)
        except TargetError as exc:
            return f"target drifted: {exc}", matched
        if isinstance(raw, wrapt.FunctionWrapper):
            return f"{patch.target} is already wrapped by someone else", matched
        found = fingerprint(underlying_function(raw))
        versions = [v for v, h in patch.anchors.items() if h == found]
        if not versions:
            known = ", ".join(f"{v}={h}" for v, h in patch.anchors.items())
            if verified:
                return (f"anchor mismatch on {patch.target}: source fingerprint {found} is not one "
                        f"we verified ({known}); {version} changed this code"), matched
            return (f"{fix.stack} {version} is unverified and {patch.target} differs from every "
                    f"verified source ({known}; found {found}): run `rocm-enable audit "
                    f"--vllm-src PATH` for the diff"), matched
        releases = [v for v in versions if release(v)]
        matched.append(max(releases, key=Version) if releases else versions[-1])
    return None, matched


def unverified_reason(matched: list[str]) -> str:
    return f"unverified version, anchors match {', '.join(sorted(set(matched), key=release))}"


def _wrap(fix: Fix, version: str) -> None:
    undo = []
    for patch in fix.patches:
        if patch.wrapper is None:  # guard: anchored, never wrapped
            continue
        if not patch.needed_on(version):
            continue
        owner, attr, raw = resolve(patch.target)
        wrapt.wrap_function_wrapper(owner, attr, patch.wrapper)
        setattr(vars(owner)[attr], _MARK, fix.name)
        undo.append((owner, attr, raw))
    _applied[fix.name] = undo


def evaluate(fix: Fix, version: str | None, caps: ArchCapabilities | None, selection: Selection,
             apply: bool) -> FixResult:
    def result(status, reason):
        return FixResult(fix.name, fix.stack, status, reason)

    if fix.name in _applied:
        return result(APPLIED, _reasons.get(fix.name, f"{fix.condition_name} holds"))
    off = selection.why_not_selected(fix.name)
    if off:
        return result(DISABLED, off)
    if version is None:
        return result(NOT_APPLICABLE, f"{fix.stack} is not installed")
    if caps is None:
        return result(NOT_APPLICABLE, "not running on ROCm (set ROCM_ENABLE_ARCH to simulate an arch)")
    if not fix.condition(caps):
        return result(NOT_APPLICABLE, f"{fix.condition_name} is false on {caps.arch}")
    try:
        Version(version)
    except InvalidVersion:
        return result(SKIPPED, f"{fix.stack} reports version {version!r}, which is not a PEP 440 version")
    if fix.fixed_upstream_by(version):
        return result(NOT_APPLICABLE, f"{fix.stack} {version} does not need it (fixed upstream "
                                      f"in {fix.fixed_upstream_in})")
    verified = fix.supports_version(version)
    if not verified and not fix.newer_than_verified(version):
        bound = (f" (explicit bound: unverified versions before {fix.unverified_before})"
                 if fix.unverified_before else "")
        return result(SKIPPED, f"{fix.stack} {version} is outside the verified range "
                               f"{fix.versions}{bound}")
    problem, matched = _check_patches(fix, version, verified)
    if problem:
        return result(SKIPPED, problem)
    holds = f"{fix.condition_name} holds on {caps.arch}"
    if not verified:
        holds = f"{unverified_reason(matched)}; {holds}"
    if apply:
        try:
            _wrap(fix, version)
        except Exception as exc:  # never into the host stack
            revert(fix.name)
            return result(SKIPPED, f"wrapping failed: {type(exc).__name__}: {exc}")
        _reasons[fix.name] = holds
        return result(APPLIED, holds)
    return result(NOT_APPLICABLE, "dry run")


def apply_stacks(stacks: list[Stack], caps: ArchCapabilities | None, selection: Selection,
                 logger: logging.Logger, apply: bool = True) -> list[FixResult]:
    results = []
    for stack in stacks:
        version = stack_version(stack)
        for fix in stack.fixes:
            res = evaluate(fix, version, caps, selection, apply)
            if res.status == SKIPPED and (fix.name, res.reason) not in _warned:
                _warned.add((fix.name, res.reason))
                logger.warning("rocm-enable: skipped fix %s: %s", fix.name, res.reason)
            results.append(res)
    return results


def revert(name: str) -> None:
    _reasons.pop(name, None)
    for owner, attr, raw in reversed(_applied.pop(name, [])):
        setattr(owner, attr, raw)


def revert_all() -> None:
    for name in list(_applied):
        revert(name)


def applied_names() -> list[str]:
    return list(_applied)
