#!/usr/bin/env bash
# `vlm-nav bench model` on one CUDA GPU (the numbers in bench/results/model_gpu/).
#
#   OUT=/path/to/results bash scripts/bench_model_gpu.sh
#
# Frames come from data_cache/ where the machine has no pybullet (carry it; see
# scripts/train_embedded_gpu.sh for how it is made); data_cache/wheels/transformers-5.24.0
# is installed when the machine has another transformers version.
set -eo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_bench}
PY=${PYTHON:-python3}
RUNS=${RUNS:-5}
mkdir -p "$OUT"
source scripts/gpu_env.sh
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  $PY -m vlm_nav.bench.model --device cuda --models embedded --precisions float32,float16 \
    --runs 20 --warmup 3 --accuracy-per-type 100 --out "$OUT/embedded"
  $PY -m vlm_nav.bench.model --device cuda --models smolvlm-256m,llava-1.5-7b \
    --precisions float16,bfloat16 --runs "$RUNS" --warmup 1 --accuracy-per-type 0 \
    --out "$OUT/shapes"
} 2>&1 | grep --line-buffered -v 'Loading weights' | tee "$OUT/bench.log"
