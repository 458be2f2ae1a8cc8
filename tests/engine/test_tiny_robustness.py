"""The tiny checkpoints' greedy decode is robust to bf16 precision and its tokens depend on every layer
kind (scripts/engine/tiny_robustness.py is the full CPU proxy: all 8 harness prompts, 32 steps).

Here: the harness's batch-1 prompt, its 7-token prompt and one of its two prompts sharing a 64-token
prefix, 16 greedy steps, on the `next` FP8 block checkpoint (the one vLLM's defaults ran on)."""
from __future__ import annotations

import os
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts", "engine"))

import engine_job  # noqa: E402
import reference  # noqa: E402
import tiny_robustness  # noqa: E402

from rocm_enable.models import tiny  # noqa: E402

STEPS = 16
# every layer kind: a GDN layer, the attention layer, a layer's routed experts and shared expert
ABLATED = ("gdn.0", "attention.3", "routed_experts.0", "shared_expert.0")
MIN_CHANGED_SHARE = 0.2


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    ref, bf16 = tiny_robustness.build(str(tmp_path_factory.mktemp("tiny") / "next-fp8-block"),
                                      "next", "fp8-block", 0)
    prompts = [engine_job.prompts(tiny.VOCAB)[i] for i in (0, 1, 2)]
    res = tiny_robustness.evaluate(ref, bf16, prompts, STEPS, top_k=4, ablate=False)
    runs = []
    for prompt in prompts:
        tokens = tiny_robustness.greedy(ref, prompt, STEPS)
        runs.append((prompt, tokens, tiny_robustness.step_logits(ref, prompt, tokens).argmax(-1)))
    names = tiny_robustness.ablations(ref)
    shares = {}
    for label in ABLATED:
        changed = 0
        with tiny_robustness.zeroed(ref, names[label]):
            for prompt, tokens, base in runs:
                changed += int((tiny_robustness.step_logits(ref, prompt, tokens).argmax(-1) != base).sum())
        shares[label] = changed / (STEPS * len(runs))
    return res, shares


def test_bf16_greedy_equals_float32_greedy_with_margins_over_the_bound(result):
    res, _ = result
    for p in res["prompts"]:
        assert p["steps_identical"] == STEPS, p
        # the reference's top-2 margin clears the harness's near-tie margin (twice the logprob bound)
        assert p["min_top2_margin"] > reference.TIE_MARGIN, p
        # ... and is several times this step's own bf16 logit error
        assert p["min_margin_over_bf16_error"] >= 3.0, p


def test_every_layer_kind_decides_tokens(result):
    _, shares = result
    for label, share in shares.items():
        assert share >= MIN_CHANGED_SHARE, (label, shares)
