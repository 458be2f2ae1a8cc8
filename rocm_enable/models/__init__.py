"""Model configs for `explain` and `plan`: the bundled Qwen3-Next / Qwen3.6 configs, or a user's
config.json. Nothing is downloaded: a Hugging Face id must name a bundled config; anything else
must be a path to a config.json (or a folder holding one).

Each bundled file is the model's config.json fields (flat for Qwen3NextForCausalLM, nested
text_config/vision_config for Qwen3.6) plus a `_rocm_enable` object saying where every value came
from and which fields were left out because they could not be verified.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from importlib import resources

SUPPORTED_ARCHITECTURES = (
    "Qwen3NextForCausalLM",
    "Qwen3_5ForConditionalGeneration",
    "Qwen3_5MoeForConditionalGeneration",
    "Qwen3_5ForCausalLM",
    "Qwen3_5MoeForCausalLM",
)


class ModelError(ValueError):
    """A model argument that names no bundled config and no readable config.json."""


@dataclass(frozen=True)
class QuantSpec:
    method: str                   # "fp8" | "compressed-tensors"
    scheme: str                   # "block128" | "channel" | "tensor"
    block: tuple[int, int] | None
    activation: str               # "dynamic" | "static"


@dataclass(frozen=True)
class VisionSpec:
    depth: int
    hidden_size: int
    intermediate_size: int
    in_channels: int
    patch_size: int
    temporal_patch_size: int
    spatial_merge_size: int
    out_hidden_size: int


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str                   # "bundled" or the config path
    architecture: str
    dtype: str                    # checkpoint dtype of unquantized tensors
    hidden_size: int
    num_layers: int
    full_attention_layers: int
    linear_attention_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    attn_output_gate: bool
    linear_num_key_heads: int
    linear_num_value_heads: int
    linear_key_head_dim: int
    linear_value_head_dim: int
    conv_kernel: int
    num_experts: int              # 0 for a dense model
    top_k: int
    moe_intermediate_size: int
    shared_expert_intermediate_size: int
    intermediate_size: int        # dense MLP width (dense models)
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    mamba_ssm_dtype: str
    quant: QuantSpec | None
    vision: VisionSpec | None
    provenance: dict = field(default_factory=dict, compare=False)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    def as_dict(self) -> dict:
        return asdict(self)


def _configs_dir():
    return resources.files("rocm_enable.models").joinpath("configs")


def bundled_models() -> dict[str, str]:
    """Hugging Face id -> bundled file name."""
    out = {}
    for entry in sorted(_configs_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text())
            out[data["_rocm_enable"]["hf_id"]] = entry.name
    return out


def _find_bundled(model: str) -> str | None:
    table = bundled_models()
    key = model.strip().rstrip("/")
    lowered = {k.lower(): v for k, v in table.items()}
    short = {k.split("/", 1)[1].lower(): v for k, v in table.items()}
    return lowered.get(key.lower()) or short.get(key.lower())


def load_raw(model: str) -> tuple[dict, str]:
    """The config dict for a bundled id or a config.json path, and where it came from."""
    name = _find_bundled(model)
    if name is not None:
        return json.loads(_configs_dir().joinpath(name).read_text()), "bundled"
    path = os.path.expanduser(model)
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    if os.path.isfile(path):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ModelError(f"{path} is not a config.json object")
        # A quantization config may live next to config.json (e.g. quantize_config.json).
        if "quantization_config" not in data:
            for extra in ("quantization_config.json", "quant_config.json"):
                side = os.path.join(os.path.dirname(path), extra)
                if os.path.isfile(side):
                    with open(side) as f:
                        data["quantization_config"] = json.load(f)
                    break
        return data, path
    known = "\n  ".join(bundled_models())
    raise ModelError(
        f"unknown model {model!r}: not a bundled config and not a path to a config.json. "
        f"Nothing is downloaded; bundled models:\n  {known}\n"
        "or pass the path of a downloaded model folder or its config.json."
    )


def _quant(qc: dict | None) -> QuantSpec | None:
    if not qc:
        return None
    method = str(qc.get("quant_method", "")).lower()
    if method == "fp8":
        block = qc.get("weight_block_size")
        return QuantSpec("fp8", "block128" if block else "tensor",
                         tuple(block) if block else None, qc.get("activation_scheme", "dynamic"))
    if method == "compressed-tensors":
        for group in (qc.get("config_groups") or {}).values():
            w = group.get("weights") or {}
            if w.get("type") == "float" and int(w.get("num_bits", 0)) == 8:
                strategy = w.get("strategy", "tensor")
                block = tuple(w["block_structure"]) if w.get("block_structure") else None
                scheme = {"channel": "channel", "block": "block128"}.get(strategy, "tensor")
                act = group.get("input_activations") or {}
                return QuantSpec("compressed-tensors", scheme, block,
                                 "dynamic" if act.get("dynamic", True) else "static")
        raise ModelError("compressed-tensors checkpoint without an FP8 weight group: rocm-enable "
                         "explains BF16 and FP8 checkpoints only")
    raise ModelError(f"quantization method {method!r} is not one rocm-enable explains "
                     "(BF16 and FP8 checkpoints: quant_method fp8 or compressed-tensors FP8)")


def _req(cfg: dict, key: str, where: str):
    if key not in cfg:
        raise ModelError(f"{where}: config has no {key!r}")
    return cfg[key]


def spec_from_config(raw: dict, name: str, source: str) -> ModelSpec:
    arch = (raw.get("architectures") or [""])[0]
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelError(
            f"{name}: architecture {arch or '(none)'} is not one rocm-enable explains; it knows "
            f"{', '.join(SUPPORTED_ARCHITECTURES)} (Qwen3-Next and Qwen3.5/3.6 hybrids)")
    text = raw.get("text_config") or raw
    hidden = int(_req(text, "hidden_size", name))
    layers = int(_req(text, "num_hidden_layers", name))
    layer_types = text.get("layer_types")
    if not layer_types:
        interval = int(text.get("full_attention_interval", 4))
        layer_types = ["full_attention" if (i + 1) % interval == 0 else "linear_attention"
                       for i in range(layers)]
    full = sum(1 for t in layer_types if t == "full_attention")
    vc = raw.get("vision_config")
    vision = None
    if vc:
        vision = VisionSpec(
            depth=int(vc["depth"]), hidden_size=int(vc["hidden_size"]),
            intermediate_size=int(vc["intermediate_size"]), in_channels=int(vc.get("in_channels", 3)),
            patch_size=int(vc["patch_size"]), temporal_patch_size=int(vc.get("temporal_patch_size", 2)),
            spatial_merge_size=int(vc.get("spatial_merge_size", 2)),
            out_hidden_size=int(vc.get("out_hidden_size", hidden)))
    quant = _quant(raw.get("quantization_config") or text.get("quantization_config"))
    dtype = str(text.get("dtype") or text.get("torch_dtype") or raw.get("torch_dtype") or "bfloat16")
    return ModelSpec(
        name=name, source=source, architecture=arch, dtype=dtype, hidden_size=hidden,
        num_layers=layers, full_attention_layers=full, linear_attention_layers=len(layer_types) - full,
        num_attention_heads=int(_req(text, "num_attention_heads", name)),
        num_kv_heads=int(_req(text, "num_key_value_heads", name)),
        head_dim=int(text.get("head_dim") or hidden // int(text["num_attention_heads"])),
        attn_output_gate=bool(text.get("attn_output_gate", arch == "Qwen3NextForCausalLM")),
        linear_num_key_heads=int(_req(text, "linear_num_key_heads", name)),
        linear_num_value_heads=int(_req(text, "linear_num_value_heads", name)),
        linear_key_head_dim=int(_req(text, "linear_key_head_dim", name)),
        linear_value_head_dim=int(_req(text, "linear_value_head_dim", name)),
        conv_kernel=int(text.get("linear_conv_kernel_dim", 4)),
        num_experts=int(text.get("num_experts") or 0),
        top_k=int(text.get("num_experts_per_tok") or 0),
        moe_intermediate_size=int(text.get("moe_intermediate_size") or 0),
        shared_expert_intermediate_size=int(text.get("shared_expert_intermediate_size") or 0),
        intermediate_size=int(text.get("intermediate_size") or 0),
        vocab_size=int(_req(text, "vocab_size", name)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        max_position_embeddings=int(text.get("max_position_embeddings") or 262144),
        mamba_ssm_dtype=str(text.get("mamba_ssm_dtype") or dtype),  # vLLM: cache dtype "auto" = model dtype
        quant=quant, vision=vision,
        provenance=raw.get("_rocm_enable", {}),
    )


def load_model(model: str) -> ModelSpec:
    raw, source = load_raw(model)
    name = raw.get("_rocm_enable", {}).get("hf_id") or model
    return spec_from_config(raw, name, source)
