"""The ATOM stack: fix records for AMD's ATOM engine running inside vLLM as a platform plugin.

ATOM replaces Qwen3-Next / Qwen3.5 / Qwen3.6 with its own model code, which calls aiter's HIP
kernels (built for gfx9 only). These records port ATOM PR #1314 (Qwen3.6 on gfx1151) as runtime
fixes gated on the capability table. They are verified against ROCm/ATOM at pin.ATOM_COMMIT;
patches/atom/ holds the same changes as a patch series against that commit.

Active only when ROCm ATOM is installed: the version probe reads ATOM's distribution metadata
without importing it, so with ATOM absent every record reports "atom is not installed" and no
ATOM module is touched. rocm-enable registers no `vllm.platform_plugins` entry point: ATOM keeps
its platform plugin, rocm-enable stays a general plugin, and its records apply under either
platform (ATOM's ATOMPlatform subclasses vLLM's RocmPlatform)."""
from __future__ import annotations

from rocm_enable.engine.hooks import hookimpl
from rocm_enable.engine.record import Stack
from rocm_enable.stacks.atom import gdn_block_tables, norm_act
from rocm_enable.stacks.atom.pin import ATOM_COMMIT, PR_1314, atom_version

FIXES = (*norm_act.FIXES, *gdn_block_tables.FIXES)

# patches/atom/: the series file lists these in order; 0001 adds ATOM's own capability gate, which
# at runtime is rocm-enable's capability table (aiter_hip_kernels_supported), not a fix record.
SERIES_DIR = "patches/atom"
GATE_PATCH = "0001-utils-arch-add-aiter_hip_kernels_supported-capability-gate.patch"
PATCH_FILES = {
    "atom-gemma-rms-norm-native": "0002-layernorm-GemmaRMSNorm-uses-forward_native-without-aiter-HIP-kernels.patch",
    "atom-silu-and-mul-native": "0003-activation-SiluAndMul-uses-forward_native-without-aiter-HIP-kernels.patch",
    "atom-gdn-prefill-block-tables": "0004-gdn_attn-populate-block_tables-in-prepare_prefill.patch",
}
SERIES = (GATE_PATCH, *PATCH_FILES.values())

LEDGER_TITLE = "ATOM patch series: rocm-enable's ATOM fixes as patches against ROCm/ATOM"
LEDGER_INTRO = f"""
Written against **ROCm/ATOM `{ATOM_COMMIT}`** (main, 2026-08-22, `git describe`
v0.1.6-rc0-323-gffdf3bb5d); the anchored functions are identical at PR #1314's base
`2be397cb7bf89382d1b0b4ba5206e0d0a90f400a`. Apply the files listed in [series](series) in order
(`git am`, or `quilt push -a`). Each runtime record below is the same change applied by the
rocm-enable general plugin inside vLLM, only when ROCm ATOM is installed, the capability predicate
holds and every target still matches its anchor; `rocm-enable doctor` lists their status.

[{GATE_PATCH}]({GATE_PATCH}) adds ATOM's own `aiter_hip_kernels_supported()` gate (RDNA: no aiter
HIP kernels). It has no runtime record: at runtime rocm-enable answers that question from its
capability table (`aiter_hip_kernels` in rocm_enable/gates/capabilities.yaml, predicate
`aiter_hip_kernels_unsupported`). Upstream: ROCm/ATOM PR #1314 ({PR_1314}).

The norm and activation records wrap `__init__` and keep `forward` as an anchored guard:
torch.compile inlines a submodule's `forward` through its code object, which a wrapt proxy
forwards from the original, so a wrapper on `forward` would be skipped inside compiled graphs.
"""


@hookimpl
def rocm_enable_stack() -> Stack:
    return Stack(name="atom", module="atom", fixes=FIXES, version_probe=atom_version)


__all__ = ["ATOM_COMMIT", "FIXES", "LEDGER_INTRO", "LEDGER_TITLE", "PATCH_FILES", "PR_1314", "SERIES",
           "rocm_enable_stack"]
