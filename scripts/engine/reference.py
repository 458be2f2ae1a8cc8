#!/usr/bin/env python3
"""Compare engine_job.py results with the transformers implementation (float32, dequantized weights).

For every prompt of every run, one teacher-forced float32 forward over prompt + vLLM's 32 tokens
gives, at each step, the reference's greedy token, its top-2 margin and the reference logprob of the
token vLLM chose. vLLM's greedy sequence equals the reference's own greedy decode exactly when vLLM's
token is the reference argmax at every step, so `steps_identical` counts the identical greedy steps
before the first difference.

Bound (BF16 activations): vLLM computes in bf16 (unit roundoff u = 2^-8). The tiny checkpoints'
logits are lm_head rows of norm OUTPUT_SCALE (rocm_enable.models.tiny) times a final hidden state
of norm sqrt(hidden) = 16, so no logit exceeds LOGIT_SCALE = 16 * OUTPUT_SCALE = 11.2 in magnitude
(the greedy token's is 0.4-0.9 of that; the others have standard deviation OUTPUT_SCALE). An error
of a few u relative to the hidden state per rounding, accumulated over the 4 layers' residual
updates and the final norm, moves a logit by ~u * LOGIT_SCALE per rounding; we allow 8 such
roundings: LOGPROB_BOUND = 8 * u * LOGIT_SCALE = 0.35 nats for |vLLM logprob - reference logprob|
of the chosen token, and call a step a near-tie when the reference's margin between its top token
and vLLM's token is within 2 * LOGPROB_BOUND (both logits may move by the bound). FP8 weights add
no error here: the reference dequantizes the very FP8 values vLLM loads. By construction
(rocm_enable.models.tiny: the lm_head is calibrated so the successor of the current token wins) the
reference's top-2 margin is typically 2-4 nats at the harness steps instead of a random model's
hundredths; scripts/engine/tiny_robustness.py reports the smallest per prompt on CPU.

Routing near-ties: the router's logits (standard deviation ~ROUTER_STD = 2.5) are computed in bf16
by vLLM too; where the 4th and 5th expert of a token are closer than ROUTER_TIE = 4 * u * ROUTER_STD
(~0.04), bf16 can pick the other expert. Each step records the smallest top-k/(k+1) router margin
over the layers at that position, so a step over the bound can be told apart.
"""
from __future__ import annotations

import argparse
import glob
import json
import os

from rocm_enable.models.tiny import OUTPUT_SCALE, ROUTER_STD, hf_config

U_BF16 = 2.0 ** -8
LOGIT_SCALE = OUTPUT_SCALE * hf_config("next", "bf16")["hidden_size"] ** 0.5
LOGPROB_BOUND = 8 * U_BF16 * LOGIT_SCALE
TIE_MARGIN = 2 * LOGPROB_BOUND
ROUTER_TIE = 4 * U_BF16 * ROUTER_STD


class RouterMargins:
    """Forward hooks on every `*.mlp.gate`: per position, the smallest margin between the k-th and
    (k+1)-th router logit over the layers."""

    def __init__(self, model, top_k: int):
        self.top_k, self.per_layer = top_k, []
        for name, mod in model.named_modules():
            if name.endswith("mlp.gate"):
                mod.register_forward_hook(self._hook)

    def _hook(self, mod, inp, out):
        logits = (out[0] if isinstance(out, tuple) else out).float()
        top = logits.topk(self.top_k + 1, dim=-1).values
        self.per_layer.append(top[:, self.top_k - 1] - top[:, self.top_k])

    def take(self):
        import torch

        m = torch.stack(self.per_layer).min(0).values
        self.per_layer = []
        return m


def compare_sequence(model, prompt, tokens, logprobs, device, router=None):
    import torch

    ids = torch.tensor([prompt + tokens[:-1]], device=device)
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:].float()
    router_margin = router.take()[len(prompt) - 1:] if router is not None else None
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
        over = (diff > LOGPROB_BOUND).nonzero().flatten().tolist()
        out["steps_over_bound"] = [
            {"step": i, "abs_diff": round(diff[i].item(), 4),
             "router_margin": None if router_margin is None else round(router_margin[i].item(), 4)}
            for i in over]
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
        "mean_abs_logprob_diff": round(sum(s.get("mean_abs_logprob_diff", 0.0) for s in seqs) / max(n, 1), 5),
        "steps_over_bound": sum(len(s.get("steps_over_bound", [])) for s in seqs),
        "steps_over_bound_at_router_near_tie": sum(
            1 for s in seqs for o in s.get("steps_over_bound", [])
            if o["router_margin"] is not None and o["router_margin"] <= ROUTER_TIE),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", help="folder of engine_job JSON results")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", help="folder of the checkpoints, if not where the engine read them")
    args = ap.parse_args(argv)
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    from rocm_enable.models.tiny import load_reference

    device = args.device
    models, report = {}, {"logprob_bound": LOGPROB_BOUND, "tie_margin": TIE_MARGIN,
                          "router_tie": ROUTER_TIE, "runs": {}}
    for path in sorted(glob.glob(os.path.join(args.results, "*.json"))):
        with open(path) as f:
            res = json.load(f)
        run = res.get("run")
        name = os.path.basename(path)[:-5]
        if not res.get("ok") or run is None:
            continue
        model_dir = res["args"]["model"]
        if args.models:  # checkpoints regenerated elsewhere (same seed, same bytes)
            model_dir = os.path.join(args.models, os.path.basename(model_dir))
        if model_dir not in models:
            model = load_reference(model_dir, device)
            with open(os.path.join(model_dir, "config.json")) as f:
                cfg = json.load(f)
            top_k = cfg.get("text_config", cfg)["num_experts_per_tok"]
            models[model_dir] = (model, RouterMargins(model, top_k))
        model, router = models[model_dir]
        ps = run["prompts"]
        b1 = [compare_sequence(model, ps[0], r["tokens"], r["logprobs"], device, router) for r in run["batch1"]]
        b8 = [compare_sequence(model, p, r["tokens"], r["logprobs"], device, router)
              for p, r in zip(ps, run["batch8"])]
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
