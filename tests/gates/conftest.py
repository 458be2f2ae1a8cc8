"""Gate tests: run the cases that share a simulated vLLM process (shared_sim) back to back."""
import os

GATES = os.path.dirname(os.path.abspath(__file__))


def _process_key(item):
    params = getattr(getattr(item, "callspec", None), "params", {})
    vllm = params.get("vllm_under_test")
    # most cases without an arch parameter run on gfx1151
    return (vllm.version if vllm is not None else "", str(params.get("arch", "gfx1151")))


def pytest_collection_modifyitems(session, config, items):
    # Only the gate tests move, and only among their own slots: order by (vLLM version, arch),
    # stable, so each shared process serves all its cases while it is alive.
    slots = [i for i, item in enumerate(items) if str(item.fspath).startswith(GATES + os.sep)]
    ordered = sorted((items[i] for i in slots), key=_process_key)
    for i, item in zip(slots, ordered):
        items[i] = item
