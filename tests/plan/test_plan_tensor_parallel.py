"""`rocm-enable plan --tensor-parallel-size N --nodes M [--enable-expert-parallel]`: per-GPU memory,
what fits on two 128 GB Strix Halo boxes, the all-reduces of a decode step and their time over a
network link (PROJECTION), and the input it refuses."""
import pytest

from rocm_enable import cli
from rocm_enable.models import load_model
from rocm_enable.plan import GIB, PlanError, _expected_max_share, components, plan, render

NEXT_BF16 = "Qwen/Qwen3-Next-80B-A3B-Instruct"
CODER = "Qwen/Qwen3-Coder-Next-FP8"


def test_bf16_80b_fits_two_strix_halo_boxes_not_one():
    with pytest.raises(PlanError, match="does not fit"):
        plan(NEXT_BF16, "gfx1151")
    d = plan(NEXT_BF16, "gfx1151", context=32768, tensor_parallel_size=2, nodes=2)
    comps = components(load_model(NEXT_BF16))
    replicated = sum(c.bytes for c in comps if not c.sharded)
    assert d["weights_bytes"] == int(replicated + (d["total_weights_bytes"] - replicated) / 2)
    assert 70 * GIB < d["weights_bytes"] < 80 * GIB and d["fits"]
    assert d["vllm_serve"][-2:] == ["--tensor-parallel-size", "2"]
    single = plan(CODER, "gfx1151", context=32768)
    both = plan(CODER, "gfx1151", context=32768, tensor_parallel_size=2, nodes=2)
    assert both["kv_bytes_per_token"] * 2 == single["kv_bytes_per_token"]  # 2 KV heads -> 1 per rank
    assert both["gdn_state_per_seq"]["total"] * 2 == single["gdn_state_per_seq"]["total"]


def test_allreduce_bytes_and_network_time_per_step():
    spec = load_model(CODER)
    d = plan(CODER, "gfx1151", context=4096, batch=4, tensor_parallel_size=2, nodes=2)
    c = d["projection"]["collectives"]
    assert c["allreduces"] == 2 * 48 + 1  # out_proj + MoE per layer, embedding
    assert c["allreduce_bytes"] == 2048 * 2 * 4  # hidden x bf16 x batch
    assert c["logits_gather_bytes"] == spec.vocab_size * 4 * 2 // 2
    sent = 97 * c["allreduce_bytes"] + c["logits_gather_bytes"]  # ring of 2: S per all-reduce
    assert c["bytes_sent_per_rank"] == sent
    rows = {(r["transport"], r["link_gbps"]): r for r in d["projection"]["network"]}
    assert {g for _, g in rows} == {25, 50, 100, 200}
    roce = rows[("RoCE v2 (RDMA)", 50)]
    assert roce["seconds_per_step"] == pytest.approx((97 * 2 + 1) * 5.23e-6 + sent * 8 / 50e9)
    tcp = rows[("TCP", 25)]
    assert tcp["expected_tok_s"][1] < roce["expected_tok_s"][1]
    assert roce["expected_tok_s"][1] < d["projection"]["expected_tok_s"][1]  # network only adds time
    text = render(d)
    assert "97 all-reduces of 16,384 B" in text and "kyuz0/amd-strix-halo-vllm-toolboxes" in text


def test_expert_parallel_reads_the_busier_ranks_experts():
    share = _expected_max_share(512, 10, 2)
    assert 0.5 < share < 1
    tp = plan(CODER, "gfx1151", context=4096, tensor_parallel_size=2, nodes=2)["projection"]
    ep = plan(CODER, "gfx1151", context=4096, tensor_parallel_size=2, nodes=2, expert_parallel=True)["projection"]
    assert ep["bytes_by_family"]["moe"] == pytest.approx(tp["bytes_by_family"]["moe"] * 2 * share)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(tensor_parallel_size=2, nodes=3), "every node needs at least one"),
    (dict(tensor_parallel_size=0), "at least 1"),
    (dict(tensor_parallel_size=2, nodes=0), "--nodes must be at least 1"),
    (dict(tensor_parallel_size=4, nodes=3), "does not split evenly"),
    (dict(tensor_parallel_size=2, nodes=1), "one GPU per box.*--nodes 2"),
    (dict(expert_parallel=True), "needs --tensor-parallel-size 2"),
    (dict(tensor_parallel_size=3, nodes=3), "not divisible by --tensor-parallel-size 3"),
    (dict(tensor_parallel_size=8, nodes=8), "multiple of the FP8 block 128.*--enable-expert-parallel"),
])
def test_bad_parallel_input_is_refused_with_the_fix(kwargs, msg):
    with pytest.raises(PlanError, match=msg):
        plan(CODER, "gfx1151", **kwargs)


def test_expert_parallel_on_a_dense_model_is_refused():
    with pytest.raises(PlanError, match="has no experts"):
        plan("Qwen/Qwen3.6-27B-FP8", "gfx1201", tensor_parallel_size=2, expert_parallel=True)


def test_two_discrete_gpus_in_one_box_are_a_plan_without_a_network_table():
    d = plan("Qwen/Qwen3.6-27B-FP8", "gfx1201", memory="32GiB", context=4096, tensor_parallel_size=2)
    assert d["projection"]["collectives"]["table"] == [] and "network" not in d["projection"]
    assert "not modelled" in render(d)


def test_cli_plan_two_nodes(capsys):
    assert cli.main(["plan", "--model", NEXT_BF16, "--arch", "gfx1151", "--context", "4096",
                     "--tensor-parallel-size", "2", "--nodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "tensor parallel 2 over 2 node(s)" in out and "PROJECTION" in out and "Gb/s" in out
    assert cli.main(["plan", "--model", CODER, "--arch", "gfx1151", "--tensor-parallel-size", "2",
                     "--nodes", "3"]) == 2
    err = capsys.readouterr().err
    assert "every node needs at least one" in err and "Traceback" not in err

