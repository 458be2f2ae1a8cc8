"""The installed command finds the series: every series folder is a data-files entry of the wheel."""
import tomllib
from pathlib import Path

from rocm_enable import patches as rp

REPO = Path(__file__).resolve().parents[2]


def test_every_series_is_shipped_in_the_wheel(series_root):
    data_files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    for version in rp.series_versions(series_root):
        dest = f"share/rocm-enable/patches/vllm/{version}"
        assert data_files.get(dest) == [f"patches/vllm/{version}/*"], (
            f"pyproject.toml [tool.setuptools.data-files] lacks {dest!r} = ['patches/vllm/{version}/*']")
