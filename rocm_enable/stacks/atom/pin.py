"""Which ATOM source the records were verified against, and how to read ATOM's version.

ATOM (github.com/ROCm/ATOM) is a separate project: none of its code is in this package (the tests
carry the targeted files as data, tests/atom/pinned). The anchors in this package are fingerprints
(rocm_enable.engine.anchors) of functions at the commits below, computed from those commits' files
(tests/atom/atom_source.py) after reading the code.
"""
from __future__ import annotations

import importlib.util
from importlib import metadata

ATOM_REPOSITORY = "github.com/ROCm/ATOM"
# ROCm/ATOM main, 2026-08-22 ("Fix dpa spec middle chunk collective align for agentic (#1987)").
# git describe: v0.1.6-rc0-323-gffdf3bb5d; setuptools_scm names it 0.1.6rc1.dev323+gffdf3bb5d.
ATOM_COMMIT = "ffdf3bb5ddf8a15a64d521a2eeb3bc7438f9ac21"
# The main commit PR #1314's branch (carhuang/support_gfx1151_qwen36, head 1a8359f81) last merged:
# every anchored function is byte-identical there (same fingerprints), so it is verified too.
ATOM_PR_BASE = "2be397cb7bf89382d1b0b4ba5206e0d0a90f400a"
PR_1314 = "https://github.com/ROCm/ATOM/pull/1314"

# Anchor keys name the commit, not a version string: ATOM's version comes from git (setuptools_scm),
# so one version may name many commits; the fingerprint is what decides.
PINNED = f"ATOM@{ATOM_COMMIT[:9]}"
PR_BASE = f"ATOM@{ATOM_PR_BASE[:9]}"

# v0.1.6-rc0 onward until the next minor; a new release must be re-verified (anchors enforce it).
VERSIONS = ">=0.1.6rc0,<0.1.7"

DISTRIBUTION = "atom"


def anchors(fingerprint: str) -> dict[str, str]:
    """The same fingerprint verified at the pinned commit and at PR #1314's base."""
    return {PINNED: fingerprint, PR_BASE: fingerprint}


def atom_version() -> str | None:
    """ROCm ATOM's installed version, or None when it is not installed.

    `atom/__init__.py` defines no `__version__` (setuptools_scm writes one to atom/_version.py at
    build time only), so the distribution's metadata is read instead, without importing ATOM.
    Another project also installs a top-level `atom` module (nucleic/atom, an Enaml dependency):
    only a distribution whose URLs name ROCm/ATOM counts."""
    if importlib.util.find_spec("atom") is None:
        return None
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    urls = [*(dist.metadata.get_all("Project-URL") or []), dist.metadata.get("Home-page") or ""]
    if not any(ATOM_REPOSITORY.lower() in url.lower() for url in urls):
        return None
    return dist.version
