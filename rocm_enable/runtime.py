"""Decide and apply the fixes for this process; shared by the vLLM entry point and `doctor`."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rocm_enable.engine import apply as engine
from rocm_enable.engine.hooks import all_fixes, stacks
from rocm_enable.gates.capabilities import ArchCapabilities, UnknownArchError, capabilities_for
from rocm_enable.gates.detect import ArchDetection, detect_arch
from rocm_enable.toggles import ToggleError, read_selection


def get_logger() -> logging.Logger:
    """vLLM's logger when vLLM is present, so our lines appear in `vllm serve` output."""
    try:
        from vllm.logger import init_logger

        return init_logger("vllm.rocm_enable")
    except Exception:
        return logging.getLogger("rocm_enable")


_active_caps: ArchCapabilities | None = None


def active_caps() -> ArchCapabilities:
    """Capabilities of the arch this process's fixes were applied for (wrappers read it)."""
    if _active_caps is None:
        raise RuntimeError("rocm-enable fixes are not active in this process")
    return _active_caps


@dataclass
class Report:
    detection: ArchDetection | None = None
    caps: ArchCapabilities | None = None
    platform: str | None = None
    results: list[engine.FixResult] = field(default_factory=list)
    error: str | None = None


def vllm_platform_name() -> str | None:
    try:
        from vllm.platforms import current_platform

        return "rocm" if current_platform.is_rocm() else type(current_platform).__name__
    except Exception:
        return None


def activate(apply: bool = True) -> Report:
    """Read toggles, detect the arch, and apply (or only evaluate) every selected fix."""
    report = Report()
    logger = get_logger()
    try:
        selection = read_selection({f.name for f in all_fixes()})
    except ToggleError as exc:
        report.error = str(exc)
        logger.error("rocm-enable: %s. No fix applied.", exc)
        return report
    if not selection.enabled:
        report.results = [engine.FixResult(f.name, f.stack, engine.DISABLED, "ROCM_ENABLE=0")
                          for f in all_fixes()]
        return report
    try:
        report.detection = detect_arch()
    except (UnknownArchError, ValueError) as exc:
        report.error = str(exc)
        logger.error("rocm-enable: %s. No fix applied.", exc)
        return report
    if report.detection.warning:
        logger.warning("rocm-enable: %s", report.detection.warning)
    report.platform = vllm_platform_name()
    report.caps = _caps_for_platform(report, logger)
    if report.caps is not None:
        global _active_caps
        _active_caps = report.caps
    report.results = engine.apply_stacks(stacks(), report.caps, selection, logger, apply=apply)
    return report


def _caps_for_platform(report: Report, logger) -> ArchCapabilities | None:
    # Fixes patch vLLM's ROCm code paths, so they only make sense when vLLM itself runs as ROCm
    # (a real GPU, or rocm_enable.sim making vLLM's own RocmPlatform believe in an arch).
    if report.platform != "rocm" or report.detection.arch is None:
        return None
    try:
        return capabilities_for(report.detection.arch)
    except UnknownArchError as exc:
        logger.warning("rocm-enable: %s Fixes stay off.", exc)
        return None

