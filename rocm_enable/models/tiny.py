"""Tiny random-weight checkpoints of the bundled architectures, in the Hugging Face layout, for the
engine harness (scripts/engine): vLLM loads them through its own loaders and `transformers` is the
reference. Not real models; never listed by `explain`/`plan`.

    python -m rocm_enable.models.tiny OUT_DIR [--family next|qwen36] [--quant fp8-block|fp8-channel|bf16]

Families (shrunk from the bundled full-size configs, keeping every structural feature):
  next    Qwen3NextForCausalLM: 3 Gated-DeltaNet layers + 1 full-attention layer (head_dim 256,
          attn_output_gate), 16 routed experts top-4 + a gated shared expert.
  qwen36  Qwen3_5MoeForConditionalGeneration (Qwen3.6-35B-A3B's class) with a one-block vision
          tower; the engine runs it text only (language_model_only).
Every dimension block-128 FP8 splits is a multiple of 128, also per rank at tensor parallel 2, and
16 experts split evenly for expert parallel 2.

Quantization formats (what released checkpoints store):
  fp8-block    Qwen's native FP8: e4m3 `weight` + float32 `weight_scale_inv` per 128x128 block,
               quantization_config quant_method fp8 / weight_block_size [128, 128];
               modules_to_not_convert names the BF16 linears (router, shared-expert gate, GDN
               in_proj_ba / in_proj_a / in_proj_b, lm_head).
  fp8-channel  an llm-compressor FP8-Dynamic export: compressed-tensors, e4m3 `weight` + float32
               `weight_scale` [N, 1], dynamic per-token activations.
  bf16         no quantization_config.
Non-quantized tensors are stored in BF16, as released.

Weights are drawn so the model is not degenerate: embeddings N(0, 1), linears N(0, 1/fan_in),
router N(0, ROUTER_STD^2/fan_in) (expert choice well separated), lm_head N(0, LOGIT_STD^2/hidden)
(logits of standard deviation ~LOGIT_STD). Random logits still have near-ties; the harness reports
agreement relative to the reference's top-2 margin.
"""
from __future__ import annotations

import argparse
import json
import math
import os

FAMILIES = ("next", "qwen36")
QUANTS = ("fp8-block", "fp8-channel", "bf16")
VOCAB = 4096
LOGIT_STD = 4.0
ROUTER_STD = 3.0
BLOCK = 128
FP8_MAX = 448.0

_TEXT = dict(
    hidden_size=256, num_hidden_layers=4, full_attention_interval=4,
    layer_types=["linear_attention"] * 3 + ["full_attention"],
    num_attention_heads=4, num_key_value_heads=2, head_dim=256, attn_output_gate=True,
    linear_conv_kernel_dim=4, linear_key_head_dim=128, linear_num_key_heads=2,
    linear_num_value_heads=4, linear_value_head_dim=128,
    num_experts=16, num_experts_per_tok=4, moe_intermediate_size=256,
    shared_expert_intermediate_size=256, norm_topk_prob=True, hidden_act="silu",
    vocab_size=VOCAB, max_position_embeddings=4096, rms_norm_eps=1e-6,
    bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
)
_ROPE_NEXT = {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25}
# Qwen3.5/3.6: interleaved M-RoPE over the 64 rotary dims (text positions make it plain RoPE)
_ROPE_QWEN36 = {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25,
                "mrope_section": [11, 11, 10], "mrope_interleaved": True}
_VISION = dict(depth=1, hidden_size=128, intermediate_size=256, num_heads=2, in_channels=3,
               patch_size=16, spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=256)

# linears stored in FP8 (HF names' last two components); everything else stays BF16
_QUANTIZED = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "linear_attn.in_proj_qkvz", "linear_attn.in_proj_qkv", "linear_attn.in_proj_z",
              "linear_attn.out_proj", "gate_proj", "up_proj", "down_proj")
_KEPT_LINEARS = ("linear_attn.in_proj_ba", "linear_attn.in_proj_a", "linear_attn.in_proj_b",
                 "mlp.gate", "mlp.shared_expert_gate")


def hf_config(family: str, quant: str) -> dict:
    if family not in FAMILIES or quant not in QUANTS:
        raise ValueError(f"family must be one of {FAMILIES} and quant one of {QUANTS}")
    if family == "next":
        cfg = {"architectures": ["Qwen3NextForCausalLM"], "model_type": "qwen3_next",
               **_TEXT, "decoder_sparse_step": 1, "mlp_only_layers": [], "intermediate_size": 512,
               "rope_parameters": dict(_ROPE_NEXT), "torch_dtype": "bfloat16"}
    else:
        text = {"model_type": "qwen3_5_moe_text", **_TEXT, "rope_parameters": dict(_ROPE_QWEN36),
                "mamba_ssm_dtype": "float32", "dtype": "bfloat16"}
        cfg = {"architectures": ["Qwen3_5MoeForConditionalGeneration"], "model_type": "qwen3_5_moe",
               "text_config": text, "vision_config": dict(_VISION), "tie_word_embeddings": False,
               "image_token_id": VOCAB - 4, "video_token_id": VOCAB - 3,
               "vision_start_token_id": VOCAB - 2, "vision_end_token_id": VOCAB - 1,
               "torch_dtype": "bfloat16"}
    return cfg


def _is_quantized(name: str) -> bool:
    if not name.endswith(".weight") or "visual" in name:
        return False
    module = name[: -len(".weight")]
    return any(module.endswith(q) for q in _QUANTIZED) and not any(module.endswith(k) for k in _KEPT_LINEARS)


def quantization_config(quant: str, kept_modules: list[str]) -> dict | None:
    if quant == "bf16":
        return None
    if quant == "fp8-block":
        return {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                "weight_block_size": [BLOCK, BLOCK], "modules_to_not_convert": kept_modules}
    scheme = {"num_bits": 8, "type": "float", "symmetric": True, "group_size": None,
              "block_structure": None, "actorder": None}
    return {
        "quant_method": "compressed-tensors", "format": "float-quantized",
        "quantization_status": "compressed", "global_compression_ratio": None, "kv_cache_scheme": None,
        "ignore": ["lm_head", "re:.*visual.*", "re:.*mlp.gate$", "re:.*shared_expert_gate$",
                   "re:.*in_proj_ba$", "re:.*in_proj_a$", "re:.*in_proj_b$"],
        "config_groups": {"group_0": {
            "targets": ["Linear"],
            "weights": {**scheme, "strategy": "channel", "dynamic": False, "observer": "minmax",
                        "observer_kwargs": {}},
            "input_activations": {**scheme, "strategy": "token", "dynamic": True, "observer": None,
                                  "observer_kwargs": {}},
            "output_activations": None}},
    }


def quantize_block(w):
    """e4m3 weight and float32 weight_scale_inv per 128x128 block (dequant = q * scale_inv)."""
    import torch

    n, k = w.shape
    nb, kb = math.ceil(n / BLOCK), math.ceil(k / BLOCK)
    padded = torch.zeros(nb * BLOCK, kb * BLOCK, dtype=torch.float32)
    padded[:n, :k] = w.float()
    blocks = padded.view(nb, BLOCK, kb, BLOCK)
    scale = (blocks.abs().amax(dim=(1, 3)) / FP8_MAX).clamp(min=1e-12)
    q = (blocks / scale[:, None, :, None]).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q.view(nb * BLOCK, kb * BLOCK)[:n, :k].contiguous(), scale


def quantize_channel(w):
    import torch

    scale = (w.float().abs().amax(dim=1, keepdim=True) / FP8_MAX).clamp(min=1e-12)
    q = (w.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale


def dequantize(tensors: dict) -> dict:
    """float32 state dict from a checkpoint's tensors (both FP8 formats; BF16 upcast)."""
    import torch

    out = {}
    for name, t in tensors.items():
        if name.endswith(("weight_scale_inv", "weight_scale")):
            continue
        if t.dtype == torch.float8_e4m3fn:
            base = name[: -len(".weight")]
            if f"{base}.weight_scale_inv" in tensors:
                s = tensors[f"{base}.weight_scale_inv"].float()
                full = s.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)
                out[name] = t.float() * full[: t.shape[0], : t.shape[1]]
            else:
                out[name] = t.float() * tensors[f"{base}.weight_scale"].float()
        else:
            out[name] = t.float()
    return out


def _model_class(family: str):
    import transformers

    return (transformers.Qwen3NextForCausalLM if family == "next"
            else transformers.Qwen3_5MoeForConditionalGeneration)


def _config_object(cfg: dict):
    import transformers

    clean = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "quantization_config")}
    if cfg["model_type"] == "qwen3_next":
        return transformers.Qwen3NextConfig(**clean)
    return transformers.Qwen3_5MoeConfig(**clean)


def _draw_weights(model, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=gen))
            elif name == "lm_head.weight":
                p.copy_(torch.randn(p.shape, generator=gen) * LOGIT_STD / math.sqrt(p.shape[1]))
            elif name.endswith("mlp.gate.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * ROUTER_STD / math.sqrt(p.shape[1]))
            elif "visual" in name:
                continue
            elif (p.dim() == 2 and name.endswith(".weight") and "norm" not in name) or (
                    p.dim() == 3 and ".experts." in name):  # fused experts [E, N, K]
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]))
            # norms, conv1d, A_log, dt_bias, vision tower: transformers' own initialisation


def write_tokenizer(out_dir: str, vocab_size: int = VOCAB) -> None:
    """A word-level tokenizer over tokens t0..tN (so `vllm serve` can take text prompts)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    vocab.update({f"t{i}": i for i in range(len(specials), vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(out_dir)


def released_layout(state: dict) -> dict:
    """transformers 5 keeps each layer's experts fused (experts.gate_up_proj [E, 2I, H],
    experts.down_proj [E, H, I]); released checkpoints store experts.<e>.{gate,up,down}_proj."""
    out = {}
    for name, t in state.items():
        if name.endswith("experts.gate_up_proj"):
            base, inter = name[: -len("gate_up_proj")], t.shape[1] // 2
            for e in range(t.shape[0]):
                out[f"{base}{e}.gate_proj.weight"] = t[e, :inter]
                out[f"{base}{e}.up_proj.weight"] = t[e, inter:]
        elif name.endswith("experts.down_proj"):
            base = name[: -len("down_proj")]
            for e in range(t.shape[0]):
                out[f"{base}{e}.down_proj.weight"] = t[e]
        else:
            out[name] = t
    return out


def model_layout(state: dict, model_keys) -> dict:
    """The inverse of released_layout for the keys a transformers model expects."""
    import torch

    out = dict(state)
    for key in model_keys:
        if key.endswith("experts.gate_up_proj") and key not in out:
            base = key[: -len("gate_up_proj")]
            n = sum(1 for k in state if k.startswith(base) and k.endswith(".gate_proj.weight"))
            out[key] = torch.stack([torch.cat([out.pop(f"{base}{e}.gate_proj.weight"),
                                               out.pop(f"{base}{e}.up_proj.weight")]) for e in range(n)])
        elif key.endswith("experts.down_proj") and key not in out:
            base = key[: -len("down_proj")]
            n = sum(1 for k in state if k.startswith(base) and k.endswith(".down_proj.weight"))
            out[key] = torch.stack([out.pop(f"{base}{e}.down_proj.weight") for e in range(n)])
    return out


def write_checkpoint(out_dir: str, family: str, quant: str, seed: int = 0) -> dict:
    """Write config.json, model.safetensors and a tokenizer; returns the config written."""
    import torch
    from safetensors.torch import save_file

    cfg = hf_config(family, quant)
    torch.manual_seed(seed)
    model = _model_class(family)(_config_object(cfg)).float()
    _draw_weights(model, seed)
    tensors, kept = {}, []
    for name, p in released_layout(model.state_dict()).items():
        w = p.detach().to(torch.bfloat16).float()  # the BF16 master every format starts from
        if quant != "bf16" and _is_quantized(name):
            q, s = quantize_block(w) if quant == "fp8-block" else quantize_channel(w)
            tensors[name] = q
            tensors[name[: -len("weight")] + ("weight_scale_inv" if quant == "fp8-block" else "weight_scale")] = s
        else:
            tensors[name] = w.to(torch.bfloat16).contiguous()
            module = name[: -len(".weight")]
            if name.endswith(".weight") and any(module.endswith(k) for k in _KEPT_LINEARS + ("lm_head",)):
                kept.append(module)
    qcfg = quantization_config(quant, sorted(kept))
    if qcfg is not None:
        cfg["quantization_config"] = qcfg
    os.makedirs(out_dir, exist_ok=True)
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2, "do_sample": False}, f)
    write_tokenizer(out_dir)
    return cfg


def load_reference(model_dir: str, device: str = "cpu"):
    """The transformers model of a checkpoint written here, in float32 on the dequantized weights."""
    import torch
    from safetensors.torch import load_file

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    family = "next" if cfg["model_type"] == "qwen3_next" else "qwen36"
    model = _model_class(family)(_config_object(cfg)).float()
    state = model_layout(dequantize(load_file(os.path.join(model_dir, "model.safetensors"))),
                         model.state_dict().keys())
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("inv_freq")]
    if missing or unexpected:
        raise RuntimeError(f"reference load of {model_dir}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.to(device).eval()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--family", choices=FAMILIES, default="next")
    ap.add_argument("--quant", choices=QUANTS, default="fp8-block")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = write_checkpoint(args.out_dir, args.family, args.quant, args.seed)
    print(f"wrote {cfg['architectures'][0]} ({args.quant}) to {args.out_dir}")


if __name__ == "__main__":
    main()
