"""The vLLM trees the patch-series tests work on. A plain module, not conftest: with several
test folders each holding a conftest.py, `from conftest import ...` finds whichever was imported
last (tests/tp's, on an xdist worker), so the tests import these from here."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from rocm_enable import patches as rp
from sim_harness import VllmUnderTest


def installed_root(vllm: VllmUnderTest) -> Path:
    """The folder holding the `vllm` package this VllmUnderTest imports."""
    if vllm.pythonpath:
        return rp.vllm_package_root(vllm.pythonpath.split(os.pathsep)[0])
    spec = importlib.util.find_spec("vllm")
    return Path(spec.origin).resolve().parent.parent


def patched_under_test(vllm: VllmUnderTest, patched_root: Path) -> VllmUnderTest:
    # The patched copy first; the rest of the original path (0.33's overlay holds orjson) after.
    rest = [p for p in vllm.pythonpath.split(os.pathsep) if p]
    return VllmUnderTest(vllm.version, os.pathsep.join([str(patched_root), *rest]))
