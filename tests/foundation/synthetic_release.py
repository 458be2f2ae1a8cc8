"""A synthetic next vLLM release built from an installed one, cheaply: `dest/vllm` holds symlinks to
the original's entries except for the files that differ (vllm/_version.py, and any edited file,
with the folders on their paths), so a "0.35.0" costs a few files, not a 500 MB copy."""
from __future__ import annotations

import os
import re
from pathlib import Path

EDIT_MARK = "synthetic next-release edit"


def _link_entries(src: Path, dest: Path) -> None:
    # not __pycache__: bytecode of an edited file must not land in the original's cache
    for entry in src.iterdir():
        if entry.name != "__pycache__":
            os.symlink(entry, dest / entry.name)


def _materialise(src: Path, dest: Path, rel: Path) -> Path:
    """Make dest/rel a real file (a copy of src/rel) and every folder above it a real folder whose
    other entries are symlinks into src."""
    here_src, here_dest = src, dest
    for part in rel.parts:
        if here_dest.is_symlink():
            raise RuntimeError(f"{here_dest} is a link")
        if not here_dest.exists():
            here_dest.mkdir(parents=True)
            _link_entries(here_src, here_dest)
        here_src, here_dest = here_src / part, here_dest / part
        if here_dest.is_symlink():
            here_dest.unlink()
            if here_src.is_dir():
                here_dest.mkdir()
                _link_entries(here_src, here_dest)
    if here_src.is_file() and not here_dest.exists():
        here_dest.write_bytes(here_src.read_bytes())
    return here_dest


def make_release(src_root: str | os.PathLike, dest_root: str | os.PathLike, version: str,
                 edit_function: str | None = None, in_file: str | None = None) -> Path:
    """`dest_root/vllm`: the vLLM under `src_root` with its version set to `version`, and, when
    asked, one statement added at the top of `edit_function`'s body in `in_file` (relative to the
    package root, e.g. "vllm/model_executor/kernels/linear/__init__.py")."""
    src, dest = Path(src_root).resolve(), Path(dest_root)  # links must not be relative
    version_file = _materialise(src, dest, Path("vllm/_version.py"))
    text = version_file.read_text()
    old = re.search(r"__version__ = version = '([^']+)'", text).group(1)
    parts = tuple(int(p) for p in version.split("."))
    text = text.replace(f"'{old}'", f"'{version}'")
    text = re.sub(r"__version_tuple__ = version_tuple = \([^)]*\)",
                  f"__version_tuple__ = version_tuple = {parts!r}", text)
    version_file.write_text(text)
    if edit_function:
        path = _materialise(src, dest, Path(in_file))
        source = path.read_text()
        start = source.index(f"\ndef {edit_function}(")
        # the end of the signature: the first line ending in ":" at indentation 0 after def
        sig_end = re.compile(r"^\)[^\n]*:\n", re.M).search(source, start).end()
        body = source[sig_end:]
        if body.lstrip().startswith('"""'):  # keep the docstring first
            doc_open = sig_end + body.index('"""')
            sig_end = source.index('"""', doc_open + 3) + 4
        source = source[:sig_end] + f"    _ = None  # {EDIT_MARK}\n" + source[sig_end:]
        path.write_text(source)
    return dest
