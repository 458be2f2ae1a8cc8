"""The vLLM-side classes the series adds repeat the runtime
classes of rocm_enable/stacks/vllm on purpose (a patch must not import rocm_enable). This test
keeps the two in step: every class member and shared module-level helper is compared as
normalised source (ast.unparse without docstrings: comments, formatting and line wrapping do not
count), after the declared renames of what legitimately differs between a plugin and vLLM (how
the arch is read, import aliases). A member that exists on one side only, or differs beyond the
renames, fails by class and member unless it is declared below with both texts pinned and the
reason; changing either side of a declared difference fails too, so each change is re-reviewed.
"""
from __future__ import annotations

import ast
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rocm_enable.stacks.vllm import attention_rdna_recipes as attention_recipes

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "rocm_enable" / "stacks" / "vllm"
TEMPLATES = STACK / "templates"


@dataclass(frozen=True)
class Pair:
    runtime: str  # rocm_enable/stacks/vllm/<runtime>
    template: str  # rocm_enable/stacks/vllm/templates/<template>, or the generated module's name
    classes: tuple[str, ...]
    # module-level helpers: runtime name -> template name (functions, or a constant the runtime
    # computes in a one-line function)
    helpers: dict[str, str] = field(default_factory=dict)
    # runtime source text -> template source text, applied to the runtime's normalised source
    renames: tuple[tuple[str, str], ...] = ()
    # (class or "<module>", member) -> (runtime text, template text, reason); None: absent there
    differences: dict[tuple[str, str], tuple[str | None, str | None, str]] = field(
        default_factory=dict)
    # the vLLM module's text when the series generates it from the runtime module (no template)
    generated: Callable[[], str] | None = None


# The runtime W8A16 layers call graph-safe torch custom ops (rocm_enable/ops/w8a16_ops.py, with
# workspaces and weight layout decided at load); the series' vLLM classes still call the launchers
# directly. Pinned until the series carries the custom ops into vLLM's tree.
LAGS_CUSTOM_OPS = ("the series lags the runtime's custom-op calls (rocm_enable/ops/w8a16_ops.py not yet "
                   "embedded in vLLM's tree); decisions are unchanged, the call path differs")

PAIRS = (
    Pair("w8a16_experts.py", "triton_w8a16_fp8_moe.py", ("RocmW8A16Fp8Experts",),
         helpers={"_weight_keys": "_WEIGHT_KEYS", "_activation_keys": "_ACTIVATION_KEYS"},
         renames=(("active_caps().kernel_family", "kernel_family()"),
                  ("_weight_keys()", "_WEIGHT_KEYS"), ("_activation_keys()", "_ACTIVATION_KEYS"),
                  ("q.kFp8", "kFp8")),
         differences={
             ("RocmW8A16Fp8Experts", "_supports_current_device"): (
                 "@staticmethod\ndef _supports_current_device() -> bool:\n"
                 "    return current_platform.is_rocm()",
                 "@staticmethod\ndef _supports_current_device() -> bool:\n"
                 "    return current_platform.is_rocm() and "
                 "(not current_platform.has_native_fp8_compute())",
                 "the runtime record applies only where lacks_fp8_compute() holds (Fix.condition); "
                 "in vLLM the class states it through RocmPlatform.has_native_fp8_compute()"),
             ('RocmW8A16Fp8Experts', 'apply'): (
                 'def apply(self, output, hidden_states, w1, w2, topk_weights, topk_ids, activation, global_num_experts, expert_map, a1q_scale, a2_scale, workspace13, workspace2, expert_tokens_meta, apply_router_weight_on_input):\n    self._check_weights_once(w1, w2)\n    if expert_map is None:\n        global_num_experts = w1.shape[0]\n    w8a16_ops.w8a16_fused_experts(output, hidden_states, w1, w2, self._w13_scale, self._w2_scale, topk_weights, topk_ids, expert_map, workspace13.reshape(-1), workspace2.reshape(-1), None if self.block_shape is None else list(self.block_shape), apply_router_weight_on_input, global_num_experts, self._arch_family)',
                 "def apply(self, output, hidden_states, w1, w2, topk_weights, topk_ids, activation, global_num_experts, expert_map, a1q_scale, a2_scale, workspace13, workspace2, expert_tokens_meta, apply_router_weight_on_input):\n    self._check_weights_once(w1, w2)\n    if expert_map is None:\n        global_num_experts = w1.shape[0]\n    fused_experts_w8a16(hidden_states, w1, w2, self._w13_scale, self._w2_scale, topk_weights, topk_ids, block_shape=self.block_shape, activation='silu', apply_router_weight_on_input=apply_router_weight_on_input, global_num_experts=global_num_experts, expert_map=expert_map, output=output, arch_family=self._arch_family)",
                 LAGS_CUSTOM_OPS),
             ('RocmW8A16Fp8Experts', 'workspace_shapes'): (
                 'def workspace_shapes(self, M, N, K, topk, global_num_experts, local_num_experts, expert_tokens_meta, activation):\n    ws13, ws2 = workspace_sizes(M, topk, N // 2, K)\n    return ((ws13,), (ws2,), (M, K))',
                 'def workspace_shapes(self, M, N, K, topk, global_num_experts, local_num_experts, expert_tokens_meta, activation):\n    return ((0,), (0,), (M, K))',
                 LAGS_CUSTOM_OPS),
         }),
    Pair("w8a16_linear.py", "triton_w8a16_fp8.py",
         ("RocmW8A16Fp8BlockLinearKernel", "RocmW8A16Fp8ScaledMMKernel"),
         helpers={"_activation_dtype_ok": "_activation_dtype_ok",
                  "_fold_scale_in_place": "_fold_scale_in_place", "_rocm_only": "_supported",
                  "FP16_ACTIVATIONS": "_FP16_ACTIVATIONS"},
         renames=(("_arch_family()", "kernel_family()"), ("_rocm_only", "_supported"),
                  ("FP16_ACTIVATIONS", "_FP16_ACTIVATIONS")),
         differences={
             ("<module>", "_supported"): (
                 "def _supported(cls, compute_capability=None):\n"
                 "    from vllm.platforms import current_platform\n"
                 "    return (True, None) if current_platform.is_rocm() else "
                 "(False, 'runs on ROCm only')",
                 "def _supported(cls, compute_capability: int | None=None) -> tuple[bool, "
                 "str | None]:\n"
                 "    if not current_platform.is_rocm():\n"
                 "        return (False, 'requires ROCm.')\n"
                 "    if current_platform.has_native_fp8_compute():\n"
                 "        return (False, 'is for GPUs without FP8 compute.')\n"
                 "    return (True, None)",
                 "the runtime record applies only where lacks_fp8_compute() holds (Fix.condition); "
                 "in vLLM is_supported() states it through RocmPlatform.has_native_fp8_compute()"),
             ("<module>", "_fold_scale_in_place"): (
                 "def _fold_scale_in_place(layer, name: str) -> None:\n"
                 "    from vllm.model_executor.utils import replace_parameter\n"
                 "    replace_parameter(layer, name, "
                 "fold_fp8_scale_for_fp16_bits(getattr(layer, name).data))",
                 "def _fold_scale_in_place(layer, name: str) -> None:\n"
                 "    replace_parameter(layer, name, "
                 "fold_fp8_scale_for_fp16_bits(getattr(layer, name).data))",
                 "the plugin imports vLLM lazily; the vLLM module imports at the top"),
             ('RocmW8A16Fp8BlockLinearKernel', 'apply_block_scaled_mm'): (
                 'def apply_block_scaled_mm(self, A, B, As, Bs):\n    return torch.ops.rocm_enable.w8a16_linear(A, B, Bs, list(self.weight_group_shape), None, self._family)',
                 'def apply_block_scaled_mm(self, A, B, As, Bs):\n    return linear_w8a16(A, B, Bs, block_shape=list(self.weight_group_shape), arch_family=kernel_family())',
                 LAGS_CUSTOM_OPS),
             ('RocmW8A16Fp8BlockLinearKernel', 'process_weights_after_loading'): (
                 "def process_weights_after_loading(self, layer):\n    super().process_weights_after_loading(layer)\n    params = self._get_layer_params(layer)\n    check_fp8_weights_finite(params.weight, f'{type(layer).__name__}.weight')\n    _fold_scale_in_place(layer, params.block_scale_attr)\n    _prepare_for_calls(self, layer, params.WEIGHT, transposed=False)",
                 "def process_weights_after_loading(self, layer):\n    super().process_weights_after_loading(layer)\n    params = self._get_layer_params(layer)\n    check_fp8_weights_finite(params.weight, f'{type(layer).__name__}.weight')\n    _fold_scale_in_place(layer, params.block_scale_attr)",
                 LAGS_CUSTOM_OPS),
             ('RocmW8A16Fp8ScaledMMKernel', 'apply_scaled_mm'): (
                 'def apply_scaled_mm(self, *, A, B, out_dtype, As, Bs, bias, output_shape):\n    out = torch.ops.rocm_enable.w8a16_linear(A, B.t(), Bs, None, bias, self._family)\n    return out.to(out_dtype).view(*output_shape)',
                 'def apply_scaled_mm(self, *, A, B, out_dtype, As, Bs, bias, output_shape):\n    out = linear_w8a16(A, B.t(), Bs, bias=bias, arch_family=kernel_family())\n    return out.to(out_dtype).view(*output_shape)',
                 LAGS_CUSTOM_OPS),
             ('RocmW8A16Fp8ScaledMMKernel', 'process_weights_after_loading'): (
                 "def process_weights_after_loading(self, layer):\n    w_name, s_name = self.layer_param_names[:2]\n    check_fp8_weights_finite(getattr(layer, w_name), f'{type(layer).__name__}.{w_name}')\n    _fold_scale_in_place(layer, s_name)\n    _prepare_for_calls(self, layer, w_name, transposed=True)",
                 "def process_weights_after_loading(self, layer):\n    w_name, s_name = self.layer_param_names[:2]\n    check_fp8_weights_finite(getattr(layer, w_name), f'{type(layer).__name__}.{w_name}')\n    _fold_scale_in_place(layer, s_name)",
                 LAGS_CUSTOM_OPS),
         }),
    # generated from the runtime classes (attention_rdna_recipes.backend_module): this pair checks
    # the generator itself, with no renames or differences declared here
    Pair("attention_rdna.py", "rocm_rdna_attn.py",
         ("RdnaAttentionMetadataBuilder", "RdnaAttentionImpl", "RdnaAttentionBackend"),
         helpers={"_OURS_KV_DTYPES": "_OURS_KV_DTYPES", "_FP8_KV_DTYPES": "_FP8_KV_DTYPES"},
         renames=tuple((old.strip("("), new.strip("(").replace('"', "'"))  # as ast.unparse quotes
                       for old, new in attention_recipes.RENAMES),
         differences={
             ("RdnaAttentionBackend", "supports_compute_capability"): (
                 None, ast.unparse(ast.parse(textwrap.dedent(
                     attention_recipes.VLLM_ONLY_MEMBERS["RdnaAttentionBackend"]))),
                 "declared in attention_rdna_recipes.VLLM_ONLY_MEMBERS"),
         },
         generated=attention_recipes.backend_module),
)


def _strip_docstring(node):
    body = getattr(node, "body", None)
    if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        node.body = body[1:] or [ast.Pass()]
    for child in ast.walk(node):
        if child is not node and isinstance(child, (ast.FunctionDef, ast.ClassDef)):
            _strip_docstring(child)
    return node


def _src(node) -> str:
    return ast.unparse(_strip_docstring(node))


def _members(cls: ast.ClassDef) -> dict[str, str]:
    out = {}
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = _src(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                out[ast.unparse(t)] = _src(node)
    return out


def _classes(tree) -> dict[str, ast.ClassDef]:
    """Every class, nested ones included (the runtime builds its classes inside functions)."""
    return {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}


def _helpers(tree) -> dict[str, str]:
    """Module-level functions and constants, as source; a one-line `return <expr>` function (the
    runtime computes some constants lazily) also as `NAME = <expr>`."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = _src(node)
            body = [s for s in _strip_docstring(node).body
                    if not isinstance(s, (ast.Import, ast.ImportFrom))]
            if len(body) == 1 and isinstance(body[0], ast.Return):
                out[node.name + "()"] = ast.unparse(body[0].value)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            out[ast.unparse(node.targets[0])] = ast.unparse(node.value)
    return out


def _renamed(text: str, pair: Pair) -> str:
    for old, new in pair.renames:
        text = text.replace(old, new)
    return text


def drift(pair: Pair) -> list[str]:
    runtime = ast.parse((STACK / pair.runtime).read_text())
    template = ast.parse(pair.generated() if pair.generated else
                         (TEMPLATES / pair.template).read_text())
    where = f"{pair.runtime} vs templates/{pair.template}"
    problems = []

    def check(owner: str, member: str, got_runtime: str | None, got_template: str | None):
        if got_runtime is not None:
            got_runtime = _renamed(got_runtime, pair)
        declared = pair.differences.get((owner, member))
        if declared is not None:
            want_runtime, want_template, _why = declared
            if (got_runtime, got_template) != (want_runtime, want_template):
                problems.append(
                    f"{where}: {owner}.{member} is a declared difference whose code changed; "
                    f"review both sides and update PAIRS:\n  runtime:  {got_runtime!r}\n"
                    f"  template: {got_template!r}")
        elif got_runtime != got_template:
            problems.append(
                f"{where}: {owner}.{member} differs:\n  runtime:  {got_runtime!r}\n"
                f"  template: {got_template!r}")

    rt_classes, tp_classes = _classes(runtime), _classes(template)
    for name in pair.classes:
        if name not in rt_classes or name not in tp_classes:
            problems.append(f"{where}: class {name} missing "
                            f"({'runtime' if name not in rt_classes else 'template'})")
            continue
        rt_cls, tp_cls = rt_classes[name], tp_classes[name]
        check(name, "<bases>", ", ".join(map(ast.unparse, rt_cls.bases)),
              ", ".join(map(ast.unparse, tp_cls.bases)))
        rt, tp = _members(rt_cls), _members(tp_cls)
        for member in sorted(rt.keys() | tp.keys()):
            check(name, member, rt.get(member), tp.get(member))
    rt_helpers, tp_helpers = _helpers(runtime), _helpers(template)
    for rt_name, tp_name in pair.helpers.items():
        rt_text, tp_text = rt_helpers.get(rt_name), tp_helpers.get(tp_name)
        if tp_text is not None and not tp_text.startswith("def ") and rt_name + "()" in rt_helpers:
            rt_text = rt_helpers[rt_name + "()"]  # a constant the runtime computes lazily
        elif rt_text is not None:
            rt_text = rt_text.replace(f"def {rt_name}(", f"def {tp_name}(", 1)
        check("<module>", tp_name, rt_text, tp_text)
    for owner, member in pair.differences:
        if owner != "<module>" and owner not in pair.classes:
            problems.append(f"{where}: declared difference names unknown class {owner}")
    return problems


@pytest.mark.parametrize("pair", PAIRS, ids=[p.template for p in PAIRS])
def test_templates_repeat_the_runtime_classes(pair):
    problems = drift(pair)
    assert not problems, "\n".join(problems)


def test_every_template_class_is_checked():
    """A class added to a template (or a new template) must be paired with its runtime class."""
    checked = {(p.template, c) for p in PAIRS for c in p.classes}
    for path in sorted(TEMPLATES.glob("*.py")):
        for name in _classes(ast.parse(path.read_text())):
            assert (path.name, name) in checked, (
                f"templates/{path.name} class {name} is not compared with a runtime class "
                "(tests/patches/test_template_drift.py PAIRS)")


def test_drift_is_reported_by_class_and_member(monkeypatch, tmp_path):
    """The check can fail: a behaviour change on the runtime side is named."""
    src = (STACK / "w8a16_experts.py").read_text()
    old = "return activation == MoEActivation.SILU"
    assert src.count(old) == 1
    (tmp_path / "w8a16_experts.py").write_text(src.replace(old, "return True"))
    monkeypatch.setattr(sys.modules[__name__], "STACK", tmp_path)
    problems = drift(PAIRS[0])
    assert len(problems) == 1 and "RocmW8A16Fp8Experts._supports_activation differs" in problems[0]
