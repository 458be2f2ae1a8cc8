"""The declarative fix record. The runtime patch, the ledger and the patch series all derive
from these fields; nothing about a fix lives anywhere else."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from rocm_enable.gates.capabilities import ArchCapabilities

Wrapper = Callable  # wrapt signature: wrapper(wrapped, instance, args, kwargs)


def release(key: str) -> Version | None:
    """An anchor key as a release version, or None (a commit-keyed anchor)."""
    try:
        return Version(key)
    except InvalidVersion:
        return None


@dataclass(frozen=True)
class Patch:
    """One symbol the fix wraps.

    target:  "package.module:Qual.name"
    wrapper: a wrapt wrapper; the original stays reachable as `wrapped` and is restored on revert.
             None makes the patch a guard: its anchor is checked like any other, nothing is wrapped.
             (For code the fix relies on but must not wrap, e.g. an nn.Module.forward that
             torch.compile would trace through the wrapper's proxied __code__ anyway.)
    anchors: verified stack version -> fingerprint of the target's source (engine.anchors). A target
             whose source matches none of them is code nobody verified: the fix is skipped.
    fixed_upstream_in: the first stack version whose own code makes this one patch unnecessary
             (the rest of the fix still applies there): from that version on the target is neither
             checked nor wrapped.
    """

    target: str
    wrapper: Wrapper | None
    anchors: Mapping[str, str]
    fixed_upstream_in: str | None = None

    def __post_init__(self):
        if self.fixed_upstream_in:
            Version(self.fixed_upstream_in)  # malformed: fails at import, in tests, not in vLLM

    def needed_on(self, version: str) -> bool:
        return not (self.fixed_upstream_in and Version(version) >= Version(self.fixed_upstream_in))

    @property
    def module(self) -> str:
        return self.target.split(":", 1)[0]

    @property
    def qualname(self) -> str:
        return self.target.split(":", 1)[1]


@dataclass(frozen=True)
class Fix:
    name: str
    title: str
    stack: str
    patches: tuple[Patch, ...]
    condition: Callable[[ArchCapabilities], bool]
    versions: str
    why: str
    how: str
    upstream: str
    removal: str
    gates: tuple[str, ...] = field(default=())
    # The first stack version whose own code no longer needs the fix (the range ends there). Such
    # versions report the fix as not applicable instead of skipped as unverified.
    fixed_upstream_in: str | None = None
    # `versions` is the range we read and tested. A newer, unverified version still gets the fix
    # when every target's source matches a verified fingerprint (the anchors are the authority),
    # unless it is at or past this explicit bound: for a fix whose behaviour is known to change
    # around an unchanged target.
    unverified_before: str | None = None

    def __post_init__(self):
        SpecifierSet(self.versions)  # a malformed range fails at import, in tests, not in vLLM
        if self.unverified_before:
            Version(self.unverified_before)
        if not self.patches:
            raise ValueError(f"fix {self.name} has no patch")
        if self.fixed_upstream_in and self.supports_version(self.fixed_upstream_in):
            raise ValueError(f"fix {self.name}: range {self.versions} admits "
                             f"{self.fixed_upstream_in}, where it is fixed upstream")

    @property
    def condition_name(self) -> str:
        return self.condition.__name__

    def supports_version(self, version: str) -> bool:
        return SpecifierSet(self.versions).contains(version, prereleases=True)

    def fixed_upstream_by(self, version: str) -> bool:
        """`version` is at or past the release that made the fix unnecessary."""
        return bool(self.fixed_upstream_in) and Version(version) >= Version(self.fixed_upstream_in)

    @property
    def verified_versions(self) -> tuple[str, ...]:
        """Release versions some anchor of this fix was verified on, oldest first (anchors keyed
        by a commit, as ATOM's, are not releases)."""
        return tuple(sorted({v for p in self.patches for v in p.anchors if release(v)},
                            key=Version))

    def newer_than_verified(self, version: str) -> bool:
        """An unverified release after every verified one, below the explicit bound if any: the
        anchors decide (engine.apply)."""
        if self.supports_version(version) or not self.verified_versions:
            return False
        v = Version(version)
        if self.unverified_before and v >= Version(self.unverified_before):
            return False
        return v > Version(self.verified_versions[-1])


@dataclass(frozen=True)
class Stack:
    """A serving stack rocm-enable patches (vLLM; ATOM adapters contribute another)."""

    name: str
    module: str  # top-level import whose __version__ the records' ranges refer to
    fixes: tuple[Fix, ...]
    # For a stack whose module has no __version__ (ATOM): returns its version, or None when the
    # stack is not installed. Called instead of reading `module.__version__`.
    version_probe: Callable[[], str | None] | None = None
