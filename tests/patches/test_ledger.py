"""patches/README.md is the ledger of the fix records: current, complete, and honest about
versions. A fix without a patch fails here, by name."""
from packaging.specifiers import SpecifierSet

from rocm_enable import patches as rp


def test_ledger_is_current(series_root):
    readme = series_root.parent / "README.md"
    assert readme.read_text() == rp.render_readme(rp.vllm_fixes(), series_root), (
        "patches/README.md is stale: run .venv/bin/python scripts/build_vllm_patches.py")


def test_ledger_lists_exactly_the_records(series_root):
    text = (series_root.parent / "README.md").read_text()
    rows = [line.split("|")[1].strip().strip("`") for line in text.splitlines()
            if line.startswith("| `")]
    assert rows == [f.name for f in rp.vllm_fixes()]


def test_every_fix_has_a_patch_or_is_declared_pending(series_root):
    missing = {fix.name for fix in rp.vllm_fixes() for v in rp.series_versions(series_root)
               if fix.supports_version(v) and rp.patch_for_fix(series_root / v, fix.name) is None}
    undeclared = sorted(missing - set(rp.PATCH_PENDING))
    assert not undeclared, ("fix records without a patch in the vLLM series (add a recipe beside "
                            "the record, rocm_enable/stacks/vllm/<topic>_recipes.py, and rebuild, "
                            "or declare it in "
                            "rocm_enable.patches.PATCH_PENDING): " + ", ".join(undeclared))
    stale = sorted(set(rp.PATCH_PENDING) - missing)
    assert not stale, f"PATCH_PENDING lists fixes that have patches or no record: {stale}"


def test_series_names_only_existing_fixes(series_root):
    names = {f.name for f in rp.vllm_fixes()}
    for v in rp.series_versions(series_root):
        for patch in rp.read_series(series_root / v):
            assert rp.fix_of(patch) in names, f"{v}/{patch} names no fix record"
            assert (series_root / v / patch).is_file(), f"{v}/series names missing {patch}"


def test_commit_messages_carry_the_ledger_fields(series_root):
    for v in rp.series_versions(series_root):
        for patch in rp.read_series(series_root / v):
            head = (series_root / v / patch).read_text().split("\n---\n", 1)[0]
            for field in ("Why:", "How:", "Capability predicate:", "Runtime equivalent:",
                          "Upstream:", "Removal:", f"Rocm-enable-fix: {rp.fix_of(patch)}",
                          f"Verified-on: vLLM {v}"):
                assert field in head, f"{v}/{patch}: commit message lacks {field!r}"


_major, _minor, *_ = rp.VERIFIED_VLLM_VERSIONS[-1].split(".")
NEXT_MINOR = f"{_major}.{int(_minor) + 1}.0"  # the release after the newest verified one


def test_version_ranges_are_the_verified_ones(series_root):
    """Each record claims the range its anchors were verified in; the series exist for exactly
    the verified versions; the next minor release is outside every range (anchors still gate
    patch releases inside it by fingerprint). A verified version outside a record's range is one
    that fixed it upstream (fixed_upstream_in), and that version's series has no patch for it."""
    assert rp.series_versions(series_root) == list(rp.VERIFIED_VLLM_VERSIONS)
    for fix in rp.vllm_fixes():
        spec = SpecifierSet(fix.versions)
        covered = {v for v in rp.VERIFIED_VLLM_VERSIONS if spec.contains(v)}
        anchored = {v for p in fix.patches for v in p.anchors}
        assert covered and anchored == covered, (fix.name, fix.versions, anchored)
        for v in set(rp.VERIFIED_VLLM_VERSIONS) - covered:
            assert fix.fixed_upstream_by(v), (f"{fix.name}: range {fix.versions} leaves out the "
                                              f"verified vLLM {v} without fixed_upstream_in")
            assert rp.patch_for_fix(series_root / v, fix.name) is None, (fix.name, v)
        assert not spec.contains(NEXT_MINOR) and not spec.contains("0.31.0"), (fix.name, fix.versions)
