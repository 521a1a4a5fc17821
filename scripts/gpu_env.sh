# Sourced by the scripts/*_gpu.sh scripts: run from the repo root with this package on the
# path, and with the pinned transformers (data_cache/wheels/transformers-5.24.0-*.whl,
# carried, since a GPU machine may have another version and no network).
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
whl=$(ls data_cache/wheels/transformers-5.24.0-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$whl" ] && ! $PY -c 'import sys, transformers; sys.exit(transformers.__version__ != "5.24.0")' 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/vlm_site "$whl"
  export PYTHONPATH="/tmp/vlm_site:$PYTHONPATH"
fi
