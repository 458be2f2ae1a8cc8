"""The declarative fix record. The runtime patch, the ledger and the patch series all derive
from these fields; nothing about a fix lives anywhere else."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from packaging.specifiers import SpecifierSet

from rocm_enable.gates.capabilities import ArchCapabilities

Wrapper = Callable  # wrapt signature: wrapper(wrapped, instance, args, kwargs)


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
    """

    target: str
    wrapper: Wrapper | None
    anchors: Mapping[str, str]

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

    def __post_init__(self):
        SpecifierSet(self.versions)  # a malformed range fails at import, in tests, not in vLLM
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
        from packaging.version import Version

        return bool(self.fixed_upstream_in) and Version(version) >= Version(self.fixed_upstream_in)


@dataclass(frozen=True)
class Stack:
    """A serving stack rocm-enable patches (vLLM; ATOM adapters contribute another)."""

    name: str
    module: str  # top-level import whose __version__ the records' ranges refer to
    fixes: tuple[Fix, ...]
    # For a stack whose module has no __version__ (ATOM): returns its version, or None when the
    # stack is not installed. Called instead of reading `module.__version__`.
    version_probe: Callable[[], str | None] | None = None
