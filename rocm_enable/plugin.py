"""vLLM `vllm.general_plugins` entry point.

vLLM calls this in every process it starts (API server, engine core, each worker), sometimes
twice in one process. It must be cheap, re-entrant and never raise into vLLM."""
from __future__ import annotations

_summary_logged = False


def register() -> None:
    global _summary_logged
    from rocm_enable.runtime import activate, get_logger

    logger = get_logger()
    try:
        report = activate(apply=True)
    except Exception:  # vLLM would swallow it silently; say it loudly and leave vLLM untouched
        logger.exception("rocm-enable: internal error; no fix applied")
        return
    if _summary_logged or report.caps is None:
        return
    _summary_logged = True
    applied = [r.name for r in report.results if r.status == "applied"]
    skipped = [r.name for r in report.results if r.status == "skipped"]
    logger.info(
        "rocm-enable: arch %s (%s); applied %d fix(es): %s%s",
        report.caps.arch, report.detection.source, len(applied), ", ".join(applied) or "none",
        f"; skipped: {', '.join(skipped)}" if skipped else "",
    )
