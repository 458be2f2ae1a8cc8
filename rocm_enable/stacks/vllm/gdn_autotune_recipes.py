"""Source patch of gdn_autotune.py's record: the FLA prefill autotunes prune candidates that
exceed the workgroup LDS on ROCm RDNA."""
from __future__ import annotations

from rocm_enable.stacks.vllm.recipe import Recipe, RecipeError, Tree


FLA_OPS = "vllm/third_party/flash_linear_attention/ops"

FLA_PRUNE = '''

@functools.cache
def get_rocm_rdna_max_shared_mem() -> int | None:
    """LDS (bytes) one workgroup may allocate on a ROCm RDNA GPU; None elsewhere,
    where autotune candidates are not pruned by it."""
    if not current_platform.is_rocm():
        return None
    from vllm.platforms.rocm import on_rdna

    if not on_rdna():
        return None
    # The device's own limit; without a visible device (e.g. before workers set
    # CUDA_VISIBLE_DEVICES), the RDNA3/3.5/4 per-workgroup limit: 64 KiB.
    known = [m for m in get_all_max_shared_mem()[:1] if m > 0]
    return known[0] if known else 64 * 1024


def prune_configs_by_lds(lds_bytes: Callable[[Any, int, int], int | None]):
    """An autotune ``early_config_prune`` that drops the candidates whose
    modelled LDS, ``lds_bytes(config, K, BT)`` (None: not modelled), exceeds
    what one workgroup may allocate on ROCm RDNA GPUs. Triton would compile
    each of them at the first launch of every shape key, only to reject it with
    OutOfResources. Elsewhere, or when nothing would fit, the list is kept."""

    def prune(configs, named_args, **kwargs):
        limit = get_rocm_rdna_max_shared_mem()
        if limit is None:
            return configs
        args = {**named_args, **kwargs}
        kept = [
            config
            for config in configs
            if (need := lds_bytes(config, args["K"], args["BT"])) is None
            or need <= limit
        ]
        return kept or configs

    return prune
'''

DELTA_H_LDS = '''

def _fwd_h_lds_bytes(config, K: int, BT: int) -> int | None:
    """LDS of one chunk_gated_delta_rule_fwd_kernel_h_blockdim64 candidate as
    Triton's AMD backend allocates it at the GDN shape K=128, BT=64 (the k and w
    tiles of each pipeline stage and the v tile); other shapes: not modelled."""
    if (K, BT) != (128, 64):
        return None
    return (config.num_stages - 1) * 4 * K * BT + 2 * BT * config.kwargs["BV"]
'''

CHUNK_O_LDS = '''

def _fwd_o_lds_bytes(config, K: int, BT: int) -> int | None:
    """LDS of one chunk_fwd_kernel_o candidate with 4 or more warps as Triton's
    AMD backend allocates it at the GDN shape K=128, BT=64; 2-warp candidates
    (which need less) and other shapes: not modelled."""
    if (K, BT) != (128, 64) or config.num_warps < 4:
        return None
    bk, bv = config.kwargs["BK"], config.kwargs["BV"]
    return 2 * (config.num_stages - 1) * (2 * BT * bk + bk * bv)
'''


def gdn_autotune_lds(tree: Tree) -> None:
    utils, delta_h, chunk_o = (f"{FLA_OPS}/utils.py", f"{FLA_OPS}/chunk_delta_h.py",
                               f"{FLA_OPS}/chunk_o.py")
    for needed in ("import functools\n", "from collections.abc import Callable\n",
                   "from typing import Any, Literal\n", "from vllm.platforms import current_platform\n"):
        if needed not in tree.read(utils):  # FLA_PRUNE relies on these imports
            raise RecipeError(f"vLLM {tree.version} {utils}: anchor missing: {needed!r}")
    tree.replace_regex_once(
        utils,
        r"^(def check_shared_mem\(arch: str = \"none\", tensor_idx: int = 0\) -> bool:\n"
        r"(?:    [^\n]*\n|\n(?=    ))+)",
        lambda m: m.group(1) + FLA_PRUNE,
    )
    tree.replace_once(delta_h, "from .utils import FLA_CHUNK_SIZE, use_cuda_graph\n",
                      "from .utils import FLA_CHUNK_SIZE, prune_configs_by_lds, use_cuda_graph\n")
    tree.insert_between(
        delta_h,
        "_CHUNK_DELTA_H_NUM_STAGES = [2, 3] if torch.version.hip else [2, 3, 4]\n",
        "",
        DELTA_H_LDS,
    )
    tree.replace_once(
        delta_h,
        '    key=["H", "K", "V", "BT"],\n    use_cuda_graph=use_cuda_graph,\n)\n'
        '@triton.jit(do_not_specialize=["T"])\ndef chunk_gated_delta_rule_fwd_kernel_h_blockdim64(',
        '    key=["H", "K", "V", "BT"],\n    use_cuda_graph=use_cuda_graph,\n'
        '    prune_configs_by={"early_config_prune": prune_configs_by_lds(_fwd_h_lds_bytes)},\n)\n'
        '@triton.jit(do_not_specialize=["T"])\ndef chunk_gated_delta_rule_fwd_kernel_h_blockdim64(',
    )
    tree.replace_once(
        chunk_o,
        "from .utils import FLA_CHUNK_SIZE, check_shared_mem, is_nvidia_hopper\n",
        "from .utils import (\n    FLA_CHUNK_SIZE,\n    check_shared_mem,\n    is_nvidia_hopper,\n"
        "    prune_configs_by_lds,\n)\n",
    )
    tree.insert_between(
        chunk_o,
        "NUM_WARPS = [2, 4] if is_nvidia_hopper else [2, 4, 8]\n",
        "",
        CHUNK_O_LDS,
    )
    tree.replace_once(
        chunk_o,
        '    key=["H", "K", "V", "BT"],\n)\n@triton.jit(do_not_specialize=["T"])\n'
        "def chunk_fwd_kernel_o(",
        '    key=["H", "K", "V", "BT"],\n'
        '    prune_configs_by={"early_config_prune": prune_configs_by_lds(_fwd_o_lds_bytes)},\n'
        ')\n@triton.jit(do_not_specialize=["T"])\ndef chunk_fwd_kernel_o(',
    )


RECIPES = (
    Recipe(
        "gdn-autotune-lds",
        "on_rdna() and the device's max shared memory per workgroup (64 KiB on RDNA when no "
        "device can be queried)",
        "Adds prune_configs_by_lds() and get_rocm_rdna_max_shared_mem() to the FLA ops utils and "
        "an early_config_prune to the autotune of chunk_gated_delta_rule_fwd_kernel_h_blockdim64 "
        "and chunk_fwd_kernel_o, each with its LDS model (validated by AOT compiles for gfx1151 "
        "at the GDN shape K=128, BT=64; other shapes are not pruned). On ROCm RDNA GPUs the "
        "candidates that cannot fit the workgroup LDS are never compiled: 4 of 8 for "
        "chunk_delta_h and 2 of 36 for chunk_o per shape key. Elsewhere nothing changes.",
        gdn_autotune_lds),
)
