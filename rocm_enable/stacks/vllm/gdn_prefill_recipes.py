"""Source patch of gdn_prefill.py's record: on ROCm RDNA, FLA's chunked GDN prefill runs
rocm_enable's spill-free state-recurrence and WY kernels and narrows vLLM's other four autotune
lists to their spill-free candidate (the same pipeline function the plugin runs, carried into
vLLM's tree)."""
from __future__ import annotations

from rocm_enable.stacks.vllm.recipe import Recipe, Tree
from rocm_enable.stacks.vllm.recipe_embed import embed_module, embedded_path

FLA_OPS = "vllm/third_party/flash_linear_attention/ops"
PREFILL_OPS = ("ops/gdn_kernels.py", "ops/gdn.py")

IS_ROCM_RDNA = '''

@functools.cache
def is_rocm_rdna() -> bool:
    """A ROCm RDNA GPU (gfx11/gfx12, wave32 with WMMA): the GDN kernels that fit its registers
    (rocm_rdna_gdn, rocm_rdna_gdn_decode) run there."""
    if not current_platform.is_rocm():
        return False
    from vllm.platforms.rocm import on_rdna

    return on_rdna()
'''


def add_is_rocm_rdna(tree: Tree) -> None:
    """utils.is_rocm_rdna(), once (the GDN prefill and decode patches both ask it)."""
    utils = f"{FLA_OPS}/utils.py"
    text = tree.read(utils)
    if "def is_rocm_rdna()" in text:
        return
    for needed in ("import functools\n", "from vllm.platforms import current_platform\n"):
        tree.replace_once(utils, needed, needed)  # fails, naming the anchor, if vLLM dropped it
    tree.write(utils, text.rstrip("\n") + "\n" + IS_ROCM_RDNA)


def gdn_prefill_rdna(tree: Tree) -> None:
    for source in PREFILL_OPS:
        tree.write(embedded_path(source), embed_module(source))
    add_is_rocm_rdna(tree)
    chunk = f"{FLA_OPS}/chunk.py"
    tree.insert_between(chunk, "\n", "import torch\n\nfrom .chunk_delta_h import", "import sys\n\n")
    tree.insert_between(chunk, "from .wy_fast import recompute_w_u_fwd\n", "",
                        "from . import rocm_rdna_gdn\nfrom .utils import is_rocm_rdna\n")
    tree.insert_between(
        chunk,
        "    core_attn_out: torch.Tensor | None = None,\n):\n",
        "    g = chunk_local_cumsum(\n",
        "    if (\n"
        "        is_rocm_rdna()\n"
        "        and rocm_rdna_gdn.prefill_supported(\n"
        "            k, v, FLA_CHUNK_SIZE, cu_seqlens, chunk_indices, chunk_offsets\n"
        "        )\n"
        "        is None\n"
        "    ):\n"
        "        # Wave32 RDNA: every autotune candidate of chunk_delta_h and wy_fast spills\n"
        "        # VGPRs there; the same six steps with spill-free kernels for those two and\n"
        "        # the other four autotuned over only their spill-free candidate.\n"
        "        return rocm_rdna_gdn.chunk_gated_delta_rule_fwd_rdna(\n"
        "            sys.modules[__name__], q, k, v, g, beta, scale, initial_state,\n"
        "            output_final_state, cu_seqlens, chunk_indices, chunk_offsets, core_attn_out\n"
        "        )\n",
    )


RECIPES = (
    Recipe(
        "gdn-prefill-rdna", "is_rocm_rdna() (vLLM's on_rdna() on ROCm)",
        "Adds FLA ops rocm_rdna_gdn.py / rocm_rdna_gdn_kernels.py (a transposed-state chunk_delta_h "
        "and a block-per-program recompute_w_u with vLLM's call contracts, one spill-free launch "
        "each, and the prefill pipeline that uses them with vLLM's other four kernels autotuned over "
        "their spill-free candidate) and utils.is_rocm_rdna(); chunk_gated_delta_rule_fwd runs that "
        "pipeline on ROCm RDNA at K = V = 128, chunk 64 (varlen calls with precomputed chunk "
        "metadata), vLLM's pipeline everywhere else.",
        gdn_prefill_rdna, PREFILL_OPS),
)
