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

Weights: every tensor is set from one seeded CPU generator (nothing is left to transformers' own
initialisation, which differs between versions), so the device and a CPU rerun write the same bytes.
They are designed so that greedy decoding is robust to bf16 precision (engine harness: vLLM's bf16
activations must give the float32 reference's greedy tokens) while every layer decides the tokens:

  * A random model's logits are near-tied at some step of almost any 256-step run: the top-2 gap of
    4096 Gaussian logits is ~0.25 of their spread, and a context-dependent continuous computation
    carries bf16 error of ~0.5% of it, so ~1-4% of steps flip. No scale fixes that: the gap and the
    error scale together. So the greedy token is not a near-random argmax here: lm_head is calibrated
    (calibrate_lm_head) so that the logit of token successor(t) (a seeded permutation of the
    ordinary ids) is 16 * OUTPUT_SCALE * cos(final state, the last MoE block's output for t alone),
    t's own output as every layer computes it (first_token_states, float64). In context that cosine
    stays well above the ~0.25 any other row sees: margins of nats, not hundredths.
  * The tokens still depend on every layer: the last MoE block's output depends on everything
    before it; sub-layer output gains grow by GROWTH per sub-layer (MIXER_GAIN, ATTENTION_GAIN,
    EXPERT_GAIN) and the last shared expert (FINAL_SHARED_GAIN: a dense path, no routing
    discontinuity) dominates the final state, so zeroing a GDN layer, the attention layer or a
    layer's routed or shared experts moves what the last block sees and changes the token
    (scripts/engine/tiny_robustness.py measures the share of steps each ablation changes).
  * The context is a bounded perturbation: attention and GDN queries equal their keys (a token matches
    itself best; QK_NORM_GAIN sets how sharply), the GDN causal conv weighs the 3 earlier tokens by
    CONV_EARLIER_STD against this token's 1, the GDN state decays (GDN_DECAY); the KV cache, GDN
    state, prefix cache and chunked prefill still enter every logit (checked through the logprob
    bound of scripts/engine/reference.py).
  * Router logits of spread ROUTER_STD 2.5: the top 4 of 16 experts all mix (a softer router measured
    fewer large bf16 deviations than 4 or 6, whose near-top-1 routing turns small errors into jumps).

Others: embeddings N(0, 1), linears N(0, 1/fan_in), norms at identity, GDN decay rates A spaced
over GDN_DECAY (log scale) across the heads, dt_bias 1.
"""
from __future__ import annotations

import argparse
import json
import math
import os

FAMILIES = ("next", "qwen36")
QUANTS = ("fp8-block", "fp8-channel", "bf16")
VOCAB = 4096
ROUTER_STD = 2.5        # router logits' spread (top 4 of 16 mix; measured better than 4 or 6 here)
GROWTH = 1.2            # each sub-layer's output gain over the one before (later layers weigh more)
MIXER_GAIN = 1.5        # GDN out_proj gain (times GROWTH ** sub-layer)
ATTENTION_GAIN = 2.5    # attention o_proj gain (times GROWTH ** sub-layer)
FINAL_SHARED_GAIN = 4.0  # the last layer's shared expert: dominates the final state (smooth: no routing)
EXPERT_GAIN = 1.5       # routed and shared experts' down_proj gain (times GROWTH ** sub-layer)
QK_NORM_GAIN = 1.4      # q_norm = k_norm scale: a token's score with itself is 16 * 1.96 = 31
CONV_EARLIER_STD = 0.005  # GDN causal conv taps on the 3 earlier tokens (this token's tap: 1)
OUTPUT_SCALE = 0.7      # std of a non-successor token's logit
GDN_DECAY = (2.0, 16.0)  # GDN decay rates A (state kept per token: exp(-A * softplus(a + 1)))
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


def text_config(family: str) -> dict:
    cfg = hf_config(family, "bf16")
    return cfg.get("text_config", cfg)


def text_prefix(family: str) -> str:
    """Where the language model's parameters live in the transformers model."""
    return "model." if family == "next" else "model.language_model."


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


def _norm_kind(model) -> dict:
    """Parameter name -> 'zero' (RMSNorm computing x * (1 + w)), 'one' (gated RMSNorm, LayerNorm
    weight) or 'bias' (LayerNorm bias), from the module classes."""
    import torch

    kinds = {}
    for mname, mod in model.named_modules():
        cls = type(mod).__name__
        prefix = f"{mname}." if mname else ""
        if cls.endswith("RMSNormGated") or isinstance(mod, torch.nn.LayerNorm):
            kinds[prefix + "weight"] = "one"
            if getattr(mod, "bias", None) is not None:
                kinds[prefix + "bias"] = "bias"
        elif cls.endswith("RMSNorm"):
            kinds[prefix + "weight"] = "zero"
    return kinds


def _draw_weights(model, seed: int):
    """Set every parameter from one seeded CPU generator, in named_parameters order; nothing is
    left to transformers' own initialisation (it differs between versions: the device's
    checkpoint must be byte-identical to a CPU rerun's). An unknown parameter is an error."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    normal = lambda shape, std: torch.randn(shape, generator=gen) * std  # noqa: E731
    norms = _norm_kind(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            kind = norms.get(name)
            if kind is not None and name.endswith(("q_norm.weight", "k_norm.weight")):
                p.fill_(QK_NORM_GAIN - 1.0)  # (1 + w) = QK_NORM_GAIN: how sharply a token attends to itself
            elif kind is not None:
                p.copy_(torch.zeros(p.shape) if kind in ("zero", "bias") else torch.ones(p.shape))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(normal(p.shape, 1.0))
            elif name == "lm_head.weight":
                p.zero_()  # calibrated after the layers' weights are final (calibrate_lm_head)
            elif name.endswith("mlp.gate.weight"):
                p.copy_(normal(p.shape, ROUTER_STD / math.sqrt(p.shape[1])))
            elif name.endswith("linear_attn.A_log"):  # decay rates A spaced GDN_DECAY over the heads
                p.copy_(torch.linspace(math.log(GDN_DECAY[0]), math.log(GDN_DECAY[1]), p.shape[0]))
            elif name.endswith("linear_attn.dt_bias"):
                p.copy_(torch.ones(p.shape))
            elif name.endswith("linear_attn.conv1d.weight"):  # depthwise [C, 1, K]: last tap = this token
                p.copy_(normal(p.shape, CONV_EARLIER_STD))
                p[..., -1] = 1.0
            elif name.endswith(".bias"):
                p.copy_(torch.zeros(p.shape))
            elif "visual" in name and p.dim() >= 2:  # patch conv, linears, position table
                p.copy_(normal(p.shape, 1.0 / math.sqrt(p[0].numel() if p.dim() > 2 else p.shape[-1])))
            elif name.endswith(("experts.down_proj", "shared_expert.down_proj.weight",
                                "linear_attn.out_proj.weight", "self_attn.o_proj.weight")):
                layer = int(name.split(".layers.")[1].split(".")[0])
                sub = 2 * layer + (1 if ".mlp." in name else 0)
                gain = GROWTH ** sub * (EXPERT_GAIN if ".mlp." in name else
                                        ATTENTION_GAIN if "self_attn" in name else MIXER_GAIN)
                if "shared_expert" in name and layer == model.config.get_text_config().num_hidden_layers - 1:
                    gain *= FINAL_SHARED_GAIN
                p.copy_(normal(p.shape, gain / math.sqrt(p.shape[-1])))
            elif (p.dim() == 2 and name.endswith(".weight")) or (p.dim() == 3 and ".experts." in name):
                p.copy_(normal(p.shape, 1.0 / math.sqrt(p.shape[-1])))  # linears; fused experts [E, N, K]
            else:
                raise ValueError(f"tiny checkpoint: no initialisation rule for {name} {tuple(p.shape)}")
        _tie_queries_to_keys(model)
    return gen


def _tie_queries_to_keys(model) -> None:
    """Query projection = key projection (per attention KV group and per GDN key head), so each
    token's own key is its query's best match: attention and the GDN state read mostly the token
    itself, and the rest of the context is a bounded perturbation of its state."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    hd, nq, nkv = cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
    nk, dk = cfg.linear_num_key_heads, cfg.linear_key_head_dim
    for name, mod in model.named_modules():
        if name.endswith("self_attn") and hasattr(mod, "q_proj"):
            q = mod.q_proj.weight.view(nq, 2 * hd, -1)  # per head: query rows, then output-gate rows
            k = mod.k_proj.weight.view(nkv, hd, -1)
            q[:, :hd] = k.repeat_interleave(nq // nkv, dim=0)
        elif name.endswith("linear_attn"):
            if hasattr(mod, "in_proj_qkvz"):  # per key head: q, k, v, z
                w = mod.in_proj_qkvz.weight.view(nk, -1, mod.in_proj_qkvz.weight.shape[-1])
                w[:, dk:2 * dk] = w[:, :dk]
            else:  # q | k | v
                w = mod.in_proj_qkv.weight
                w[nk * dk:2 * nk * dk] = w[:nk * dk]
            conv = mod.conv1d.weight  # channels: q | k | v
            conv[nk * dk:2 * nk * dk] = conv[:nk * dk]


def first_token_states(params: dict, text: dict, prefix: str):
    """float64 output of the last MoE block for every token alone at position 0 (empty cache):
    attention attends to itself only, GDN starts from a zero state and its causal conv sees only
    its last tap. params: the transformers model's parameters (fused experts)."""
    import torch
    import torch.nn.functional as F

    P = {k: v.detach().double() for k, v in params.items()}
    eps = text["rms_norm_eps"]

    def rms(x, w, centered=True):
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        return y * (1 + w) if centered else y * w

    x = P[f"{prefix}embed_tokens.weight"]
    n = x.shape[0]
    nk, nv = text["linear_num_key_heads"], text["linear_num_value_heads"]
    dk, dv = text["linear_key_head_dim"], text["linear_value_head_dim"]
    for i, kind in enumerate(text["layer_types"]):
        L = f"{prefix}layers.{i}."
        h = rms(x, P[L + "input_layernorm.weight"])
        if kind == "linear_attention":
            A = L + "linear_attn."
            if A + "in_proj_qkvz.weight" in P:  # Qwen3-Next: grouped per key head
                qkvz = (h @ P[A + "in_proj_qkvz.weight"].T).view(n, nk, -1)
                q, k, v, z = qkvz.split([dk, dk, nv // nk * dv, nv // nk * dv], dim=-1)
                ba = (h @ P[A + "in_proj_ba.weight"].T).view(n, nk, -1)
                b = ba[..., : nv // nk].reshape(n, nv)
                mixed = torch.cat([q.reshape(n, -1), k.reshape(n, -1), v.reshape(n, -1)], -1)
                z = z.reshape(n, nv, dv)
            else:  # Qwen3.5/3.6: q | k | v, separate z, b, a
                mixed = h @ P[A + "in_proj_qkv.weight"].T
                z = (h @ P[A + "in_proj_z.weight"].T).view(n, nv, dv)
                b = h @ P[A + "in_proj_b.weight"].T
            mixed = F.silu(mixed * P[A + "conv1d.weight"][:, 0, -1])  # causal conv: last tap only
            q, k, v = mixed.split([nk * dk, nk * dk, nv * dv], dim=-1)
            q = q.view(n, nk, dk).repeat_interleave(nv // nk, dim=1)
            k = k.view(n, nk, dk).repeat_interleave(nv // nk, dim=1)
            v = v.view(n, nv, dv)
            q = q * torch.rsqrt(q.pow(2).sum(-1, keepdim=True) + 1e-6)
            k = k * torch.rsqrt(k.pow(2).sum(-1, keepdim=True) + 1e-6)
            o = ((q * k).sum(-1, keepdim=True) / dk ** 0.5) * torch.sigmoid(b)[..., None] * v
            o = rms(o, P[A + "norm.weight"], centered=False) * F.silu(z)
            x = x + o.reshape(n, -1) @ P[A + "out_proj.weight"].T
        else:
            S = L + "self_attn."
            hd, nq, nkv = text["head_dim"], text["num_attention_heads"], text["num_key_value_heads"]
            gate = (h @ P[S + "q_proj.weight"].T).view(n, nq, 2 * hd)[..., hd:]
            v = (h @ P[S + "v_proj.weight"].T).view(n, nkv, hd).repeat_interleave(nq // nkv, dim=1)
            x = x + (v * torch.sigmoid(gate)).reshape(n, -1) @ P[S + "o_proj.weight"].T
        h = rms(x, P[L + "post_attention_layernorm.weight"])
        M = L + "mlp."
        probs = torch.softmax(h @ P[M + "gate.weight"].T, dim=-1)
        top, idx = probs.topk(text["num_experts_per_tok"], dim=-1)
        if text["norm_topk_prob"]:
            top = top / top.sum(-1, keepdim=True)
        gu, down = P[M + "experts.gate_up_proj"], P[M + "experts.down_proj"]
        out = torch.zeros_like(x)
        for e in range(gu.shape[0]):
            rows = (idx == e).any(-1).nonzero()[:, 0]  # build-time only: not on any engine path
            w = (top[rows] * (idx[rows] == e)).sum(-1, keepdim=True)
            g, u = (h[rows] @ gu[e].T).chunk(2, dim=-1)
            out[rows] += w * ((F.silu(g) * u) @ down[e].T)
        E = M + "shared_expert."
        sh = (F.silu(h @ P[E + "gate_proj.weight"].T) * (h @ P[E + "up_proj.weight"].T)) @ P[E + "down_proj.weight"].T
        out = out + torch.sigmoid(h @ P[M + "shared_expert_gate.weight"].T) * sh
        x = x + out
    return out  # the last MoE block's output (routed + shared experts)


def ordinary_tokens(vocab: int = VOCAB) -> range:
    """Token ids that are neither special (pad, bos, eos, unk) nor reserved (qwen36's vision ids)."""
    return range(4, vocab - 8)


def calibrate_lm_head(state: dict, family: str, successor) -> "torch.Tensor":
    """float64 lm_head: row successor[i] is OUTPUT_SCALE / sqrt(hidden) times the last MoE block's
    output for token ordinary_tokens()[i] alone (first_token_states), scaled to unit RMS. Its logit
    is then 16 * OUTPUT_SCALE * cos(final state, that output): the successor wins wherever the
    state still points the way the layers send the current token. Rows no ordinary token leads to
    (special and reserved ids): random directions of the same norm. state: transformers-layout
    float32 tensors of the stored (dequantized) weights."""
    import torch

    h = first_token_states(state, text_config(family), text_prefix(family))
    key = h / h.pow(2).mean(-1, keepdim=True).sqrt()
    lm = torch.zeros_like(key)
    lm[successor] = key[torch.tensor(list(ordinary_tokens(key.shape[0])))]
    others = torch.ones(key.shape[0], dtype=torch.bool)
    others[successor] = False
    lm[others] = torch.randn(int(others.sum()), key.shape[1],
                             generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return lm * OUTPUT_SCALE / math.sqrt(key.shape[1])


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
    gen = _draw_weights(model, seed)
    ordinary = ordinary_tokens(VOCAB)
    # a seeded permutation, from randn (whose CPU stream is stable across torch versions)
    successor = torch.tensor(list(ordinary))[torch.randn(len(ordinary), generator=gen).argsort()]
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
    stored = model_layout(dequantize(tensors), model.state_dict().keys())
    tensors["lm_head.weight"] = calibrate_lm_head(stored, family, successor).to(torch.bfloat16)
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
