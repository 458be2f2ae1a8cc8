"""The series applies cleanly to its vLLM version and is exactly what the build script generates
from the current fix records, rocm_enable/ops kernels and vLLM sources."""
import re
import shutil
from pathlib import Path

import pytest

from rocm_enable import patches as rp
from rocm_enable.stacks.vllm import recipe_embed

REPO = Path(__file__).resolve().parents[2]


def test_each_series_applies_cleanly(patched_trees, versions_under_test, series_root):
    assert set(rp.series_versions(series_root)) == set(rp.VERIFIED_VLLM_VERSIONS)
    for vllm in versions_under_test:
        assert vllm.version in patched_trees, f"no series for vLLM {vllm.version}"
        _, results = patched_trees[vllm.version]
        bad = [f"{r.patch} ({r.fix}) does not apply to vLLM {vllm.version}: {r.message}"
               for r in results if not r.ok]
        assert not bad, "\n".join(bad)
        assert [r.patch for r in results] == rp.read_series(series_root / vllm.version)


def new_files(patch_text: str) -> dict[str, str]:
    """path -> content of every file a git patch creates."""
    out = {}
    for block in re.split(r"^diff --git ", patch_text, flags=re.M)[1:]:
        m = re.match(r"a/(\S+) b/(\S+)\n", block)
        if "\nnew file mode" not in block.split("@@", 1)[0]:
            continue
        body = block.split("\n@@", 1)[1].split("\n", 1)[1]
        lines = []
        for line in body.split("\n"):
            if line.startswith("+"):
                lines.append(line[1:])
            elif line.startswith("\\ No newline"):
                lines[-1] += "\x00"
        text = "\n".join(lines) + "\n"
        out[m.group(2)] = text.replace("\x00\n", "")
    return out


@pytest.mark.parametrize("version", rp.VERIFIED_VLLM_VERSIONS)
def test_embedded_sources_equal_rocm_enable(series_root, version):
    created = {}
    for name in rp.read_series(series_root / version):
        created.update(new_files((series_root / version / name).read_text()))
    for source in recipe_embed.EMBEDDED:
        path = recipe_embed.embedded_path(source)
        assert path in created, f"vLLM {version} series does not add {path}"
        assert created[path] == recipe_embed.embed_module(source), (
            f"{path} in the vLLM {version} series differs from rocm_enable/{source}: "
            "run scripts/build_vllm_patches.py")
    for path, text in recipe_embed.kernel_config_files().items():
        assert created.get(path) == text, f"{path} differs from rocm_enable/ops/configs: rebuild"


@pytest.fixture(scope="module")
def fresh_build(versions_under_test, tmp_path_factory):
    """(trees, folder): scripts/build_vllm_patches.py's build_all of the vLLM trees under test,
    once for this module (the two tests below need the same build: a git commit per recipe on a
    copy of each vLLM tree, the costliest part of these tests)."""
    import build_vllm_patches as build
    from trees import installed_root

    trees = {v.version: installed_root(v) for v in versions_under_test}
    out = tmp_path_factory.mktemp("fresh-build")
    build.build_all(trees, out)
    return trees, out


def test_series_and_ledger_equal_a_fresh_build(fresh_build):
    import build_vllm_patches as build

    trees, out = fresh_build
    fresh = build._snapshot(out)
    current = build._snapshot(REPO / "patches")
    # the ledger lists every series: compared when every version is under test
    every = set(trees) == set(rp.series_versions(REPO / "patches" / "vllm"))
    fresh = {k: v for k, v in fresh.items() if k != "README.md" or every}
    current = {k: v for k, v in current.items()
               if (every if k == "README.md" else k.split("/")[1] in trees)}
    stale = sorted(k for k in fresh.keys() | current.keys() if fresh.get(k) != current.get(k))
    assert not stale, (f"patches/ is stale (run .venv/bin/python scripts/build_vllm_patches.py): "
                       f"{stale}")


def test_build_check_mode_accepts_the_checked_in_series(versions_under_test, fresh_build,
                                                        monkeypatch, capsys):
    """`scripts/build_vllm_patches.py --check` (what a contributor runs) compares only what it
    writes: the vLLM series and the ledger, not patches/atom/. When main builds the same trees
    as fresh_build, its build_all call gets that build's output (the same call, made once)."""
    import build_vllm_patches as build
    from trees import installed_root

    built_trees, built = fresh_build
    build_all = build.build_all

    def build_all_once(trees, out_root):
        if trees != built_trees:
            return build_all(trees, out_root)
        shutil.copytree(built, out_root, dirs_exist_ok=True)

    monkeypatch.setattr(build, "build_all", build_all_once)
    args = ["--check"] + [a for v in versions_under_test
                          for a in ("--vllm", f"{v.version}={installed_root(v)}")]
    assert build.main(args) == 0, capsys.readouterr().out
