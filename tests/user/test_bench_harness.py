"""benchmarks/_harness runs vLLM's fused-MoE kernel on a GPU machine without vLLM: the extraction
must keep the kernel at its lines, and the hand-written mirror of vLLM's launch (default config,
expert assignment, kernel arguments) must agree with the installed vLLM it mirrors."""
import ast
import importlib.util
import inspect
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._harness import vllm_moe  # noqa: E402

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vLLM is not installed (scripts/setup.sh installs it)")


@needs_vllm
def test_extraction_holds_vllms_jit_functions_and_needs_only_triton(tmp_path):
    from rocm_enable.ops.vllm_moe_isa import FUSED_MOE_REL, vllm_package_dir

    extracted = Path(vllm_moe.extract(str(tmp_path))).read_text()
    original = (Path(vllm_package_dir()) / FUSED_MOE_REL).read_text()
    tree = ast.parse(extracted)
    jitted = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert {"fused_moe_kernel", "write_zeros_to_output"} <= {n.name for n in jitted}
    for node in jitted:  # verbatim: each function's text is vLLM's
        assert ast.get_source_segment(extracted, node) in original
    imported = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert imported <= {"triton", "triton.language"}, "no vLLM on the GPU machine: triton only"


@needs_vllm
@pytest.mark.parametrize("fp8_block", [False, True], ids=["bf16", "fp8-block128"])
def test_default_config_mirror_is_vllms_cuda_default(fp8_block):
    from vllm.model_executor.layers.fused_moe.fused_moe import get_default_config
    from vllm.platforms import current_platform

    assert not current_platform.is_rocm()  # the mirror is of the CUDA branch
    for M in (1, 4, 8, 16, 32, 64, 96, 256, 512, 2048, 131072):
        expected = get_default_config(M, 512, 512, 2048, 10, "fp8_w8a8" if fp8_block else None,
                                      [128, 128] if fp8_block else None)
        assert vllm_moe.default_config(M, 512, fp8_block) == expected, M


@needs_vllm
def test_launch_mirror_passes_every_kernel_parameter(tmp_path):
    import torch

    from rocm_enable.ops.launch_recorder import recorded_launches

    vllm_moe.extract(str(tmp_path))
    kernel = vllm_moe.load_extracted(str(tmp_path)).fused_moe_kernel  # a triton JITFunction
    kernel_params = list(inspect.signature(kernel.fn).parameters)
    M, E, N, K, top_k = 3, 8, 256, 256, 2
    ids = torch.tensor([[0, 5], [5, 7], [1, 0]], dtype=torch.int32)
    config = vllm_moe.default_config(M, E, True)
    sorted_ids, expert_ids, padded = vllm_moe.assignment(ids, config["BLOCK_SIZE_M"], E)
    with recorded_launches() as launched:  # recorded, not run
        vllm_moe.launch(kernel, torch.zeros(M, K), torch.zeros(E, N, K), torch.zeros(M, top_k, N),
                        torch.ones(M, K // 128), torch.ones(E, N // 128, K // 128), None, sorted_ids,
                        expert_ids, padded, False, top_k, config, None, True, [128, 128], False)
    (rec,) = launched
    launch_options = {"num_warps", "num_stages"}
    assert launch_options <= set(rec.kwargs)
    passed = kernel_params[:len(rec.args)] + [k for k in rec.kwargs if k not in launch_options]
    assert sorted(passed) == sorted(kernel_params)
    assert rec.kwargs["SPLIT_K"] == 1 and rec.kwargs["naive_block_assignment"] is False


def test_assignment_puts_every_pair_in_a_block_of_its_expert():
    torch = pytest.importorskip("torch")
    ids = torch.tensor([[3, 1], [1, 2], [0, 3], [3, 2]], dtype=torch.int32)
    sorted_ids, expert_ids, padded = vllm_moe.assignment(ids, 4, 4)
    flat = ids.flatten()
    total = int(padded)
    assert total % 4 == 0
    seen = []
    for pos in range(total):
        pair = int(sorted_ids[pos])
        if pair < flat.numel():
            assert int(flat[pair]) == int(expert_ids[pos // 4])
            seen.append(pair)
    assert sorted(seen) == list(range(flat.numel()))
    naive = vllm_moe.assignment(ids[:1], 16, 64)  # 1 token x 2 experts of 64: vLLM's naive path
    assert naive[0] is None and naive[1].tolist() == [3, 1] and int(naive[2]) == 2 * 16
