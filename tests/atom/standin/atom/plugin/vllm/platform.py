"""Stand-in for ATOM's vLLM platform: like the real ATOMPlatform, a RocmPlatform subclass."""
from vllm.platforms.rocm import RocmPlatform


class ATOMPlatform(RocmPlatform):
    pass
