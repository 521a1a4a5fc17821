#!/usr/bin/env bash
# Train the embedded VLM (vlm_nav/embedded_model) on one CUDA GPU: about 7-8 minutes wall.
#
#   OUT=/path/to/results bash scripts/train_embedded_gpu.sh
#
# Writes $OUT/embedded_model/ (the 7 save_pretrained files; copy them over
# vlm_nav/embedded_model/, keep its README.md) and $OUT/train.log (environment, training
# progress, training_meta.json, held-out evaluation table). Nothing else goes to $OUT, so
# a tool that returns at most 8 files gets everything.
#
# Frames come from data_cache/ (gitignored): rendered by pybullet on all cores where it is
# importable, else read as cached there. A machine without pybullet (e.g. a GPU image with
# Python 3.12, for which PyPI has no pybullet wheel) needs data_cache/ carried, made by:
#   python -m vlm_nav.training.data --layouts 6000 --views-per-layout 16          # train
#   python -m vlm_nav.training.data --first-seed 1000000 --layouts 300 --views-per-layout 4
#   python -m vlm_nav.training.data --first-seed 2000000 --layouts 200 --views-per-layout 8
# data_cache/wheels/transformers-5.24.0-py3-none-any.whl, if there, is installed when the
# machine has another transformers version, so the saved files match the package's.
#
# Knobs (environment): OUT, PYTHON (python3), TRAIN_SECONDS (300: training wall time,
# evaluations included), WORKERS (batch-making processes, default nproc - 4), SEED (0);
# for a dry run without a GPU: DEVICE=cpu TRAIN_SECONDS=60 EVAL_PER_TYPE=20
# TRAIN_EXTRA='--images-per-batch 8 --train-layouts 250 --val-per-type 10'.
set -eo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu}
PY=${PYTHON:-python3}
TRAIN_SECONDS=${TRAIN_SECONDS:-300}
NPROC=$(nproc)
WORKERS=${WORKERS:-$(( NPROC > 6 ? NPROC - 4 : 2 ))}
SEED=${SEED:-0}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
source scripts/gpu_env.sh

{
  start=$(date +%s)
  echo "== environment"
  $PY -c 'import sys, torch, transformers; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__); print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")'
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
  echo "cores $NPROC, batch workers $WORKERS, train seconds $TRAIN_SECONDS"

  echo "== train"
  $PY -m vlm_nav.training.train --out "$OUT/embedded_model" --meta /tmp/training_meta.json \
    --device "$DEVICE" --seed "$SEED" --steps 200000 --time-budget "$TRAIN_SECONDS" \
    --images-per-batch 128 --questions-per-image 6 --lr 2e-3 --warmup 300 \
    --train-layouts 6000 --views-per-layout 16 --val-per-type 300 \
    --eval-every 1500 --log-every 100 --batch-workers "$WORKERS" $TRAIN_EXTRA
  echo "== training_meta.json"
  cat /tmp/training_meta.json

  echo "== held-out evaluation (layout seeds 2000000..2000199, never trained on)"
  $PY -m vlm_nav.training.evaluate --model "$OUT/embedded_model" --device "$DEVICE" \
    --layouts 200 --views-per-layout 8 --per-type "${EVAL_PER_TYPE:-1600}"
  echo "== done in $(( $(date +%s) - start )) s"
} 2>&1 | tee "$OUT/train.log"
