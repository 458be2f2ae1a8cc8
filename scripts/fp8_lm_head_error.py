"""Print the opt-in FP8 lm_head's logit error against the BF16 head (docs/plan.md's table).

    TRITON_INTERPRET=1 .venv/bin/python scripts/fp8_lm_head_error.py

Heads with weights N(0, 16/hidden) (a random head of the tiny models' size: logits of std ~4) and hidden states
N(0, 1) (the final RMSNorm's output). The tiny shapes run the W8A16 kernel (Triton's interpreter on
CPU); the full Qwen3-Next head shape uses the dequantized FP8 weight in float64 (the interpreter would
take hours), which the tiny cases show the kernel matches within its bf16 output rounding."""
import math
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
import torch

from rocm_enable.ops.fp8_dequant import dequant_fp8_reference, fold_fp8_scale_for_fp16_bits
from rocm_enable.ops.linear_w8a16 import linear_w8a16
from rocm_enable.stacks.vllm.fp8_lm_head import BLOCK, quantize_block_fp8

CASES = [(4096, 256, 256, True), (4032, 256, 64, True), (151936, 2048, 16, False)]


def main() -> None:
    print("| vocab x hidden | tokens | path | max abs | RMS | rel | greedy agreement | max d logp chosen | mean KL |")
    print("|---|--:|---|--:|--:|--:|--:|--:|--:|")
    for vocab, hidden, tokens, kernel in CASES:
        g = torch.Generator().manual_seed(7)
        w = (torch.randn(vocab, hidden, generator=g) * 4 / math.sqrt(hidden)).bfloat16()
        x = torch.randn(tokens, hidden, generator=g).bfloat16()
        q, s = quantize_block_fp8(w)
        if kernel:
            y = linear_w8a16(x, q, fold_fp8_scale_for_fp16_bits(s), block_shape=[BLOCK, BLOCK],
                             arch_family="rdna3").double()
        else:
            y = x.double() @ dequant_fp8_reference(q, s, [BLOCK, BLOCK]).T
        ref = x.double() @ w.double().T
        e = y - ref
        top = ref.topk(2, 1).indices
        agree = (y.argmax(1) == top[:, 0]).float().mean().item()
        lref, ly = torch.log_softmax(ref, 1), torch.log_softmax(y, 1)
        dlp = (ly - lref).gather(1, top[:, :1]).abs().max().item()
        kl = (lref.exp() * (lref - ly)).sum(1).mean().item()
        print(f"| {vocab} x {hidden} | {tokens} | {'W8A16 kernel' if kernel else 'dequantized fp64'} | "
              f"{e.abs().max():.3f} | {e.pow(2).mean().sqrt():.3f} | {e.norm() / ref.norm():.4f} | "
              f"{agree:.3f} | {dlp:.3f} | {kl:.2e} |")


if __name__ == "__main__":
    main()
