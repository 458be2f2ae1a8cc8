"""tests/tp: tensor-parallel / expert-parallel shard numerics. Numerics modules (test_*_numerics.py)
run the W8A16 kernels in Triton's CPU interpreter, in scripts/test.sh's interpreter session."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def interpreter_tiles(tmp_path_factory):
    """rdna3 launch configs with 128-row programs (tp_shards.INTERPRETER_TILES), as a measured
    config in a private ROCM_ENABLE_CACHE_DIR; the shipped ones again afterwards."""
    from rocm_enable.ops import config as cfgmod
    from tp_shards import INTERPRETER_TILES

    cache = tmp_path_factory.mktemp("w8a16-cache")
    (cache / "w8a16").mkdir()
    (cache / "w8a16" / "rdna3.json").write_text(json.dumps(INTERPRETER_TILES))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(cfgmod.CACHE_ENV, str(cache))
        cfgmod.load_family.cache_clear()
        assert cfgmod.get_moe_config("rdna3", 1)["w13"]["BLOCK_N"] == 128
        yield
    cfgmod.load_family.cache_clear()
