#!/usr/bin/env bash
# Container entrypoint: check the GPU with `rocm-enable doctor`, then start `vllm serve`.
#
#   entrypoint MODEL [vllm serve flags...]   -> doctor, then vllm serve MODEL flags...
#   entrypoint --flag ...                    -> doctor, then vllm serve $MODEL --flag ...
#   entrypoint vllm|rocm-enable|bash|sh ...  -> run that command as is (no doctor)
#
# ROCM_ENABLE_SKIP_DOCTOR=1 skips the check; ROCM_ENABLE_DOCTOR_STRICT=0 starts vLLM even when
# doctor reports an error (an unknown arch, a malformed toggle).
set -euo pipefail

mkdir -p "${TRITON_CACHE_DIR:-/cache/triton}" "${VLLM_CACHE_ROOT:-/cache/vllm}" \
    "${TORCHINDUCTOR_CACHE_DIR:-/cache/inductor}" "${HF_HOME:-/cache/huggingface}" 2>/dev/null || true

case "${1:-}" in
    vllm|rocm-enable|bash|sh|python|python3)
        exec "$@"
        ;;
esac

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    if [ -z "${MODEL:-}" ]; then
        echo "rocm-enable-entrypoint: give a model (first argument or MODEL=...)" >&2
        exit 64
    fi
    set -- "$MODEL" "$@"
fi

if [ "${ROCM_ENABLE_SKIP_DOCTOR:-0}" != "1" ]; then
    echo "rocm-enable-entrypoint: rocm-enable doctor" >&2
    status=0
    rocm-enable doctor >&2 || status=$?
    if [ "$status" -ne 0 ]; then
        echo "rocm-enable-entrypoint: doctor exited with $status" >&2
        if [ "${ROCM_ENABLE_DOCTOR_STRICT:-1}" = "1" ]; then
            echo "rocm-enable-entrypoint: not starting vLLM (ROCM_ENABLE_DOCTOR_STRICT=0 starts it anyway)" >&2
            exit "$status"
        fi
    fi
fi

exec vllm serve "$@"
