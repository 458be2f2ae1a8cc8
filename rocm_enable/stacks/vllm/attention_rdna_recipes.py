"""Source patch of attention_rdna.py's record: the ROCM_RDNA_ATTN backend in vLLM's tree,
first in the ROCm priority list on RDNA."""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from rocm_enable.stacks.vllm.recipe import ROCM, Recipe, RecipeError, Tree, template
from rocm_enable.stacks.vllm.recipe_embed import embed_module, embedded_path

ATTENTION_OPS = ("ops/attention_kernels.py", "ops/attention_rdna.py")
RDNA_ATTN_BACKEND = "vllm/v1/attention/backends/rocm_rdna_attn.py"

# ---- the vLLM backend module, generated from the runtime classes -----------------------------
# attention_rdna.py builds the classes inside _classes() (so that importing the record imports no
# vLLM); the vLLM module holds the same class bodies at module level, after the renames below of
# what a plugin does differently, plus the members only vLLM needs.
RUNTIME = Path(__file__).with_name("attention_rdna.py")
RUNTIME_FACTORY = "_classes"
CLASSES = ("RdnaAttentionMetadataBuilder", "RdnaAttentionImpl", "RdnaAttentionBackend")
CONSTANTS = ("_OURS_KV_DTYPES", "_FP8_KV_DTYPES")
# runtime text -> vLLM text; each must occur in the runtime classes (else the runtime changed)
RENAMES = (
    ("(T.Triton", "(Triton"),  # the plugin imports triton_attn as T lazily
    ("_target(device)", "ops.target_from_device(device)"),  # the plugin reads its capability table
    ("return BACKEND_NAME", 'return "ROCM_RDNA_ATTN"'),
)
# class -> members added in vLLM: the plugin registers the backend only on wave32 RDNA
# (Fix.condition); vLLM lists every backend in its enum, so the class refuses other GPUs itself.
VLLM_ONLY_MEMBERS = {
    "RdnaAttentionBackend": (
        "    @classmethod\n"
        "    def supports_compute_capability(cls, capability) -> bool:\n"
        "        # Tiles, warps and KV splits are planned for wave32 RDNA.\n"
        "        if not current_platform.is_rocm():\n"
        "            return False\n"
        "        from vllm.platforms.rocm import on_rdna\n"
        "\n"
        "        return on_rdna()\n"),
}


def _with_leading_comments(lines: list[str], node) -> str:
    start = node.lineno - 1
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return textwrap.dedent("".join(lines[start:node.end_lineno]))


def backend_module(runtime_source: str | None = None) -> str:
    """vllm/v1/attention/backends/rocm_rdna_attn.py: the header template, the runtime module's
    constants and the classes of its _classes(), renamed (RENAMES) and completed
    (VLLM_ONLY_MEMBERS)."""
    source = RUNTIME.read_text() if runtime_source is None else runtime_source
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    constants = {n.targets[0].id: n for n in tree.body if isinstance(n, ast.Assign)
                 and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)}
    factory = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == RUNTIME_FACTORY]
    classes = {n.name: n for n in (factory[0].body if factory else ()) if isinstance(n, ast.ClassDef)}
    missing = [c for c in CONSTANTS if c not in constants] + [c for c in CLASSES if c not in classes]
    if missing:
        raise RecipeError(f"{RUNTIME.name}: {', '.join(missing)} not found (module constants, "
                          f"classes of {RUNTIME_FACTORY}())")
    body = "".join(_with_leading_comments(lines, constants[c]) for c in CONSTANTS)
    for name in CLASSES:
        text = _with_leading_comments(lines, classes[name])
        if name in VLLM_ONLY_MEMBERS:
            text += "\n" + VLLM_ONLY_MEMBERS[name]
        body += "\n\n" + text
    for old, new in RENAMES:
        if old not in body:
            raise RecipeError(f"{RUNTIME.name}: {old!r} no longer in the runtime classes "
                              "(attention_rdna_recipes.RENAMES)")
        body = body.replace(old, new)
    return template("rocm_rdna_attn_header.py") + "\n" + body.rstrip("\n") + "\n"


def rdna_attention(tree: Tree) -> None:
    for source in ATTENTION_OPS:
        tree.write(embedded_path(source), embed_module(source))
    tree.write(RDNA_ATTN_BACKEND, backend_module())
    tree.insert_between(
        "vllm/v1/attention/backends/registry.py",
        '    ROCM_ATTN = "vllm.v1.attention.backends.rocm_attn.RocmAttentionBackend"\n',
        "",
        '    ROCM_RDNA_ATTN = "vllm.v1.attention.backends.rocm_rdna_attn.RdnaAttentionBackend"\n',
    )
    tree.replace_regex_once(
        ROCM,
        r"^(    backends\.append\(AttentionBackendEnum\.TRITON_ATTN\)\n"
        r"(?:    backends\.append\(AttentionBackendEnum\.\w+\)\n)*)(\n    return backends\n)",
        lambda m: m.group(1) + (
            "    # Wave32 RDNA: the RDNA Triton backend first. Its kernels do not spill\n"
            "    # at head_dim 256 and split the KV range at small batch; the selector\n"
            "    # skips it for layers it does not serve (FP8 KV cache, sinks, sliding\n"
            "    # window, encoder, other head sizes) and takes the next valid backend.\n"
            "    if on_rdna():\n"
            "        backends.insert(0, AttentionBackendEnum.ROCM_RDNA_ATTN)\n"
        ) + m.group(2),
    )


RECIPES = (
    Recipe(
        "rdna-attention", "on_rdna() (vLLM's existing RDNA predicate)",
        "Adds the ROCM_RDNA_ATTN attention backend (v1/attention/backends/rocm_rdna_attn.py: "
        "TritonAttentionBackend's layout, spec and metadata builder plus a flash-decoding "
        "scratch buffer; supported on wave32 RDNA, 16-bit KV cache, head sizes 64/128/256, "
        "causal decoder layers without sinks, sliding window or ALiBi), its Triton kernels and "
        "launch planning (v1/attention/ops/rocm_rdna_attn.py, rocm_rdna_attn_kernels.py), its "
        "AttentionBackendEnum member, and puts it first in the ROCm priority list for non-MLA "
        "layers on RDNA. The selector validates it like every backend and falls through to "
        "vLLM's own order where it does not fit; --attention-backend still overrides.",
        rdna_attention, ATTENTION_OPS),
)
