"""Target of the spawned-process test: a fresh interpreter that simulates the parent's arch and
lets vLLM load its general plugins, as vLLM's own worker processes do."""
import os


def child(queue):
    from rocm_enable import sim

    sim.activate(os.environ["ROCM_ENABLE_ARCH"])
    import vllm.plugins

    from rocm_enable.engine.apply import applied_names

    before = list(applied_names())
    vllm.plugins.load_general_plugins()
    queue.put({"before": before, "after": list(applied_names()), "pid": os.getpid()})
