"""`rocm-enable explain` for every bundled model on four archs: one simulated process per arch per
mode (ROCM_ENABLE=0 / =1), vLLM's real selection code in each, all models in the same process
(its cost is the vLLM import). gfx1151 runs on each vLLM under test (0.32 refuses FP8 MoE, later
versions emulate W8A8); the other archs on the venv's vLLM, to keep the suite within its budget."""
import json

import pytest

from rocm_enable import cli
from rocm_enable.explain import explain_many, render
from rocm_enable.models import bundled_models

pytestmark = [pytest.mark.vllm_sim, pytest.mark.usefixtures("explain_from_zygote")]

MODELS = list(bundled_models())
NO_BACKEND = "fails: NotImplementedError: No FP8 MoE backend supports the deployment configuration."
FAMILIES_MOE = {"MoE expert GEMMs", "MoE launch config", "router"}


def _env(vllm_under_test):
    return {"PYTHONPATH": vllm_under_test.pythonpath} if vllm_under_test.pythonpath else {}


def _rows(d):
    return {r["family"]: r for r in d["rows"]}


def _check_common(d):
    rows = _rows(d)
    expected = {"shared expert and dense projections" if d["model"].find("27B") < 0
                else "dense projections (GDN, attention, MLP)",
                "attention prefill", "attention decode", "GDN prefill", "GDN decode", "causal conv1d",
                "norms (RMSNorm / GemmaRMSNorm)", "norms (GDN gated RMSNorm)", "activation (SiluAndMul)",
                "lm_head"}
    if "27B" not in d["model"]:
        expected |= FAMILIES_MOE
    assert set(rows) == expected, set(rows) ^ expected
    for r in d["rows"]:
        for side in ("without_plugin", "with_plugin"):
            cell = r[side]
            assert cell["how"].startswith(("ran vLLM", "from source reading")) and cell["gates"]
            if cell["how"].startswith("from source reading"):
                assert r["gates"]
        assert not r["with_plugin"]["error"], (d["model"], r)  # with the plugin every family resolves
        if r["changed"]:  # whatever records exist at run time: a change is always attributed
            assert any("(applied)" in f for f in r["fixes"]), (d["model"], r["family"], r["fixes"])
    text = render(d)
    assert d["model"] in text and "decided by" in text
    return rows


def _check_no_fp8(d, version):
    rows = _check_common(d)
    if not d["quantization"]:
        # BF16: no FP8 fix touches the GEMM rows; the only GEMM-side change allowed is the tuned
        # fused-MoE config now found for the board (rocm_enable/stacks/vllm/moe_configs)
        for f, r in rows.items():
            if ("MoE" in f or "dense" in f) and r["changed"]:
                assert f == "MoE launch config" and r["fixes"] == ["moe-config-board-names (applied)"], \
                    (d["model"], f, r["fixes"])
        return
    dense = next(r for f, r in rows.items() if "dense projections" in f)
    assert dense["without_plugin"]["kernel"] == "TritonFp8BlockScaledMMKernel"
    assert "W8A8" in dense["without_plugin"]["precision"] and "software" in dense["without_plugin"]["precision"]
    assert dense["with_plugin"]["kernel"] == "RocmW8A16Fp8BlockLinearKernel"
    assert dense["with_plugin"]["precision"].startswith("W8A16")
    assert any(f.startswith("fp8-linear-w8a16") for f in dense["fixes"])
    if "27B" in d["model"]:
        return
    moe = rows["MoE expert GEMMs"]
    if version == "0.32.0":
        assert moe["without_plugin"]["error"] == NO_BACKEND  # what users of vLLM 0.32 hit
    else:
        assert moe["without_plugin"]["kernel"] == "TritonExperts"  # 0.33: emulated W8A8
        assert "W8A8" in moe["without_plugin"]["precision"]
    assert moe["with_plugin"]["kernel"] == "RocmW8A16Fp8Experts"
    assert moe["with_plugin"]["backend"] == "Fp8MoeBackend.TRITON"
    assert any(f.startswith("fp8-moe-w8a16") for f in moe["fixes"])
    # the launch-config row names the configs of the kernels that run: vLLM's file without the
    # plugin, the W8A16 family file (here the shipped one: the tests' cache dir is empty) with it
    launch = rows["MoE launch config"]
    assert launch["without_plugin"]["kernel"].startswith("E=") and "fp8_w8a8" in launch["without_plugin"]["kernel"]
    assert launch["with_plugin"]["backend"] == "W8A16 configs shipped with rocm-enable"
    assert launch["with_plugin"]["kernel"].startswith("rocm_enable/ops/configs/rdna3.json")
    assert any(f.startswith("fp8-moe-w8a16") for f in launch["fixes"])


def _check_gdn(d, rdna: bool):
    """GDN rows name rocm-enable's kernels where its GDN records run them (wave32 RDNA; every bundled
    model has K = V = 128 GDN heads), attributed to the records; vLLM's FLA kernels elsewhere."""
    rows = _rows(d)
    prefill, decode = rows["GDN prefill"], rows["GDN decode"]
    assert "rocm_enable" not in prefill["without_plugin"]["kernel"] + decode["without_plugin"]["kernel"]
    assert ("gdn_chunk_state_kernel" in prefill["with_plugin"]["kernel"]) == rdna, (d["model"], prefill)
    assert ("rocm_enable gdn_packed_decode_kernel" in decode["with_plugin"]["kernel"]) == rdna, (d["model"], decode)
    if rdna:
        assert "gdn-prefill-rdna (applied)" in prefill["fixes"] and "gdn-decode-rdna (applied)" in decode["fixes"]


def test_gfx1151_every_model_on_each_vllm(vllm_under_test):
    """One pair of processes per vLLM version holds every model (a process costs its vLLM import,
    each further model little)."""
    for d in explain_many(MODELS, "gfx1151", extra_env=_env(vllm_under_test)):
        assert d["vllm_version"] == vllm_under_test.version
        _check_no_fp8(d, vllm_under_test.version)
        _check_gdn(d, rdna=True)


def test_gfx1100_every_model():
    for d in explain_many(MODELS, "gfx1100"):
        _check_no_fp8(d, d["vllm_version"])


@pytest.mark.parametrize("arch", ["gfx1201", "gfx942"])
def test_fp8_arch_every_model_unchanged(arch):
    for d in explain_many(MODELS, arch):
        rows = _check_common(d)
        _check_gdn(d, rdna=arch != "gfx942")
        # FP8 compute: vLLM's own GEMM choices stand (other records, e.g. attention, may apply)
        assert not any(r["changed"] for f, r in rows.items() if "MoE" in f or "dense" in f), (arch, d["model"])
        if d["quantization"] and "MoE expert GEMMs" in rows:
            moe = rows["MoE expert GEMMs"]["with_plugin"]
            assert moe["kernel"] == "TritonExperts" and "native FP8" in moe["precision"]
        assert "wvSplitK" in rows["lm_head"]["with_plugin"]["kernel"]  # on_gfx9/on_gfx1x skinny GEMM


def _tuned_cache(tmp_path, valid=True):
    """A `rocm-enable tune` cache holding an rdna3 family file with its provenance."""
    from rocm_enable.ops import config as cfgmod

    data = dict(cfgmod.load_shipped("rdna3"))
    data["_tuned"] = {"family": "rdna3", "report": [], "runs": [
        {"kind": "moe", "source": "Qwen/Qwen3-Coder-Next-FP8", "device": "Radeon 8060S (gfx1151)",
         "date": "2026-11-02T10:00:00+00:00", "ms": [1, 16]}]}
    if not valid:
        data["moe"] = []
    (tmp_path / "w8a16").mkdir()
    (tmp_path / "w8a16" / "rdna3.json").write_text(json.dumps(data))
    return str(tmp_path)


@pytest.mark.parametrize("cache", ["empty", "tuned", "invalid"])
def test_w8a16_launch_config_row_names_the_file_that_runs(cache, tmp_path, monkeypatch):
    from rocm_enable.explain import w8a16_moe_config_row
    from rocm_enable.ops import config as cfgmod

    if cache != "empty":
        _tuned_cache(tmp_path, valid=cache == "tuned")
    monkeypatch.setenv(cfgmod.CACHE_ENV, str(tmp_path))
    cfgmod.load_family.cache_clear()
    try:
        row = w8a16_moe_config_row("rdna3")
    finally:
        cfgmod.load_family.cache_clear()
    tuned = str(tmp_path / "w8a16" / "rdna3.json")
    if cache == "tuned":
        assert row["backend"] == "W8A16 configs measured by `rocm-enable tune`"
        assert row["kernel"].startswith(tuned)
        assert "moe measured on Radeon 8060S (gfx1151) at 2026-11-02" in row["kernel"]
    else:
        assert row["backend"] == "W8A16 configs shipped with rocm-enable"
        assert row["kernel"].startswith("rocm_enable/ops/configs/rdna3.json")
        assert (f"{tuned} does not validate" in row["kernel"]) == (cache == "invalid")
    assert "load_family('rdna3')" in row["decided_by"]


def test_aiter_env_shows_both_gates(tmp_path):
    env = dict(VLLM_ROCM_USE_AITER="1", VLLM_ROCM_USE_AITER_MOE="1",
               VLLM_ROCM_USE_AITER_RMSNORM="1", ROCM_ENABLE_CACHE_DIR=_tuned_cache(tmp_path))
    d = explain_many(["Qwen/Qwen3-Coder-Next-FP8"], "gfx1151", extra_env=env)[0]
    rows = _rows(d)
    # the plugin's experts read the user's measured configs, named with their provenance
    launch = rows["MoE launch config"]["with_plugin"]
    assert launch["kernel"].startswith(str(tmp_path / "w8a16" / "rdna3.json"))
    assert "Radeon 8060S (gfx1151)" in launch["kernel"]
    assert rows["MoE expert GEMMs"]["without_plugin"]["error"].startswith(
        "fails: ValueError: FP8 MoE backend AITER does not support")  # gate C1
    assert rows["MoE expert GEMMs"]["with_plugin"]["kernel"] == "RocmW8A16Fp8Experts"
    norm = rows["norms (RMSNorm / GemmaRMSNorm)"]
    assert "'aiter'" in norm["without_plugin"]["backend"] and "'aiter'" not in norm["with_plugin"]["backend"]
    assert norm["changed"] and any(f.startswith("rms-norm-not-aiter-hip") for f in norm["fixes"])


def test_cli_explain_json_and_disable_toggle(capsys, monkeypatch):
    monkeypatch.setenv("ROCM_ENABLE_DISABLE", "fp8-moe-w8a16")
    assert cli.main(["explain", "--model", "Qwen/Qwen3.6-35B-A3B-FP8", "--arch", "gfx1151", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    moe = _rows(data)["MoE expert GEMMs"]
    # the toggle restores vLLM's own MoE answer while the dense fix stays on
    assert moe["with_plugin"] == moe["without_plugin"] and not moe["changed"]
    # ... and with vLLM's experts running, the launch config is vLLM's file again
    launch = _rows(data)["MoE launch config"]["with_plugin"]
    assert launch["kernel"].startswith("E=256,") and launch["backend"].startswith("vLLM")
    assert any(f.startswith("fp8-moe-w8a16 (disabled") for f in moe["fixes"])
    assert next(r for r in data["rows"] if "dense" in r["family"])["changed"]
