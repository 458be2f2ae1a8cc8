"""How a fix record becomes an edit of vLLM's own tree: one commit, one patch per fix.

Each record module `<topic>.py` of this package has its source patch beside it in
`<topic>_recipes.py` (a `RECIPES` tuple of `Recipe`), so the wrapper, the ledger text and the
source edit of a fix are read in one place. `scripts/build_vllm_patches.py` collects them with
`recipes_by_fix()`; the runtime plugin never imports a recipe module (stacks/vllm/__init__.py
names the record modules only), which keeps vLLM's start-up free of this code.

A recipe edits a copy of an installed vLLM package (`Tree`) the way an upstream change would:
new kernels and classes as vLLM modules registered in vLLM's own tables, decisions behind a
capability predicate on `RocmPlatform`. Every textual edit names an exact anchor and fails when
the anchor is missing or ambiguous, so a vLLM version that moved the code fails the build with
the file and anchor named instead of producing a wrong patch. Kernel sources are not written in
recipes: recipe_embed.embed_module copies them from rocm_enable/ops.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
RECIPE_SUFFIX = "_recipes"

# vLLM files several topics edit.
ROCM = "vllm/platforms/rocm.py"
CUSTOM_OPS = "vllm/_custom_ops.py"
AITER_OPS = "vllm/_aiter_ops.py"


class RecipeError(RuntimeError):
    """A recipe's anchor is missing or ambiguous in this vLLM tree (the code moved)."""


class Tree:
    """A writable copy of a vLLM package (root holds `vllm/`). Files may be hard links into the
    installed package: every write replaces the file (unlink + create), never edits in place."""

    def __init__(self, root: Path, version: str):
        self.root = Path(root)
        self.version = version

    def path(self, rel: str) -> Path:
        return self.root / rel

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def read(self, rel: str) -> str:
        return self.path(rel).read_text()

    def write(self, rel: str, text: str) -> None:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.exists() or p.is_symlink():
            p.unlink()
        p.write_text(text)

    def rename(self, old: str, new: str) -> None:
        if self.exists(new):
            raise RecipeError(f"{new} already exists in vLLM {self.version}")
        os.rename(self.path(old), self.path(new))

    def require(self, rel: str, marker: str, what: str, added_by: str) -> None:
        """`what`, which the earlier patch `added_by` of the series adds, is in `rel` (found by
        `marker`): a recipe building on another patch fails clearly when applied out of order."""
        if marker not in self.read(rel):
            raise RecipeError(f"vLLM {self.version} {rel}: {what} missing (the {added_by} patch "
                              "adds it; apply the series in order)")

    def replace_once(self, rel: str, old: str, new: str) -> None:
        text = self.read(rel)
        n = text.count(old)
        if n != 1:
            raise RecipeError(f"vLLM {self.version} {rel}: anchor found {n} times (need 1):\n{old}")
        self.write(rel, text.replace(old, new))

    def insert_between(self, rel: str, before: str, after: str, text: str) -> None:
        """Insert `text` where `before` is directly followed by `after` (found once; either may be
        empty): the anchor is written once instead of being repeated in a replacement."""
        self.replace_once(rel, before + after, before + text + after)

    def replace_regex_once(self, rel: str, pattern: str, repl: Callable | str) -> None:
        text = self.read(rel)
        found = re.findall(pattern, text, flags=re.M)
        if len(found) != 1:
            raise RecipeError(f"vLLM {self.version} {rel}: pattern found {len(found)} times "
                              f"(need 1): {pattern}")
        self.write(rel, re.sub(pattern, repl, text, flags=re.M))


def template(name: str) -> str:
    """A vLLM module the series adds verbatim (templates/<name>)."""
    return (TEMPLATES / name).read_text()


@dataclass(frozen=True)
class Recipe:
    fix: str  # the fix record's name
    predicate: str  # the capability predicate the vLLM change asks
    how: str  # what the patch changes in vLLM's tree
    apply: Callable[[Tree], None]
    embeds: tuple[str, ...] = field(default=())  # rocm_enable/ops sources the patch carries


def patch_needed(fix, qualname: str, version: str) -> bool:
    """Whether the record `fix` still wraps `qualname` on vLLM `version` (Patch.fixed_upstream_in):
    a recipe edits what the plugin changes on that version, no more."""
    found = [p for p in fix.patches if p.qualname == qualname]
    if len(found) != 1:
        raise RecipeError(f"fix {fix.name}: {len(found)} patches of {qualname} (need 1)")
    return found[0].needed_on(version)


def recipe_modules() -> list[str]:
    """The dotted names of this package's `<topic>_recipes` modules."""
    package = __name__.rpartition(".")[0]
    here = str(Path(__file__).resolve().parent)
    return sorted(f"{package}.{m.name}" for m in pkgutil.iter_modules([here])
                  if m.name.endswith(RECIPE_SUFFIX))


def recipes_by_fix(modules: Iterable[str] | None = None) -> dict[str, Recipe]:
    """fix name -> its recipe, collected from every `<topic>_recipes` module (or the dotted
    `modules` given). A recipe must sit beside its record: its fix is one of the FIXES of the
    sibling module `<topic>`."""
    out: dict[str, Recipe] = {}
    for name in recipe_modules() if modules is None else modules:
        module = importlib.import_module(name)
        record_module = importlib.import_module(name.removesuffix(RECIPE_SUFFIX))
        records = {f.name for f in getattr(record_module, "FIXES", ())}
        for recipe in module.RECIPES:
            if recipe.fix not in records:
                raise RecipeError(f"{name} has a recipe for {recipe.fix!r}, which is not a record "
                                  f"of {record_module.__name__} (put a recipe beside its record)")
            if recipe.fix in out:
                raise RecipeError(f"two recipes for {recipe.fix!r}")
            out[recipe.fix] = recipe
    return out
