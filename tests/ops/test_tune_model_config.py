"""`rocm-enable tune` reads the shape to tune from any model's config.json (the common MoE key
spellings, or a dense model), or from --moe-shape; bad input names the fix; without a GPU it says
that tuning needs one and what it would have measured."""
import json
import subprocess
import sys

import pytest

from rocm_enable.ops import tune

DEEPSEEK_V2_LITE = {"architectures": ["DeepseekV2ForCausalLM"], "hidden_size": 2048, "intermediate_size": 10944,
                    "moe_intermediate_size": 1408, "n_routed_experts": 64, "num_experts_per_tok": 6}
MIXTRAL = {"architectures": ["MixtralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
           "num_local_experts": 8, "num_experts_per_tok": 2}
QWEN3_30B = {"architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 2048, "intermediate_size": 6144,
             "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8}
LLAMA = {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336}


@pytest.mark.parametrize("raw,tp,moe,dense", [
    (DEEPSEEK_V2_LITE, 1, tune.MoeShape(64, 6, 2048, 1408), None),
    (MIXTRAL, 2, tune.MoeShape(8, 2, 4096, 7168), None),
    ({"text_config": QWEN3_30B}, 4, tune.MoeShape(128, 8, 2048, 192), None),
    (LLAMA, 2, None, (14336, 4096)),
])
def test_shapes_from_any_config(raw, tp, moe, dense):
    assert tune.shapes_from_config(raw, tp, "cfg") == (moe, dense)


@pytest.mark.parametrize("raw,tp,message", [
    ({**DEEPSEEK_V2_LITE, "num_experts_per_tok": 0}, 1, "without any of"),
    (DEEPSEEK_V2_LITE, 3, "not divisible by --tensor-parallel-size 3"),
    ({"num_experts": 8}, 1, "no hidden_size"),
])
def test_bad_configs_name_the_problem(raw, tp, message):
    with pytest.raises(tune.TuneError, match=message):
        tune.shapes_from_config(raw, tp, "cfg")


def test_moe_shape_option():
    assert tune.parse_moe_shape("512,10,2048,256") == tune.MoeShape(512, 10, 2048, 256)
    for bad in ("512,10,2048", "a,b,c,d", "8,10,2048,256", "64,6,0,128"):
        with pytest.raises(tune.TuneError, match="--moe-shape"):
            tune.parse_moe_shape(bad)


def test_cli_without_gpu_names_what_it_would_tune(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(DEEPSEEK_V2_LITE))
    p = subprocess.run([sys.executable, "-m", "rocm_enable.cli", "tune", "--model", str(tmp_path),
                        "--family", "rdna3"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert "tuning needs the GPU" in p.stderr
    assert "E=64 top-k=6 hidden=2048 intermediate=1408 per shard" in p.stderr


def test_model_id_from_the_local_hub_cache(tmp_path, monkeypatch):
    """An HF id `vllm serve` already downloaded is read from the hub cache (refs/main's snapshot);
    an id not in the cache is not looked up anywhere else (None: the bundled-or-path error follows)."""
    repo = tmp_path / "hub" / "models--deepseek-ai--DeepSeek-V2-Lite"
    for rev, cfg in (("old", MIXTRAL), ("abc123", DEEPSEEK_V2_LITE)):
        (repo / "snapshots" / rev).mkdir(parents=True)
        (repo / "snapshots" / rev / "config.json").write_text(json.dumps(cfg))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123\n")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    path = tune.hub_cached_config("deepseek-ai/DeepSeek-V2-Lite")
    assert path == str(repo / "snapshots" / "abc123" / "config.json")
    assert tune.shapes_from_config(json.loads(open(path).read()), 1, path)[0] == tune.MoeShape(64, 6, 2048, 1408)
    assert tune.hub_cached_config("deepseek-ai/not-downloaded") is None
