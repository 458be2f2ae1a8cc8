"""The upstream-able vLLM patch series: where it lives, whether it applies, and its ledger.

Layout (canonical, in the source tree): `patches/vllm/<vLLM version>/series` names the
`git format-patch` files of that directory in apply order (quilt style); one patch per fix
record, named `NNNN-<fix name>.patch`. `scripts/build_vllm_patches.py` regenerates every series
and `patches/README.md` (the ledger) from the fix records, rocm_enable/ops and the installed vLLM
sources; tests/patches checks they are current, that they apply, and that the patched vLLM decides
like the plugin.

Finding the series: from a source checkout it is `<repo>/patches/vllm`; a wheel installs the same
files as data files under `<prefix>/share/rocm-enable/patches/vllm` (pyproject.toml
[tool.setuptools.data-files]), found through the distribution's file list. There is one copy in
the repository and no copy step.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# The vLLM versions the fix records (anchors) and the series were verified on.
VERIFIED_VLLM_VERSIONS = ("0.32.0", "0.33.0", "0.34.0")
STACK = "vllm"
DIST = "rocm-enable"
DATA_SUBDIR = Path("share") / DIST / "patches" / STACK
PATCH_NAME = re.compile(r"^(\d{4})-(.+)\.patch$")


class PatchesError(RuntimeError):
    """No series found, an unknown version, or a vLLM source path that holds no vLLM."""


# ---- locating the series -----------------------------------------------------------------

def _source_checkout_root() -> Path | None:
    here = Path(__file__).resolve().parent.parent / "patches" / STACK
    return here if here.is_dir() else None


def _installed_root() -> Path | None:
    try:
        from importlib import metadata

        dist = metadata.distribution(DIST)
    except Exception:
        return None
    for f in dist.files or ():
        parts = Path(str(f)).parts
        if "share" in parts and parts[-1] == "series":
            path = Path(dist.locate_file(f)).resolve()
            if path.parent.parent.name == STACK:
                return path.parent.parent
    return None


def series_root(override: str | os.PathLike | None = None) -> Path:
    """The folder holding one series folder per vLLM version."""
    for root in (Path(override) if override else None, _source_checkout_root(), _installed_root()):
        if root is not None and root.is_dir():
            return root
    raise PatchesError("no vLLM patch series found: neither a source checkout's patches/vllm nor "
                       f"an installed {DIST} share/{DATA_SUBDIR.relative_to('share')}")


def series_versions(root: Path | None = None) -> list[str]:
    root = root or series_root()
    return sorted((p.name for p in root.iterdir() if (p / "series").is_file()), key=_vkey)


def _vkey(v: str):
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(v))
    except InvalidVersion:
        return (1, v)


def read_series(series_dir: Path) -> list[str]:
    """Patch file names in apply order (blank lines and # comments ignored)."""
    names = []
    for line in (Path(series_dir) / "series").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split()[0])
    return names


def fix_of(patch_name: str) -> str | None:
    m = PATCH_NAME.match(patch_name)
    return m.group(2) if m else None


def patch_for_fix(series_dir: Path, fix_name: str) -> str | None:
    """The series entry for a fix: derived from the fix name, `NNNN-<fix name>.patch`."""
    for name in read_series(series_dir):
        if fix_of(name) == fix_name:
            return name
    return None


def pick_series(version: str | None, root: Path | None = None) -> tuple[str, bool]:
    """(series version to use, exact match?) for a vLLM version: its own series when there is
    one, else the newest series not newer than it, else the oldest."""
    versions = series_versions(root)
    if not versions:
        raise PatchesError("the series folder holds no series")
    if version in versions:
        return version, True
    if version:
        older = [v for v in versions if _vkey(v) <= _vkey(version)]
        if older:
            return older[-1], False
    return versions[0], False


# ---- vLLM source trees -------------------------------------------------------------------

def vllm_package_root(path: str | os.PathLike) -> Path:
    """The folder that holds `vllm/` (a vLLM checkout, a site-packages), given it or `vllm/`."""
    p = Path(path).expanduser().resolve()
    if (p / "vllm" / "__init__.py").is_file():
        return p
    if p.name == "vllm" and (p / "__init__.py").is_file():
        return p.parent
    raise PatchesError(f"{path} holds no vLLM package (expected {p}/vllm/__init__.py)")


def tree_version(root: Path) -> str | None:
    """vLLM's version as its package states it, without importing it."""
    for rel in ("vllm/_version.py", "vllm/version.py"):
        f = Path(root) / rel
        if f.is_file():
            m = re.search(r"^__version__\s*=\s*(?:version\s*=\s*)?['\"]([^'\"]+)['\"]",
                          f.read_text(), flags=re.M)
            if m:
                return m.group(1)
    return None


def touched_paths(patch_text: str) -> set[str]:
    """Every path a git patch reads or writes (old and new names)."""
    paths = set()
    for line in patch_text.splitlines():
        m = re.match(r"^diff --git a/(\S+) b/(\S+)$", line)
        if m:
            paths.update(m.groups())
    return paths


def copy_tree(src_root: Path, dst_root: Path, only: Iterable[str] | None = None) -> None:
    """Copy `vllm/` from src_root to dst_root: only the given relative paths (enough for
    `git apply --check`), or the whole package as hard links where possible (a copy where the
    file system refuses). Call unlink_touched() before patching: it gives every file a patch
    modifies a private copy, so patching never writes through a link into the source tree."""
    if only is not None:
        for rel in only:
            src = src_root / rel
            if src.is_file():
                (dst_root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst_root / rel)
        return

    def link_or_copy(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    # Hard links share mtimes, so linked __pycache__ entries stay valid for unpatched modules;
    # Python rewrites a stale .pyc by atomic rename, which leaves the linked original alone.
    shutil.copytree(src_root / "vllm", dst_root / "vllm", copy_function=link_or_copy,
                    symlinks=True)


def unlink_touched(root: Path, patch_texts: Iterable[str]) -> None:
    """Replace hard-linked files the patches modify by private copies before applying."""
    for text in patch_texts:
        for rel in touched_paths(text):
            p = root / rel
            if p.is_file() and p.stat().st_nlink > 1:
                data = p.read_bytes()
                p.unlink()
                p.write_bytes(data)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def init_git(root: Path) -> None:
    # Its own repository, so `git apply` treats paths relative to this root, not an enclosing repo.
    r = _git(["init", "-q"], root)
    if r.returncode:
        raise PatchesError(f"git init failed in {root}: {r.stderr.strip()}")


# ---- applying and checking ---------------------------------------------------------------

APPLIES, NEEDS_REBASE = "applies", "needs rebase"


@dataclass(frozen=True)
class PatchCheck:
    patch: str
    fix: str | None
    status: str  # APPLIES | NEEDS_REBASE
    message: str  # git's message when it does not apply

    @property
    def ok(self) -> bool:
        return self.status == APPLIES


def apply_series(root: Path, series_dir: Path, *, stop_on_failure: bool = False,
                 names: list[str] | None = None) -> list[PatchCheck]:
    """`git apply --check`, then apply, each patch in series order in the tree at `root` (which
    must be its own git repository, see init_git). A patch that does not apply is reported with
    git's message and skipped; the ones after it are still tried."""
    results = []
    for name in names if names is not None else read_series(series_dir):
        patch = Path(series_dir) / name
        if not patch.is_file():
            results.append(PatchCheck(name, fix_of(name), NEEDS_REBASE, f"{patch} is missing"))
        else:
            check = _git(["apply", "--check", "--whitespace=nowarn", str(patch)], root)
            if check.returncode == 0:
                done = _git(["apply", "--whitespace=nowarn", str(patch)], root)
                ok = done.returncode == 0
                results.append(PatchCheck(name, fix_of(name), APPLIES if ok else NEEDS_REBASE,
                                          "" if ok else done.stderr.strip()))
            else:
                results.append(PatchCheck(name, fix_of(name), NEEDS_REBASE,
                                          check.stderr.strip() or check.stdout.strip()))
        if stop_on_failure and not results[-1].ok:
            break
    return results


def check_vllm_tree(vllm_src: str | os.PathLike, series_dir: Path) -> list[PatchCheck]:
    """Which patches of a series apply to the vLLM at `vllm_src`, tried in series order in a
    temporary copy of the files the series touches (the checkout itself is never written)."""
    root = vllm_package_root(vllm_src)
    names = read_series(series_dir)
    texts = [(Path(series_dir) / n).read_text() for n in names if (Path(series_dir) / n).is_file()]
    with tempfile.TemporaryDirectory(prefix="rocm-enable-check-") as tmp:
        work = Path(tmp)
        copy_tree(root, work, only=set().union(*map(touched_paths, texts)) if texts else set())
        init_git(work)
        return apply_series(work, series_dir, names=names)


def check_newest_series(vllm_src: str | os.PathLike,
                        root: Path | None = None) -> tuple[str, list[PatchCheck]]:
    """(newest series version, each of its patches checked against the vLLM at `vllm_src`): the
    release audit's question "does our newest series apply to this tree?" (`rocm-enable audit`;
    `rocm-enable patches check --version V` asks it of any one series)."""
    root = root or series_root()
    versions = series_versions(root)
    if not versions:
        raise PatchesError(f"{root} holds no series")
    return versions[-1], check_vllm_tree(vllm_src, root / versions[-1])


def patched_copy(vllm_src: str | os.PathLike, series_dir: Path, dest: Path) -> list[PatchCheck]:
    """A full, importable copy of the vLLM at `vllm_src` in `dest` (dest/vllm), with the series
    applied in order; returns each patch's result (the tests put `dest` first on PYTHONPATH)."""
    root = vllm_package_root(vllm_src)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    copy_tree(root, dest)
    names = read_series(series_dir)
    unlink_touched(dest, [(Path(series_dir) / n).read_text() for n in names
                          if (Path(series_dir) / n).is_file()])
    init_git(dest)
    (dest / ".git" / "info" / "exclude").write_text("*\n")  # git apply only; nothing is tracked
    return apply_series(dest, series_dir, names=names)


def export_series(dest: str | os.PathLike, version: str, root: Path | None = None) -> list[Path]:
    """Write the series of `version` (its `series` file and patches) into `dest`."""
    series_dir = (root or series_root()) / version
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ["series", *read_series(series_dir)]:
        shutil.copyfile(series_dir / name, out / name)
        written.append(out / name)
    return written


# ---- the ledger (patches/README.md) -------------------------------------------------------

def vllm_fixes() -> list:
    from rocm_enable.engine.hooks import all_fixes

    return [f for f in all_fixes() if f.stack == STACK]


def patch_files(fixes: Iterable, root: Path) -> dict[str, list[str]]:
    """fix name -> its patch in each version's series (paths relative to patches/)."""
    out: dict[str, list[str]] = {}
    for fix in fixes:
        for version in series_versions(root):
            name = patch_for_fix(root / version, fix.name)
            if name:
                out.setdefault(fix.name, []).append(f"{STACK}/{version}/{name}")
    return out


LEDGER_TITLE = "Upstream-able vLLM patches"
LEDGER_INTRO = """\
Generated by `scripts/build_vllm_patches.py` from the fix records in `rocm_enable/stacks/vllm/`
(`tests/patches/test_ledger.py` fails when this file is stale).

Each fix that rocm-enable applies at runtime (a `wrapt` wrapper around a vLLM symbol, switched
off with `ROCM_ENABLE_DISABLE=<fix>`) has an equivalent change of vLLM's own source here, one
`git format-patch` file per fix: `vllm/<vLLM version>/NNNN-<fix>.patch`, applied in the order of
that folder's `series` file (quilt style; paths `a/vllm/...`, relative to the folder holding the
`vllm` package: a vLLM checkout or a site-packages). Each commit message carries the ledger fields:
why, how, the capability predicate, upstream references and the removal condition. Where the
runtime fix adds kernels, the patch adds them to vLLM's tree as vLLM modules; their sources are
generated from `rocm_enable/ops` (and the offload-bundle reader from `rocm_enable/gates`), so they
cannot drift from the runtime code. The RDNA attention backend module is generated from the
runtime classes too (`rocm_enable/stacks/vllm/attention_rdna_recipes.py`); the W8A16 vLLM classes
(`rocm_enable/stacks/vllm/templates`) repeat the runtime classes, and
`tests/patches/test_template_drift.py` fails, naming the class and member, when they differ beyond
the declared differences.

Verified vLLM versions: {verified}. Series: {series}.

```
rocm-enable patches export DIR [--vllm-src PATH | --version V]   # write a series
rocm-enable patches check --vllm-src PATH                         # which patches apply to a tree
cd <folder holding vllm/> && git apply DIR/NNNN-*.patch           # each, in series order
```

This folder is the only copy: a wheel installs it as data files under
`<prefix>/share/rocm-enable/patches/` (pyproject.toml `[tool.setuptools.data-files]`), where the
installed `rocm-enable patches` command finds it; from a source checkout it reads `patches/vllm/`.
Each fix's source patch is made by its recipe, which sits beside its record: record
`rocm_enable/stacks/vllm/<topic>.py`, recipe `rocm_enable/stacks/vllm/<topic>_recipes.py`.
Regenerate after changing a fix record, a recipe or a kernel in `rocm_enable/ops`:
`.venv/bin/python scripts/build_vllm_patches.py`.

`tests/patches/` proves the series: each applies cleanly to its vLLM version, and vLLM patched
with it (plugin off) decides like unpatched vLLM with the plugin (its fixes that have no patch yet
switched off) on simulated gfx1151, gfx1100, gfx1201 and gfx942.
{missing}"""


# Fix records that apply at runtime but have no source patch yet, and why. The ledger prints
# them; tests/patches/test_ledger.py fails for a record without a patch that is not listed here,
# and for an entry here that has a patch or no record.
PATCH_PENDING: dict[str, str] = {
    "fp8-lm-head": "opt-in (ROCM_ENABLE_FP8_LM_HEAD=1), changes the logits: a source patch would have to read "
                   "rocm-enable's toggle inside vLLM's tree; runtime only",
}


def render_readme(fixes: Iterable | None = None, root: Path | None = None) -> str:
    from rocm_enable.ledger import render_ledger

    root = root or series_root()
    fixes = list(fixes if fixes is not None else vllm_fixes())
    versions = series_versions(root)
    files = patch_files(fixes, root)
    missing = [f.name for f in fixes
               if len(files.get(f.name, ())) != len([v for v in versions if f.supports_version(v)])]
    intro = LEDGER_INTRO.format(
        verified=", ".join(VERIFIED_VLLM_VERSIONS),
        series=", ".join(f"[`vllm/{v}/series`](vllm/{v}/series)" for v in versions),
        missing=("\n**Fixes without a patch in every series yet** (they apply at runtime only):\n\n"
                 + "".join(f"- `{m}`: {PATCH_PENDING.get(m, 'NOT DECLARED in PATCH_PENDING')}\n"
                           for m in missing)) if missing else
                ("\nEvery fix record has a patch in the series of every version its range covers "
                 f"({len(fixes)} fixes, {sum(len(p) for p in files.values())} patches over "
                 f"{len(versions)} versions; a fix fixed upstream in a version has none there).\n"))
    return render_ledger(fixes, title=LEDGER_TITLE, intro=intro, patch_files=files)


# ---- command-line entry points (rocm_enable.cli) -------------------------------------------

def cmd_export(args) -> int:
    root = series_root(args.series_root)
    version = args.version
    note = ""
    if args.vllm_src:
        found = tree_version(vllm_package_root(args.vllm_src))
        version, exact = pick_series(found, root)
        if not exact:
            note = f" (no series for vLLM {found}; nearest is {version}: run `patches check`)"
    elif not version:
        version = series_versions(root)[-1]
    if version not in series_versions(root):
        raise PatchesError(f"no series for vLLM {version}; series: {', '.join(series_versions(root))}")
    written = export_series(args.dir, version, root)
    print(f"wrote the vLLM {version} series ({len(written) - 1} patches) to {args.dir}{note}")
    for p in written:
        print(f"  {p.name}")
    return 0


def cmd_check(args) -> int:
    root = series_root(args.series_root)
    src = vllm_package_root(args.vllm_src)
    found = tree_version(src)
    version, exact = (args.version, True) if args.version else pick_series(found, root)
    series_dir = root / version
    results = check_vllm_tree(src, series_dir)
    print(f"vLLM {found or 'unknown version'} at {src}; series for vLLM {version}"
          f"{'' if exact else ' (nearest: no series for this version)'}; verified on "
          f"{', '.join(VERIFIED_VLLM_VERSIONS)}")
    width = max((len(r.patch) for r in results), default=5)
    for r in results:
        print(f"  {r.patch:<{width}}  {r.status}")
        if not r.ok:
            for line in r.message.splitlines():
                print(f"      {line}")
    bad = [r for r in results if not r.ok]
    print(f"{len(results) - len(bad)} of {len(results)} patches apply"
          + (f"; {len(bad)} need rebasing" if bad else ""))
    return 1 if bad else 0


def add_subcommand(sub) -> None:
    """`rocm-enable patches {export,check}` (wired in rocm_enable/cli.py)."""
    p = sub.add_parser("patches", help="the upstream-able vLLM patch series: export it, check it")
    psub = p.add_subparsers(dest="patches_command", required=True)
    ex = psub.add_parser("export", help="write the series (series file + patches) into DIR")
    ex.add_argument("dir", metavar="DIR")
    ex.add_argument("--vllm-src", help="pick the series for the vLLM at PATH (checkout or site-packages)")
    ex.add_argument("--version", help="the vLLM version whose series to write (default: newest)")
    ex.add_argument("--series-root", help=argparse_suppress())
    ex.set_defaults(func=_guarded(cmd_export))
    ck = psub.add_parser("check", help="which patches apply to a vLLM tree, in series order")
    ck.add_argument("--vllm-src", required=True, help="vLLM checkout, site-packages or vllm/ folder")
    ck.add_argument("--version", help="check this version's series (default: the tree's own, or nearest)")
    ck.add_argument("--series-root", help=argparse_suppress())
    ck.set_defaults(func=_guarded(cmd_check))


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def _guarded(fn):
    def run(args) -> int:
        try:
            return fn(args)
        except PatchesError as exc:
            import sys

            print(f"rocm-enable patches: {exc}", file=sys.stderr)
            return 2

    return run
