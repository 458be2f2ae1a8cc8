"""A @triton.jit helper called from another kernel must not default a parameter: Triton 3.6 (the
GPU machine's torch 2.11 ships it) binds the default as a plain Python value and fails to compile
the caller ("'str' object has no attribute 'type'"), while newer Triton (this venv's) accepts it, so
the AOT ISA tests cannot see it. Found by vLLM's engine on an H100: every FP8 linear failed to
compile after the GEMV body moved into the _gemv_out helper with `A_CACHE: tl.constexpr = ""`."""
import ast
import pathlib

OPS = pathlib.Path(__file__).resolve().parents[2] / "rocm_enable" / "ops"


def _is_jit(dec: ast.expr) -> bool:
    target = dec.func if isinstance(dec, ast.Call) else dec
    return isinstance(target, ast.Attribute) and target.attr == "jit" or (
        isinstance(target, ast.Name) and target.id == "jit")


def _helpers_with_defaults(source: str) -> list[str]:
    tree = ast.parse(source)
    jit = {f.name: f for f in ast.walk(tree)
           if isinstance(f, ast.FunctionDef) and any(_is_jit(d) for d in f.decorator_list)}
    called = {c.func.id for f in jit.values() for c in ast.walk(f)
              if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in jit}
    return [name for name in sorted(called)
            if jit[name].args.defaults or any(d is not None for d in jit[name].args.kw_defaults)]


def test_the_check_finds_a_defaulted_helper():
    source = ("import triton\nimport triton.language as tl\n"
              "@triton.jit\ndef helper(x, C: tl.constexpr = ''):\n    return x\n"
              "@triton.jit\ndef kernel(x, D: tl.constexpr = 1):\n    helper(x)\n")
    assert _helpers_with_defaults(source) == ["helper"]  # the launched kernel may keep defaults


def test_no_kernel_helper_in_ops_defaults_a_parameter():
    offenders = {p.name: found for p in sorted(OPS.glob("*.py"))
                 if (found := _helpers_with_defaults(p.read_text()))}
    assert offenders == {}, f"pass every argument of these @triton.jit helpers explicitly: {offenders}"
