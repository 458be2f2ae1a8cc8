#!/usr/bin/env python
"""Regenerate the vLLM patch series (patches/vllm/<version>/) and the ledger (patches/README.md).

For each vLLM version: copy the installed package to a temporary tree, `git init` + commit it,
apply each fix's recipe (rocm_enable/stacks/vllm/<topic>_recipes.py, beside its record
<topic>.py) as one commit whose message carries the fix record's ledger fields, and
`git format-patch` the commits. Kernel sources are embedded from rocm_enable/ops by the recipes,
so re-running this after a kernel change updates the series; tests/patches/test_series.py fails
while the checked-in series differs from a fresh run.

    .venv/bin/python scripts/build_vllm_patches.py                 # every verified version
    .venv/bin/python scripts/build_vllm_patches.py --check         # exit 1 if anything is stale
    .venv/bin/python scripts/build_vllm_patches.py --vllm 0.33.0=/path/holding/vllm
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rocm_enable import patches as rp  # noqa: E402
from rocm_enable.stacks.vllm.recipe import Recipe, RecipeError, Tree, recipes_by_fix  # noqa: E402

PATCHES = REPO / "patches"
STACK_DIR = rp.STACK  # patches/vllm/
AUTHOR = ("rocm-enable", "rocm-enable@users.noreply.github.com")
DATE = "2026-01-01T00:00:00+00:00"  # fixed: regenerating the same inputs gives the same bytes


def default_trees() -> dict[str, Path]:
    """Each verified version's vLLM sources as scripts/test.sh installs them: the venv's own
    vLLM (the oldest) and the wheel sources of the others under .vllm-overlay/<version>."""
    site = sorted(glob.glob(str(REPO / ".venv" / "lib" / "python*" / "site-packages")))
    oldest, *others = rp.VERIFIED_VLLM_VERSIONS
    return {oldest: Path(site[0]) if site else REPO / ".venv",
            **{v: REPO / ".vllm-overlay" / v for v in others}}


def _git(args, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_AUTHOR_NAME=AUTHOR[0], GIT_AUTHOR_EMAIL=AUTHOR[1], GIT_AUTHOR_DATE=DATE,
               GIT_COMMITTER_NAME=AUTHOR[0], GIT_COMMITTER_EMAIL=AUTHOR[1], GIT_COMMITTER_DATE=DATE)
    r = subprocess.run(["git", "-c", "core.autocrlf=false", "-c", "commit.gpgsign=false",
                        "-c", "diff.renames=true", *args], cwd=cwd, env=env, capture_output=True,
                       text=True)
    if r.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}:\n{r.stderr}")
    return r.stdout


def _para(label: str, text: str) -> str:
    return textwrap.fill(" ".join(text.split()), width=72, initial_indent=f"{label}: ",
                         subsequent_indent="  ", break_on_hyphens=False, break_long_words=False)


def commit_message(fix, recipe: Recipe, version: str) -> str:
    """The patch's commit message: the fix record's ledger fields, for vLLM reviewers."""
    subject = f"[ROCm] {fix.title}"
    body = [
        _para("Why", fix.why),
        _para("How", recipe.how),
        _para("Capability predicate", f"{recipe.predicate}; rocm-enable's runtime fix asks "
              f"{fix.condition_name}() of its capability table."),
        _para("Runtime equivalent", f"rocm-enable fix '{fix.name}' (switch off with "
              f"ROCM_ENABLE_DISABLE={fix.name}): {fix.how}"),
        _para("Upstream", fix.upstream),
        _para("Removal", f"drop the runtime fix {fix.removal}; this patch is that change."),
    ]
    if recipe.embeds:
        label = ("Kernel sources" if all(s.startswith("ops/") for s in recipe.embeds)
                 else "Embedded sources")
        body.append(_para(label, "generated from rocm-enable " + ", ".join(
            f"rocm_enable/{s}" for s in recipe.embeds) + " by scripts/build_vllm_patches.py."))
    trailers = [f"Rocm-enable-fix: {fix.name}", f"Rocm-enable-gates: {', '.join(fix.gates) or '-'}",
                f"Verified-on: vLLM {version}"]
    return subject + "\n\n" + "\n\n".join(body) + "\n\n" + "\n".join(trailers) + "\n"


def build_series(version: str, vllm_root: Path, fixes, out_dir: Path) -> list[str]:
    """Write out_dir/{series, NNNN-<fix>.patch} for one vLLM version; returns the patch names."""
    vllm_root = rp.vllm_package_root(vllm_root)
    found = rp.tree_version(vllm_root)
    if found != version:
        raise SystemExit(f"{vllm_root} holds vLLM {found}, not {version}")
    # a fix whose record does not cover this version (fixed upstream) gets no patch in it
    recipes = recipes_by_fix()
    with_recipe = [f for f in fixes if f.name in recipes and f.supports_version(version)]
    with tempfile.TemporaryDirectory(prefix=f"vllm-{version}-") as tmp:
        work = Path(tmp) / "tree"
        work.mkdir()
        rp.copy_tree(vllm_root, work)
        _git(["init", "-q"], work)
        (work / ".git" / "info" / "exclude").write_text("__pycache__/\n*.so\n*.pyc\n")
        _git(["add", "-A"], work)
        _git(["commit", "-q", "-m", f"vLLM {version}"], work)
        base = _git(["rev-parse", "HEAD"], work).strip()
        tree = Tree(work, version)
        for fix in with_recipe:
            recipe = recipes[fix.name]
            try:
                recipe.apply(tree)
            except RecipeError as exc:
                raise SystemExit(f"fix {fix.name}: recipe does not fit vLLM {version}: {exc}")
            _git(["add", "-A"], work)
            if not _git(["status", "--porcelain"], work).strip():
                raise SystemExit(f"fix {fix.name}: recipe changed nothing in vLLM {version}")
            msg = Path(tmp) / "msg"
            msg.write_text(commit_message(fix, recipe, version))
            _git(["commit", "-q", "-F", str(msg)], work)
        fp_dir = Path(tmp) / "out"
        _git(["format-patch", "-q", "--zero-commit", "--no-signature", "--no-numbered", "-M",
              "--full-index", "-o", str(fp_dir), f"{base}..HEAD"], work)
        produced = sorted(fp_dir.glob("*.patch"))
        assert len(produced) == len(with_recipe), (produced, with_recipe)
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob("*.patch"):
            old.unlink()
        names = []
        for i, (fix, path) in enumerate(zip(with_recipe, produced), start=1):
            name = f"{i:04d}-{fix.name}.patch"
            (out_dir / name).write_text(path.read_text())
            names.append(name)
    (out_dir / "series").write_text(
        f"# vLLM {version}: apply in this order (git apply / quilt). Generated by "
        "scripts/build_vllm_patches.py.\n" + "".join(f"{n}\n" for n in names))
    return names


def build_all(trees: dict[str, Path], out_root: Path) -> None:
    fixes = rp.vllm_fixes()
    for version, root in sorted(trees.items()):
        names = build_series(version, root, fixes, out_root / "vllm" / version)
        print(f"vLLM {version}: {len(names)} patches -> {out_root / 'vllm' / version}")
    (out_root / "README.md").write_text(rp.render_readme(fixes, out_root / "vllm"))


def _snapshot(root: Path) -> dict[str, str]:
    """What this script writes under root: the ledger and the vLLM series (not patches/atom/)."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] in ("README.md", STACK_DIR)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vllm", action="append", default=[], metavar="VERSION=ROOT",
                    help="a vLLM version and the folder holding its vllm/ package")
    ap.add_argument("--out", default=str(PATCHES), help="output folder (default: patches/)")
    ap.add_argument("--check", action="store_true",
                    help="build into a temporary folder and exit 1 when --out differs from it")
    args = ap.parse_args(argv)
    trees = default_trees()
    for item in args.vllm:
        version, _, root = item.partition("=")
        trees[version] = Path(root)
    if not args.check:
        build_all(trees, Path(args.out))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        build_all(trees, Path(tmp))
        fresh, current = _snapshot(Path(tmp)), _snapshot(Path(args.out))
    stale = sorted(k for k in fresh.keys() | current.keys() if fresh.get(k) != current.get(k))
    for k in stale:
        print(f"stale: {k}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
