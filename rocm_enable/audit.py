"""`rocm-enable audit --vllm-src PATH`: everything a maintainer needs to judge a new vLLM release in
one run (CONTRIBUTING.md, "Releasing against a new vLLM").

Per vLLM fix record and target: does the release's source match a verified anchor (which version's),
or did it drift -- then a unified diff of the function against the newest source we verified; plus
whether each patch of the newest vLLM patch series applies to the release (rocm_enable.patches).

The release is imported in a child process (its own PYTHONPATH, rocm_enable.sim standing in for the
GPU and vLLM's compiled extensions), so its fingerprints are exactly what the plugin computes at run
time. The verified sources live in rocm_enable/stacks/vllm/verified_sources.json, keyed by
fingerprint: `--record-sources` adds the source of every target whose fingerprint is one of its
record's anchors (that is, only code someone verified), and tests/foundation/test_audit.py checks
that every anchor of every vLLM record has its source there.
"""
from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from packaging.version import Version

from rocm_enable.engine.record import release

SOURCES_FILE = "verified_sources.json"
SIM_ARCH = "gfx1151"  # any arch: fingerprints do not depend on it (anchors were taken under it)
MATCHED, DRIFTED, MISSING, NOT_NEEDED = "matched", "drifted", "missing", "not needed"


class AuditError(RuntimeError):
    """The vLLM at PATH could not be imported or read."""


# ---- the store of verified sources -------------------------------------------------------------

def sources_path() -> Path:
    return Path(str(resources.files("rocm_enable.stacks.vllm").joinpath(SOURCES_FILE)))


def load_sources(path: Path | None = None) -> dict[str, str]:
    """fingerprint -> the verified source text it was computed from (engine.anchors.source_text)."""
    path = path or sources_path()
    return json.loads(path.read_text()) if path.is_file() else {}


def save_sources(sources: dict[str, str], path: Path | None = None) -> None:
    path = path or sources_path()
    path.write_text(json.dumps(dict(sorted(sources.items())), indent=1, ensure_ascii=False) + "\n")


# ---- reading a release (child process) ---------------------------------------------------------

CHILD = """
import json, sys
from rocm_enable import sim
sim.activate(sys.argv[1])
import vllm
from rocm_enable.engine.anchors import TargetError, fingerprint, resolve, source_text, underlying_function
out = {}
for target in json.loads(sys.stdin.read()):
    try:
        func = underlying_function(resolve(target)[2])
        out[target] = {"fingerprint": fingerprint(func), "source": source_text(func)}
    except (TargetError, OSError, TypeError) as exc:
        out[target] = {"error": f"{type(exc).__name__}: {exc}"}
print("@@AUDIT@@" + json.dumps({"version": vllm.__version__, "targets": out}))
"""


def read_release(vllm_src: str | os.PathLike, targets: list[str], timeout: int = 600) -> dict:
    """{'version', 'targets': {target: {'fingerprint', 'source'} | {'error'}}} for the vLLM at PATH."""
    from rocm_enable.patches import vllm_package_root

    root = vllm_package_root(vllm_src)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROCM_ENABLE")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-c", CHILD, SIM_ARCH], input=json.dumps(targets),
                          capture_output=True, text=True, env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@AUDIT@@")]
    if proc.returncode or not lines:
        raise AuditError(f"could not import the vLLM at {root} (rc={proc.returncode}):\n"
                         f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("@@AUDIT@@"):])


# ---- the audit ---------------------------------------------------------------------------------

@dataclass
class TargetAudit:
    target: str
    status: str  # MATCHED | DRIFTED | MISSING | NOT_NEEDED
    fingerprint: str | None = None
    matches: list[str] = field(default_factory=list)  # verified versions with this fingerprint
    against: str | None = None  # the verified version the diff is against
    diff: str = ""
    error: str = ""


@dataclass
class FixAudit:
    name: str
    versions: str
    targets: list[TargetAudit]

    @property
    def ok(self) -> bool:
        return all(t.status in (MATCHED, NOT_NEEDED) for t in self.targets)


def _newest(versions) -> str | None:
    releases = [v for v in versions if release(v)]
    return max(releases, key=Version) if releases else None


def audit_fixes(fixes, found: dict, version: str, sources: dict[str, str], label: str) -> list[FixAudit]:
    audits = []
    for fix in fixes:
        rows = []
        for patch in fix.patches:
            if fix.fixed_upstream_by(version):
                rows.append(TargetAudit(patch.target, NOT_NEEDED,
                                        error=f"the fix ends: fixed upstream in {fix.fixed_upstream_in}"))
                continue
            if not patch.needed_on(version):
                rows.append(TargetAudit(patch.target, NOT_NEEDED,
                                        error=f"fixed upstream in {patch.fixed_upstream_in}"))
                continue
            got = found.get(patch.target, {"error": "not read"})
            if "error" in got:
                rows.append(TargetAudit(patch.target, MISSING, error=got["error"]))
                continue
            matches = sorted((v for v, h in patch.anchors.items() if h == got["fingerprint"]),
                             key=lambda v: (release(v) is None, release(v) or v))
            row = TargetAudit(patch.target, MATCHED if matches else DRIFTED, got["fingerprint"], matches)
            if not matches:
                with_source = [v for v, h in patch.anchors.items() if h in sources]
                row.against = _newest(with_source) or (with_source[-1] if with_source else None)
                if row.against is None:
                    row.error = "no verified source stored for any anchor (run --record-sources on a verified tree)"
                else:
                    row.diff = "".join(difflib.unified_diff(
                        sources[patch.anchors[row.against]].splitlines(keepends=True),
                        got["source"].splitlines(keepends=True),
                        fromfile=f"{patch.target} (verified {row.against})",
                        tofile=f"{patch.target} ({label})"))
            rows.append(row)
        audits.append(FixAudit(fix.name, fix.versions, rows))
    return audits


def record_sources(fixes, found: dict, sources: dict[str, str]) -> list[str]:
    """Add the source of every target whose fingerprint is an anchor of its record; returns the
    targets added."""
    added = []
    for fix in fixes:
        for patch in fix.patches:
            got = found.get(patch.target, {})
            fp = got.get("fingerprint")
            if fp and fp in patch.anchors.values() and fp not in sources:
                sources[fp] = got["source"]
                added.append(patch.target)
    return added


def vllm_fixes() -> list:
    from rocm_enable.engine.hooks import all_fixes

    return [f for f in all_fixes() if f.stack == "vllm"]


def series_checks(vllm_src) -> tuple[str | None, list, str]:
    """(newest series version, its PatchChecks against the tree, error)."""
    from rocm_enable import patches

    try:
        root = patches.series_root()
        newest = patches.series_versions(root)[-1]
        return newest, patches.check_vllm_tree(vllm_src, root / newest), ""
    except (patches.PatchesError, IndexError) as exc:
        return None, [], str(exc) or "no patch series found"


def run_audit(vllm_src, *, record: bool = False) -> dict:
    fixes = vllm_fixes()
    targets = sorted({p.target for f in fixes for p in f.patches})
    read = read_release(vllm_src, targets)
    version = read["version"]
    sources = load_sources()
    added = []
    if record:
        added = record_sources(fixes, read["targets"], sources)
        save_sources(sources)
    audits = audit_fixes(fixes, read["targets"], version, sources, f"vLLM {version} at {vllm_src}")
    newest, checks, error = series_checks(vllm_src)
    return {"vllm_version": version, "vllm_src": str(vllm_src), "fixes": audits,
            "series": newest, "patches": checks, "series_error": error, "recorded": added}


def _print(report: dict) -> None:
    print(f"vLLM {report['vllm_version']} at {report['vllm_src']}")
    print("\nanchors (per fix record and target):")
    for fa in report["fixes"]:
        print(f"  {fa.name}  [{'ok' if fa.ok else 'NEEDS READING'}; verified range {fa.versions}]")
        for t in fa.targets:
            detail = {MATCHED: f"matches {', '.join(t.matches)}", NOT_NEEDED: t.error,
                      MISSING: t.error,
                      DRIFTED: f"fingerprint {t.fingerprint}; diff against verified {t.against}"
                      if t.against else t.error}[t.status]
            print(f"    {t.status:<10} {t.target}: {detail}")
            for line in t.diff.splitlines():
                print(f"      {line}")
    if report["series_error"]:
        print(f"\npatch series: {report['series_error']}")
    else:
        print(f"\npatch series for vLLM {report['series']} (the newest) against this tree:")
        for c in report["patches"]:
            print(f"    {c.status:<12} {c.patch}")
            for line in c.message.splitlines()[:6]:
                print(f"      {line}")
    if report["recorded"]:
        print(f"\nrecorded the verified source of {len(report['recorded'])} target(s) in {SOURCES_FILE}")
    drifted = [f.name for f in report["fixes"] if not f.ok]
    bad = [c.patch for c in report["patches"] if not c.ok]
    print(f"\n{len(report['fixes']) - len(drifted)} of {len(report['fixes'])} records match a verified "
          f"anchor everywhere; {len(report['patches']) - len(bad)} of {len(report['patches'])} patches apply")


def _as_json(report: dict) -> dict:
    from dataclasses import asdict

    return {**report, "fixes": [{**asdict(f), "ok": f.ok} for f in report["fixes"]],
            "patches": [{**asdict(c), "ok": c.ok} for c in report["patches"]]}


def cmd_audit(args) -> int:
    from rocm_enable.patches import PatchesError

    try:
        report = run_audit(args.vllm_src, record=args.record_sources)
    except (AuditError, PatchesError) as exc:
        print(f"rocm-enable audit: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_as_json(report), indent=2))
    else:
        _print(report)
    clean = all(f.ok for f in report["fixes"]) and all(c.ok for c in report["patches"])
    return 0 if clean and not report["series_error"] else 1


def add_subcommand(sub) -> None:
    """`rocm-enable audit` (wired in rocm_enable/cli.py)."""
    au = sub.add_parser("audit", help="a new vLLM release: anchors matched/drifted (with diffs), "
                                      "and which patches of the newest series apply")
    au.add_argument("--vllm-src", required=True, help="vLLM checkout, site-packages or vllm/ folder")
    au.add_argument("--json", action="store_true", help="machine-readable output")
    au.add_argument("--record-sources", action="store_true",
                    help=f"store the source of every target that matches an anchor in {SOURCES_FILE} "
                         "(after adding the release's anchors to the records)")
    au.set_defaults(func=cmd_audit)
