# Stand-in for aiter.ops.triton.rope.rope. The one function vLLM's aiter RoPE op
# (_triton_rotary_embedding_impl) calls records that it was reached and leaves q/k unchanged;
# the tests only show which implementation vLLM dispatches to.
CALLS = []


def rope_cached_thd_positions_offsets_2c_fwd_inplace(q, k, cos, sin, positions, offsets, rotate_style,
                                                     reuse_freqs_front_part, nope_first):
    CALLS.append({"q": tuple(q.shape), "k": tuple(k.shape), "rotate_style": rotate_style})
