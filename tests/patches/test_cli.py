"""`rocm-enable patches export` and `rocm-enable patches check`."""
import re
from pathlib import Path

import pytest

from trees import installed_root
from rocm_enable import cli
from rocm_enable import patches as rp


def test_export_writes_the_series(tmp_path, series_root, capsys):
    assert cli.main(["patches", "export", str(tmp_path / "out"), "--version", "0.33.0"]) == 0
    names = rp.read_series(series_root / "0.33.0")
    assert rp.read_series(tmp_path / "out") == names
    for n in names:
        assert (tmp_path / "out" / n).read_text() == (series_root / "0.33.0" / n).read_text()
    assert f"{len(names)} patches" in capsys.readouterr().out


def test_export_picks_the_series_of_a_vllm_tree(tmp_path, versions_under_test, capsys):
    for vllm in versions_under_test:
        out = tmp_path / vllm.version
        assert cli.main(["patches", "export", str(out), "--vllm-src",
                         str(installed_root(vllm))]) == 0
        assert f"vLLM {vllm.version} series" in capsys.readouterr().out


def test_check_reports_every_patch_applies_to_its_version(versions_under_test, capsys):
    for vllm in versions_under_test:
        rc = cli.main(["patches", "check", "--vllm-src", str(installed_root(vllm))])
        out = capsys.readouterr().out
        assert rc == 0, out
        assert "need rebasing" not in out and out.count("  applies") == len(
            rp.read_series(rp.series_root() / vllm.version))


def test_check_reports_which_patches_need_rebasing_on_another_version(versions_under_test, capsys):
    """Version drift: vLLM 0.32.0 against the 0.33.0 series."""
    old = [v for v in versions_under_test if v.version == "0.32.0"]
    if not old:
        pytest.skip("vLLM 0.32.0 not under test")
    rc = cli.main(["patches", "check", "--vllm-src", str(installed_root(old[0])),
                   "--version", "0.33.0"])
    out = capsys.readouterr().out
    assert rc == 1
    assert re.search(r"0004-rms-norm-not-aiter-hip\.patch +needs rebase", out), out
    assert "patch does not apply" in out  # git's own message
    assert re.search(r"0003-moe-config-board-names\.patch +applies", out), out


def test_check_names_a_path_without_vllm(tmp_path, capsys):
    assert cli.main(["patches", "check", "--vllm-src", str(tmp_path)]) == 2
    assert "holds no vLLM package" in capsys.readouterr().err


def test_series_found_from_the_source_checkout():
    assert rp.series_root() == Path(__file__).resolve().parents[2] / "patches" / "vllm"


def test_newest_series_is_checked_against_any_tree(series_root, versions_under_test):
    """What the release audit calls: the newest series, patch by patch, against a vLLM tree."""
    newest = rp.series_versions(series_root)[-1]
    for vllm in versions_under_test:
        version, results = rp.check_newest_series(installed_root(vllm), series_root)
        assert version == newest
        assert [r.patch for r in results] == rp.read_series(series_root / newest)
        if vllm.version == newest:
            assert all(r.ok for r in results), [r.message for r in results if not r.ok]
