#!/usr/bin/env python3
"""CPU proxy for the engine harness's greedy check: is a tiny checkpoint's greedy decode robust to
bf16 precision, and do its layers decide the tokens?

For each harness prompt (engine_job.prompts: the batch-1 prompt is #0 of the 8), the float32
`transformers` reference (rocm_enable.models.tiny.load_reference: dequantized weights) decodes
`steps` greedy tokens; one teacher-forced forward of the same model cast to bf16 (every weight and
activation bf16, as vLLM's activations are; the FP8 formats' dequantized weights rounded to bf16)
gives the bf16 greedy tokens: bf16 greedy == float32 greedy exactly when the bf16 argmax equals the
float32 token at every step. Reported per prompt: identical steps, the reference's smallest top-2
logit margin, the smallest router margin (k-th vs (k+1)-th expert logit over the MoE layers), the
largest |bf16 - float32| logit difference, and the smallest margin in units of that step's bf16
logit error.

Sensitivity (the tokens must depend on every layer kind): with one module's output zeroed (one
GDN layer, the attention layer, one layer's routed experts, one layer's shared expert), the share
of teacher-forced steps whose float32 argmax changes.

    .venv/bin/python scripts/engine/tiny_robustness.py [--family next qwen36] [--quant fp8-block ...]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import engine_job  # noqa: E402
from reference import RouterMargins  # noqa: E402


def build(model_dir: str, family: str, quant: str, seed: int):
    """(float32 reference, its bf16 copy) of a freshly written checkpoint."""
    import torch

    from rocm_enable.models import tiny

    tiny.write_checkpoint(model_dir, family, quant, seed)
    ref = tiny.load_reference(model_dir)
    return ref, copy.deepcopy(ref).to(torch.bfloat16)


def greedy(model, prompt: list[int], steps: int) -> list[int]:
    """float32 greedy decode with the model's own cache (as vLLM decodes: one token per step)."""
    import torch

    from transformers import GenerationConfig

    cfg = GenerationConfig(do_sample=False, max_new_tokens=steps, min_new_tokens=steps,
                           eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), generation_config=cfg)
    return out[0, len(prompt):].tolist()


def step_logits(model, prompt: list[int], tokens: list[int]):
    """Teacher-forced logits of the steps that chose `tokens` (one forward)."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([prompt + tokens[:-1]])).logits[0, len(prompt) - 1:]
    return logits.float()


@contextlib.contextmanager
def zeroed(model, module_name: str):
    """The named module's output (the first element of a tuple output) replaced by zeros."""
    import torch

    def hook(mod, inp, out):
        if isinstance(out, tuple):
            return (torch.zeros_like(out[0]),) + tuple(out[1:])
        return torch.zeros_like(out)

    handle = dict(model.named_modules())[module_name].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def ablations(model) -> dict[str, str]:
    """label -> module name: every GDN layer, the attention layer, each layer's routed experts and
    shared expert."""
    out = {}
    for name, _ in model.named_modules():
        if ".layers." not in name or "visual" in name:
            continue
        layer = name.split(".layers.")[1].split(".")[0]
        for suffix, label in (("linear_attn", "gdn"), ("self_attn", "attention"),
                              ("mlp.experts", "routed_experts"), ("mlp.shared_expert", "shared_expert")):
            if name.endswith(f".layers.{layer}.{suffix}"):
                out[f"{label}.{layer}"] = name
    return out


def first_difference(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def evaluate(ref, bf16, prompts: list[list[int]], steps: int, top_k: int, ablate: bool = True) -> dict:
    router = RouterMargins(ref, top_k)
    per_prompt, runs = [], []
    for prompt in prompts:
        tokens = greedy(ref, prompt, steps)
        router.per_layer = []
        l32 = step_logits(ref, prompt, tokens)
        router_margin = router.take()[len(prompt) - 1:]
        l16 = step_logits(bf16, prompt, tokens)
        top2 = l32.topk(2, dim=-1).values
        margin = top2[:, 0] - top2[:, 1]
        err = (l16 - l32).abs()
        # the bf16 error of the top-2 difference, per step: |d top1| + |d top2| bounded by 2 max
        noise = 2 * err.max(dim=-1).values
        per_prompt.append({
            "prompt_len": len(prompt),
            "steps_identical": first_difference(l16.argmax(-1).tolist(), tokens),
            "bf16_differing_steps": int((l16.argmax(-1) != l32.argmax(-1)).sum()),
            "min_top2_margin": round(margin.min().item(), 4),
            "min_router_margin": round(router_margin.min().item(), 4),
            "max_abs_logit_diff": round(err.max().item(), 4),
            "min_margin_over_bf16_error": round((margin / noise).min().item(), 2),
        })
        runs.append((prompt, tokens, l32.argmax(-1)))
    out = {"prompts": per_prompt,
           "all_identical": all(p["steps_identical"] == steps for p in per_prompt)}
    if ablate:
        import torch

        shares = {}
        for label, module in ablations(ref).items():
            changed = total = 0
            with zeroed(ref, module):
                for prompt, tokens, base in runs:
                    changed += int((step_logits(ref, prompt, tokens).argmax(-1) != base).sum())
                    total += len(tokens)
            shares[label] = round(changed / total, 3)
        out["ablation_changed_share"] = shares
        del torch
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", nargs="+", default=["next", "qwen36"])
    ap.add_argument("--quant", nargs="+", default=["fp8-block", "fp8-channel", "bf16"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=engine_job.STEPS)
    ap.add_argument("--prompts", type=int, nargs="+", help="indices into the harness prompts (default: all 8)")
    ap.add_argument("--no-ablation", action="store_true")
    ap.add_argument("--json", help="write the report here")
    args = ap.parse_args(argv)
    import torch

    from rocm_enable.models import tiny

    torch.set_num_threads(min(2, torch.get_num_threads()))
    prompts = engine_job.prompts(tiny.VOCAB)
    if args.prompts:
        prompts = [prompts[i] for i in args.prompts]
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.family:
            for quant in args.quant:
                ref, bf16 = build(os.path.join(tmp, f"{family}-{quant}"), family, quant, args.seed)
                top_k = tiny.text_config(family)["num_experts_per_tok"]
                res = evaluate(ref, bf16, prompts, args.steps, top_k, ablate=not args.no_ablation)
                report[f"{family}-{quant}"] = res
                print(f"{family}-{quant}: bf16 greedy == float32 greedy for all {args.steps} steps "
                      f"of every prompt: {res['all_identical']}", flush=True)
                for i, p in enumerate(res["prompts"]):
                    print(f"  #{i} len {p['prompt_len']:4d}: identical {p['steps_identical']:2d}  "
                          f"min top-2 margin {p['min_top2_margin']:.3f}  min router margin "
                          f"{p['min_router_margin']:.3f}  max |dlogit| {p['max_abs_logit_diff']:.3f}  "
                          f"min margin/bf16 error {p['min_margin_over_bf16_error']:.1f}", flush=True)
                if "ablation_changed_share" in res:
                    print("  ablation (share of steps whose token changes): " + ", ".join(
                        f"{k} {v:.2f}" for k, v in res["ablation_changed_share"].items()), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
