"""Bundled model configs and `rocm-enable plan` (no vLLM process needed)."""
import json

import pytest

from rocm_enable import cli
from rocm_enable.models import ModelError, bundled_models, load_model
from rocm_enable.plan import GIB, PlanError, components, kv_bytes_per_token, parse_memory, plan

MODELS = list(bundled_models())
ARCHS = ["gfx1151", "gfx1100", "gfx1201", "gfx942"]


def test_every_issue_model_is_bundled():
    assert set(MODELS) == {
        "Qwen/Qwen3-Next-80B-A3B-Instruct", "Qwen/Qwen3-Next-80B-A3B-Instruct-FP8",
        "Qwen/Qwen3-Coder-Next-FP8", "Qwen/Qwen3.6-27B", "Qwen/Qwen3.6-27B-FP8",
        "Qwen/Qwen3.6-35B-A3B", "Qwen/Qwen3.6-35B-A3B-FP8"}


@pytest.mark.parametrize("model", MODELS)
def test_bundled_config_says_where_values_came_from(model):
    spec = load_model(model)
    assert spec.provenance["sources"] and spec.provenance["not_bundled_unverified"]
    assert (spec.quant is not None) == model.endswith("FP8")
    if spec.quant:
        assert spec.quant.scheme == "block128" and spec.quant.block == (128, 128)
    assert spec.full_attention_layers * 4 == spec.num_layers  # full_attention_interval 4


def test_qwen3_next_geometry_gives_the_published_parameter_total():
    # Qwen3-Coder-Next's published total is 79,674,391,296 parameters (its model card / safetensors
    # index); the bundled geometry must reproduce it exactly.
    assert sum(c.params for c in components(load_model("Qwen/Qwen3-Coder-Next-FP8"))) == 79_674_391_296


def test_qwen36_totals_match_their_names():
    assert 34.5e9 < sum(c.params for c in components(load_model("Qwen/Qwen3.6-35B-A3B"))) < 36e9
    assert 26.5e9 < sum(c.params for c in components(load_model("Qwen/Qwen3.6-27B"))) < 28e9


def test_config_path_and_folder(tmp_path):
    raw = json.loads((__import__("importlib").resources.files("rocm_enable.models") / "configs" /
                      "Qwen3.6-35B-A3B-FP8.json").read_text())
    raw.pop("_rocm_enable")
    (tmp_path / "config.json").write_text(json.dumps(raw))
    for arg in (str(tmp_path), str(tmp_path / "config.json")):
        spec = load_model(arg)
        assert spec.source.endswith("config.json") and spec.num_experts == 256 and spec.quant


def test_unknown_model_is_a_clear_message():
    with pytest.raises(ModelError, match="(?s)not a bundled config.*Qwen/Qwen3-Coder-Next-FP8"):
        load_model("someone/Llama-70B")


def test_kv_only_for_full_attention_layers():
    spec = load_model("Qwen/Qwen3-Coder-Next-FP8")
    assert kv_bytes_per_token(spec) == 12 * 2 * 2 * 256 * 2
    assert kv_bytes_per_token(spec, "fp8") == 12 * 2 * 2 * 256


def test_coder_next_fp8_on_strix_halo():
    d = plan("Qwen/Qwen3-Coder-Next-FP8", "gfx1151", "128GiB", 65536, 2)
    assert d["fits"] and d["unified_memory"]
    assert 70 * GIB < d["weights_bytes"] < 80 * GIB
    assert d["gdn_state_per_seq"]["recurrent"] == 36 * 32 * 128 * 128 * 2
    flags = d["vllm_serve"]
    assert flags[:3] == ["vllm", "serve", "Qwen/Qwen3-Coder-Next-FP8"]
    assert flags[flags.index("--max-model-len") + 1] == "65536"
    assert flags[flags.index("--max-num-seqs") + 1] == "2"
    util = float(flags[flags.index("--gpu-memory-utilization") + 1])
    assert 0.8 < util < 0.95  # leaves the OS its share of the unified pool
    assert any("carve-out" in w and "GTT" in w for w in d["warnings"])
    p = d["projection"]
    assert p["label"].startswith("PROJECTION") and p["assumptions"]
    assert p["expected_tok_s"][0] <= p["expected_tok_s"][1] < p["ceiling_tok_s"]  # equal once every family is measured
    # ~3-4 GB of weights per token at 212 GB/s: a ceiling in the tens of tok/s
    assert 30 < plan("Qwen/Qwen3-Coder-Next-FP8", "gfx1151", context=1)["projection"]["ceiling_tok_s"] < 80


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("model", MODELS)
def test_plan_answers_for_every_model_and_arch(model, arch):
    try:
        d = plan(model, arch)
    except PlanError as exc:
        assert "does not fit" in str(exc) and "GiB" in str(exc)
        return
    assert d["kv_tokens"] > 0 and d["flags"]["max_model_len"] > 0
    assert d["projection"]["ceiling_tok_s"] > 0


def test_weights_that_cannot_fit_are_refused_clearly():
    with pytest.raises(PlanError, match="does not fit in 128 GiB.*weights alone are 14[0-9]"):
        plan("Qwen/Qwen3-Next-80B-A3B-Instruct", "gfx1151", "128GiB")


@pytest.mark.parametrize("text,gib", [("128GiB", 128), ("24G", 24), ("96GB", 96e9 / 2**30), ("512", 512)])
def test_parse_memory(text, gib):
    assert parse_memory(text) == pytest.approx(gib)


@pytest.mark.parametrize("argv,msg", [
    (["plan", "--model", "nope/nope", "--arch", "gfx1151"], "unknown model"),
    (["plan", "--model", "Qwen/Qwen3.6-27B", "--arch", "gfx1151", "--memory", "lots"], "--memory"),
    (["plan", "--model", "Qwen/Qwen3.6-27B", "--arch", "gfx1100"], "does not fit in 24 GiB"),
    (["plan", "--model", "Qwen/Qwen3.6-27B", "--arch", "gfx9999"], "unknown AMD architecture"),
    (["explain", "--model", "nope/nope", "--arch", "gfx1151"], "unknown model"),
])
def test_cli_bad_input_is_a_message_not_a_traceback(argv, msg, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_cli_plan_json(capsys):
    assert cli.main(["plan", "--model", "Qwen/Qwen3.6-35B-A3B-FP8", "--arch", "gfx1151", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] and data["projection"]["label"].startswith("PROJECTION")
