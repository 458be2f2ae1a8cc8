"""rocm_enable.models.tiny: the tiny checkpoints the engine harness loads through vLLM's loaders.

Checks the on-disk format released FP8 checkpoints use (names, dtypes, scale shapes, the
quantization_config vLLM parses) and that the float32 transformers reference loads every tensor."""
from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

from rocm_enable.models import tiny  # noqa: E402


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    out = {}
    for family, quant in (("next", "fp8-block"), ("qwen36", "fp8-channel")):
        d = str(root / f"{family}-{quant}")
        tiny.write_checkpoint(d, family, quant)
        out[(family, quant)] = d
    return out


def test_block_fp8_layout_is_qwens(checkpoints):
    d = checkpoints[("next", "fp8-block")]
    t = load_file(os.path.join(d, "model.safetensors"))
    cfg = json.load(open(os.path.join(d, "config.json")))
    q = cfg["quantization_config"]
    assert q["quant_method"] == "fp8" and q["weight_block_size"] == [128, 128]
    w = t["model.layers.0.mlp.experts.3.gate_proj.weight"]
    s = t["model.layers.0.mlp.experts.3.gate_proj.weight_scale_inv"]
    assert w.dtype == torch.float8_e4m3fn and s.dtype == torch.float32
    assert tuple(s.shape) == (w.shape[0] // 128, w.shape[1] // 128)
    # the BF16 linears are named in modules_to_not_convert and stored in BF16
    assert "model.layers.0.linear_attn.in_proj_ba" in q["modules_to_not_convert"]
    assert t["model.layers.0.linear_attn.in_proj_ba.weight"].dtype == torch.bfloat16
    assert t["model.layers.0.mlp.gate.weight"].dtype == torch.bfloat16
    assert t["lm_head.weight"].dtype == torch.bfloat16
    for name in q["modules_to_not_convert"]:
        assert f"{name}.weight" in t, name
    # every FP8 weight's dims split into whole 128-blocks, also per rank at tensor parallel 2
    for name, x in t.items():
        if x.dtype == torch.float8_e4m3fn:
            assert x.shape[0] % 256 == 0 or x.shape[1] % 256 == 0, name


def test_channel_fp8_is_compressed_tensors(checkpoints):
    d = checkpoints[("qwen36", "fp8-channel")]
    t = load_file(os.path.join(d, "model.safetensors"))
    q = json.load(open(os.path.join(d, "config.json")))["quantization_config"]
    assert q["quant_method"] == "compressed-tensors"
    assert q["config_groups"]["group_0"]["weights"]["strategy"] == "channel"
    w = t["model.language_model.layers.3.self_attn.q_proj.weight"]
    s = t["model.language_model.layers.3.self_attn.q_proj.weight_scale"]
    assert w.dtype == torch.float8_e4m3fn and tuple(s.shape) == (w.shape[0], 1)
    assert t["model.language_model.layers.0.linear_attn.in_proj_a.weight"].dtype == torch.bfloat16


@pytest.mark.parametrize("quantize", [tiny.quantize_block, tiny.quantize_channel])
def test_quantization_round_trip_is_within_one_e4m3_step(quantize):
    w = torch.randn(256, 384) / 16
    q, s = quantize(w)
    name = "x.weight_scale_inv" if quantize is tiny.quantize_block else "x.weight_scale"
    back = tiny.dequantize({"x.weight": q, name: s})["x.weight"]
    assert (back - w).abs().max() <= w.abs().max() * 2 ** -3  # e4m3: 3 mantissa bits


def test_reference_loads_every_tensor_and_predicts_the_successor(checkpoints):
    ids = [5, 17, 99, 250, 777, 12, 8, 3000]
    for d in checkpoints.values():
        model = tiny.load_reference(d)  # strict: raises on a missing or unexpected tensor
        lm = model.lm_head.weight.detach().double()
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        assert torch.isfinite(logits).all()
        # lm_head row successor(t) is t's own last-MoE output direction: recover successor(t)
        # from the stored lm_head and the layers, and check the model predicts it in context
        family = os.path.basename(d).split("-")[0]
        own = tiny.first_token_states(dict(model.named_parameters()), tiny.text_config(family),
                                      tiny.text_prefix(family))[ids]
        successor = (own @ lm.T).argmax(-1)
        assert logits.argmax(-1).tolist() == successor.tolist()
        top2 = logits.topk(2, dim=-1).values
        assert (top2[:, 0] - top2[:, 1]).min() > 1.0  # several nats, not a near-tie
        assert 0.4 < logits[:, 4:-8].std().item() < 1.2  # the others: ~OUTPUT_SCALE


def test_first_token_states_is_the_transformers_forward(checkpoints):
    """The lm_head calibration's own float64 forward of one token equals transformers' (float32)."""
    ids = torch.tensor([[5], [17], [999], [4000]])
    for d in checkpoints.values():
        model = tiny.load_reference(d)
        family = os.path.basename(d).split("-")[0]
        prefix = tiny.text_prefix(family)
        captured = []
        mlp = dict(model.named_modules())[f"{prefix}layers.3.mlp"]
        handle = mlp.register_forward_hook(lambda m, i, o: captured.append(o[0] if isinstance(o, tuple) else o))
        with torch.no_grad():
            model(ids)
        handle.remove()
        ours = tiny.first_token_states(dict(model.named_parameters()), tiny.text_config(family), prefix)
        theirs = captured[0][:, 0].double()
        assert (ours[ids[:, 0]] - theirs).abs().max() <= 1e-4 * theirs.abs().max()


def test_weights_do_not_depend_on_transformers_initialisation():
    """Every parameter comes from the seeded generator: torch's global RNG (what transformers'
    own initialisation draws from, differently between versions) changes nothing."""
    states = []
    for global_seed in (0, 123):
        torch.manual_seed(global_seed)
        model = tiny._model_class("qwen36")(tiny._config_object(tiny.hf_config("qwen36", "bf16"))).float()
        tiny._draw_weights(model, 0)
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    assert states[0].keys() == states[1].keys()
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
