#!/usr/bin/env python3
"""Compare engine_job.py results with the transformers implementation (float32, dequantized weights).

For every prompt of every run, one teacher-forced float32 forward over prompt + vLLM's 32 tokens
gives, at each step, the reference's greedy token, its top-2 margin and the reference logprob of the
token vLLM chose. vLLM's greedy sequence equals the reference's own greedy decode exactly when vLLM's
token is the reference argmax at every step, so `steps_identical` counts the identical greedy steps
before the first difference.

Bound (BF16 activations): vLLM computes in bf16 (unit roundoff u = 2^-8); the logits of these models
have standard deviation sigma ~= 4 (rocm_enable.models.tiny.LOGIT_STD), and an error of a few u
relative to the hidden state per layer moves a logit by ~u * sigma per rounding, accumulating over
the 4 layers' residual updates and the final norm. We allow 8 such roundings:
LOGPROB_BOUND = 8 * u * sigma = 0.125 nats for |vLLM logprob - reference logprob| of the chosen
token, and call a step a near-tie when the reference's margin between its top token and vLLM's token
is within 2 * LOGPROB_BOUND (both logits may move by the bound). FP8 weights add no error here: the
reference dequantizes the very FP8 values vLLM loads.
"""
from __future__ import annotations

import argparse
import glob
import json
import os

U_BF16 = 2.0 ** -8
LOGIT_SIGMA = 4.0
LOGPROB_BOUND = 8 * U_BF16 * LOGIT_SIGMA
TIE_MARGIN = 2 * LOGPROB_BOUND


def compare_sequence(model, prompt, tokens, logprobs, device):
    import torch

    ids = torch.tensor([prompt + tokens[:-1]], device=device)
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:].float()
    lp = torch.log_softmax(logits, dim=-1)
    top2 = logits.topk(2, dim=-1)
    chosen = torch.tensor(tokens, device=device)
    ref_tok = top2.indices[:, 0]
    margin_chosen = (top2.values[:, 0] - logits.gather(1, chosen[:, None])[:, 0])
    steps_identical = 0
    for a, b in zip(ref_tok.tolist(), tokens):
        if a != b:
            break
        steps_identical += 1
    disagree = [i for i, (a, b) in enumerate(zip(ref_tok.tolist(), tokens)) if a != b]
    out = {
        "steps": len(tokens),
        "steps_identical": steps_identical,
        "disagreements": [{"step": i, "ref_margin_to_vllm_token": round(margin_chosen[i].item(), 4),
                           "near_tie": margin_chosen[i].item() <= TIE_MARGIN} for i in disagree],
        "min_ref_top2_margin": round((top2.values[:, 0] - top2.values[:, 1]).min().item(), 4),
    }
    if logprobs is not None:
        ref_lp = lp.gather(1, chosen[:, None])[:, 0]
        diff = (torch.tensor(logprobs, device=device) - ref_lp).abs()
        out["max_abs_logprob_diff"] = round(diff.max().item(), 5)
        out["mean_abs_logprob_diff"] = round(diff.mean().item(), 5)
    return out


def summarize(seqs) -> dict:
    n = len(seqs)
    return {
        "prompts": n,
        "all_32_identical": sum(s["steps_identical"] == s["steps"] for s in seqs),
        "identical_steps_total": sum(s["steps_identical"] for s in seqs),
        "disagreements": sum(len(s["disagreements"]) for s in seqs),
        "disagreements_not_near_tie": sum(not d["near_tie"] for s in seqs for d in s["disagreements"]),
        "max_abs_logprob_diff": max((s.get("max_abs_logprob_diff", 0.0) for s in seqs), default=None),
        "within_bound": all(s.get("max_abs_logprob_diff", 0.0) <= LOGPROB_BOUND for s in seqs),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", help="folder of engine_job JSON results")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    from rocm_enable.models.tiny import load_reference

    device = "cuda"
    models, report = {}, {"logprob_bound": LOGPROB_BOUND, "tie_margin": TIE_MARGIN, "runs": {}}
    for path in sorted(glob.glob(os.path.join(args.results, "*.json"))):
        with open(path) as f:
            res = json.load(f)
        run = res.get("run")
        name = os.path.basename(path)[:-5]
        if not res.get("ok") or run is None:
            continue
        model_dir = res["args"]["model"]
        if model_dir not in models:
            models[model_dir] = load_reference(model_dir, device)
        model = models[model_dir]
        ps = run["prompts"]
        b1 = [compare_sequence(model, ps[0], r["tokens"], r["logprobs"], device) for r in run["batch1"]]
        b8 = [compare_sequence(model, p, r["tokens"], r["logprobs"], device) for p, r in zip(ps, run["batch8"])]
        report["runs"][name] = {
            "batch1": summarize(b1), "batch8": summarize(b8), "batch8_detail": b8,
            "batch1_equals_batch8_prompt0": run["batch1"][0]["tokens"] == run["batch8"][0]["tokens"],
            "batch8_repeat_identical": run["batch8_again"] == [r["tokens"] for r in run["batch8"]],
        }
        print(name, json.dumps({k: report["runs"][name][k] for k in ("batch1", "batch8")}), flush=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
