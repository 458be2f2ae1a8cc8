"""Stand-in for ATOM's vLLM entry points (vllm.platform_plugins / vllm.general_plugins)."""
MODEL_REGISTRY_CALLS = []


def register_platform():
    return "atom.plugin.vllm.platform.ATOMPlatform"


def register_model():
    MODEL_REGISTRY_CALLS.append("registered")
